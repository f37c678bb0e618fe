/*
 * smtp_session.c - see smtp_session.h.
 *
 * States: PLAIN (bytes go straight between wire and engine), HANDSHAKE
 * (only TLS records move; the engine waits), TLS (records in, plaintext to
 * the engine; engine plaintext out, records to the wire), DONE (the engine
 * closed; only what TLS still has to say, close_notify, goes out).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_log.h"
#include "smtp/smtp_session.h"

#define SESSION_OBUF 16384 /* TLS records waiting for the wire */
#define SESSION_PBUF 4096  /* decrypted bytes the engine has not taken yet */

enum session_state {
	SESSION_PLAIN = 0,
	SESSION_HANDSHAKE,
	SESSION_TLS,
	SESSION_DONE,
};

struct smtp_session {
	enum session_state state;
	struct smtp_client *c;
	struct smtp_tls_ctx *tls_ctx;
	struct smtp_tls *tls;
	char *sni, *dest_key;
	bool verify;
	bool greeted_ready; /* SMTP_EV_READY seen */
	bool tls_failed;    /* the TLS layer failed (handshake, verification, records) */
	size_t submitted, finished;
	char tls_desc[96];
	char fail_text[224]; /* "454 4.7.0 TLS failed: why", for what a TLS failure fails */
	/* TLS records for the wire: obuf[ohead, otail) */
	size_t ohead, otail;
	uint8_t obuf[SESSION_OBUF];
	/* plaintext decrypted but not yet taken by the engine: pbuf[phead, ptail) */
	size_t phead, ptail;
	uint8_t pbuf[SESSION_PBUF];
};

static void session_tls_fail(struct smtp_session *s, const char *why)
{
	/* The engine fails what is pending with one fixed text; the events
	 * get this one instead (smtp_session_event), which says why. */
	s->tls_failed = true;
	if (!smtp_client_closed(s->c))
		snprintf(s->fail_text, sizeof(s->fail_text), "454 4.7.0 TLS failed: %s", why);
	smtp_client_tls_failed(s->c, why);
	s->state = SESSION_DONE;
}

static void session_tls_begin(struct smtp_session *s)
{
	s->tls = smtp_tls_new(s->tls_ctx, s->sni, s->dest_key, s->verify);
	if (s->tls == NULL) {
		session_tls_fail(s, "cannot start (out of memory)");
		return;
	}
	s->state = SESSION_HANDSHAKE;
	if (smtp_tls_handshake(s->tls) == -EPROTO)
		session_tls_fail(s, smtp_tls_error(s->tls));
}

/* Handshake progress after records arrived. */
static void session_handshake(struct smtp_session *s)
{
	int rc = smtp_tls_handshake(s->tls);

	if (rc == -EAGAIN)
		return;
	if (rc != 0) {
		session_tls_fail(s, smtp_tls_error(s->tls));
		return;
	}
	smtp_tls_describe(s->tls, s->tls_desc, sizeof(s->tls_desc));
	s->state = SESSION_TLS;
	smtp_client_tls_started(s->c);
}

/*
 * Move decrypted bytes to the engine until it stops taking them or TLS has
 * nothing more. Returns true when some byte moved.
 */
static bool session_push_plain(struct smtp_session *s)
{
	bool moved = false;

	while (s->state == SESSION_TLS) {
		if (s->phead == s->ptail) {
			ssize_t n = smtp_tls_read(s->tls, s->pbuf, sizeof(s->pbuf));

			s->phead = s->ptail = 0;
			if (n == -EAGAIN)
				break;
			if (n == -EPIPE) { /* close_notify: the peer is done */
				smtp_client_eof(s->c);
				break;
			}
			if (n < 0) {
				session_tls_fail(s, smtp_tls_error(s->tls));
				break;
			}
			s->ptail = (size_t)n;
		}
		size_t took = smtp_client_feed(s->c, s->pbuf + s->phead, s->ptail - s->phead);

		s->phead += took;
		if (took > 0)
			moved = true;
		if (s->phead != s->ptail)
			break; /* events first */
	}
	return moved;
}

/*
 * The session cache key. A resumed handshake shows no certificate, so a
 * connection that verifies may only resume a session that was verified,
 * and for the same name: else a session from an opportunistic connection
 * (any certificate taken) would pass unchecked. The cache does not know
 * how a session was made, so the key says it.
 */
static char *session_key(const struct smtp_session_config *cfg)
{
	const char *sni = cfg->tls_sni != NULL ? cfg->tls_sni : "";
	size_t len = strlen(cfg->tls_dest_key) + strlen(sni) + sizeof(" verified ");
	char *k = malloc(len);

	if (k == NULL)
		return NULL;
	if (cfg->tls_verify)
		snprintf(k, len, "%s verified %s", cfg->tls_dest_key, sni);
	else
		snprintf(k, len, "%s", cfg->tls_dest_key);
	return k;
}

struct smtp_session *smtp_session_new(const struct smtp_session_config *cfg)
{
	struct smtp_session *s;

	if (cfg->client.tls != SMTP_TLS_NONE && cfg->tls_ctx == NULL) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->c = smtp_client_new(&cfg->client);
	if (s->c == NULL) {
		int e = errno; /* EINVAL for a bad engine config, not ENOMEM */

		free(s);
		errno = e;
		return NULL;
	}
	s->tls_ctx = cfg->tls_ctx;
	s->verify = cfg->tls_verify;
	if (cfg->tls_sni != NULL && (s->sni = strdup(cfg->tls_sni)) == NULL)
		goto fail;
	if (cfg->tls_dest_key != NULL && (s->dest_key = session_key(cfg)) == NULL)
		goto fail;
	if (cfg->client.tls == SMTP_TLS_IMPLICIT)
		session_tls_begin(s);
	return s;
fail:
	smtp_session_free(s);
	errno = ENOMEM;
	return NULL;
}

void smtp_session_free(struct smtp_session *s)
{
	if (s == NULL)
		return;
	smtp_tls_free(s->tls);
	smtp_client_free(s->c);
	free(s->sni);
	free(s->dest_key);
	free(s);
}

int smtp_session_submit(struct smtp_session *s, const struct smtp_msg *m)
{
	int rc = smtp_client_submit(s->c, m);

	if (rc == 0)
		s->submitted++;
	return rc;
}

void smtp_session_quit(struct smtp_session *s)
{
	smtp_client_quit(s->c);
}

size_t smtp_session_rx(struct smtp_session *s, const void *p, size_t n)
{
	switch (s->state) {
	case SESSION_PLAIN:
		return smtp_client_feed(s->c, p, n);
	case SESSION_HANDSHAKE:
		smtp_tls_cipher_in(s->tls, p, n);
		session_handshake(s);
		/* Records after the handshake's last one are application data. */
		if (s->state == SESSION_TLS)
			session_push_plain(s);
		return n;
	case SESSION_TLS:
		smtp_tls_cipher_in(s->tls, p, n);
		session_push_plain(s);
		return n;
	case SESSION_DONE:
		return n; /* nobody listens any more */
	default:
		dmta_panic("smtp_session: bad state %d", s->state);
	}
}

int smtp_session_event(struct smtp_session *s, struct smtp_event *ev)
{
	for (;;) {
		if (smtp_client_event(s->c, ev)) {
			switch (ev->type) {
			case SMTP_EV_TLS_NEEDED:
				/* Bytes behind the 220 may have closed the engine
				 * (plaintext injection) before this event was taken:
				 * then no handshake, or a ClientHello would follow
				 * SMTP_EV_CLOSED onto the wire. */
				if (!smtp_client_closed(s->c))
					session_tls_begin(s);
				continue; /* ours, not the caller's */
			case SMTP_EV_READY:
				s->greeted_ready = true;
				break;
			case SMTP_EV_MSG:
				s->finished++;
				/* fall through */
			case SMTP_EV_RCPT:
				if (ev->local && ev->code == 454 && s->fail_text[0]) {
					ev->text = s->fail_text;
					ev->text_len = strlen(s->fail_text);
				}
				break;
			case SMTP_EV_CLOSED:
				if (s->state == SESSION_TLS)
					smtp_tls_shutdown(s->tls); /* keeps it resumable */
				s->state = SESSION_DONE;
				break;
			default:
				break;
			}
			return 1;
		}
		/* No event: decrypted bytes the engine could not take before may
		 * fit now, and may make new events. */
		if (!session_push_plain(s))
			return 0;
	}
}

/* Encrypt what the engine has to send, and collect records in obuf. */
static void session_fill_obuf(struct smtp_session *s)
{
	if (s->state == SESSION_TLS) {
		struct iovec iov[8];
		size_t k, pending;

		/* Encrypt only while the records fit, and only what fits: the
		 * engine keeps the rest. One iovec can be a whole BDAT body or
		 * a 64 KiB slice of a DATA one. */
		while ((pending = smtp_tls_cipher_pending(s->tls)) < SESSION_OBUF &&
		       (k = smtp_client_tx_iov(s->c, iov, 8)) > 0) {
			size_t room = SESSION_OBUF - pending, total = 0;

			for (size_t i = 0; i < k && total < room; i++) {
				size_t len = iov[i].iov_len;

				if (len > room - total)
					len = room - total;
				if (smtp_tls_write(s->tls, iov[i].iov_base, len) < 0) {
					session_tls_fail(s, smtp_tls_error(s->tls));
					return;
				}
				total += len;
			}
			smtp_client_tx_done(s->c, total);
		}
	}
	if (s->ohead == s->otail)
		s->ohead = s->otail = 0;
	if (s->otail < SESSION_OBUF)
		s->otail +=
		    smtp_tls_cipher_out(s->tls, s->obuf + s->otail, SESSION_OBUF - s->otail);
}

size_t smtp_session_tx_iov(struct smtp_session *s, struct iovec *iov, size_t max)
{
	if (max == 0)
		return 0;
	if (s->state == SESSION_PLAIN)
		return smtp_client_tx_iov(s->c, iov, max);
	if (s->tls == NULL)
		return 0;
	session_fill_obuf(s);
	if (s->ohead == s->otail)
		return 0;
	iov[0].iov_base = s->obuf + s->ohead;
	iov[0].iov_len = s->otail - s->ohead;
	return 1;
}

void smtp_session_tx_done(struct smtp_session *s, size_t n)
{
	if (s->state == SESSION_PLAIN) {
		smtp_client_tx_done(s->c, n);
		return;
	}
	if (n > s->otail - s->ohead)
		dmta_panic("smtp_session: %zu bytes sent of %zu", n, s->otail - s->ohead);
	s->ohead += n;
}

enum smtp_deadline smtp_session_deadline(const struct smtp_session *s, uint64_t *ms)
{
	if (s->state == SESSION_HANDSHAKE) {
		if (ms != NULL) /* may be NULL, as for smtp_client_deadline() */
			*ms = 300000;
		return SMTP_DL_TLS;
	}
	return smtp_client_deadline(s->c, ms);
}

void smtp_session_timeout(struct smtp_session *s)
{
	if (s->state == SESSION_HANDSHAKE)
		session_tls_fail(s, "handshake timed out");
	else
		smtp_client_timeout(s->c);
}

void smtp_session_eof(struct smtp_session *s)
{
	if (s->state == SESSION_HANDSHAKE)
		session_tls_fail(s, "connection closed during the handshake");
	else
		smtp_client_eof(s->c);
}

bool smtp_session_closed(const struct smtp_session *s)
{
	return smtp_client_closed(s->c);
}

bool smtp_session_ready(const struct smtp_session *s)
{
	return s->greeted_ready && s->finished == s->submitted && !smtp_client_closed(s->c);
}

const char *smtp_session_tls(const struct smtp_session *s)
{
	return s->tls_desc;
}

bool smtp_session_tls_failed(const struct smtp_session *s)
{
	return s->tls_failed;
}

struct smtp_client *smtp_session_client(struct smtp_session *s)
{
	return s->c;
}
