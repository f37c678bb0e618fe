/*
 * test_smtp_session.c - smtp_session against an in-memory SMTP server.
 *
 * DESCRIPTION
 *	The server is a small scripted SMTP server that speaks plaintext and,
 *	after answering 220 to STARTTLS (or from the first byte, for implicit
 *	TLS), runs a real OpenSSL server over memory BIOs (tls_peer.h). The
 *	test moves only wire bytes between the two, the way a socket would:
 *	whole, one byte at a time, or in partial writes of odd sizes. The
 *	server keeps what it decrypted, per phase, so each case can check
 *	exactly what arrived and that nothing arrived in the clear.
 *
 *	Event log notation: G<code> greeting, R ready, T tls needed (must never
 *	show), r<i>:<k|t|p><code> recipient i ok/temp/perm, M<k|t|p><code>:
 *	<ok>/<temp>/<perm> message, E protocol error, X closed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "smtp/smtp_session.h"
#include "tests/unit/smtp/test_buf.h"
#include "tests/unit/smtp/tls_peer.h"

static SSL_CTX *sctx; /* one server context: its ticket keys make resumption work */
static char ca_path[64];

/* ------------------------------------------------------------- server */

enum srv_mode { SV_CMD, SV_DATA, SV_BDAT, SV_QUIT };

struct srv {
	/* the script */
	const char *ehlo_plain;		 /* reply to EHLO before TLS */
	const char *ehlo_tls;		 /* reply to EHLO over TLS */
	const char *const *rcpt_replies; /* one per RCPT, in order; NULL: 250 */
	bool implicit;			 /* TLS from the first byte */
	bool garbage;			 /* answer the ClientHello with plaintext */
	bool mute_tls;			 /* swallow the ClientHello, say nothing */
	bool garbage_in_tls;		 /* a bogus record after the TLS EHLO reply */
	bool inject;			 /* plaintext right behind the 220 to STARTTLS */
	bool hold_starttls;		 /* take STARTTLS, answer nothing */
	bool tls12;			 /* TLS 1.2 at most */
	bool tiny_records;		 /* one TLS record per byte said */
	bool hrr;			 /* ask for another key share (HelloRetryRequest) */
	/* state */
	bool tls, peer, greeted, garbage_sent;
	struct tls_peer p;
	enum srv_mode mode;
	size_t bdat_left, nrcpt, accepted; /* accepted: RCPTs taken in this transaction */
	struct buf in;			   /* plaintext received, not yet handled */
	struct buf plain;		   /* plaintext received before TLS */
	struct buf dec;			   /* plaintext decrypted from TLS */
	struct buf writes;		   /* all plaintext received, '|' after each write */
	struct buf body;      /* message body as on the wire (DATA: dot-stuffed, with ".") */
	struct buf unstuffed; /* the body as the sender meant it */
	struct buf wire_tls;  /* client bytes on the wire once TLS began */
	struct buf out;	      /* bytes for the client */
	size_t out_off;
	int hs_error; /* SSL_get_error() of a failed server handshake */
	bool reused, close_notify, injected, quit;
	size_t after_quit; /* command bytes after QUIT */
};

static void srv_flush(struct srv *v)
{
	char tmp[16384];
	int r;

	while ((r = BIO_read(v->p.wbio, tmp, sizeof(tmp))) > 0)
		buf_add(&v->out, tmp, (size_t)r);
}

static void srv_say(struct srv *v, const char *s)
{
	if (v->tls) {
		if (v->tiny_records)
			for (size_t i = 0; s[i]; i++)
				tls_peer_write(&v->p, s + i, 1);
		else
			tls_peer_write(&v->p, s, strlen(s));
		srv_flush(v);
	} else {
		buf_str(&v->out, s);
	}
}

static void srv_tls_start(struct srv *v)
{
	tls_peer_init(&v->p, sctx);
	if (v->tls12)
		SSL_set_max_proto_version(v->p.ssl, TLS1_2_VERSION);
	if (v->hrr) /* the client offers an X25519 share first */
		assert_int_equal(SSL_set1_groups_list(v->p.ssl, "P-256"), 1);
	v->peer = true;
}

static void srv_init(struct srv *v)
{
	if (v->implicit) {
		v->tls = true;
		srv_tls_start(v);
	} else {
		srv_say(v, "220 mx.test ESMTP\r\n");
		v->greeted = true;
	}
}

static void srv_free(struct srv *v)
{
	if (v->peer)
		tls_peer_free(&v->p);
	buf_free(&v->in);
	buf_free(&v->plain);
	buf_free(&v->dec);
	buf_free(&v->writes);
	buf_free(&v->body);
	buf_free(&v->unstuffed);
	buf_free(&v->wire_tls);
	buf_free(&v->out);
}

#define IS(cmd) (len >= sizeof(cmd) - 1 && strncasecmp(line, cmd, sizeof(cmd) - 1) == 0)

/* One command line, without its CRLF. */
static void srv_line(struct srv *v, const char *line, size_t len)
{
	if (IS("EHLO ")) {
		srv_say(v, v->tls ? v->ehlo_tls : v->ehlo_plain);
		if (v->tls && v->garbage_in_tls)
			buf_add(&v->out, "\x17\x03\x03\x00\x05hello", 10);
	} else if (IS("STARTTLS") && v->hold_starttls) {
		return;
	} else if (IS("STARTTLS") && !v->tls) {
		srv_say(v, "220 2.0.0 go ahead\r\n");
		if (v->inject)
			srv_say(v, "250 injected\r\n");
		v->tls = true;
		srv_tls_start(v);
	} else if (IS("MAIL FROM:")) {
		srv_say(v, "250 2.1.0 ok\r\n");
		v->accepted = 0;
	} else if (IS("RCPT TO:")) {
		const char *rep = v->rcpt_replies ? v->rcpt_replies[v->nrcpt] : "250 2.1.5 ok\r\n";

		srv_say(v, rep);
		v->nrcpt++;
		v->accepted += rep[0] == '2';
	} else if (IS("DATA") && v->accepted == 0) {
		srv_say(v, "554 5.5.1 no valid recipients\r\n");
	} else if (IS("DATA")) {
		srv_say(v, "354 go on\r\n");
		v->mode = SV_DATA;
	} else if (IS("BDAT ")) {
		char tmp[64];

		assert_true(len < sizeof(tmp));
		memcpy(tmp, line, len);
		tmp[len] = '\0';
		v->bdat_left = strtoull(tmp + 5, NULL, 10);
		assert_non_null(strstr(tmp, " LAST"));
		v->mode = SV_BDAT;
	} else if (IS("QUIT")) {
		srv_say(v, "221 2.0.0 bye\r\n");
		if (v->tls) {
			SSL_shutdown(v->p.ssl);
			srv_flush(v);
		}
		v->mode = SV_QUIT;
		v->quit = true;
	} else if (IS("RSET")) {
		srv_say(v, "250 2.0.0 ok\r\n");
	} else {
		srv_say(v, "500 5.5.1 what?\r\n");
	}
}

static void srv_process(struct srv *v)
{
	size_t off = 0;

	while (off < v->in.len) {
		uint8_t *p = v->in.p + off;
		size_t n = v->in.len - off;

		if (v->mode == SV_BDAT) {
			size_t k = n < v->bdat_left ? n : v->bdat_left;

			buf_add(&v->body, p, k);
			buf_add(&v->unstuffed, p, k);
			off += k;
			v->bdat_left -= k;
			if (v->bdat_left == 0) {
				v->mode = SV_CMD;
				srv_say(v, "250 2.0.0 queued\r\n");
			}
			continue;
		}
		uint8_t *nl = memchr(p, '\n', n);
		if (nl == NULL)
			break;
		size_t ll = (size_t)(nl - p) + 1;

		off += ll;
		if (v->mode == SV_DATA) {
			buf_add(&v->body, p, ll);
			if (ll == 3 && memcmp(p, ".\r\n", 3) == 0) {
				v->mode = SV_CMD;
				srv_say(v, "250 2.0.0 queued\r\n");
			} else {
				size_t dot = p[0] == '.';
				buf_add(&v->unstuffed, p + dot, ll - dot);
			}
			continue;
		}
		if (v->mode == SV_QUIT) {
			v->after_quit += ll;
			continue;
		}
		assert_true(ll >= 2 && p[ll - 2] == '\r'); /* commands end in CRLF */
		bool was_tls = v->tls;
		srv_line(v, (const char *)p, ll - 2);
		if (!was_tls && v->tls) {
			/* Anything the client sent behind STARTTLS in the clear. */
			if (off < v->in.len)
				v->injected = true;
			off = v->in.len;
		}
	}
	if (off > 0) {
		memmove(v->in.p, v->in.p + off, v->in.len - off);
		v->in.len -= off;
	}
}

static void srv_tls_in(struct srv *v)
{
	SSL *ssl = v->p.ssl;
	char tmp[16384];
	size_t got, total = 0;

	if (v->hs_error)
		return;
	if (!SSL_is_init_finished(ssl)) {
		int r = SSL_do_handshake(ssl);

		if (r != 1) {
			int e = SSL_get_error(ssl, r);

			if (e != SSL_ERROR_WANT_READ)
				v->hs_error = e;
			ERR_clear_error(); /* the client's errors must be its own */
			srv_flush(v);
			return;
		}
		v->reused = SSL_session_reused(ssl) == 1;
		if (!v->greeted) {
			v->greeted = true;
			srv_say(v, "220 mx.test ESMTP\r\n");
		}
	}
	while (SSL_read_ex(ssl, tmp, sizeof(tmp), &got) == 1) {
		buf_add(&v->dec, tmp, got);
		buf_add(&v->writes, tmp, got);
		buf_add(&v->in, tmp, got);
		total += got;
	}
	if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN)
		v->close_notify = true;
	ERR_clear_error();
	if (total > 0)
		buf_str(&v->writes, "|");
	srv_process(v);
	srv_flush(v);
}

/* One write of the client's: n bytes off the wire. */
static void srv_wire_in(struct srv *v, const void *p, size_t n)
{
	if (!v->tls) {
		buf_add(&v->plain, p, n);
		buf_add(&v->writes, p, n);
		buf_str(&v->writes, "|");
		buf_add(&v->in, p, n);
		srv_process(v);
		return;
	}
	buf_add(&v->wire_tls, p, n);
	if (v->garbage) {
		if (!v->garbage_sent)
			buf_str(&v->out, "HTTP/1.1 400 this is no ServerHello\r\n\r\n");
		v->garbage_sent = true;
		return;
	}
	if (v->mute_tls)
		return;
	BIO_write(v->p.rbio, p, (int)n);
	srv_tls_in(v);
}

/* ---------------------------------------------------------------- rig */

struct rig {
	struct smtp_session *s;
	struct srv v;
	size_t rx_chunk; /* bytes per smtp_session_rx() (0: all there is) */
	bool tx_partial; /* the "socket" takes odd-sized parts of what is offered */
	uint32_t seed;
	struct buf ev; /* event log */
	struct buf w;  /* one write */
	int tls_needed;
	char text[256];	       /* text of the last RCPT event */
	const char *want_text; /* every RCPT event's text, when set */
	bool text_local;
	long max_inflight; /* plaintext the engine gave away that the server lacks */
	size_t dropped;
};

static const char oc[] = {'k', 't', 'p'};

static void __attribute__((format(printf, 2, 3))) evlog(struct rig *r, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_str(&r->ev, tmp);
}

static void take_events(struct rig *r)
{
	struct smtp_event e;

	while (smtp_session_event(r->s, &e)) {
		switch (e.type) {
		case SMTP_EV_GREETING:
			evlog(r, "G%d ", e.code);
			break;
		case SMTP_EV_READY:
			evlog(r, "R ");
			break;
		case SMTP_EV_TLS_NEEDED:
			r->tls_needed++;
			evlog(r, "T ");
			break;
		case SMTP_EV_RCPT:
			evlog(r, "r%zu:%c%d ", e.rcpt, oc[e.outcome], e.code);
			snprintf(r->text, sizeof(r->text), "%.*s", (int)e.text_len, e.text);
			r->text_local = e.local;
			if (r->want_text) {
				assert_int_equal(e.text_len, strlen(r->want_text));
				assert_memory_equal(e.text, r->want_text, e.text_len);
			}
			break;
		case SMTP_EV_MSG:
			evlog(r, "M%c%d:%zu/%zu/%zu ", oc[e.outcome], e.code, e.n_ok, e.n_temp,
			      e.n_perm);
			break;
		case SMTP_EV_PROTOCOL_ERROR:
			evlog(r, "E ");
			break;
		case SMTP_EV_CLOSED:
			evlog(r, "X ");
			break;
		default:
			fail_msg("unknown event %d", e.type);
		}
	}
}

static size_t tx_quantum(struct rig *r)
{
	r->seed = r->seed * 1103515245u + 12345u;
	return 1 + (r->seed >> 8) % 12000;
}

/* Plaintext the engine handed over that has not reached the server yet:
 * what sits in the session's (and OpenSSL's) buffers. */
static long inflight(struct rig *r)
{
	struct smtp_client *c = smtp_session_client(r->s);
	long given = (long)smtp_client_stats(c)->body_bytes - (long)smtp_client_tx_pending(c);

	return given - (long)r->v.body.len;
}

/* The client's turn: what it offers, as one write (or part of it). */
static bool rig_tx(struct rig *r)
{
	struct iovec iov[8];
	size_t k, budget = r->tx_partial ? tx_quantum(r) : SIZE_MAX;

	r->w.len = 0;
	while (budget > 0 && (k = smtp_session_tx_iov(r->s, iov, 8)) > 0) {
		size_t sent = 0;

		for (size_t i = 0; i < k && sent < budget; i++) {
			size_t t = iov[i].iov_len;

			assert_true(t > 0);
			if (t > budget - sent)
				t = budget - sent;
			buf_add(&r->w, iov[i].iov_base, t);
			sent += t;
		}
		smtp_session_tx_done(r->s, sent);
		budget -= sent;
	}
	if (r->w.len == 0)
		return false;
	srv_wire_in(&r->v, r->w.p, r->w.len);
	long f = inflight(r);
	if (f > r->max_inflight)
		r->max_inflight = f;
	return true;
}

/* The server's turn: its bytes to the session, rx_chunk at a time. */
static bool rig_rx(struct rig *r)
{
	struct srv *v = &r->v;
	size_t n = v->out.len - v->out_off, took;

	if (n == 0)
		return false;
	if (r->rx_chunk && n > r->rx_chunk)
		n = r->rx_chunk;
	took = smtp_session_rx(r->s, v->out.p + v->out_off, n);
	if (took == 0) {
		take_events(r); /* events first, then offer the rest again */
		took = smtp_session_rx(r->s, v->out.p + v->out_off, n);
	}
	if (took == 0) {
		assert_true(smtp_session_closed(r->s)); /* else the session is stuck */
		r->dropped += v->out.len - v->out_off;
		v->out_off = v->out.len;
		return true;
	}
	assert_true(took <= n);
	v->out_off += took;
	take_events(r);
	return true;
}

static void rig_run(struct rig *r)
{
	for (long i = 0; i < 2000000; i++) {
		take_events(r);
		bool tx = rig_tx(r);
		bool rx = rig_rx(r);
		if (!tx && !rx) {
			take_events(r);
			return;
		}
	}
	fail_msg("no end to the conversation");
}

static struct smtp_tls_ctx *xctx; /* the client's TLS context, per test */

static void rig_start(struct rig *r, enum smtp_tls_policy pol, const char *sni, const char *key,
		      bool verify)
{
	struct smtp_session_config cfg = {.client = {.helo_name = "client.test", .tls = pol},
					  .tls_ctx = pol == SMTP_TLS_NONE ? NULL : xctx,
					  .tls_sni = sni,
					  .tls_dest_key = key,
					  .tls_verify = verify};

	r->s = smtp_session_new(&cfg);
	assert_non_null(r->s);
	srv_init(&r->v);
}

static void rig_end(struct rig *r)
{
	smtp_session_free(r->s);
	srv_free(&r->v);
	buf_free(&r->ev);
	buf_free(&r->w);
}

/* --------------------------------------------------------------- data */

static const char *const ehlo_starttls =
    "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n";
static const char *const ehlo_pipe = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

static const struct smtp_rcpt rcpts3[] = {
    {"r1@y.test", NULL, NULL}, {"r2@y.test", NULL, NULL}, {"r3@y.test", NULL, NULL}};
/* Mixed line ends, dots at line starts, no final line end. */
static const char body1[] = "Subject: t\n\n.leading dot\nline\r\n..two\nlast";
static const char body1_wire[] =
    "Subject: t\r\n\r\n..leading dot\r\nline\r\n...two\r\nlast\r\n.\r\n";
static const struct smtp_chunk chunk1 = {body1, sizeof(body1) - 1};
static const struct smtp_msg msg3 = {"a@x.test", rcpts3, 3, &chunk1, 1, NULL, 0, NULL};
static const struct smtp_msg msg1 = {"a@x.test", rcpts3, 1, &chunk1, 1, NULL, 0, NULL};

#define TXN3                                                                                       \
	"MAIL FROM:<a@x.test>\r\nRCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\n"                   \
	"RCPT TO:<r3@y.test>\r\nDATA\r\n"

/* Every byte of b is part of a well-formed TLS record; returns the count. */
static size_t check_records(const struct buf *b)
{
	size_t off = 0, n = 0;

	while (off < b->len) {
		assert_true(b->len - off >= 5);
		const uint8_t *h = b->p + off;
		assert_true(h[0] >= 0x14 && h[0] <= 0x17); /* ccs, alert, handshake, data */
		assert_int_equal(h[1], 3);
		assert_true(h[2] >= 1 && h[2] <= 3);
		size_t len = ((size_t)h[3] << 8) | h[4];
		assert_true(len <= 16384 + 256);
		assert_true(b->len - off >= 5 + len);
		off += 5 + len;
		n++;
	}
	return n;
}

/* ClientHellos among the records (they are never encrypted). */
static size_t client_hellos(const struct buf *b)
{
	size_t off = 0, n = 0;

	while (off + 5 < b->len) {
		const uint8_t *h = b->p + off;
		size_t len = ((size_t)h[3] << 8) | h[4];

		/* A plaintext ClientHello: handshake type 1, its length the
		 * record's less the 4-byte header, then legacy_version 3.x. An
		 * encrypted handshake record (TLS 1.2's Finished) may start
		 * with 0x01 by chance, one time in 256, but not all of that. */
		n += h[0] == 0x16 && len >= 6 && off + 5 + len <= b->len && h[5] == 0x01 &&
		     (((size_t)h[6] << 16) | ((size_t)h[7] << 8) | h[8]) == len - 4 && h[9] == 0x03;
		off += 5 + len;
	}
	return n;
}

static bool has(const struct buf *b, const char *s)
{
	return b->len > 0 && memmem(b->p, b->len, s, strlen(s)) != NULL;
}

/* Nothing of the SMTP conversation crossed the wire in the clear once TLS
 * began: only records, none of them readable. */
static void check_no_plaintext(const struct srv *v)
{
	check_records(&v->wire_tls);
	/* Long enough that ciphertext cannot spell them by chance. */
	assert_false(has(&v->wire_tls, "EHLO client"));
	assert_false(has(&v->wire_tls, "MAIL FROM:<"));
	assert_false(has(&v->wire_tls, "RCPT TO:<"));
	assert_false(has(&v->wire_tls, "QUIT\r\n"));
	assert_false(has(&v->wire_tls, "Subject: t"));
	assert_false(v->injected);
}

static void expect_cipher(struct rig *r)
{
	char want[128];

	snprintf(want, sizeof(want), "%s %s", SSL_get_version(r->v.p.ssl),
		 SSL_get_cipher_name(r->v.p.ssl));
	assert_string_equal(smtp_session_tls(r->s), want);
	if (r->v.tls12)
		assert_int_equal(strncmp(want, "TLSv1.2 ", 8), 0);
	else
		assert_int_equal(strncmp(want, "TLSv1.3 TLS_", 12), 0);
}

/* ------------------------------------------------------------ fixtures */

static int setup(void **state)
{
	X509 *ca;
	int fd;

	(void)state;
	sctx = tls_peer_ctx("mx.test", &ca);
	snprintf(ca_path, sizeof(ca_path), "/tmp/dmta-test-ca-XXXXXX");
	fd = mkstemp(ca_path);
	assert_true(fd >= 0);
	close(fd);
	tls_peer_ca_file(ca, ca_path);
	X509_free(ca);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(ca_path);
	SSL_CTX_free(sctx);
	return 0;
}

static int ctx_up(void **state)
{
	(void)state;
	xctx = smtp_tls_ctx_new(ca_path, 8);
	return xctx == NULL;
}

static int ctx_down(void **state)
{
	(void)state;
	smtp_tls_ctx_free(xctx);
	xctx = NULL;
	return 0;
}

/* -------------------------------------------------------------- cases */

static const char *const rcpt_mixed[] = {"250 2.1.5 ok\r\n", "451 4.2.0 later\r\n",
					 "550 5.1.1 no such user\r\n"};

/* 1. Plaintext: the session is the engine, bytes straight through. */
static void test_plaintext(void **state)
{
	struct rig r = {.v = {.ehlo_plain = ehlo_pipe, .rcpt_replies = rcpt_mixed}};

	(void)state;
	rig_start(&r, SMTP_TLS_NONE, NULL, NULL, false);
	assert_false(smtp_session_ready(r.s));
	assert_int_equal(smtp_session_submit(r.s, &msg3), 0);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 R r1:t451 r2:p550 r0:k250 Mt250:1/1/1 ");
	assert_true(smtp_session_ready(r.s));
	assert_false(smtp_session_closed(r.s));
	assert_string_equal(smtp_session_tls(r.s), "");
	assert_false(smtp_client_tls_active(smtp_session_client(r.s)));
	/* PIPELINING: MAIL, the RCPTs and DATA in one write. */
	assert_string_equal(buf_cstr(&r.v.writes),
			    "EHLO client.test\r\n|" TXN3 "|Subject: t\r\n\r\n..leading dot\r\n"
			    "line\r\n...two\r\nlast\r\n.\r\n|");
	assert_string_equal(buf_cstr(&r.v.body), body1_wire);

	smtp_session_quit(r.s);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 R r1:t451 r2:p550 r0:k250 Mt250:1/1/1 X ");
	assert_true(r.v.quit);
	assert_int_equal(r.v.after_quit, 0);
	assert_true(smtp_session_closed(r.s));
	assert_false(smtp_session_ready(r.s));
	assert_int_equal(r.v.wire_tls.len, 0);
	assert_int_equal(smtp_session_submit(r.s, &msg3), -EPIPE);
	rig_end(&r);
}

/* The whole STARTTLS conversation, checked exactly. */
static void check_starttls_delivery(struct rig *r)
{
	assert_int_equal(r->tls_needed, 0);
	assert_string_equal(buf_cstr(&r->ev), "G220 R r0:k250 r1:k250 r2:k250 Mk250:3/0/0 X ");
	assert_string_equal(buf_cstr(&r->v.plain), "EHLO client.test\r\nSTARTTLS\r\n");
	assert_string_equal(buf_cstr(&r->v.dec), "EHLO client.test\r\n" TXN3
						 "Subject: t\r\n\r\n..leading dot\r\nline\r\n"
						 "...two\r\nlast\r\n.\r\nQUIT\r\n");
	assert_string_equal(buf_cstr(&r->v.body), body1_wire);
	/* PIPELINING over TLS too: the transaction in one write. */
	assert_string_equal(buf_cstr(&r->v.writes),
			    "EHLO client.test\r\n|STARTTLS\r\n|"
			    "EHLO client.test\r\n|" TXN3 "|Subject: t\r\n\r\n"
			    "..leading dot\r\nline\r\n...two\r\nlast\r\n"
			    ".\r\n|QUIT\r\n|");
	assert_int_equal(r->v.hs_error, 0);
	check_no_plaintext(&r->v);
	assert_int_equal(client_hellos(&r->v.wire_tls), r->v.hrr ? 2 : 1);
	expect_cipher(r);
	assert_true(smtp_client_tls_active(smtp_session_client(r->s)));
	/* QUIT, 221 and close_notify both ways. */
	assert_true(r->v.quit);
	assert_true(r->v.close_notify);
	assert_true(SSL_get_shutdown(r->v.p.ssl) & SSL_SENT_SHUTDOWN);
	assert_true(smtp_session_closed(r->s));
	assert_int_equal(r->dropped, 0);
}

static bool use_tls12;	      /* for the next starttls_once/implicit_once server */
static bool use_tiny_records; /* likewise */
static bool use_hrr;	      /* likewise */

static void starttls_once(struct rig *r, const char *key, size_t rx_chunk)
{
	memset(r, 0, sizeof(*r));
	r->v.tls12 = use_tls12;
	r->v.tiny_records = use_tiny_records;
	r->v.hrr = use_hrr;
	r->v.ehlo_plain = ehlo_starttls;
	r->v.ehlo_tls = ehlo_pipe;
	r->rx_chunk = rx_chunk;
	rig_start(r, SMTP_TLS_OPPORTUNISTIC, "mx.test", key, false);
	assert_int_equal(smtp_session_submit(r->s, &msg3), 0);
	smtp_session_quit(r->s);
	rig_run(r);
	check_starttls_delivery(r);
}

/* 2. Opportunistic STARTTLS, then a second session to the same
 *    destination resumes; another destination does not. */
static void test_starttls_resume(void **state)
{
	struct rig r;

	(void)state;
	starttls_once(&r, "mx.test:25", 0);
	assert_false(r.v.reused);
	rig_end(&r);

	starttls_once(&r, "mx.test:25", 0);
	assert_true(r.v.reused);
	rig_end(&r);

	starttls_once(&r, "mx2.test:25", 0);
	assert_false(r.v.reused);
	rig_end(&r);

	/* No key: no resumption. */
	starttls_once(&r, NULL, 0);
	assert_false(r.v.reused);
	rig_end(&r);
}

static void implicit_once(struct rig *r, size_t rx_chunk, bool tx_partial)
{
	memset(r, 0, sizeof(*r));
	r->v.tls12 = use_tls12;
	r->v.tiny_records = use_tiny_records;
	r->v.hrr = use_hrr;
	r->v.implicit = true;
	r->v.ehlo_tls = ehlo_pipe;
	r->rx_chunk = rx_chunk;
	r->tx_partial = tx_partial;
	r->seed = 7;
	rig_start(r, SMTP_TLS_IMPLICIT, "mx.test", "mx.test:465", true);
	assert_int_equal(smtp_session_submit(r->s, &msg3), 0);
	smtp_session_quit(r->s);
	rig_run(r);
	assert_int_equal(r->tls_needed, 0);
	assert_string_equal(buf_cstr(&r->ev), "G220 R r0:k250 r1:k250 r2:k250 Mk250:3/0/0 X ");
	/* TLS from the first byte, both ways; the greeting came over TLS. */
	assert_int_equal(r->v.plain.len, 0);
	assert_true(r->v.wire_tls.len > 0 && r->v.wire_tls.p[0] == 0x16);
	assert_int_equal(client_hellos(&r->v.wire_tls), r->v.hrr ? 2 : 1);
	check_records(&r->v.out);
	check_no_plaintext(&r->v);
	assert_false(has(&r->v.out, "220 mx.test ESMTP"));
	assert_string_equal(buf_cstr(&r->v.dec), "EHLO client.test\r\n" TXN3
						 "Subject: t\r\n\r\n..leading dot\r\nline\r\n"
						 "...two\r\nlast\r\n.\r\nQUIT\r\n");
	expect_cipher(r);
	assert_true(r->v.close_notify);
	assert_int_equal(r->dropped, 0);
}

/* 3. Implicit TLS (port 465), verified. */
static void test_implicit(void **state)
{
	struct rig r;

	(void)state;
	implicit_once(&r, 0, false);
	assert_false(r.v.reused);
	rig_end(&r);
	implicit_once(&r, 0, false);
	assert_true(r.v.reused);
	rig_end(&r);
	/* A HelloRetryRequest: one more round trip in the handshake. */
	use_hrr = true;
	implicit_once(&r, 0, false);
	rig_end(&r);
	starttls_once(&r, "mx.hrr:25", 1);
	rig_end(&r);
	use_hrr = false;
}

/* 4. REQUIRED with verification: a wrong name fails the handshake, and the
 *    message with it (temporarily); the right name works. */
static void test_required_verify(void **state)
{
	struct rig r = {.v = {.ehlo_plain = ehlo_starttls, .ehlo_tls = ehlo_pipe}};

	(void)state;
	rig_start(&r, SMTP_TLS_REQUIRED, "wrong.test", "wrong.test:25", true);
	assert_int_equal(smtp_session_submit(r.s, &msg3), 0);
	smtp_session_quit(r.s);
	rig_run(&r);
	assert_int_equal(r.tls_needed, 0);
	assert_string_equal(buf_cstr(&r.ev), "G220 r0:t454 r1:t454 r2:t454 Mt454:0/3/0 X ");
	assert_true(r.text_local);
	assert_string_equal(r.text,
			    "454 4.7.0 TLS failed: handshake: certificate: hostname mismatch");
	assert_true(smtp_session_closed(r.s));
	assert_string_equal(smtp_session_tls(r.s), "");
	/* Nothing after the failure: no plaintext, and the server decrypted
	 * nothing at all. */
	assert_string_equal(buf_cstr(&r.v.plain), "EHLO client.test\r\nSTARTTLS\r\n");
	assert_int_equal(r.v.dec.len, 0);
	check_no_plaintext(&r.v);
	assert_int_equal(r.v.hs_error, SSL_ERROR_SSL); /* the client's alert */
	assert_false(r.v.quit);
	/* Still nothing to send, whatever the caller asks. */
	struct iovec iov[8];
	size_t k = smtp_session_tx_iov(r.s, iov, 8);
	assert_int_equal(k, 0);
	rig_end(&r);

	/* The right name, with the certificate as the CA. */
	memset(&r, 0, sizeof(r));
	r.v.ehlo_plain = ehlo_starttls;
	r.v.ehlo_tls = ehlo_pipe;
	rig_start(&r, SMTP_TLS_REQUIRED, "mx.test", "mx.test:25", true);
	assert_int_equal(smtp_session_submit(r.s, &msg3), 0);
	smtp_session_quit(r.s);
	rig_run(&r);
	check_starttls_delivery(&r);
	rig_end(&r);

	/* REQUIRED and no STARTTLS offered: QUIT, nothing else in the clear. */
	memset(&r, 0, sizeof(r));
	r.v.ehlo_plain = ehlo_pipe;
	rig_start(&r, SMTP_TLS_REQUIRED, "mx.test", "mx.test:25", true);
	assert_int_equal(smtp_session_submit(r.s, &msg3), 0);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 r0:t454 r1:t454 r2:t454 Mt454:0/3/0 X ");
	assert_string_equal(r.text,
			    "454 4.7.0 TLS required but the server does not offer STARTTLS");
	assert_string_equal(buf_cstr(&r.v.plain), "EHLO client.test\r\nQUIT\r\n");
	rig_end(&r);
}

/* 5. Garbage where the ServerHello should be, or a bogus record later, or
 *    the connection gone mid-handshake: temporary failure, closed. */
static void test_tls_garbage(void **state)
{
	struct rig r = {.v = {.ehlo_plain = ehlo_starttls, .garbage = true}};

	(void)state;
	rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.test:25", false);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	smtp_session_quit(r.s);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 r0:t454 Mt454:0/1/0 X ");
	assert_true(r.text_local);
	assert_int_equal(strncmp(r.text, "454 4.7.0 TLS failed: handshake: ", 33), 0);
	assert_true(smtp_session_closed(r.s));
	assert_true(r.v.garbage_sent);
	check_no_plaintext(&r.v);
	assert_int_equal(smtp_session_rx(r.s, "220 more\r\n", 10), 10); /* dropped */
	rig_end(&r);

	/* A record that does not decrypt, once TLS is up. */
	memset(&r, 0, sizeof(r));
	r.v.ehlo_plain = ehlo_starttls;
	r.v.ehlo_tls = ehlo_pipe;
	r.v.garbage_in_tls = true;
	rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.bad:25", false);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	smtp_session_quit(r.s);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 R r0:t454 Mt454:0/1/0 X ");
	assert_int_equal(strncmp(r.text, "454 4.7.0 TLS failed: read: ", 28), 0);
	assert_true(smtp_session_closed(r.s));
	check_no_plaintext(&r.v);
	assert_false(has(&r.v.dec, "QUIT"));
	rig_end(&r);

	/* A session that failed is not offered again. */
	starttls_once(&r, "mx.bad:25", 0);
	assert_false(r.v.reused);
	rig_end(&r);

	/* The peer closed during the handshake. */
	memset(&r, 0, sizeof(r));
	r.v.ehlo_plain = ehlo_starttls;
	r.v.mute_tls = true;
	rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.test:25", false);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 ");
	smtp_session_eof(r.s);
	take_events(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 r0:t454 Mt454:0/1/0 X ");
	assert_string_equal(r.text, "454 4.7.0 TLS failed: connection closed during the handshake");
	rig_run(&r);
	check_no_plaintext(&r.v);
	rig_end(&r);
}

/* Plaintext right behind the 220 to STARTTLS (CVE-2011-0411): the engine
 * refuses it, and the session must not start TLS for a closed engine. */
static void test_starttls_injection(void **state)
{
	struct rig r = {.v = {.ehlo_plain = ehlo_starttls, .inject = true}};

	(void)state;
	/* In one read. */
	rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.test:25", false);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 E r0:t451 Mt451:0/1/0 X ");
	assert_int_equal(r.v.wire_tls.len, 0); /* no ClientHello */
	rig_end(&r);

	/* In two reads, before the caller took the events of the first. */
	memset(&r, 0, sizeof(r));
	r.v.ehlo_plain = ehlo_starttls;
	r.v.hold_starttls = true;
	rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.test:25", false);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.v.plain), "EHLO client.test\r\nSTARTTLS\r\n");
	assert_string_equal(buf_cstr(&r.ev), "G220 ");
	assert_int_equal(smtp_session_rx(r.s, "220 go\r\n", 8), 8);
	assert_int_equal(smtp_session_rx(r.s, "250 x\r\n", 7), 7);
	take_events(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 E r0:t451 Mt451:0/1/0 X ");
	assert_int_equal(r.tls_needed, 0);
	struct iovec iov[8];
	assert_int_equal(smtp_session_tx_iov(r.s, iov, 8), 0);
	rig_end(&r);
}

/* 6. The server's records arrive one byte per read (and, for implicit TLS,
 *    the client's leave in odd-sized parts). */
static void test_byte_at_a_time(void **state)
{
	struct rig r;

	(void)state;
	starttls_once(&r, "mx.test:25", 1);
	rig_end(&r);
	starttls_once(&r, "mx.test:25", 1); /* resumed, one byte at a time */
	assert_true(r.v.reused);
	rig_end(&r);
	implicit_once(&r, 1, true);
	rig_end(&r);
	/* Every reply byte in a record of its own, the records whole. */
	use_tiny_records = true;
	starttls_once(&r, "mx.test:25", 0);
	rig_end(&r);
	implicit_once(&r, 0, true);
	rig_end(&r);
	use_tiny_records = false;
}

/* Two messages on one TLS connection, the second submitted once the
 * session is idle; and plaintext through partial writes. */
static void test_idle_then_more(void **state)
{
	struct rig r = {.v = {.ehlo_plain = ehlo_starttls, .ehlo_tls = ehlo_pipe}};

	(void)state;
	rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.test:25", false);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 R r0:k250 Mk250:1/0/0 ");
	assert_true(smtp_session_ready(r.s));
	assert_int_equal(smtp_session_deadline(r.s, NULL), SMTP_DL_NONE);
	assert_int_equal(strncmp(smtp_session_tls(r.s), "TLSv1.3 ", 8), 0);
	assert_int_equal(smtp_session_submit(r.s, &msg3), 0);
	assert_false(smtp_session_ready(r.s));
	smtp_session_quit(r.s);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 R r0:k250 Mk250:1/0/0 r0:k250 r1:k250 r2:k250 "
					     "Mk250:3/0/0 X ");
	assert_int_equal(r.v.nrcpt, 4);
	assert_true(r.v.close_notify);
	check_no_plaintext(&r.v);
	rig_end(&r);

	memset(&r, 0, sizeof(r));
	r.v.ehlo_plain = ehlo_pipe;
	r.v.rcpt_replies = rcpt_mixed;
	r.tx_partial = true;
	r.seed = 99;
	r.rx_chunk = 3;
	rig_start(&r, SMTP_TLS_NONE, NULL, NULL, false);
	assert_int_equal(smtp_session_submit(r.s, &msg3), 0);
	smtp_session_quit(r.s);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 R r1:t451 r2:p550 r0:k250 Mt250:1/1/1 X ");
	assert_string_equal(buf_cstr(&r.v.plain), "EHLO client.test\r\n" TXN3
						  "Subject: t\r\n\r\n..leading dot\r\nline\r\n"
						  "...two\r\nlast\r\n.\r\nQUIT\r\n");
	rig_end(&r);
}

/* A TLS 1.2 server: there the server's Finished and the greeting (implicit
 * TLS) arrive in one read, so the handshake's last record and application
 * data come together; and resumption goes by session ticket. */
static void test_tls12(void **state)
{
	struct rig r;

	(void)state;
	use_tls12 = true;
	implicit_once(&r, 0, false);
	assert_false(r.v.reused);
	rig_end(&r);
	implicit_once(&r, 0, false);
	assert_true(r.v.reused);
	rig_end(&r);
	implicit_once(&r, 1, true);
	assert_true(r.v.reused);
	rig_end(&r);
	starttls_once(&r, "mx.test:25", 0);
	assert_false(r.v.reused);
	rig_end(&r);
	starttls_once(&r, "mx.test:25", 0);
	assert_true(r.v.reused);
	rig_end(&r);
	use_tls12 = false;
}

/* More replies than the engine's receive buffer holds, each making an
 * event that points into it: the session keeps what the engine cannot take
 * yet and offers it again once the events are taken. 300 recipients, all
 * refused with long replies, over TLS, in transactions of 100. */
static void test_many_replies(void **state)
{
	enum { N = 300 };
	static char addrs[N][24];
	static struct smtp_rcpt rc[N];
	static const char *reps[N];
	char longrep[320];
	struct buf want = {0};

	(void)state;
	snprintf(longrep, sizeof(longrep), "550 5.1.1 %0250d no such user\r\n", 0);
	for (int i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "u%d@y.test", i);
		rc[i] = (struct smtp_rcpt){addrs[i], NULL, NULL};
		reps[i] = longrep;
	}
	const struct smtp_msg m = {"a@x.test", rc, N, &chunk1, 1, NULL, 0, NULL};
	for (int chunked = 0; chunked < 2; chunked++) {
		struct rig r = {
		    .v = {.ehlo_plain = ehlo_starttls, .ehlo_tls = ehlo_pipe, .rcpt_replies = reps},
		    .rx_chunk = chunked ? 7 : 0,
		    .want_text = longrep};

		rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.many:25", false);
		assert_int_equal(smtp_session_submit(r.s, &m), 0);
		smtp_session_quit(r.s);
		rig_run(&r);
		want.len = 0;
		buf_str(&want, "G220 R ");
		for (int i = 0; i < N; i++) {
			char t[32];

			snprintf(t, sizeof(t), "r%d:p550 ", i);
			buf_str(&want, t);
		}
		buf_str(&want, "Mp554:0/0/300 X ");
		assert_string_equal(buf_cstr(&r.ev), buf_cstr(&want));
		assert_int_equal(r.v.nrcpt, N);
		assert_int_equal(r.v.body.len, 0);
		assert_true(r.v.close_notify);
		check_no_plaintext(&r.v);
		rig_end(&r);
	}
	buf_free(&want);
}

/* One connection to the "mx.test:25" cache entry; returns its event log
 * (static) and sets *reused. */
static const char *one_conn(enum smtp_tls_policy pol, const char *sni, bool verify, bool *reused)
{
	static char ev[256];
	struct rig r = {.v = {.ehlo_plain = ehlo_starttls, .ehlo_tls = ehlo_pipe}};

	rig_start(&r, pol, sni, "mx.test:25", verify);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	smtp_session_quit(r.s);
	rig_run(&r);
	snprintf(ev, sizeof(ev), "%s", buf_cstr(&r.ev));
	*reused = r.v.reused;
	rig_end(&r);
	return ev;
}

/* Resumption skips the certificate: a connection that verifies must not
 * resume a session that was never verified, or was verified for another
 * name, though the caller gave the same destination key. */
static void test_verify_and_resumption(void **state)
{
	static const char ok[] = "G220 R r0:k250 Mk250:1/0/0 X ";
	static const char bad[] = "G220 r0:t454 Mt454:0/1/0 X ";
	bool reused;

	(void)state;
	/* Opportunistic, and the name does not match: taken unverified. */
	assert_string_equal(one_conn(SMTP_TLS_OPPORTUNISTIC, "other.test", false, &reused), ok);
	assert_false(reused);
	/* The same destination, now verifying: the mismatch must show. */
	assert_string_equal(one_conn(SMTP_TLS_REQUIRED, "other.test", true, &reused), bad);
	assert_false(reused);
	/* Verified sessions are resumed by verifying connections... */
	assert_string_equal(one_conn(SMTP_TLS_REQUIRED, "mx.test", true, &reused), ok);
	assert_false(reused);
	assert_string_equal(one_conn(SMTP_TLS_REQUIRED, "mx.test", true, &reused), ok);
	assert_true(reused);
	/* ...for the name they were verified for only. */
	assert_string_equal(one_conn(SMTP_TLS_REQUIRED, "other.test", true, &reused), bad);
	assert_false(reused);
	/* The unverified entry still serves unverified connections. */
	assert_string_equal(one_conn(SMTP_TLS_OPPORTUNISTIC, "other.test", false, &reused), ok);
	assert_true(reused);
}

static void sha256(const void *p, size_t n, unsigned char md[32])
{
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

/* A 1 MiB body: CRLF lines of many lengths, some starting with a dot. */
static char *big_body(size_t size, size_t *dots)
{
	char *b = malloc(size);
	size_t off = 0, line = 0;

	assert_non_null(b);
	*dots = 0;
	while (off < size) {
		size_t len = (line * 37) % 150, left = size - off - 2;

		if (left < 160)
			len = left; /* the last line fills the rest */
		for (size_t j = 0; j < len; j++)
			b[off + j] = (char)('a' + (line + j) % 26);
		if (len > 0 && line % 5 == 0) {
			b[off] = '.';
			(*dots)++;
		}
		off += len;
		b[off++] = '\r';
		b[off++] = '\n';
		line++;
	}
	assert_int_equal(off, size);
	return b;
}

/* 7. A large body over TLS, with the caller's writes taking odd-sized parts
 *    of what it is offered; DATA (dot-stuffed) and BDAT (sent from the
 *    caller's memory). */
static void test_large_body(void **state)
{
	const size_t size = 1024 * 1024;
	size_t dots;
	char *body = big_body(size, &dots);
	const struct smtp_chunk ck = {body, size};
	const struct smtp_msg m = {"a@x.test", rcpts3, 2, &ck, 1, NULL, 0, NULL};
	unsigned char want[32], got[32];
	static const char *const ehlo[] = {
	    "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 20000000\r\n",
	    "250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 20000000\r\n"};

	(void)state;
	sha256(body, size, want);
	for (int bdat = 0; bdat < 2; bdat++) {
		struct rig r = {.v = {.ehlo_plain = ehlo_starttls, .ehlo_tls = ehlo[bdat]},
				.tx_partial = true,
				.seed = 12345u + (uint32_t)bdat};

		rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.big:25", false);
		assert_int_equal(smtp_session_submit(r.s, &m), 0);
		smtp_session_quit(r.s);
		rig_run(&r);
		assert_string_equal(buf_cstr(&r.ev), "G220 R r0:k250 r1:k250 Mk250:2/0/0 X ");
		assert_int_equal(r.v.unstuffed.len, size);
		sha256(r.v.unstuffed.p, r.v.unstuffed.len, got);
		assert_memory_equal(got, want, 32);
		if (bdat) {
			assert_int_equal(r.v.body.len, size);
			assert_non_null(strstr(buf_cstr(&r.v.dec), "BDAT 1048576 LAST\r\n"));
		} else {
			/* Every leading dot doubled, and the end mark. */
			assert_int_equal(r.v.body.len, size + dots + 3);
		}
		assert_true(r.v.close_notify);
		check_no_plaintext(&r.v);
		/* The session takes from the engine only what fits in its
		 * buffer of records: the rest waits in the engine. */
		printf("max in flight (%s): %ld bytes\n", bdat ? "BDAT" : "DATA", r.max_inflight);
		assert_true(r.max_inflight <= 64 * 1024);
		rig_end(&r);
	}
	free(body);
}

/* 8. Deadlines: the handshake has its own, and its expiry fails the
 *    message temporarily. */
static void test_deadline(void **state)
{
	struct rig r = {.v = {.ehlo_plain = ehlo_starttls, .mute_tls = true}};
	uint64_t ms = 0;

	(void)state;
	rig_start(&r, SMTP_TLS_OPPORTUNISTIC, "mx.test", "mx.test:25", false);
	assert_int_equal(smtp_session_deadline(r.s, &ms), SMTP_DL_GREETING);
	assert_int_equal(ms, 300000);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	rig_run(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 ");
	assert_true(r.v.wire_tls.len > 0); /* the ClientHello went out */
	ms = 0;
	assert_int_equal(smtp_session_deadline(r.s, &ms), SMTP_DL_TLS);
	/* Only the kind, as smtp_client_deadline() allows. */
	assert_int_equal(smtp_session_deadline(r.s, NULL), SMTP_DL_TLS);
	assert_int_equal(ms, 300000);
	smtp_session_timeout(r.s);
	take_events(&r);
	assert_string_equal(buf_cstr(&r.ev), "G220 r0:t454 Mt454:0/1/0 X ");
	assert_true(r.text_local);
	assert_string_equal(r.text, "454 4.7.0 TLS failed: handshake timed out");
	assert_true(smtp_session_closed(r.s));
	assert_int_equal(smtp_session_deadline(r.s, &ms), SMTP_DL_NONE);
	rig_end(&r);

	/* Implicit TLS: the handshake deadline from the start. */
	memset(&r, 0, sizeof(r));
	r.v.implicit = true;
	r.v.mute_tls = true;
	rig_start(&r, SMTP_TLS_IMPLICIT, "mx.test", "mx.test:465", true);
	assert_int_equal(smtp_session_deadline(r.s, &ms), SMTP_DL_TLS);
	assert_int_equal(smtp_session_submit(r.s, &msg1), 0);
	rig_run(&r);
	assert_int_equal(smtp_session_deadline(r.s, &ms), SMTP_DL_TLS);
	smtp_session_timeout(r.s);
	take_events(&r);
	assert_string_equal(buf_cstr(&r.ev), "r0:t454 Mt454:0/1/0 X ");
	rig_end(&r);
}

/* Configuration errors are reported, not crashed on. */
static void test_config_errors(void **state)
{
	struct smtp_session_config cfg = {
	    .client = {.helo_name = "client.test", .tls = SMTP_TLS_REQUIRED}};
	struct smtp_session *s;

	(void)state;
	errno = 0;
	assert_null(smtp_session_new(&cfg));
	assert_int_equal(errno, EINVAL);
	cfg.client.tls = SMTP_TLS_IMPLICIT;
	errno = 0;
	assert_null(smtp_session_new(&cfg));
	assert_int_equal(errno, EINVAL);
	/* The engine's own refusal comes through as it is. */
	cfg.client.tls = SMTP_TLS_NONE;
	cfg.client.helo_name = NULL;
	errno = 0;
	assert_null(smtp_session_new(&cfg));
	assert_int_equal(errno, EINVAL);

	cfg.client.helo_name = "client.test";
	s = smtp_session_new(&cfg);
	assert_non_null(s);
	const struct smtp_msg none = {"a@x.test", rcpts3, 0, &chunk1, 1, NULL, 0, NULL};
	assert_int_equal(smtp_session_submit(s, &none), -EINVAL);
	smtp_session_free(s);
	smtp_session_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plaintext),
	    cmocka_unit_test_setup_teardown(test_starttls_resume, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_implicit, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_required_verify, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_tls_garbage, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_starttls_injection, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_byte_at_a_time, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_tls12, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_idle_then_more, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_many_replies, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_verify_and_resumption, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_large_body, ctx_up, ctx_down),
	    cmocka_unit_test_setup_teardown(test_deadline, ctx_up, ctx_down),
	    cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
