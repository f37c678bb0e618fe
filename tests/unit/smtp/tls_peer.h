/*
 * tls_peer.h - an in-memory TLS server for smtp/ tests and benchmarks.
 *
 * SYNOPSIS
 *	X509 *ca; SSL_CTX *sctx = tls_peer_ctx("mx.test", &ca);
 *	struct tls_peer p; tls_peer_init(&p, sctx);
 *	tls_peer_pump(&p, client_tls);	(move ciphertext both ways)
 *
 * DESCRIPTION
 *	A self-signed certificate (P-256) for the given name, made in memory,
 *	and a server SSL over memory BIOs. The certificate doubles as the CA
 *	a verifying client trusts (tls_peer_ca_file writes it out).
 */
#ifndef TLS_PEER_H
#define TLS_PEER_H

#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smtp/smtp_tls.h"

struct tls_peer {
	SSL *ssl;
	BIO *rbio, *wbio;
};

static inline SSL_CTX *tls_peer_ctx(const char *cn, X509 **cert_out)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char san[300];

	if (k == NULL || x == NULL || ctx == NULL)
		abort();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	snprintf(san, sizeof(san), "DNS:%s", cn);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(x, k, EVP_sha256()) == 0)
		abort();
	if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, k) != 1)
		abort();
	EVP_PKEY_free(k);
	if (cert_out)
		*cert_out = x;
	else
		X509_free(x);
	return ctx;
}

/* Write the certificate as a PEM file, for smtp_tls_ctx_new(ca_file). */
static inline void tls_peer_ca_file(X509 *x, const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || PEM_write_X509(f, x) != 1)
		abort();
	fclose(f);
}

static inline void tls_peer_init(struct tls_peer *p, SSL_CTX *ctx)
{
	p->ssl = SSL_new(ctx);
	p->rbio = BIO_new(BIO_s_mem());
	p->wbio = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(p->rbio, -1);
	SSL_set_bio(p->ssl, p->rbio, p->wbio);
	SSL_set_accept_state(p->ssl);
}

static inline void tls_peer_free(struct tls_peer *p)
{
	SSL_free(p->ssl);
}

/* Move ciphertext both ways; returns bytes moved. */
static inline size_t tls_peer_pump(struct tls_peer *p, struct smtp_tls *c)
{
	static char buf[65536];
	size_t moved = 0, n;
	int r;

	while ((n = smtp_tls_cipher_out(c, buf, sizeof(buf))) > 0) {
		BIO_write(p->rbio, buf, (int)n);
		moved += n;
	}
	if (!SSL_is_init_finished(p->ssl))
		SSL_do_handshake(p->ssl);
	while ((r = BIO_read(p->wbio, buf, sizeof(buf))) > 0) {
		smtp_tls_cipher_in(c, buf, (size_t)r);
		moved += (size_t)r;
	}
	return moved;
}

/* Plaintext the server received (discarded), up to cap; returns bytes. */
static inline size_t tls_peer_read(struct tls_peer *p, char *buf, size_t cap)
{
	size_t got = 0, total = 0;

	while (total < cap && SSL_read_ex(p->ssl, buf + total, cap - total, &got) == 1)
		total += got;
	return total;
}

static inline void tls_peer_write(struct tls_peer *p, const char *s, size_t n)
{
	size_t w;

	if (SSL_write_ex(p->ssl, s, n, &w) != 1 || w != n)
		abort();
}

#endif
