/*
 * test_smtp_server.c - the SMTP server engine: against the client engine in
 * memory, and hand-written (hostile) transcripts.
 *
 * DESCRIPTION
 *	Pair tests run smtp_session (the client engine, with TLS when asked)
 *	against smtp_server over an in-memory wire, for every combination of
 *	PIPELINING, BDAT or DATA, STARTTLS, AUTH, SMTPUTF8 and DSN, and check
 *	that each body arrives byte for byte as the client meant it (CRLF line
 *	ends, dots un-stuffed), with its envelope and DSN parameters decoded.
 *	After STARTTLS the server side runs a real OpenSSL server over memory
 *	BIOs (tls_peer.h), so nothing passes the wire in the clear.
 *
 *	Transcript tests feed the server raw client bytes and compare the
 *	exact replies: sequence errors, limits, smuggling attempts, STARTTLS
 *	injection, AUTH, BDAT, deferred decisions.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"
#include "tests/unit/smtp/test_buf.h"
#include "tests/unit/smtp/tls_peer.h"

/* A buffer as a C string. */
#define SP(x) ((char *)(x))

/* What the client means by a body: bare CR and LF become CRLF, and a last
 * line without an end gets one (the client engine's rules, written again
 * here independently). */
static void canonical(struct buf *o, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r') {
			buf_str(o, "\r\n");
			if (i + 1 < n && p[i + 1] == '\n')
				i++;
		} else if (p[i] == '\n') {
			buf_str(o, "\r\n");
		} else {
			buf_add(o, p + i, 1);
		}
	}
	if (n > 0 && p[n - 1] != '\n' && p[n - 1] != '\r')
		buf_str(o, "\r\n");
}

/* ------------------------------------------------- the transcript helper */

/* A server with a scripted caller: every decision is taken from the
 * policy strings (a recipient containing "deny" is refused as a relay
 * would), bodies are collected, events logged in a short notation:
 * H helo, A auth, M mail, R rcpt, D data-end, Z reset, T tls, X closed. */
struct t {
	struct smtp_server *s;
	struct buf out, body, ev;
	struct buf msgs[8];
	int nmsg;
	bool defer_data; /* leave DATA_END unanswered */
	int data_code;	 /* reply to DATA_END (0: accept) */
	char envid[128], orcpt[600], notify[64], from[300], rcpt[300], user[64], pass[64];
	bool utf8;
	/* The first MAIL and RCPT of the session, for the pair tests. */
	int nmail, nrcpt;
	char first_envid[128], first_orcpt[600], first_notify[64], first_rcpt[300];
	bool first_utf8;
};

static void t_events(struct t *t)
{
	struct smtp_server_event e;

	while (smtp_server_event(t->s, &e)) {
		switch (e.type) {
		case SMTP_SEV_HELO:
			buf_str(&t->ev, "H");
			break;
		case SMTP_SEV_AUTH:
			buf_str(&t->ev, "A");
			snprintf(t->user, sizeof(t->user), "%s", e.user);
			snprintf(t->pass, sizeof(t->pass), "%s", e.pass);
			assert_int_equal(
			    smtp_server_reply(t->s, strcmp(e.pass, "secret") ? 535 : 0,
					      strcmp(e.pass, "secret") ? "5.7.8 Bad" : NULL),
			    0);
			break;
		case SMTP_SEV_MAIL:
			buf_str(&t->ev, "M");
			snprintf(t->from, sizeof(t->from), "%s", e.addr);
			snprintf(t->envid, sizeof(t->envid), "%s", e.envid ? e.envid : "-");
			t->utf8 = e.smtputf8;
			if (t->nmail++ == 0) {
				snprintf(t->first_envid, sizeof(t->first_envid), "%s", t->envid);
				t->first_utf8 = e.smtputf8;
			}
			t->body.len = 0;
			assert_int_equal(smtp_server_reply(t->s, 0, NULL), 0);
			break;
		case SMTP_SEV_RCPT:
			buf_str(&t->ev, "R");
			snprintf(t->rcpt, sizeof(t->rcpt), "%s", e.addr);
			snprintf(t->orcpt, sizeof(t->orcpt), "%s", e.orcpt ? e.orcpt : "-");
			snprintf(t->notify, sizeof(t->notify), "%s", e.notify ? e.notify : "-");
			if (t->nrcpt++ == 0) {
				snprintf(t->first_orcpt, sizeof(t->first_orcpt), "%s", t->orcpt);
				snprintf(t->first_notify, sizeof(t->first_notify), "%s", t->notify);
				snprintf(t->first_rcpt, sizeof(t->first_rcpt), "%s", t->rcpt);
			}
			if (strstr(e.addr, "deny"))
				assert_int_equal(
				    smtp_server_reply(t->s, 550, "5.7.1 Relaying denied"), 0);
			else
				assert_int_equal(smtp_server_reply(t->s, 0, NULL), 0);
			break;
		case SMTP_SEV_BODY:
			buf_add(&t->body, e.data, e.len);
			break;
		case SMTP_SEV_DATA_END:
			buf_str(&t->ev, "D");
			if (e.size != t->body.len)
				fail_msg("DATA_END size: got %llu, want %zu",
					 (unsigned long long)e.size, t->body.len);
			if (t->nmsg < 8) {
				t->msgs[t->nmsg].len = 0;
				buf_add(&t->msgs[t->nmsg++], SP(t->body.p), t->body.len);
			}
			t->body.len = 0;
			if (!t->defer_data)
				assert_int_equal(smtp_server_reply(t->s, t->data_code, NULL), 0);
			break;
		case SMTP_SEV_RESET:
			buf_str(&t->ev, "Z");
			t->body.len = 0;
			break;
		case SMTP_SEV_TLS_NEEDED:
			buf_str(&t->ev, "T");
			break;
		case SMTP_SEV_CLOSED:
			buf_str(&t->ev, "X");
			break;
		default:
			fail_msg("unknown event %d", e.type);
		}
	}
}

static void t_drain(struct t *t)
{
	struct iovec iov[4];
	size_t k;

	while ((k = smtp_server_tx_iov(t->s, iov, 4)) > 0) {
		assert_int_equal(k, 1);
		buf_add(&t->out, iov[0].iov_base, iov[0].iov_len);
		smtp_server_tx_done(t->s, iov[0].iov_len);
	}
}

static void t_init(struct t *t, const struct smtp_server_config *cfg)
{
	memset(t, 0, sizeof(*t));
	t->s = smtp_server_new(cfg);
	assert_non_null(t->s);
	t_drain(t);
}

static void t_free(struct t *t)
{
	smtp_server_free(t->s);
	buf_free(&t->out);
	buf_free(&t->body);
	buf_free(&t->ev);
	for (int i = 0; i < 8; i++)
		buf_free(&t->msgs[i]);
}

/* Feed bytes (whole, or one at a time when step is 1), take events. */
static void t_feed_n(struct t *t, const char *in, size_t n, size_t step)
{
	size_t done = 0;

	while (done < n && !smtp_server_closed(t->s)) {
		size_t k = n - done < step ? n - done : step;
		size_t got = smtp_server_feed(t->s, in + done, k);
		t_events(t);
		if (got == 0)
			break;
		done += got;
	}
	t_drain(t);
}

static void t_feed(struct t *t, const char *in)
{
	t_feed_n(t, in, strlen(in), SIZE_MAX);
}

/* A literal that may hold NUL bytes. */
#define T_FEED_LIT(t, lit) t_feed_n((t), (lit), sizeof(lit) - 1, SIZE_MAX)

static void t_clear_out(struct t *t)
{
	t->out.len = 0;
	if (SP(t->out.p))
		SP(t->out.p)[0] = '\0';
}

/* The replies since the last check must be exactly want. */
static void t_expect(struct t *t, const char *what, const char *want)
{
	if (strcmp(SP(t->out.p) ? SP(t->out.p) : "", want) != 0)
		fail_msg("%s: replies\n  got  \"%s\"\n  want \"%s\"", what,
			 SP(t->out.p) ? SP(t->out.p) : "", want);
	t->out.len = 0;
	if (SP(t->out.p))
		SP(t->out.p)[0] = '\0';
}

static void t_expect_ev(struct t *t, const char *what, const char *want)
{
	if (strcmp(SP(t->ev.p) ? SP(t->ev.p) : "", want) != 0)
		fail_msg("%s: events got \"%s\", want \"%s\"", what, SP(t->ev.p) ? SP(t->ev.p) : "",
			 want);
	t->ev.len = 0;
	if (SP(t->ev.p))
		SP(t->ev.p)[0] = '\0';
}

static const struct smtp_server_config base_cfg = {.hostname = "mx.test"};

#define GREETING "220 mx.test ESMTP\r\n"
#define EHLO_PLAIN                                                                                 \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"            \
	"250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n"

/* ------------------------------------------------------------ pair tests */

struct pair_case {
	bool pipelining, bdat, starttls, auth, utf8, dsn;
};

static const char *bodies[] = {
    "Subject: one\r\n\r\nplain CRLF text\r\n.leading dot\r\n..two\r\n.\r\nend\r\n",
    "Subject: two\n\nbare LF lines\n.\n..\nlast line without end",
    "Subject: three\r\n\r\nh\xc3\xa9llo \xe2\x82\xac\rbare CR\r\n\r\n.\r\n",
};

static SSL_CTX *sctx;

struct wire {
	struct smtp_session *c;
	struct t srv;
	struct tls_peer tp;
	bool tls_pending, tls_on, tls_up;
	struct buf c2s;
	int rcpt_ok, rcpt_perm, rcpt_temp, msg_done;
};

static void client_rx(struct wire *w, const char *p, size_t n)
{
	struct smtp_event e;
	size_t done = 0;

	for (int guard = 0; guard < 10000; guard++) {
		done += smtp_session_rx(w->c, p + done, n - done);
		while (smtp_session_event(w->c, &e)) {
			if (e.type == SMTP_EV_RCPT) {
				if (e.outcome == SMTP_OK)
					w->rcpt_ok++;
				else if (e.outcome == SMTP_PERMFAIL)
					w->rcpt_perm++;
				else
					w->rcpt_temp++;
			} else if (e.type == SMTP_EV_MSG) {
				w->msg_done++;
			}
		}
		if (done == n || smtp_session_closed(w->c))
			return;
	}
	fail_msg("client does not take its input");
}

/* Move bytes both ways until nothing moves; returns true if anything did. */
static bool wire_step(struct wire *w)
{
	bool moved = false;
	static char buf[65536];
	struct iovec iov[8];
	size_t k;

	/* Server to client. */
	while ((k = smtp_server_tx_iov(w->srv.s, iov, 1)) > 0) {
		size_t n = iov[0].iov_len;
		if (w->tls_on)
			tls_peer_write(&w->tp, iov[0].iov_base, n);
		else
			client_rx(w, iov[0].iov_base, n);
		smtp_server_tx_done(w->srv.s, n);
		moved = true;
	}
	if (w->tls_pending) {
		/* The 220 went in the clear; from here on everything is TLS. */
		w->tls_pending = false;
		w->tls_on = true;
		tls_peer_init(&w->tp, sctx);
	}
	if (w->tls_on) {
		int r;
		while ((r = BIO_read(w->tp.wbio, buf, sizeof(buf))) > 0) {
			client_rx(w, buf, (size_t)r);
			moved = true;
		}
	}
	/* Client to server. */
	w->c2s.len = 0;
	while ((k = smtp_session_tx_iov(w->c, iov, 8)) > 0) {
		size_t n = 0;
		for (size_t i = 0; i < k; i++) {
			buf_add(&w->c2s, iov[i].iov_base, iov[i].iov_len);
			n += iov[i].iov_len;
		}
		smtp_session_tx_done(w->c, n);
	}
	if (w->c2s.len == 0)
		return moved;
	moved = true;
	size_t off = 0;
	if (!w->tls_on) {
		while (off < w->c2s.len && !smtp_server_closed(w->srv.s) && !w->tls_pending) {
			size_t got =
			    smtp_server_feed(w->srv.s, SP(w->c2s.p) + off, w->c2s.len - off);
			t_events(&w->srv);
			if (strchr(SP(w->srv.ev.p) ? SP(w->srv.ev.p) : "", 'T')) {
				w->tls_pending = true;
				w->srv.ev.len = 0;
				SP(w->srv.ev.p)[0] = '\0';
			}
			off += got;
			if (got == 0)
				fail_msg("server does not take its input");
		}
		if (off == w->c2s.len)
			return true;
		/* Bytes after the STARTTLS reply are for the TLS layer: only
		 * once the 220 is out; a client that does not wait for it is
		 * what the injection test is about, not this one. */
		fail_msg("client sent %zu bytes before the 220 to STARTTLS", w->c2s.len - off);
	}
	BIO_write(w->tp.rbio, SP(w->c2s.p), (int)w->c2s.len);
	if (!SSL_is_init_finished(w->tp.ssl))
		SSL_do_handshake(w->tp.ssl);
	if (SSL_is_init_finished(w->tp.ssl) && !w->tls_up) {
		w->tls_up = true;
		smtp_server_tls_started(w->srv.s);
	}
	if (w->tls_up) {
		size_t n = tls_peer_read(&w->tp, buf, sizeof(buf));
		size_t done = 0;
		while (done < n) {
			size_t got = smtp_server_feed(w->srv.s, buf + done, n - done);
			t_events(&w->srv);
			if (got == 0)
				fail_msg("server does not take its input");
			done += got;
		}
	}
	return true;
}

static void run_pair(const struct pair_case *pc)
{
	struct smtp_server_config scfg = base_cfg;
	struct smtp_session_config ccfg = {.client = {.helo_name = "client.test"}};
	struct wire w = {0};
	char what[128];

	snprintf(what, sizeof(what), "pipelining %d bdat %d starttls %d auth %d utf8 %d dsn %d",
		 pc->pipelining, pc->bdat, pc->starttls, pc->auth, pc->utf8, pc->dsn);
	scfg.no_pipelining = !pc->pipelining;
	scfg.no_chunking = !pc->bdat;
	scfg.tls_available = pc->starttls;
	scfg.auth = pc->auth;
	scfg.auth_plaintext_ok = pc->auth && !pc->starttls;
	ccfg.client.no_pipelining = !pc->pipelining;
	ccfg.client.no_chunking = !pc->bdat;
	if (pc->starttls) {
		ccfg.client.tls = SMTP_TLS_REQUIRED;
		ccfg.tls_ctx = smtp_tls_ctx_new(NULL, 0);
		assert_non_null(ccfg.tls_ctx);
	}
	if (pc->auth) {
		ccfg.client.auth_user = "user";
		ccfg.client.auth_pass = "secret";
		ccfg.client.auth_plaintext_ok = !pc->starttls;
	}
	t_init(&w.srv, &scfg);
	/* t_init took the greeting: hand it to the client. */
	w.c = smtp_session_new(&ccfg);
	assert_non_null(w.c);
	client_rx(&w, GREETING, strlen(GREETING));

	struct smtp_rcpt r[3] = {{"to@dest.test", NULL, NULL},
				 {"second@dest.test", NULL, NULL},
				 {"deny@other.test", NULL, NULL}};
	if (pc->utf8)
		r[0].addr = "t\xc3\xb6@d\xc3\xa9st.test";
	if (pc->dsn) {
		r[0].notify = "SUCCESS,FAILURE";
		r[0].orcpt = "rfc822;to+x=y@dest.test";
	}
	struct smtp_chunk ch[3];
	struct smtp_msg m[3];
	for (int i = 0; i < 3; i++) {
		ch[i] = (struct smtp_chunk){bodies[i], strlen(bodies[i])};
		m[i] = (struct smtp_msg){.from = i == 2 ? "" : "from@src.test",
					 .rcpts = r,
					 .nrcpts = i == 0 ? 3 : 1,
					 .body = &ch[i],
					 .nbody = 1,
					 .envid = pc->dsn && i == 0 ? "env id+1" : NULL,
					 .ret = pc->dsn ? SMTP_RET_HDRS : SMTP_RET_DEFAULT};
		assert_int_equal(smtp_session_submit(w.c, &m[i]), 0);
	}
	smtp_session_quit(w.c);
	for (int i = 0; i < 1000 && wire_step(&w); i++)
		;
	if (!smtp_server_closed(w.srv.s) || !smtp_session_closed(w.c))
		fail_msg("%s: sessions not closed (server %d client %d)", what,
			 smtp_server_closed(w.srv.s), smtp_session_closed(w.c));
	if (w.msg_done != 3 || w.rcpt_ok != 4 || w.rcpt_perm != 1 || w.rcpt_temp != 0)
		fail_msg("%s: client outcomes got %d msgs %d ok %d perm %d temp, want 3 4 1 0",
			 what, w.msg_done, w.rcpt_ok, w.rcpt_perm, w.rcpt_temp);
	if (w.srv.nmsg != 3)
		fail_msg("%s: server got %d messages, want 3", what, w.srv.nmsg);
	for (int i = 0; i < 3; i++) {
		struct buf want = {0};
		canonical(&want, bodies[i], strlen(bodies[i]));
		if (w.srv.msgs[i].len != want.len ||
		    memcmp(SP(w.srv.msgs[i].p), SP(want.p), want.len))
			fail_msg("%s: body %d\n  got  \"%s\"\n  want \"%s\"", what, i,
				 SP(w.srv.msgs[i].p), SP(want.p));
		buf_free(&want);
	}
	const struct smtp_server_stats *st = smtp_server_stats(w.srv.s);
	assert_int_equal(st->messages, 3);
	assert_int_equal(st->errors, 0);
	assert_int_equal(smtp_server_tls_active(w.srv.s), pc->starttls);
	if (pc->auth && strcmp(w.srv.user, "user") != 0)
		fail_msg("%s: AUTH user got \"%s\", want \"user\"", what, w.srv.user);
	/* The first message's envelope, decoded as the client meant it. */
	const char *want_envid = pc->dsn ? "env id+1" : "-";
	const char *want_orcpt = pc->dsn ? "rfc822;to+x=y@dest.test" : "-";
	const char *want_notify = pc->dsn ? "SUCCESS,FAILURE" : "-";
	if (strcmp(w.srv.first_envid, want_envid) || strcmp(w.srv.first_orcpt, want_orcpt) ||
	    strcmp(w.srv.first_notify, want_notify) || strcmp(w.srv.first_rcpt, r[0].addr) ||
	    w.srv.first_utf8 != pc->utf8)
		fail_msg("%s: envelope got envid \"%s\" orcpt \"%s\" notify \"%s\" rcpt \"%s\" "
			 "smtputf8 %d, want \"%s\" \"%s\" \"%s\" \"%s\" %d",
			 what, w.srv.first_envid, w.srv.first_orcpt, w.srv.first_notify,
			 w.srv.first_rcpt, w.srv.first_utf8, want_envid, want_orcpt, want_notify,
			 r[0].addr, pc->utf8);
	if (pc->pipelining && !pc->starttls && !pc->auth) {
		/* Replies to MAIL, RCPTs and DATA/BDAT left in batches: far
		 * fewer writes than replies. */
		if (st->flushes * 2 > st->replies)
			fail_msg("%s: %llu writes for %llu replies", what,
				 (unsigned long long)st->flushes, (unsigned long long)st->replies);
	}
	smtp_session_free(w.c);
	if (w.tls_on)
		tls_peer_free(&w.tp);
	if (ccfg.tls_ctx)
		smtp_tls_ctx_free(ccfg.tls_ctx);
	buf_free(&w.c2s);
	t_free(&w.srv);
}

static void test_pair_all_combinations(void **state)
{
	(void)state;
	for (unsigned bits = 0; bits < 64; bits++) {
		struct pair_case pc = {bits & 1, bits & 2,  bits & 4,
				       bits & 8, bits & 16, bits & 32};
		run_pair(&pc);
	}
}

/* The DSN parameters of one message, decoded as sent. */
static void test_pair_dsn_decoded(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t_expect(&t, "greeting", GREETING);
	/* What the client engine sends for envid "env id+1" and ORCPT
	 * "rfc822;to+x=y@dest.test" (xtext, RFC 3461 4). */
	t_feed(
	    &t,
	    "EHLO c\r\nMAIL FROM:<a@x.test> RET=HDRS ENVID=env+20id+2B1\r\n"
	    "RCPT TO:<to@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;to+2Bx+3Dy@dest.test\r\n");
	t_expect(&t, "dsn", EHLO_PLAIN "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	if (strcmp(t.envid, "env id+1") || strcmp(t.orcpt, "rfc822;to+x=y@dest.test") ||
	    strcmp(t.notify, "SUCCESS,FAILURE"))
		fail_msg("dsn: got envid \"%s\" orcpt \"%s\" notify \"%s\"", t.envid, t.orcpt,
			 t.notify);
	t_feed(&t,
	       "RCPT TO:<b@y.test> ORCPT=rfc822;bad+zz\r\nRCPT TO:<b@y.test> NOTIFY=NEVER,DELAY\r\n"
	       "RCPT TO:<b@y.test> FOO=1\r\nMAIL FROM:<a@x.test> RET=ALL\r\n");
	t_expect(&t, "bad dsn",
		 "501 5.5.4 Syntax error in parameters or arguments\r\n"
		 "501 5.5.4 Syntax error in parameters or arguments\r\n"
		 "555 5.5.4 Unsupported MAIL or RCPT parameter\r\n"
		 "503 5.5.1 Error: nested MAIL command\r\n");
	t_free(&t);
}

/* ------------------------------------------------------ transcript tests */

static void test_sequence_errors(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t_clear_out(&t);
	t_feed(&t, "MAIL FROM:<a@x.test>\r\nHELO\r\nHELO c.test\r\nRCPT TO:<b@y.test>\r\n"
		   "DATA\r\nMAIL FROM:<a@x.test>\r\nDATA\r\nBDAT 3 LAST\r\nabcFOO bar\r\n"
		   "EXPN list\r\nVRFY\r\nVRFY someone\r\nHELP\r\nNOOP x\r\nRSET x\r\nRSET\r\n");
	t_expect(&t, "sequence",
		 "503 5.5.1 Error: send HELO/EHLO first\r\n"
		 "501 5.5.4 Syntax error in parameters or arguments\r\n"
		 "250 mx.test\r\n"
		 "503 5.5.1 Error: need MAIL command\r\n"
		 "503 5.5.1 Error: need MAIL command\r\n"
		 "250 2.1.0 Ok\r\n"
		 "554 5.5.1 Error: no valid recipients\r\n"
		 "554 5.5.1 Error: no valid recipients\r\n"
		 "500 5.5.2 Error: command not recognized\r\n"
		 "502 5.5.1 Error: command not implemented\r\n"
		 "501 5.5.4 Syntax error in parameters or arguments\r\n"
		 "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
		 "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
		 "250 2.0.0 Ok\r\n"
		 "501 5.5.4 Syntax error in parameters or arguments\r\n"
		 "250 2.0.0 Ok\r\n");
	t_expect_ev(&t, "sequence", "HMZ");
	/* HELO sessions take no ESMTP parameters. */
	t_feed(&t, "MAIL FROM:<a@x.test> SIZE=10\r\nQUIT\r\n");
	t_expect(&t, "helo params",
		 "555 5.5.4 Unsupported MAIL or RCPT parameter\r\n221 2.0.0 Bye\r\n");
	t_expect_ev(&t, "quit", "X");
	assert_true(smtp_server_closed(t.s));
	t_free(&t);
}

static void test_too_many_errors(void **state)
{
	(void)state;
	struct smtp_server_config cfg = base_cfg;
	cfg.max_errors = 3;
	struct t t;
	t_init(&t, &cfg);
	t_clear_out(&t);
	t_feed(&t, "FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
	t_expect(&t, "errors",
		 "500 5.5.2 Error: command not recognized\r\n"
		 "500 5.5.2 Error: command not recognized\r\n"
		 "500 5.5.2 Error: command not recognized\r\n"
		 "421 4.7.0 mx.test Error: too many errors; closing\r\n");
	t_expect_ev(&t, "errors", "X");
	assert_int_equal(smtp_server_stats(t.s)->errors, 3);
	t_free(&t);
}

static void test_line_limits(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t_clear_out(&t);
	struct buf in = {0};
	for (int i = 0; i < 300; i++)
		buf_str(&in, "NOOP NOOP ");
	buf_str(&in,
		"\r\nNOOP\r\nEHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
	/* One byte at a time: the long line is skipped without a buffer. */
	t_feed_n(&t, SP(in.p), in.len, 1);
	t_expect(&t, "long command",
		 "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n" EHLO_PLAIN
		 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	in.len = 0;
	for (int i = 0; i < 100; i++)
		buf_str(&in, "0123456789");
	buf_str(&in, "\r\n.\r\n"); /* 1002 octets with CRLF */
	t_feed(&t, SP(in.p));
	t_expect(&t, "long text line",
		 "554 5.6.0 Message refused: a text line is too long (RFC 5321 4.5.3.1.6)\r\n");
	t_expect_ev(&t, "long text line", "HMRZ");
	/* 1000 octets with CRLF is allowed. */
	t_feed(&t, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
	in.len = 0;
	for (int i = 0; i < 998; i++)
		buf_str(&in, "x");
	buf_str(&in, "\r\n.\r\n");
	t_feed(&t, SP(in.p));
	t_expect(&t, "998 octets",
		 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		 "250 2.0.0 Ok: queued\r\n");
	assert_int_equal(t.msgs[0].len, 1000);
	/* Path limit. */
	in.len = 0;
	buf_str(&in, "MAIL FROM:<");
	for (int i = 0; i < 257; i++)
		buf_str(&in, "a");
	buf_str(&in, ">\r\n");
	t_feed(&t, SP(in.p));
	t_expect(&t, "long path", "501 5.1.7 Bad sender address syntax\r\n");
	T_FEED_LIT(&t, "NO\0OP\r\nNO\rOP\r\n");
	t_expect(&t, "NUL and CR",
		 "500 5.5.2 Error: NUL or bare CR in the command\r\n"
		 "500 5.5.2 Error: NUL or bare CR in the command\r\n");
	buf_free(&in);
	t_free(&t);
}

/* "\n.\n", "\r.\r\n", "\n.\r\n", "\r\n.\n", "\r\n.\r" never end the data. */
static void test_smuggling(void **state)
{
	(void)state;
	static const char *tricks[] = {"\n.\n",	   "\r.\r\n", "\n.\r\n", "\r\n.\n",
				       "\r\n.\rX", "\r.\r",   "\n.\r"};
	for (int policy = 0; policy < 2; policy++) {
		for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
			for (size_t step = 1; step != 0; step = step == 1 ? SIZE_MAX : 0) {
				struct smtp_server_config cfg = base_cfg;
				cfg.bare_eol = policy;
				struct t t;
				struct buf in = {0};
				t_init(&t, &cfg);
				buf_str(&in, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT "
					     "TO:<b@y.test>\r\nDATA\r\nhi");
				buf_str(&in, tricks[i]);
				buf_str(
				    &in,
				    "MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\n"
				    "Subject: smuggled\r\n\r\n.\r\nQUIT\r\n");
				t_feed_n(&t, SP(in.p), in.len, step);
				const char *want_ev =
				    policy == SMTP_BARE_EOL_REJECT ? "HMRZX" : "HMRDX";
				if (strcmp(SP(t.ev.p), want_ev) != 0)
					fail_msg(
					    "policy %d trick %zu step %zu: events got %s, want %s",
					    policy, i, step, SP(t.ev.p), want_ev);
				if (strstr(SP(t.out.p),
					   "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with "
					   "<CR><LF>.<CR><LF>\r\n250 2.1.0") != NULL)
					fail_msg(
					    "policy %d trick %zu: the second MAIL was a command",
					    policy, i);
				if (policy == SMTP_BARE_EOL_REJECT &&
				    strstr(SP(t.out.p),
					   "554 5.6.0 Message refused: bare CR or LF") == NULL)
					fail_msg("trick %zu: got \"%s\", want a 554 5.6.0", i,
						 SP(t.out.p));
				if (policy == SMTP_BARE_EOL_NORMALISE) {
					/* Every line end the caller sees is CRLF. */
					const char *b = SP(t.msgs[0].p);
					for (size_t k = 0; k < t.msgs[0].len; k++)
						if ((b[k] == '\n') != (k > 0 && b[k - 1] == '\r'))
							fail_msg("trick %zu: bare line end at %zu "
								 "in \"%s\"",
								 i, k, b);
					if (strstr(b, "MAIL FROM:<evil@x.test>") == NULL)
						fail_msg("trick %zu: body got \"%s\"", i, b);
				}
				buf_free(&in);
				t_free(&t);
			}
		}
	}
}

static void test_normalise_body(void **state)
{
	(void)state;
	struct smtp_server_config cfg = base_cfg;
	cfg.bare_eol = SMTP_BARE_EOL_NORMALISE;
	struct t t;
	t_init(&t, &cfg);
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
		   "a\nb\rc\r\r\n..d\r\n.\r\n");
	if (t.nmsg != 1 || strcmp(SP(t.msgs[0].p), "a\r\nb\r\nc\r\n\r\n.d\r\n") != 0)
		fail_msg("normalised body got \"%s\", want \"a\\r\\nb\\r\\nc\\r\\n\\r\\n.d\\r\\n\"",
			 t.nmsg ? SP(t.msgs[0].p) : "(none)");
	assert_int_equal(smtp_server_stats(t.s)->bare_eol, 3);
	t_free(&t);
}

/* Body pieces point into the input: a body without dots is one piece per
 * read, and split reads give the same bytes. */
static void test_body_splits(void **state)
{
	(void)state;
	const char *in = "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
			 "line 1\r\n.dot\r\n..\r\n\r\n.\r\n";
	for (size_t step = 1; step < 12; step++) {
		struct t t;
		t_init(&t, &base_cfg);
		t_feed_n(&t, in, strlen(in), step);
		if (t.nmsg != 1 || strcmp(SP(t.msgs[0].p), "line 1\r\ndot\r\n.\r\n\r\n") != 0)
			fail_msg("step %zu: body got \"%s\"", step,
				 t.nmsg ? SP(t.msgs[0].p) : "(none)");
		t_free(&t);
	}
}

/* Body pieces are the receive buffer itself: no copy, except the CRLF that
 * replaces a bare line end when normalising (a constant). */
static void test_body_zero_copy(void **state)
{
	(void)state;
	struct t t;
	struct smtp_server_event e;
	uint8_t *p;
	t_init(&t, &base_cfg);
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
	const char *body = "line one\r\n..stuffed\r\nline three\r\n.\r\n";
	size_t room = smtp_server_rx_space(t.s, &p);
	assert_true(room >= strlen(body));
	memcpy(p, body, strlen(body));
	smtp_server_rx_commit(t.s, strlen(body));
	size_t pieces = 0, bytes = 0;
	while (smtp_server_event(t.s, &e)) {
		if (e.type == SMTP_SEV_DATA_END) {
			assert_int_equal(smtp_server_reply(t.s, 0, NULL), 0);
			continue;
		}
		assert_int_equal(e.type, SMTP_SEV_BODY);
		const uint8_t *d = e.data;
		if (d < p || d + e.len > p + strlen(body))
			fail_msg("piece %zu at %p, want inside the receive buffer %p", pieces,
				 (const void *)d, (void *)p);
		pieces++;
		bytes += e.len;
	}
	/* "line one\r\n" and ".stuffed\r\nline three\r\n": the dot taken
	 * out splits the body in two; ".\r\n" ends it. */
	if (pieces != 2 || bytes != strlen(body) - 4)
		fail_msg("got %zu pieces of %zu bytes, want 2 of %zu", pieces, bytes,
			 strlen(body) - 4);
	t_free(&t);
}

static void test_pipelining_batch(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t_clear_out(&t);
	t_feed(&t, "EHLO c\r\n");
	t_clear_out(&t);
	/* One read: the replies leave in one buffer (one write). */
	uint64_t f0 = smtp_server_stats(t.s)->flushes;
	const char *in = "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
			 "RCPT TO:<deny@y.test>\r\nDATA\r\n";
	assert_int_equal(smtp_server_feed(t.s, in, strlen(in)), strlen(in));
	t_events(&t);
	struct iovec iov[2];
	assert_int_equal(smtp_server_tx_iov(t.s, iov, 2), 1);
	const char *want = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.7.1 Relaying denied\r\n"
			   "354 End data with <CR><LF>.<CR><LF>\r\n";
	if (iov[0].iov_len != strlen(want) || memcmp(iov[0].iov_base, want, strlen(want)))
		fail_msg("batch got \"%.*s\", want \"%s\"", (int)iov[0].iov_len,
			 (char *)iov[0].iov_base, want);
	assert_int_equal(smtp_server_stats(t.s)->flushes - f0, 1);
	t_free(&t);
}

/* The decision at end of data may come later: nothing is read or said
 * until it does. */
static void test_deferred_data_end(void **state)
{
	(void)state;
	struct t t;
	uint64_t ms;
	t_init(&t, &base_cfg);
	t.defer_data = true;
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 4 LAST\r\nabcd"
		   "MAIL FROM:<c@x.test>\r\n");
	t_clear_out(&t);
	t_expect_ev(&t, "before", "HMRD");
	assert_true(smtp_server_waiting(t.s));
	assert_int_equal(smtp_server_deadline(t.s, &ms), SMTP_DL_NONE);
	t_feed(&t, "RCPT TO:<d@y.test>\r\n");
	t_expect(&t, "while waiting", "");
	t_expect_ev(&t, "while waiting", "");
	assert_int_equal(smtp_server_reply(t.s, 451, "4.3.0 Disk full"), 0);
	t_events(&t);
	t_drain(&t);
	t_expect(&t, "after", "451 4.3.0 Disk full\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	t_expect_ev(&t, "after", "MR");
	assert_int_equal(smtp_server_reply(t.s, 0, NULL), -EALREADY);
	assert_int_equal(smtp_server_deadline(t.s, &ms), SMTP_DL_OTHER);
	assert_int_equal(ms, 300000);
	assert_int_equal(smtp_server_stats(t.s)->refused, 1);
	t_free(&t);
}

static void test_reply_validation(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t.defer_data = true;
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\n");
	assert_int_equal(smtp_server_reply(t.s, 354, NULL), -EINVAL);
	assert_int_equal(smtp_server_reply(t.s, 600, NULL), -EINVAL);
	assert_int_equal(smtp_server_reply(t.s, 250, "a\r\nb"), -EINVAL);
	assert_int_equal(smtp_server_reply(t.s, 250, "2.0.0 Ok: queued as 42"), 0);
	t_drain(&t);
	assert_non_null(strstr(SP(t.out.p), "\r\n250 2.0.0 Ok: queued as 42\r\n"));
	t_free(&t);
}

static void test_size_limits(void **state)
{
	(void)state;
	struct smtp_server_config cfg = base_cfg;
	cfg.size_limit = 10;
	cfg.max_rcpts = 2;
	struct t t;
	t_init(&t, &cfg);
	t_feed(&t, "EHLO c\r\n");
	assert_non_null(strstr(SP(t.out.p), "250-SIZE 10\r\n"));
	t_clear_out(&t);
	t_feed(&t, "MAIL FROM:<a@x.test> SIZE=11\r\nMAIL FROM:<a@x.test> SIZE=10\r\n"
		   "RCPT TO:<1@y.test>\r\nRCPT TO:<2@y.test>\r\nRCPT TO:<3@y.test>\r\n"
		   "DATA\r\n0123456789\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<1@y.test>\r\n"
		   "BDAT 6\r\n012345BDAT 6 LAST\r\n012345NOOP\r\n");
	t_expect(&t, "size",
		 "552 5.3.4 Message size exceeds fixed limit\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		 "250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n"
		 "354 End data with <CR><LF>.<CR><LF>\r\n"
		 "552 5.3.4 Message size exceeds fixed limit\r\n"
		 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 6 octets received\r\n"
		 "552 5.3.4 Message size exceeds fixed limit\r\n250 2.0.0 Ok\r\n");
	t_free(&t);
}

static void test_bdat(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t_clear_out(&t);
	/* Refused chunks are read all the same; the stream stays in step. */
	T_FEED_LIT(
	    &t, "EHLO c\r\nBDAT 5\r\nNOOP\rMAIL FROM:<a@x.test> BODY=BINARYMIME\r\n"
		"RCPT TO:<b@y.test>\r\nDATA\r\nBDAT 7\r\n\r\n.\r\n\0\nBDAT 0 LAST\r\nBDAT x\r\n");
	t_expect(&t, "bdat",
		 EHLO_PLAIN "503 5.5.1 Error: need MAIL command\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			    "503 5.5.1 Error: BODY=BINARYMIME needs BDAT\r\n"
			    "250 2.0.0 7 octets received\r\n250 2.0.0 Ok: queued\r\n"
			    "501 5.5.4 Syntax error in parameters or arguments\r\n");
	if (t.nmsg != 1 || t.msgs[0].len != 7 || memcmp(SP(t.msgs[0].p), "\r\n.\r\n\0\n", 7) != 0)
		fail_msg("bdat body got %zu bytes, want the 7 sent as they are", t.msgs[0].len);
	/* DATA after BDAT in one transaction, and BDAT after a failed one. */
	t_feed(&t, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 1\r\nxDATA\r\nRSET\r\n");
	t_expect(&t, "mix",
		 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 1 octets received\r\n"
		 "503 5.5.1 Error: DATA and BDAT cannot be mixed, or an earlier BDAT failed\r\n"
		 "250 2.0.0 Ok\r\n");
	t_free(&t);
}

static void test_starttls_injection(void **state)
{
	(void)state;
	struct smtp_server_config cfg = base_cfg;
	cfg.tls_available = true;
	cfg.auth = true;
	struct t t;
	t_init(&t, &cfg);
	t_feed(&t, "EHLO c\r\n");
	assert_non_null(strstr(SP(t.out.p), "250 STARTTLS\r\n"));
	assert_null(strstr(SP(t.out.p), "AUTH"));
	t_clear_out(&t);
	t_feed(&t, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
	t_expect(&t, "auth before tls",
		 "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
	/* STARTTLS with a command behind it in the same read. */
	t_feed(&t, "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
	t_expect(&t, "injection",
		 "554 5.5.0 Error: commands pipelined after STARTTLS; closing\r\n");
	t_expect_ev(&t, "injection", "HX");
	assert_int_equal(smtp_server_stats(t.s)->tls_injection, 1);
	t_free(&t);

	/* Plaintext in a later read, before the handshake. */
	t_init(&t, &cfg);
	t_feed(&t, "EHLO c\r\nSTARTTLS\r\n");
	assert_int_equal(smtp_server_deadline(t.s, NULL), SMTP_DL_TLS);
	t_feed(&t, "MAIL FROM:<evil@x.test>\r\n");
	t_expect_ev(&t, "late plaintext", "HTX");
	t_free(&t);

	/* After the handshake: state forgotten, AUTH offered, REQUIRETLS. */
	cfg.requiretls = true;
	t_init(&t, &cfg);
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nSTARTTLS\r\n");
	t_expect_ev(&t, "starttls", "HMZT");
	smtp_server_tls_started(t.s);
	t_clear_out(&t);
	t_feed(&t,
	       "MAIL FROM:<a@x.test>\r\nEHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@x.test> REQUIRETLS\r\n");
	t_expect(&t, "after tls",
		 "503 5.5.1 Error: send HELO/EHLO first\r\n"
		 "250-mx.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
		 "250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n"
		 "250-AUTH PLAIN LOGIN\r\n250 REQUIRETLS\r\n"
		 "503 5.5.1 Error: TLS already active\r\n250 2.1.0 Ok\r\n");
	t_free(&t);
}

/* Implicit TLS (port 465): TLS counts as up from the first byte. */
static void test_implicit_tls(void **state)
{
	(void)state;
	struct smtp_server_config cfg = base_cfg;
	cfg.tls_implicit = true;
	cfg.tls_available = true;
	cfg.auth = true;
	cfg.requiretls = true;
	struct t t;
	t_init(&t, &cfg);
	t_clear_out(&t);
	t_feed(&t, "EHLO c\r\nSTARTTLS\r\n");
	t_expect(&t, "implicit tls",
		 "250-mx.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
		 "250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n"
		 "250-AUTH PLAIN LOGIN\r\n250 REQUIRETLS\r\n"
		 "503 5.5.1 Error: TLS already active\r\n");
	assert_true(smtp_server_tls_active(t.s));
	t_free(&t);
}

static void test_auth(void **state)
{
	(void)state;
	struct smtp_server_config cfg = base_cfg;
	cfg.auth = true;
	cfg.auth_plaintext_ok = true;
	struct t t;
	t_init(&t, &cfg);
	t_feed(&t, "EHLO c\r\n");
	assert_non_null(strstr(SP(t.out.p), "250 AUTH PLAIN LOGIN\r\n"));
	t_clear_out(&t);
	/* LOGIN in three steps, a bad password; PLAIN malformed; cancel. */
	t_feed(&t, "AUTH LOGIN\r\ndXNlcg==\r\nd3Jvbmc=\r\nAUTH PLAIN AHVzZXI\r\n"
		   "AUTH PLAIN dXNlcgBzZWNyZXQ=\r\nAUTH PLAIN\r\n*\r\nAUTH CRAM-MD5\r\n");
	t_expect(&t, "auth failures",
		 "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 Bad\r\n"
		 "501 5.5.2 Cannot decode the AUTH response\r\n"
		 "501 5.5.2 Cannot decode the AUTH response\r\n"
		 "334 \r\n501 5.0.0 Authentication cancelled\r\n"
		 "504 5.5.4 Unrecognized authentication type\r\n");
	assert_string_equal(t.user, "user");
	assert_null(smtp_server_auth_user(t.s));
	/* LOGIN with the user as initial response, then PLAIN again refused. */
	t_feed(&t, "AUTH LOGIN dXNlcg==\r\nc2VjcmV0\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
	t_expect(&t, "auth ok",
		 "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
		 "503 5.5.1 Error: already authenticated\r\n");
	assert_string_equal(smtp_server_auth_user(t.s), "user");
	assert_string_equal(t.pass, "secret");
	t_free(&t);
}

static void trace_cb(void *arg, char dir, const char *line, size_t len)
{
	struct buf *b = arg;

	buf_add(b, &dir, 1);
	buf_str(b, " ");
	buf_add(b, line, len);
	buf_str(b, "\n");
}

/* AUTH data never reaches the trace, in any of the three forms. */
static void test_trace_hides_secrets(void **state)
{
	(void)state;
	struct buf tr = {0};
	struct smtp_server_config cfg = base_cfg;
	cfg.auth = true;
	cfg.auth_plaintext_ok = true;
	cfg.trace = trace_cb;
	cfg.trace_arg = &tr;
	struct t t;
	t_init(&t, &cfg);
	/* "secret" is c2VjcmV0; with the user: AHVzZXIAc2VjcmV0 (PLAIN). */
	t_feed(&t, "EHLO c\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nRSET\r\n");
	smtp_server_free(t.s);
	t.s = smtp_server_new(&cfg);
	t_feed(&t, "EHLO c\r\nAUTH LOGIN dXNlcg==\r\nc2VjcmV0\r\nAUTH PLAIN\r\n");
	const char *log = SP(tr.p);
	if (strstr(log, "c2VjcmV0") || strstr(log, "AHVzZXIAc2VjcmV0") || strstr(log, "dXNlcg=="))
		fail_msg("trace shows AUTH data:\n%s", log);
	if (strstr(log, "C AUTH PLAIN\n") == NULL || strstr(log, "C <hidden>\n") == NULL ||
	    strstr(log, "S 235 2.7.0 Authentication successful\n") == NULL)
		fail_msg("trace got\n%s\nwant the commands without their data, and the replies",
			 log);
	buf_free(&tr);
	t_free(&t);
}

static void test_addresses(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t_feed(&t,
	       "EHLO c\r\nMAIL FROM:<\xc3\xa9@x.test>\r\nMAIL FROM: <\xc3\xa9@x.test> SMTPUTF8\r\n"
	       "RCPT TO:<@r1.test,@r2.test:b@y.test>\r\n");
	assert_true(t.utf8);
	assert_string_equal(t.from, "\xc3\xa9@x.test");
	assert_string_equal(t.rcpt, "b@y.test");
	t_feed(&t,
	       "RCPT TO:<\"odd >name\"@y.test>\r\nRCPT TO:<>\r\nRCPT TO:b@y.test\r\nRSET\r\n"
	       "MAIL FROM:<a@x.test>\r\nRCPT TO:<d\xc3\xa9@y.test>\r\nRCPT TO:<Postmaster>\r\n");
	assert_string_equal(t.rcpt, "Postmaster");
	if (strstr(SP(t.out.p),
		   "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n250 2.1.0 Ok\r\n"
		   "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n501 5.1.3 Bad recipient address "
		   "syntax\r\n501 5.1.3 Bad recipient address syntax\r\n250 2.0.0 Ok\r\n"
		   "250 2.1.0 Ok\r\n553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n"
		   "250 2.1.5 Ok\r\n") == NULL)
		fail_msg("addresses got \"%s\"", SP(t.out.p));
	t_free(&t);
}

static void test_timeout_and_eof(void **state)
{
	(void)state;
	struct t t;
	t_init(&t, &base_cfg);
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\npart");
	assert_int_equal(smtp_server_deadline(t.s, NULL), SMTP_DL_DATA_BLOCK);
	t_clear_out(&t);
	smtp_server_timeout(t.s);
	t_events(&t);
	t_drain(&t);
	t_expect(&t, "timeout", "421 4.4.2 mx.test Error: timeout exceeded\r\n");
	t_expect_ev(&t, "timeout", "HMRZX");
	assert_int_equal(smtp_server_deadline(t.s, NULL), SMTP_DL_NONE);
	t_free(&t);

	t_init(&t, &base_cfg);
	t_feed(&t, "HELO c\r\nMAIL FROM:<a@x.test>\r\n");
	smtp_server_eof(t.s);
	t_events(&t);
	t_expect_ev(&t, "eof", "HMZX");
	assert_int_equal(smtp_server_feed(t.s, "NOOP\r\n", 6), 0);
	t_free(&t);
}

static void test_config_errors(void **state)
{
	(void)state;
	struct smtp_server_config cfg = {0};
	assert_null(smtp_server_new(&cfg));
	assert_int_equal(errno, EINVAL);
	cfg.hostname = "bad\r\nname";
	assert_null(smtp_server_new(&cfg));
	assert_null(smtp_server_new(NULL));
	assert_string_equal(smtp_server_event_name(SMTP_SEV_DATA_END), "data-end");
}

static int ctx_up(void **state)
{
	(void)state;
	sctx = tls_peer_ctx("mx.test", NULL);
	return 0;
}

static int ctx_down(void **state)
{
	(void)state;
	SSL_CTX_free(sctx);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pair_all_combinations),
	    cmocka_unit_test(test_pair_dsn_decoded),
	    cmocka_unit_test(test_sequence_errors),
	    cmocka_unit_test(test_too_many_errors),
	    cmocka_unit_test(test_line_limits),
	    cmocka_unit_test(test_smuggling),
	    cmocka_unit_test(test_normalise_body),
	    cmocka_unit_test(test_body_splits),
	    cmocka_unit_test(test_body_zero_copy),
	    cmocka_unit_test(test_pipelining_batch),
	    cmocka_unit_test(test_deferred_data_end),
	    cmocka_unit_test(test_reply_validation),
	    cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_bdat),
	    cmocka_unit_test(test_starttls_injection),
	    cmocka_unit_test(test_implicit_tls),
	    cmocka_unit_test(test_auth),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_trace_hides_secrets),
	    cmocka_unit_test(test_timeout_and_eof),
	    cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, ctx_up, ctx_down);
}
