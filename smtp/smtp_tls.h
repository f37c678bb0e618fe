/*
 * smtp_tls.h - TLS as a sans-I/O layer (OpenSSL over memory BIOs).
 *
 * SYNOPSIS
 *	struct smtp_tls_ctx *x = smtp_tls_ctx_new(ca_file, 64);
 *	struct smtp_tls *t = smtp_tls_new(x, "mx.example", "mx.example:25", verify);
 *	loop:
 *	  smtp_tls_cipher_in(t, bytes from the wire, n);
 *	  rc = smtp_tls_handshake(t);		(until 0)
 *	  n = smtp_tls_read(t, plain, cap);	(plaintext for the SMTP engine)
 *	  smtp_tls_write(t, plain, n);		(plaintext from the SMTP engine)
 *	  n = smtp_tls_cipher_out(t, buf, cap);	(bytes for the wire)
 *	smtp_tls_free(t);
 *
 *	(server)  x = smtp_tls_server_ctx_new(cert, key, err, sizeof(err));
 *	          t = smtp_tls_accept(x);  then the same loop
 *
 * DESCRIPTION
 *	Like the SMTP engine, this layer owns no socket: the caller moves
 *	ciphertext between it and the wire. It sends SNI, and when verify is
 *	true it checks the certificate chain against the context's CAs and the
 *	host name against the certificate (RFC 6125 via X509_check_host); the
 *	handshake then fails on a mismatch. Without verify (opportunistic TLS
 *	for MX delivery, RFC 7435) any certificate is taken and
 *	smtp_tls_verified() says whether it would have passed.
 *
 *	Sessions are kept per destination key (the caller's choice, e.g.
 *	"host:port") in the context, a few per key, and offered on the next
 *	connections to the same key: a TLS 1.3 ticket to one connection only
 *	(RFC 8446 C.4), a TLS 1.2 session id or ticket to each. Call
 *	smtp_tls_shutdown() before smtp_tls_free() when the session ended
 *	cleanly: without it OpenSSL marks the session not resumable, and the
 *	destination's other cached sessions are dropped too, which is what we
 *	want after a failure.
 *
 * DIAGNOSTICS
 *	Constructors return NULL and set errno (EINVAL, ENOMEM, EPROTO when
 *	OpenSSL refuses the CA file). smtp_tls_handshake(), smtp_tls_read() and
 *	smtp_tls_write() return -EAGAIN when they need more bytes from the
 *	wire, -EPROTO on a TLS failure (smtp_tls_error() says why), and
 *	smtp_tls_read() returns -EPIPE after the peer's close_notify.
 */
#ifndef SMTP_TLS_H
#define SMTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct smtp_tls_ctx;
struct smtp_tls;

/** ca_file: PEM bundle for verification (NULL: the system's default paths).
 *  cache_slots: destinations whose sessions are kept (0: no resumption). */
struct smtp_tls_ctx *smtp_tls_ctx_new(const char *ca_file, unsigned cache_slots);
void smtp_tls_ctx_free(struct smtp_tls_ctx *x);

/**
 * A server context: the certificate chain @p cert_file (PEM, leaf first)
 * and its key @p key_file. NULL + errno (EINVAL, ENOMEM, EPROTO when
 * OpenSSL refuses a file) and one line in @p err.
 */
struct smtp_tls_ctx *smtp_tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
					     size_t errlen);
/** A server connection on a context from smtp_tls_server_ctx_new(). NULL + errno. */
struct smtp_tls *smtp_tls_accept(struct smtp_tls_ctx *x);

/** A client connection. sni may be NULL (no SNI, no host check); dest_key
 *  names the session cache entry (NULL: no resumption). */
struct smtp_tls *smtp_tls_new(struct smtp_tls_ctx *x, const char *sni, const char *dest_key,
			      bool verify);
void smtp_tls_free(struct smtp_tls *t);

/** Ciphertext received from the wire. Returns n (memory BIOs take all). */
size_t smtp_tls_cipher_in(struct smtp_tls *t, const void *p, size_t n);
/** Ciphertext to send: up to cap bytes copied to p; returns the count. */
size_t smtp_tls_cipher_out(struct smtp_tls *t, void *p, size_t cap);
/** Ciphertext waiting to be sent. */
size_t smtp_tls_cipher_pending(const struct smtp_tls *t);

/** Drive the handshake: 0 when done, -EAGAIN, or -EPROTO. */
int smtp_tls_handshake(struct smtp_tls *t);
/** Plaintext received: bytes (> 0), -EAGAIN, -EPIPE, or -EPROTO. */
ssize_t smtp_tls_read(struct smtp_tls *t, void *p, size_t cap);
/** Plaintext to send: bytes taken (all of n) or -EPROTO. */
ssize_t smtp_tls_write(struct smtp_tls *t, const void *p, size_t n);
/** Queue close_notify. */
void smtp_tls_shutdown(struct smtp_tls *t);

bool smtp_tls_resumed(const struct smtp_tls *t);
bool smtp_tls_verified(const struct smtp_tls *t);
/** "TLSv1.3 TLS_AES_256_GCM_SHA384" and the like. */
const char *smtp_tls_describe(const struct smtp_tls *t, char *buf, size_t cap);
/** Why the last call failed. */
const char *smtp_tls_error(const struct smtp_tls *t);

#endif
