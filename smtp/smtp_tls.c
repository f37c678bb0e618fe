/*
 * smtp_tls.c - TLS as a sans-I/O layer (OpenSSL over memory BIOs).
 *
 * DESCRIPTION
 *	See smtp_tls.h. A server context (smtp_tls_server_ctx_new) holds a
 *	certificate and key and no session table; its connections come from
 *	smtp_tls_accept() and share every function below with the client's. Two memory BIOs stand in
 *for the socket: OpenSSL reads ciphertext from rbio (filled by smtp_tls_cipher_in) and writes it to
 *	wbio (drained by smtp_tls_cipher_out). Sessions are caught with the
 *	new-session callback, which is where TLS 1.3 tickets show up, and kept
 *	in a small table keyed by destination, a few per destination; the
 *	oldest entry is replaced when the table is full. A TLS 1.3 session
 *	leaves the table when it is offered: its ticket is for one use (RFC
 *	8446 C.4), and OpenSSL does not offer it again once a handshake
 *	resumed it, so connections that start together each need their own.
 *	Servers leave two tickets per full handshake (OpenSSL's default) and
 *	one per resumed one, which keeps the table stocked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smtp/smtp_tls.h"

#define SLOT_SESSIONS 4 /* sessions kept per destination */

struct slot {
	char *key;
	SSL_SESSION *sess[SLOT_SESSIONS]; /* oldest first */
	unsigned n;
	unsigned long age;
};

struct smtp_tls_ctx {
	SSL_CTX *ctx;
	struct slot *slots;
	unsigned nslots;
	unsigned long clock;
	bool server; /* smtp_tls_server_ctx_new(): smtp_tls_accept() only */
};

struct smtp_tls {
	struct smtp_tls_ctx *x;
	SSL *ssl;
	BIO *rbio, *wbio;
	char *key;
	bool established; /* a handshake completed */
	bool closed;	  /* smtp_tls_shutdown() was called */
	char err[160];
};

static int app_idx = -1;

static void set_err(struct smtp_tls *t, const char *what)
{
	unsigned long e = ERR_get_error();
	long v = SSL_get_verify_result(t->ssl);

	if (v != X509_V_OK)
		snprintf(t->err, sizeof(t->err), "%s: certificate: %s", what,
			 X509_verify_cert_error_string(v));
	else if (e)
		snprintf(t->err, sizeof(t->err), "%s: %s", what, ERR_reason_error_string(e));
	else
		snprintf(t->err, sizeof(t->err), "%s", what);
	ERR_clear_error();
}

static struct slot *slot_find(struct smtp_tls_ctx *x, const char *key)
{
	for (unsigned i = 0; i < x->nslots; i++)
		if (x->slots[i].key && strcmp(x->slots[i].key, key) == 0)
			return &x->slots[i];
	return NULL;
}

static void slot_clear(struct slot *s)
{
	for (unsigned i = 0; i < s->n; i++)
		SSL_SESSION_free(s->sess[i]);
	s->n = 0;
}

/*
 * The newest session to offer, with a reference for the caller, or NULL.
 * A TLS 1.3 one leaves the slot (one use); a TLS 1.2 one stays, as its
 * session id or ticket may be offered again.
 */
static SSL_SESSION *slot_take(struct slot *s)
{
	while (s->n > 0) {
		SSL_SESSION *sess = s->sess[s->n - 1];

		if (!SSL_SESSION_is_resumable(sess)) {
			SSL_SESSION_free(sess);
			s->n--;
			continue;
		}
		if (SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION)
			s->n--; /* the slot's reference goes to the caller */
		else
			SSL_SESSION_up_ref(sess);
		return sess;
	}
	return NULL;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct smtp_tls *t = SSL_get_ex_data(ssl, app_idx);
	struct smtp_tls_ctx *x;
	struct slot *s;

	if (t == NULL || t->key == NULL || t->x->nslots == 0)
		return 0;
	x = t->x;
	s = slot_find(x, t->key);
	if (s == NULL) {
		s = &x->slots[0];
		for (unsigned i = 0; i < x->nslots; i++) {
			if (x->slots[i].key == NULL) {
				s = &x->slots[i];
				break;
			}
			if (x->slots[i].age < s->age)
				s = &x->slots[i];
		}
		slot_clear(s);
		free(s->key);
		s->key = strdup(t->key);
		if (s->key == NULL)
			return 0;
	}
	if (s->n == SLOT_SESSIONS) {
		SSL_SESSION_free(s->sess[0]);
		memmove(s->sess, s->sess + 1, (SLOT_SESSIONS - 1) * sizeof(s->sess[0]));
		s->n--;
	}
	s->sess[s->n++] = sess;
	s->age = ++x->clock;
	return 1; /* we keep the reference */
}

struct smtp_tls_ctx *smtp_tls_ctx_new(const char *ca_file, unsigned cache_slots)
{
	struct smtp_tls_ctx *x = calloc(1, sizeof(*x));

	if (x == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (app_idx < 0)
		app_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	x->ctx = SSL_CTX_new(TLS_client_method());
	x->slots = calloc(cache_slots ? cache_slots : 1, sizeof(*x->slots));
	if (x->ctx == NULL || x->slots == NULL) {
		smtp_tls_ctx_free(x);
		errno = ENOMEM;
		return NULL;
	}
	x->nslots = cache_slots;
	SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
	if ((ca_file && SSL_CTX_load_verify_locations(x->ctx, ca_file, NULL) != 1) ||
	    (!ca_file && SSL_CTX_set_default_verify_paths(x->ctx) != 1)) {
		ERR_clear_error();
		smtp_tls_ctx_free(x);
		errno = EPROTO;
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(x->ctx,
				       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(x->ctx, on_new_session);
	return x;
}

void smtp_tls_ctx_free(struct smtp_tls_ctx *x)
{
	if (x == NULL)
		return;
	for (unsigned i = 0; x->slots && i < x->nslots; i++) {
		free(x->slots[i].key);
		slot_clear(&x->slots[i]);
	}
	free(x->slots);
	SSL_CTX_free(x->ctx);
	free(x);
}

struct smtp_tls_ctx *smtp_tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
					     size_t errlen)
{
	struct smtp_tls_ctx *x = calloc(1, sizeof(*x));

	if (x == NULL || cert_file == NULL || key_file == NULL) {
		free(x);
		snprintf(err, errlen, "a certificate and a key are needed");
		errno = x ? EINVAL : ENOMEM;
		return NULL;
	}
	if (app_idx < 0)
		app_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	x->ctx = SSL_CTX_new(TLS_server_method());
	if (x->ctx == NULL) {
		free(x);
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	x->server = true;
	SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(x->ctx, cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(x->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(x->ctx) != 1) {
		unsigned long e = ERR_get_error();

		snprintf(err, errlen, "%s, %s: %s", cert_file, key_file,
			 e ? ERR_reason_error_string(e) : "unusable");
		ERR_clear_error();
		smtp_tls_ctx_free(x);
		errno = EPROTO;
		return NULL;
	}
	/* Stateless tickets (OpenSSL's default) let clients resume without a
	 * server-side cache, which one listener thread does not need. */
	SSL_CTX_set_session_cache_mode(x->ctx, SSL_SESS_CACHE_OFF);
	return x;
}

/* A connection on @p x over two memory BIOs, keyed by @p dest_key (may be
 * NULL); NULL + errno. */
static struct smtp_tls *conn_new(struct smtp_tls_ctx *x, const char *dest_key)
{
	struct smtp_tls *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	t->x = x;
	t->ssl = SSL_new(x->ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (dest_key)
		t->key = strdup(dest_key);
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL || (dest_key && t->key == NULL)) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t->key);
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	return t;
}

struct smtp_tls *smtp_tls_accept(struct smtp_tls_ctx *x)
{
	struct smtp_tls *t;

	if (x == NULL || !x->server) {
		errno = EINVAL;
		return NULL;
	}
	t = conn_new(x, NULL);
	if (t != NULL)
		SSL_set_accept_state(t->ssl);
	return t;
}

struct smtp_tls *smtp_tls_new(struct smtp_tls_ctx *x, const char *sni, const char *dest_key,
			      bool verify)
{
	struct smtp_tls *t;

	if (x == NULL || x->server) {
		errno = EINVAL;
		return NULL;
	}
	t = conn_new(x, dest_key);
	if (t == NULL)
		return NULL;
	SSL_set_ex_data(t->ssl, app_idx, t);
	SSL_set_connect_state(t->ssl);
	if (sni && sni[0]) {
		SSL_set_tlsext_host_name(t->ssl, sni);
		/* Checked even without verify, so that smtp_tls_verified()
		 * tells the whole truth for opportunistic sessions. */
		SSL_set1_host(t->ssl, sni);
	}
	SSL_set_verify(t->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (t->key) {
		struct slot *s = slot_find(x, t->key);
		SSL_SESSION *sess = s ? slot_take(s) : NULL;

		if (sess != NULL) {
			SSL_set_session(t->ssl, sess); /* takes its own reference */
			SSL_SESSION_free(sess);
		}
	}
	return t;
}

void smtp_tls_free(struct smtp_tls *t)
{
	if (t == NULL)
		return;
	/* Without close_notify the connection may have been cut short, and
	 * OpenSSL marks its session not resumable: the other tickets it
	 * brought go too, and with them (where each came from is not kept)
	 * the destination's others. */
	if (t->key != NULL && t->established && !t->closed) {
		struct slot *s = slot_find(t->x, t->key);

		if (s != NULL)
			slot_clear(s);
	}
	SSL_free(t->ssl); /* frees the BIOs */
	free(t->key);
	free(t);
}

size_t smtp_tls_cipher_in(struct smtp_tls *t, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int w = BIO_write(t->rbio, p, (int)n);
	return w > 0 ? (size_t)w : 0;
}

size_t smtp_tls_cipher_out(struct smtp_tls *t, void *p, size_t cap)
{
	int r = BIO_read(t->wbio, p, (int)(cap > 0x7fffffff ? 0x7fffffff : cap));

	return r > 0 ? (size_t)r : 0;
}

size_t smtp_tls_cipher_pending(const struct smtp_tls *t)
{
	return BIO_ctrl_pending(t->wbio);
}

static int map_err(struct smtp_tls *t, int rc, const char *what)
{
	switch (SSL_get_error(t->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return -EPIPE;
	default:
		set_err(t, what);
		return -EPROTO;
	}
}

int smtp_tls_handshake(struct smtp_tls *t)
{
	int rc = SSL_do_handshake(t->ssl);

	if (rc == 1) {
		t->established = true;
		return 0;
	}
	return map_err(t, rc, "handshake");
}

ssize_t smtp_tls_read(struct smtp_tls *t, void *p, size_t cap)
{
	size_t got = 0;
	int rc = SSL_read_ex(t->ssl, p, cap, &got);

	return rc == 1 ? (ssize_t)got : map_err(t, rc, "read");
}

ssize_t smtp_tls_write(struct smtp_tls *t, const void *p, size_t n)
{
	size_t done = 0;

	if (n == 0)
		return 0;
	/* Memory BIOs never push back, so a write takes everything. */
	int rc = SSL_write_ex(t->ssl, p, n, &done);
	return rc == 1 ? (ssize_t)done : map_err(t, rc, "write");
}

void smtp_tls_shutdown(struct smtp_tls *t)
{
	SSL_shutdown(t->ssl);
	ERR_clear_error();
	t->closed = true;
}

bool smtp_tls_resumed(const struct smtp_tls *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

bool smtp_tls_verified(const struct smtp_tls *t)
{
	return SSL_get0_peer_certificate(t->ssl) != NULL &&
	       SSL_get_verify_result(t->ssl) == X509_V_OK;
}

const char *smtp_tls_describe(const struct smtp_tls *t, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	return buf;
}

const char *smtp_tls_error(const struct smtp_tls *t)
{
	return t->err[0] ? t->err : "no error";
}
