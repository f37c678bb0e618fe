/*
 * smtp_client.c - sans-I/O SMTP client engine.
 *
 * DESCRIPTION
 *	See smtp_client.h for the contract. Inside, as in Postfix's pipelined
 *	client, the send side runs ahead of the receive side: every command
 *	sent pushes what its reply means onto a queue (struct pend), and each
 *	reply pops the oldest entry. Without PIPELINING the send side simply
 *	waits for that queue to be empty before the next command.
 *
 *	A transaction is MAIL, up to max_rcpts RCPTs, then DATA (and after 354
 *	the body) or BDAT LAST with the body. With PIPELINING a second one may
 *	follow a DATA transaction's "." before its reply (two in flight at
 *	most; each pending entry names its transaction). Recipients refused
 *	with 452 after others were accepted go back to pending and get a new
 *	transaction of their own; a message is done when every recipient has
 *	its outcome.
 *
 *	Output is a queue of segments: command text and rewritten body in an
 *	engine buffer (by offset, so the buffer may grow), or the caller's body
 *	chunks as they are. A DATA body is rewritten (dot-stuffing, CRLF) into
 *	the buffer a slice at a time when the queue runs empty, so a big
 *	message never sits twice in memory (when the next transaction is
 *	queued behind it, a body of up to 1 MiB is rendered whole).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <strings.h>

#include <openssl/evp.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_str.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_reply.h"

#define RX_SIZE		  (SMTP_REPLY_MAX + 4096)
#define ENCODE_SLICE	  (64 * 1024)
#define MAX_ADDR	  1024
#define PIPELINE_BODY_MAX (1024 * 1024)

enum pend_kind {
	P_GREETING,
	P_EHLO,
	P_HELO,
	P_STARTTLS,
	P_AUTH_USER, /* AUTH LOGIN: 334 asks for the user name */
	P_AUTH_PASS, /* AUTH LOGIN: 334 asks for the password */
	P_AUTH_DONE, /* 235 wanted */
	P_MAIL,
	P_RCPT,
	P_DATA,
	P_DOT,
	P_BDAT,
	P_RSET,
	P_QUIT,
	P_IGNORE, /* sent before the session was given up: any reply will do */
};

struct pend {
	uint8_t kind;
	uint8_t slot; /* which of the two transactions */
	uint32_t idx; /* P_RCPT: position in the transaction */
};

enum sess_state {
	S_GREETING,
	S_EHLO,
	S_STARTTLS,
	S_TLS_WAIT,
	S_AUTH,
	S_READY,
	S_QUIT_SENT,
	S_CLOSED,
};

enum rcpt_state { R_PENDING, R_SENT, R_ACCEPTED, R_DEFER, R_DONE };

struct mstate {
	const struct smtp_msg *m;
	struct mstate *next;
	uint8_t *rst;
	size_t wire_size; /* body after CRLF normalisation, no dot-stuffing */
	bool eightbit, utf8, canonical, ends_crlf;
	size_t n_ok, n_temp, n_perm;
};

struct txn {
	bool active;
	struct mstate *ms;
	size_t *rcpt; /* indices into ms->m->rcpts */
	size_t n;
	size_t next_cmd; /* 0 MAIL, 1..n RCPT, n+1 DATA/BDAT, n+2 all sent */
	size_t naccepted;
	bool mail_ok, mail_failed, bdat, ended_ok;
	bool dot_sent; /* DATA: body and "." queued, only the final reply to come */
};

struct seg {
	const uint8_t *ext; /* NULL: out[off, off+len) */
	size_t off;
	size_t len;
};

struct encoder {
	bool active;
	bool dot; /* DATA: dot-stuff and end with ".\r\n" */
	const struct smtp_msg *m;
	size_t ci, off; /* next input: chunk, offset */
	bool bol, cr;
};

struct smtp_client {
	struct smtp_client_config cfg;
	enum sess_state state;
	unsigned ext, auth_mechs;
	uint64_t size_limit;
	bool tls_active, tls_refused, authed, quit_req, need_rset, closed_emitted;

	/* Receive side. */
	uint8_t rx[RX_SIZE];
	size_t rx_off, rx_len, rx_last;

	/* Replies awaited, oldest first (a ring). */
	struct pend *pend;
	size_t pend_cap, pend_head, pend_n;

	/* Messages not yet done, in order; the head may be in a transaction. */
	struct mstate *q_head, *q_tail;
	/* With PIPELINING the next transaction's MAIL, RCPTs and DATA follow
	 * the current one's "." in the same write: two may be in flight. */
	struct txn txn[2];
	unsigned tcur;	   /* the older one */
	uint8_t send_slot; /* transaction of the commands being queued */

	/* Send side. */
	uint8_t *out;
	size_t out_len, out_cap;
	struct seg *segs;
	size_t seg_n, seg_cap, seg_head, seg_head_off;
	struct encoder enc;

	struct smtp_event *ev;
	size_t ev_n, ev_cap, ev_head;

	/* The reply being handled, for outcomes decided by its side effects. */
	const struct smtp_reply *cur;

	struct smtp_client_stats stats;
};

/* Made-up replies: constant strings, so that events may point at them. */
#define R_SIZE	  "552 5.3.4 Message size exceeds the server's SIZE limit"
#define R_8BIT	  "554 5.6.3 Message has an 8-bit body and the server does not offer 8BITMIME"
#define R_UTF8	  "553 5.6.7 Message needs SMTPUTF8 and the server does not offer it"
#define R_TLSREQ  "454 4.7.0 TLS required but the server does not offer STARTTLS"
#define R_AUTHPT  "451 4.7.0 AUTH refused: the connection is not encrypted"
#define R_NOAUTH  "454 4.7.0 AUTH configured but the server offers no usable mechanism"
#define R_PROTO	  "451 4.5.0 Protocol error: malformed or unexpected reply"
#define R_INJECT  "451 4.7.0 Protocol error: data after the STARTTLS reply"
#define R_LOST	  "451 4.4.2 Lost connection with the server"
#define R_TIMEOUT "451 4.4.2 Timed out waiting for the server"
#define R_TLSFAIL "454 4.7.0 TLS handshake failed"
#define R_ABANDON "451 4.3.0 Session abandoned"
#define R_CLOSING "451 4.3.0 Session closing"

/* ---------------------------------------------------------------- utils */

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 16;

	while (n < need)
		n *= 2;
	void *q = realloc(p, n * elem);
	if (q == NULL)
		dmta_panic("smtp_client: out of memory (%zu bytes)", n * elem);
	*cap = n;
	return q;
}

static void emit(struct smtp_client *c, const struct smtp_event *e)
{
	if (c->ev_n == c->ev_cap)
		c->ev = grow(c->ev, &c->ev_cap, c->ev_n + 1, sizeof(*c->ev));
	c->ev[c->ev_n++] = *e;
}

static void emit_simple(struct smtp_client *c, enum smtp_event_type t, int code, const char *text,
			size_t len, bool local)
{
	struct smtp_event e = {
	    .type = t, .code = code, .text = text, .text_len = len, .local = local};

	emit(c, &e);
}

static enum smtp_outcome class_outcome(int code)
{
	switch (code / 100) {
	case 2:
		return SMTP_OK;
	case 4:
		return SMTP_TEMPFAIL;
	default:
		return SMTP_PERMFAIL;
	}
}

/* ----------------------------------------------------------------- send */

static bool encode_slice(struct smtp_client *c, struct encoder *e, size_t max);

static void seg_push(struct smtp_client *c, const uint8_t *ext, size_t off, size_t len)
{
	if (len == 0)
		return;
	if (ext == NULL && c->seg_n > c->seg_head) {
		struct seg *l = &c->segs[c->seg_n - 1];

		if (l->ext == NULL && l->off + l->len == off) {
			l->len += len;
			return;
		}
	}
	if (c->seg_n == c->seg_cap)
		c->segs = grow(c->segs, &c->seg_cap, c->seg_n + 1, sizeof(*c->segs));
	if (c->seg_n == c->seg_head)
		c->stats.writes_ready++;
	c->segs[c->seg_n++] = (struct seg){ext, off, len};
}

static uint8_t *out_reserve(struct smtp_client *c, size_t n)
{
	if (c->seg_n == c->seg_head) {
		c->seg_n = c->seg_head = c->seg_head_off = 0;
		c->out_len = 0;
	}
	if (c->out_len + n > c->out_cap)
		c->out = grow(c->out, &c->out_cap, c->out_len + n, 1);
	return c->out + c->out_len;
}

static void out_commit(struct smtp_client *c, size_t n)
{
	size_t off = c->out_len;

	c->out_len += n;
	seg_push(c, NULL, off, n);
}

static void out_bytes(struct smtp_client *c, const void *p, size_t n)
{
	memcpy(out_reserve(c, n), p, n);
	out_commit(c, n);
}

static void pend_push(struct smtp_client *c, enum pend_kind k, uint32_t idx)
{
	if (c->pend_n == c->pend_cap) {
		/* Full: copy the ring in order into a larger array. */
		size_t cap = c->pend_cap ? 2 * c->pend_cap : 16;
		struct pend *n = malloc(cap * sizeof(*n));

		if (n == NULL)
			dmta_panic("smtp_client: out of memory");
		for (size_t i = 0; i < c->pend_n; i++)
			n[i] = c->pend[(c->pend_head + i) % c->pend_cap];
		free(c->pend);
		c->pend = n;
		c->pend_cap = cap;
		c->pend_head = 0;
	}
	c->pend[(c->pend_head + c->pend_n) % c->pend_cap] =
	    (struct pend){(uint8_t)k, c->send_slot, idx};
	c->pend_n++;
}

/* One command line; trace shows it with the secret part hidden when
 * shown_len is less than the line. */
static void cmd_send(struct smtp_client *c, enum pend_kind k, uint32_t idx, const char *line,
		     size_t len, size_t shown_len)
{
	/* A body still being rewritten goes out first: order on the wire is
	 * order of queueing (only a misbehaving server gets us here). */
	while (c->enc.active)
		encode_slice(c, &c->enc, ENCODE_SLICE);
	uint8_t *p = out_reserve(c, len + 2);

	memcpy(p, line, len);
	memcpy(p + len, "\r\n", 2);
	out_commit(c, len + 2);
	pend_push(c, k, idx);
	c->stats.commands++;
	if (c->cfg.trace) {
		if (shown_len < len) {
			char t[64];
			int n = snprintf(t, sizeof(t), "%.*s<hidden>", (int)shown_len, line);
			c->cfg.trace(c->cfg.trace_arg, 'C', t, (size_t)n);
		} else {
			c->cfg.trace(c->cfg.trace_arg, 'C', line, len);
		}
	}
}

static void cmd_str(struct smtp_client *c, enum pend_kind k, const char *line)
{
	cmd_send(c, k, 0, line, strlen(line), SIZE_MAX);
}

/* RFC 3461 xtext: '+', '=' and bytes outside '!'..'~' as "+HH". */
static size_t xtext(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s && n + 3 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < '!' || ch > '~' || ch == '+' || ch == '=')
			n += (size_t)snprintf(dst + n, cap - n, "+%02X", ch);
		else
			dst[n++] = (char)ch;
	}
	dst[n] = '\0';
	return n;
}

/* ----------------------------------------------------------- the body */

/* What submit needs to know of a body: line ends and 8-bit bytes. */
struct body_scan {
	size_t nlf, ncr, crlf; /* LFs, CRs, and LFs right after a CR */
	bool hibit;
};

/*
 * Count into @p bs over p[0..n); *@p prev is the byte before p (0 at the
 * start) and becomes p's last. Only for bodies span_canonical() found in
 * need of rewriting, so a byte at a time is enough.
 */
static void body_scan(const uint8_t *p, size_t n, uint8_t *prev, struct body_scan *bs)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];

		bs->hibit |= ch >= 0x80;
		if (ch == '\n') {
			bs->nlf++;
			bs->crlf += *prev == '\r';
		} else if (ch == '\r') {
			bs->ncr++;
		}
		*prev = ch;
	}
}

/*
 * The common case, checked first: no byte needs rewriting, that is every
 * CR is followed by an LF and every LF follows a CR (the spool holds
 * messages in that form). Two loads, two compares, a XOR and two ORs per
 * sixteen bytes; *@p prev as for body_scan(). False as soon as a line end
 * is bare (then body_scan() counts exactly).
 */
static bool span_canonical(const uint8_t *p, size_t n, uint8_t *prev, bool *hibit)
{
	size_t i = 0;
	bool hi = false;

	if ((*prev == '\r') != (p[0] == '\n'))
		return false;
#ifdef __SSE2__
	{
		const __m128i vlf = _mm_set1_epi8('\n'), vcr = _mm_set1_epi8('\r');
		__m128i bad = _mm_setzero_si128(), or8 = _mm_setzero_si128();

		for (; i + 17 <= n; i += 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(p + i));
			__m128i w = _mm_loadu_si128((const __m128i *)(p + i + 1));

			bad = _mm_or_si128(
			    bad, _mm_xor_si128(_mm_cmpeq_epi8(v, vcr), _mm_cmpeq_epi8(w, vlf)));
			or8 = _mm_or_si128(or8, v);
		}
		if (_mm_movemask_epi8(bad) != 0)
			return false;
		hi = _mm_movemask_epi8(or8) != 0;
	}
#endif
	for (; i + 1 < n; i++) {
		if ((p[i] == '\r') != (p[i + 1] == '\n'))
			return false;
		hi |= p[i] >= 0x80;
	}
	*hibit |= hi || p[n - 1] >= 0x80;
	*prev = p[n - 1];
	return true;
}

/* Rewrite up to max input bytes into out: bare LF and bare CR become CRLF,
 * and with e->dot a '.' at the start of a line is doubled. Returns true
 * when the whole body was rewritten (end marks queued). Each input byte is
 * looked at once; runs without CR or LF are copied with memcpy. */
static bool encode_slice(struct smtp_client *c, struct encoder *e, size_t max)
{
	const struct smtp_msg *m = e->m;
	uint8_t *o = out_reserve(c, 2 * max + 8);
	uint8_t *o0 = o;
	size_t budget = max;

	while (e->ci < m->nbody && budget > 0) {
		const uint8_t *p = (const uint8_t *)m->body[e->ci].p + e->off;
		size_t n = m->body[e->ci].len - e->off;

		if (n > budget)
			n = budget;
		const uint8_t *end = p + n;
		/* Next CR and LF at or after p, found with memchr and kept
		 * while p has not passed them: each byte is searched once. */
		const uint8_t *ncr = memchr(p, '\r', n), *nlf = memchr(p, '\n', n);
		bool ncr_none = ncr == NULL, nlf_none = nlf == NULL;

		while (p < end) {
			uint8_t ch = *p;

			if (ch == '\r') {
				*o++ = '\r';
				*o++ = '\n';
				e->cr = true;
				e->bol = true;
				p++;
				continue;
			}
			if (ch == '\n') {
				if (!e->cr) {
					*o++ = '\r';
					*o++ = '\n';
				}
				e->cr = false;
				e->bol = true;
				p++;
				continue;
			}
			e->cr = false;
			if (e->bol && ch == '.' && e->dot)
				*o++ = '.';
			e->bol = false;
			if (!ncr_none && ncr < p) {
				ncr = memchr(p, '\r', (size_t)(end - p));
				ncr_none = ncr == NULL;
			}
			if (!nlf_none && nlf < p) {
				nlf = memchr(p, '\n', (size_t)(end - p));
				nlf_none = nlf == NULL;
			}
			const uint8_t *q = end;
			if (!ncr_none && ncr < q)
				q = ncr;
			if (!nlf_none && nlf < q)
				q = nlf;
			memcpy(o, p, (size_t)(q - p));
			o += q - p;
			p = q;
		}
		e->off += n;
		budget -= n;
		if (e->off == m->body[e->ci].len) {
			e->ci++;
			e->off = 0;
		}
	}
	bool done = e->ci >= m->nbody;
	if (done) {
		if (!e->bol) {
			*o++ = '\r';
			*o++ = '\n';
		}
		if (e->dot) {
			memcpy(o, ".\r\n", 3);
			o += 3;
		}
		e->active = false;
	}
	c->stats.body_bytes += (size_t)(o - o0);
	out_commit(c, (size_t)(o - o0));
	return done;
}

static void body_start(struct smtp_client *c, const struct mstate *ms, bool dot)
{
	c->enc = (struct encoder){.active = true, .dot = dot, .m = ms->m, .bol = true};
	if (c->cfg.trace) {
		char t[64];
		int n = snprintf(t, sizeof(t), "(message body, %zu bytes)", ms->wire_size);
		c->cfg.trace(c->cfg.trace_arg, 'C', t, (size_t)n);
	}
	if (!dot && ms->canonical) {
		/* Nothing to rewrite: send the caller's bytes as they are. */
		for (size_t i = 0; i < ms->m->nbody; i++)
			seg_push(c, ms->m->body[i].p, 0, ms->m->body[i].len);
		c->stats.body_bytes += ms->wire_size;
		if (!ms->ends_crlf && ms->wire_size > 0)
			out_bytes(c, "\r\n", 2);
		c->enc.active = false;
	}
}

/* ------------------------------------------------------------- outcomes */

static void rcpt_done(struct smtp_client *c, struct mstate *ms, size_t i, enum smtp_outcome o,
		      int code, const char *text, size_t len, bool local)
{
	struct smtp_event e = {.type = SMTP_EV_RCPT,
			       .outcome = o,
			       .msg = ms->m,
			       .rcpt = i,
			       .code = code,
			       .text = text,
			       .text_len = len,
			       .local = local};

	ms->rst[i] = R_DONE;
	if (o == SMTP_OK)
		ms->n_ok++;
	else if (o == SMTP_TEMPFAIL)
		ms->n_temp++;
	else
		ms->n_perm++;
	emit(c, &e);
}

/* If every recipient has its outcome, emit SMTP_EV_MSG and drop the message. */
static bool msg_maybe_done(struct smtp_client *c, struct mstate *ms, int code, const char *text,
			   size_t len, bool local)
{
	for (size_t i = 0; i < ms->m->nrcpts; i++)
		if (ms->rst[i] != R_DONE)
			return false;

	struct smtp_event e = {.type = SMTP_EV_MSG,
			       .msg = ms->m,
			       .code = code,
			       .text = text,
			       .text_len = len,
			       .local = local,
			       .n_ok = ms->n_ok,
			       .n_temp = ms->n_temp,
			       .n_perm = ms->n_perm};
	e.outcome = ms->n_temp ? SMTP_TEMPFAIL : ms->n_perm ? SMTP_PERMFAIL : SMTP_OK;
	emit(c, &e);
	/* Usually the head; not when recipients deferred by 452 finish after
	 * a later message. */
	struct mstate **pp = &c->q_head, *prev = NULL;
	while (*pp && *pp != ms) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		dmta_panic("smtp_client: finished message is not queued");
	*pp = ms->next;
	if (c->q_tail == ms)
		c->q_tail = prev;
	free(ms->rst);
	free(ms);
	return true;
}

/* Every recipient without an outcome gets this one. */
static void fail_all(struct smtp_client *c, enum smtp_outcome o, int code, const char *text,
		     size_t len, bool local)
{
	c->txn[0].active = c->txn[1].active = false;
	while (c->q_head) {
		struct mstate *ms = c->q_head;

		for (size_t i = 0; i < ms->m->nrcpts; i++)
			if (ms->rst[i] != R_DONE)
				rcpt_done(c, ms, i, o, code, text, len, local);
		msg_maybe_done(c, ms, code, text, len, local);
	}
}

static void fail_all_local(struct smtp_client *c, const char *reason)
{
	int code = atoi(reason);

	fail_all(c, class_outcome(code), code, reason, strlen(reason), true);
}

static void session_close(struct smtp_client *c)
{
	if (c->state == S_CLOSED)
		return;
	/* Bytes still queued stay: what was queued depends only on the
	 * replies, never on how they were split, and the caller stops
	 * sending once it sees SMTP_EV_CLOSED anyway. */
	c->state = S_CLOSED;
	c->pend_n = 0;
	if (!c->closed_emitted) {
		c->closed_emitted = true;
		emit_simple(c, SMTP_EV_CLOSED, 0, NULL, 0, true);
	}
}

static void send_quit(struct smtp_client *c)
{
	/* Replies still due for pipelined commands mean nothing now. */
	for (size_t i = 0; i < c->pend_n; i++)
		c->pend[(c->pend_head + i) % c->pend_cap].kind = P_IGNORE;
	c->txn[0].active = c->txn[1].active = false;
	cmd_str(c, P_QUIT, "QUIT");
	c->state = S_QUIT_SENT;
}

static void protocol_error(struct smtp_client *c, const char *reason, const char *raw,
			   size_t raw_len)
{
	emit_simple(c, SMTP_EV_PROTOCOL_ERROR, 0, raw ? raw : reason,
		    raw ? raw_len : strlen(reason), raw == NULL);
	fail_all_local(c, reason);
	session_close(c);
}

/* -------------------------------------------------------- transactions */

static bool can_send(const struct smtp_client *c)
{
	return c->pend_n == 0 || ((c->ext & SMTP_EXT_PIPELINING) && !c->cfg.no_pipelining);
}

static bool pipelining(const struct smtp_client *c)
{
	return (c->ext & SMTP_EXT_PIPELINING) && !c->cfg.no_pipelining;
}

static void txn_finish(struct smtp_client *c, struct txn *t, int code, const char *text, size_t len,
		       bool local);

/*
 * A command line built by appending: the addresses were checked for length
 * at submit, so nothing here is cut in practice (what would not fit is
 * dropped, never written past the end). snprintf() cost more than the
 * rest of building a transaction.
 */
struct line {
	char *p;
	size_t n, cap;
};

static void line_put(struct line *l, const char *s, size_t len)
{
	if (len > l->cap - l->n)
		len = l->cap - l->n;
	memcpy(l->p + l->n, s, len);
	l->n += len;
}

static void line_str(struct line *l, const char *s)
{
	line_put(l, s, strlen(s));
}

static void line_u64(struct line *l, uint64_t v)
{
	char t[20], *p = dmta_str_u64(t + sizeof(t), v);

	line_put(l, p, (size_t)(t + sizeof(t) - p));
}

static void send_mail(struct smtp_client *c, struct txn *t)
{
	const struct mstate *ms = t->ms;
	const struct smtp_msg *m = ms->m;
	char buf[MAX_ADDR + 512];
	struct line l = {buf, 0, sizeof(buf) - 1}; /* room for xtext()'s NUL */

	line_str(&l, "MAIL FROM:<");
	line_str(&l, m->from);
	line_str(&l, ">");
	if (c->ext & SMTP_EXT_SIZE) {
		line_str(&l, " SIZE=");
		line_u64(&l, ms->wire_size);
	}
	if (ms->eightbit)
		line_str(&l, " BODY=8BITMIME");
	if (ms->utf8)
		line_str(&l, " SMTPUTF8");
	if (c->ext & SMTP_EXT_DSN) {
		if (m->ret == SMTP_RET_FULL)
			line_str(&l, " RET=FULL");
		else if (m->ret == SMTP_RET_HDRS)
			line_str(&l, " RET=HDRS");
		if (m->envid) {
			line_str(&l, " ENVID=");
			l.n += xtext(l.p + l.n, l.cap - l.n, m->envid);
		}
	}
	c->stats.transactions++;
	cmd_send(c, P_MAIL, 0, l.p, l.n, SIZE_MAX);
}

static void send_rcpt(struct smtp_client *c, struct txn *t, size_t pos)
{
	const struct smtp_rcpt *r = &t->ms->m->rcpts[t->rcpt[pos]];
	char buf[2 * MAX_ADDR + 512];
	struct line l = {buf, 0, sizeof(buf) - 1}; /* room for xtext()'s NUL */

	line_str(&l, "RCPT TO:<");
	line_str(&l, r->addr);
	line_str(&l, ">");
	if (c->ext & SMTP_EXT_DSN) {
		if (r->notify) {
			line_str(&l, " NOTIFY=");
			line_str(&l, r->notify);
		}
		if (r->orcpt) {
			/* "type;addr": the type stays, the address is xtext. */
			const char *semi = strchr(r->orcpt, ';');
			if (semi) {
				line_str(&l, " ORCPT=");
				line_put(&l, r->orcpt, (size_t)(semi - r->orcpt) + 1);
				l.n += xtext(l.p + l.n, l.cap - l.n, semi + 1);
			}
		}
	}
	cmd_send(c, P_RCPT, (uint32_t)pos, l.p, l.n, SIZE_MAX);
}

/* Send what the transaction may send now. */
static void txn_send(struct smtp_client *c, struct txn *t)
{
	c->send_slot = (uint8_t)(t - c->txn);
	while (t->active && t->next_cmd <= t->n + 1 && can_send(c)) {
		if (t->next_cmd == 0) {
			send_mail(c, t);
		} else if (t->next_cmd <= t->n) {
			send_rcpt(c, t, t->next_cmd - 1);
		} else if (!pipelining(c) && t->naccepted == 0) {
			/* Every recipient refused, one at a time: no DATA. */
			t->next_cmd++;
			if (c->cur)
				txn_finish(c, t, c->cur->code, c->cur->raw, c->cur->raw_len, false);
			else
				txn_finish(c, t, 0, NULL, 0, true);
			return;
		} else if (t->bdat) {
			char buf[64];
			struct line l = {buf, 0, sizeof(buf) - 1}; /* room for xtext()'s NUL */

			line_str(&l, "BDAT ");
			line_u64(&l, t->ms->wire_size);
			line_str(&l, " LAST");
			cmd_send(c, P_BDAT, 0, l.p, l.n, SIZE_MAX);
			body_start(c, t->ms, false);
		} else {
			cmd_str(c, P_DATA, "DATA");
		}
		t->next_cmd++;
	}
}

static void pump(struct smtp_client *c);

/* The transaction's last reply came (or none will): settle deferrals, close
 * out the message if it is done, go on. */
static void txn_finish(struct smtp_client *c, struct txn *t, int code, const char *text, size_t len,
		       bool local)
{
	struct mstate *ms = t->ms;

	for (size_t i = 0; i < t->n; i++) {
		uint8_t *s = &ms->rst[t->rcpt[i]];

		if (*s == R_DEFER)
			*s = R_PENDING;
		else if (*s != R_DONE)
			dmta_panic("smtp_client: recipient %zu left in state %d", t->rcpt[i], *s);
	}
	/* A transaction the server still holds open must be reset. */
	c->need_rset = t->mail_ok && !t->ended_ok;
	t->active = false;
	if (t == &c->txn[c->tcur])
		c->tcur ^= 1; /* the younger one, if any, is now the older */
	msg_maybe_done(c, ms, code, text, len, local);
	pump(c);
}

/* Checks that need no round trip: refuse at once what the server cannot
 * take. Returns false when the message was failed. */
static bool msg_fits(struct smtp_client *c, struct mstate *ms)
{
	const char *why = NULL;

	if ((c->ext & SMTP_EXT_SIZE) && c->size_limit && ms->wire_size > c->size_limit)
		why = R_SIZE;
	else if (ms->utf8 && !(c->ext & SMTP_EXT_SMTPUTF8))
		why = R_UTF8;
	else if (ms->eightbit && !(c->ext & SMTP_EXT_8BITMIME))
		why = R_8BIT;
	if (why == NULL)
		return true;
	for (size_t i = 0; i < ms->m->nrcpts; i++)
		if (ms->rst[i] != R_DONE)
			rcpt_done(c, ms, i, SMTP_PERMFAIL, atoi(why), why, strlen(why), true);
	msg_maybe_done(c, ms, atoi(why), why, strlen(why), true);
	return false;
}

static bool has_pending(const struct mstate *ms)
{
	for (size_t i = 0; i < ms->m->nrcpts; i++)
		if (ms->rst[i] == R_PENDING)
			return true;
	return false;
}

/* Start transaction t for the first message with recipients waiting.
 * Returns false when there is none. */
static bool txn_start(struct smtp_client *c, struct txn *t)
{
	struct mstate *ms, *next;
	size_t max = c->cfg.max_rcpts;

	for (ms = c->q_head; ms != NULL; ms = next) {
		next = ms->next;
		if (has_pending(ms) && msg_fits(c, ms))
			break;
	}
	if (ms == NULL)
		return false;
	size_t *rcpt = t->rcpt;

	memset(t, 0, sizeof(*t));
	t->rcpt = rcpt;
	t->active = true;
	t->ms = ms;
	t->bdat = (c->ext & SMTP_EXT_CHUNKING) && !c->cfg.no_chunking;
	for (size_t i = 0; i < ms->m->nrcpts && t->n < max; i++) {
		if (ms->rst[i] == R_PENDING) {
			ms->rst[i] = R_SENT;
			t->rcpt[t->n++] = i;
		}
	}
	txn_send(c, t);
	return true;
}

static bool any_pending(const struct smtp_client *c)
{
	for (const struct mstate *ms = c->q_head; ms; ms = ms->next)
		if (has_pending(ms))
			return true;
	return false;
}

/* Move the session along after any change. */
static void pump(struct smtp_client *c)
{
	struct txn *a = &c->txn[c->tcur], *b = &c->txn[c->tcur ^ 1];

	if (c->state != S_READY)
		return;
	if (a->active) {
		txn_send(c, a);
		/* Once the older transaction has queued its "." the next one
		 * may follow in the same write (RFC 2920); after "." no RSET
		 * can be needed. Its commands queue behind the body, which is
		 * then rendered whole rather than a slice at a time: only done
		 * for bodies up to PIPELINE_BODY_MAX. Decided here, when a
		 * reply is handled, so that what is sent never depends on when
		 * the caller drains the output. */
		if (b->active)
			txn_send(c, b);
		else if (pipelining(c) && a->dot_sent && a->ms->wire_size <= PIPELINE_BODY_MAX &&
			 !c->need_rset && any_pending(c))
			txn_start(c, b);
		return;
	}
	if (c->need_rset && any_pending(c)) {
		if (!can_send(c))
			return;
		cmd_str(c, P_RSET, "RSET");
		c->need_rset = false;
	}
	if (c->q_head) {
		if (!can_send(c))
			return;
		if (any_pending(c))
			txn_start(c, a); /* may fail every message at once (SIZE...) */
	}
	if (a->active || b->active || c->q_head || c->state != S_READY)
		return;
	if (c->quit_req && c->pend_n == 0)
		send_quit(c);
}

/* ------------------------------------------------------------ replies */

static void parse_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
	size_t off = 0, len;
	const char *t;
	bool first = true;

	c->ext = SMTP_EXT_ESMTP;
	c->auth_mechs = 0;
	c->size_limit = 0;
	while (smtp_reply_next_line(r, &off, &t, &len)) {
		if (first) {
			first = false;
			continue;
		}
		size_t kw = 0;
		while (kw < len && t[kw] != ' ' && t[kw] != '=')
			kw++;
		const char *arg = t + kw + (kw < len);
		size_t arg_len = kw < len ? len - kw - 1 : 0;
#define KW(s) (kw == sizeof(s) - 1 && strncasecmp(t, s, kw) == 0)
		if (KW("PIPELINING"))
			c->ext |= SMTP_EXT_PIPELINING;
		else if (KW("8BITMIME"))
			c->ext |= SMTP_EXT_8BITMIME;
		else if (KW("SMTPUTF8"))
			c->ext |= SMTP_EXT_SMTPUTF8;
		else if (KW("CHUNKING"))
			c->ext |= SMTP_EXT_CHUNKING;
		else if (KW("STARTTLS"))
			c->ext |= SMTP_EXT_STARTTLS;
		else if (KW("ENHANCEDSTATUSCODES"))
			c->ext |= SMTP_EXT_ENHANCEDSTATUSCODES;
		else if (KW("DSN"))
			c->ext |= SMTP_EXT_DSN;
		else if (KW("SIZE")) {
			uint64_t v = 0;
			size_t i;
			for (i = 0;
			     i < arg_len && arg[i] >= '0' && arg[i] <= '9' && v < UINT64_MAX / 100;
			     i++)
				v = v * 10 + (uint64_t)(arg[i] - '0');
			c->ext |= SMTP_EXT_SIZE;
			c->size_limit = v;
		} else if (KW("AUTH")) {
			c->ext |= SMTP_EXT_AUTH;
			for (size_t i = 0; i < arg_len;) {
				size_t j = i;
				while (j < arg_len && arg[j] != ' ')
					j++;
				if (j - i == 5 && strncasecmp(arg + i, "PLAIN", 5) == 0)
					c->auth_mechs |= SMTP_AUTH_PLAIN;
				else if (j - i == 5 && strncasecmp(arg + i, "LOGIN", 5) == 0)
					c->auth_mechs |= SMTP_AUTH_LOGIN;
				else if (j - i == 7 && strncasecmp(arg + i, "XOAUTH2", 7) == 0)
					c->auth_mechs |= SMTP_AUTH_XOAUTH2;
				i = j + 1;
			}
		}
#undef KW
	}
}

static void b64_cmd(struct smtp_client *c, enum pend_kind k, const char *prefix, const void *raw,
		    size_t raw_len)
{
	size_t pl = strlen(prefix);
	size_t cap = pl + 4 * ((raw_len + 2) / 3) + 1;
	char *line = malloc(cap);

	if (line == NULL)
		dmta_panic("smtp_client: out of memory");
	memcpy(line, prefix, pl);
	int n = EVP_EncodeBlock((unsigned char *)line + pl, raw, (int)raw_len);
	cmd_send(c, k, 0, line, pl + (size_t)n, pl);
	OPENSSL_cleanse(line, cap);
	free(line);
}

static void auth_start(struct smtp_client *c)
{
	const char *u = c->cfg.auth_user, *p = c->cfg.auth_pass ? c->cfg.auth_pass : "";

	c->state = S_AUTH;
	if (c->cfg.auth_xoauth2) {
		/* "user=U^Aauth=Bearer T^A^A" */
		size_t ul = strlen(u), plen = strlen(p), n = ul + plen + 32;
		char *buf = malloc(n);

		if (buf == NULL)
			dmta_panic("smtp_client: out of memory");
		n = (size_t)snprintf(buf, n, "user=%s\001auth=Bearer %s\001\001", u, p);
		b64_cmd(c, P_AUTH_DONE, "AUTH XOAUTH2 ", buf, n);
		OPENSSL_cleanse(buf, n);
		free(buf);
	} else if (c->auth_mechs & SMTP_AUTH_PLAIN) {
		size_t ul = strlen(u), plen = strlen(p);
		char *buf = malloc(ul + plen + 2);

		if (buf == NULL)
			dmta_panic("smtp_client: out of memory");
		buf[0] = '\0';
		memcpy(buf + 1, u, ul);
		buf[1 + ul] = '\0';
		memcpy(buf + 2 + ul, p, plen);
		b64_cmd(c, P_AUTH_DONE, "AUTH PLAIN ", buf, ul + plen + 2);
		OPENSSL_cleanse(buf, ul + plen + 2);
		free(buf);
	} else {
		cmd_str(c, P_AUTH_USER, "AUTH LOGIN");
	}
}

static void set_ready(struct smtp_client *c)
{
	c->state = S_READY;
	emit_simple(c, SMTP_EV_READY, 0, NULL, 0, true);
	pump(c);
}

/* EHLO/HELO done: STARTTLS, AUTH, or ready. */
static void after_ehlo(struct smtp_client *c)
{
	if (!c->tls_active && !c->tls_refused &&
	    (c->cfg.tls == SMTP_TLS_OPPORTUNISTIC || c->cfg.tls == SMTP_TLS_REQUIRED)) {
		if (c->ext & SMTP_EXT_STARTTLS) {
			cmd_str(c, P_STARTTLS, "STARTTLS");
			c->state = S_STARTTLS;
			return;
		}
		if (c->cfg.tls == SMTP_TLS_REQUIRED) {
			fail_all_local(c, R_TLSREQ);
			send_quit(c);
			return;
		}
	}
	if (c->cfg.auth_user && !c->authed) {
		if (!c->tls_active && !c->cfg.auth_plaintext_ok) {
			fail_all_local(c, R_AUTHPT);
			send_quit(c);
			return;
		}
		if (!(c->auth_mechs & (c->cfg.auth_xoauth2 ? SMTP_AUTH_XOAUTH2
							   : SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
			fail_all_local(c, R_NOAUTH);
			send_quit(c);
			return;
		}
		auth_start(c);
		return;
	}
	set_ready(c);
}

/* A reply that ends the session early: everyone gets it, then QUIT. */
static void fail_and_quit(struct smtp_client *c, const struct smtp_reply *r, enum smtp_outcome o)
{
	fail_all(c, o, r->code, r->raw, r->raw_len, false);
	send_quit(c);
}

static void on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	int cls = r->code / 100;
	struct txn *t;

	if (c->pend_n == 0) {
		/* Unsolicited: only 421 (closing) makes sense. */
		if (r->code == 421) {
			fail_all(c, SMTP_TEMPFAIL, r->code, r->raw, r->raw_len, false);
			session_close(c);
		} else {
			c->stats.malformed++;
			protocol_error(c, R_PROTO, r->raw, r->raw_len);
		}
		return;
	}
	struct pend p = c->pend[c->pend_head];
	c->pend_head = (c->pend_head + 1) % c->pend_cap;
	c->pend_n--;
	t = &c->txn[p.slot & 1];

	if (r->code == 421 && p.kind != P_QUIT) {
		/* The server is going away (RFC 5321 3.8): no QUIT. */
		fail_all(c, SMTP_TEMPFAIL, r->code, r->raw, r->raw_len, false);
		session_close(c);
		return;
	}
	switch (p.kind) {
	case P_GREETING:
		emit_simple(c, SMTP_EV_GREETING, r->code, r->raw, r->raw_len, false);
		if (r->code == 220) {
			char line[512];
			int n = snprintf(line, sizeof(line), "EHLO %s", c->cfg.helo_name);
			cmd_send(c, P_EHLO, 0, line, (size_t)n, SIZE_MAX);
			c->state = S_EHLO;
		} else {
			fail_and_quit(c, r, cls == 4 ? SMTP_TEMPFAIL : SMTP_PERMFAIL);
		}
		break;
	case P_EHLO:
		if (cls == 2) {
			parse_ehlo(c, r);
			after_ehlo(c);
		} else if (cls == 5) {
			char line[512];
			int n = snprintf(line, sizeof(line), "HELO %s", c->cfg.helo_name);
			cmd_send(c, P_HELO, 0, line, (size_t)n, SIZE_MAX);
		} else {
			fail_and_quit(c, r, SMTP_TEMPFAIL);
		}
		break;
	case P_HELO:
		if (cls == 2) {
			c->ext = 0;
			c->size_limit = 0;
			c->auth_mechs = 0;
			after_ehlo(c);
		} else {
			fail_and_quit(c, r, class_outcome(r->code));
		}
		break;
	case P_STARTTLS:
		if (r->code == 220) {
			if (c->rx_off != c->rx_len) {
				/* Bytes sent before TLS would be read as if
				 * they came over TLS (CVE-2011-0411). */
				protocol_error(c, R_INJECT, NULL, 0);
				return;
			}
			c->state = S_TLS_WAIT;
			emit_simple(c, SMTP_EV_TLS_NEEDED, r->code, r->raw, r->raw_len, false);
		} else if (c->cfg.tls == SMTP_TLS_REQUIRED) {
			fail_and_quit(c, r, SMTP_TEMPFAIL);
		} else {
			c->tls_refused = true;
			after_ehlo(c);
		}
		break;
	case P_AUTH_USER:
	case P_AUTH_PASS:
		if (r->code == 334) {
			const char *v = p.kind == P_AUTH_USER ? c->cfg.auth_user : c->cfg.auth_pass;
			b64_cmd(c, p.kind == P_AUTH_USER ? P_AUTH_PASS : P_AUTH_DONE, "",
				v ? v : "", v ? strlen(v) : 0);
		} else {
			fail_and_quit(c, r, SMTP_TEMPFAIL);
		}
		break;
	case P_AUTH_DONE:
		if (cls == 2) {
			c->authed = true;
			set_ready(c);
		} else if (r->code == 334 && c->cfg.auth_xoauth2) {
			/* XOAUTH2 failure details come as a challenge; an empty
			 * line gets the final 535. */
			cmd_send(c, P_AUTH_DONE, 0, "", 0, 0);
		} else {
			/* A bad password is the sender's configuration: keep
			 * the mail queued rather than bounce it. */
			fail_and_quit(c, r, SMTP_TEMPFAIL);
		}
		break;
	case P_MAIL:
		if (!t->active)
			goto unexpected;
		if (cls == 2) {
			t->mail_ok = true;
		} else if (cls == 3) {
			goto unexpected;
		} else {
			t->mail_failed = true;
			for (size_t i = 0; i < t->n; i++)
				rcpt_done(c, t->ms, t->rcpt[i], class_outcome(r->code), r->code,
					  r->raw, r->raw_len, false);
			if (!pipelining(c)) {
				t->next_cmd = t->n + 2;
				txn_finish(c, t, r->code, r->raw, r->raw_len, false);
				return;
			}
		}
		txn_send(c, t);
		break;
	case P_RCPT: {
		if (!t->active || p.idx >= t->n)
			goto unexpected;
		size_t i = t->rcpt[p.idx];
		if (t->mail_failed)
			break;
		if (cls == 2) {
			t->ms->rst[i] = R_ACCEPTED;
			t->naccepted++;
		} else if (cls == 3) {
			goto unexpected;
		} else if (r->code == 452 && t->naccepted > 0) {
			/* Too many recipients (RFC 5321 4.5.3.1.10): the
			 * rest go in a new transaction. */
			t->ms->rst[i] = R_DEFER;
		} else {
			rcpt_done(c, t->ms, i, class_outcome(r->code), r->code, r->raw, r->raw_len,
				  false);
		}
		txn_send(c, t);
		break;
	}
	case P_DATA:
		if (!t->active)
			goto unexpected;
		if (r->code == 354) {
			if (t->naccepted > 0 && !t->mail_failed) {
				body_start(c, t->ms, true);
			} else {
				/* RFC 2920: DATA accepted though no recipient
				 * was: send an empty message, ignore its reply. */
				while (c->enc.active)
					encode_slice(c, &c->enc, ENCODE_SLICE);
				out_bytes(c, ".\r\n", 3);
			}
			c->send_slot = p.slot;
			pend_push(c, P_DOT, 0);
			t->dot_sent = true;
			pump(c);
			break;
		}
		if (cls == 2 || cls == 3)
			goto unexpected;
		for (size_t k = 0; k < t->n; k++)
			if (t->ms->rst[t->rcpt[k]] == R_ACCEPTED)
				rcpt_done(c, t->ms, t->rcpt[k], class_outcome(r->code), r->code,
					  r->raw, r->raw_len, false);
		txn_finish(c, t, r->code, r->raw, r->raw_len, false);
		break;
	case P_DOT:
	case P_BDAT:
		if (!t->active || cls == 3)
			goto unexpected;
		for (size_t k = 0; k < t->n; k++)
			if (t->ms->rst[t->rcpt[k]] == R_ACCEPTED)
				rcpt_done(c, t->ms, t->rcpt[k], class_outcome(r->code), r->code,
					  r->raw, r->raw_len, false);
		/* After "." the transaction is over either way; after a
		 * failed BDAT the server may still hold it (RFC 3030). */
		t->ended_ok = p.kind == P_DOT || cls == 2;
		txn_finish(c, t, r->code, r->raw, r->raw_len, false);
		break;
	case P_RSET:
		if (cls != 2)
			fail_and_quit(c, r, SMTP_TEMPFAIL);
		else
			pump(c);
		break;
	case P_QUIT:
		session_close(c);
		break;
	case P_IGNORE:
		break;
	default:
		dmta_panic("smtp_client: bad pending kind %d", p.kind);
	}
	return;
unexpected:
	c->stats.malformed++;
	protocol_error(c, R_PROTO, r->raw, r->raw_len);
}

/* ------------------------------------------------------------- public */

struct smtp_client *smtp_client_new(const struct smtp_client_config *cfg)
{
	struct smtp_client *c;

	if (cfg == NULL || cfg->helo_name == NULL || cfg->helo_name[0] == '\0' ||
	    strpbrk(cfg->helo_name, "\r\n") || strlen(cfg->helo_name) > 255) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	c->cfg = *cfg;
	if (c->cfg.max_rcpts == 0)
		c->cfg.max_rcpts = 100;
	c->txn[0].rcpt = calloc(c->cfg.max_rcpts, sizeof(size_t));
	c->txn[1].rcpt = calloc(c->cfg.max_rcpts, sizeof(size_t));
	if (c->txn[0].rcpt == NULL || c->txn[1].rcpt == NULL) {
		free(c->txn[0].rcpt);
		free(c->txn[1].rcpt);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->state = S_GREETING;
	pend_push(c, P_GREETING, 0);
	return c;
}

void smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	while (c->q_head) {
		struct mstate *ms = c->q_head;
		c->q_head = ms->next;
		free(ms->rst);
		free(ms);
	}
	free(c->txn[0].rcpt);
	free(c->txn[1].rcpt);
	free(c->pend);
	free(c->out);
	free(c->segs);
	free(c->ev);
	free(c);
}

static bool addr_ok(const char *a, bool *utf8)
{
	size_t n = 0;

	if (a == NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++, n++) {
		if (*p < ' ' || *p == '<' || *p == '>' || *p == 0x7f)
			return false;
		if (*p >= 0x80)
			*utf8 = true;
	}
	return n <= MAX_ADDR;
}

bool smtp_client_rcpt_ok(const struct smtp_rcpt *r)
{
	bool dummy = false;

	if (!addr_ok(r->addr, &dummy) || r->addr[0] == '\0')
		return false;
	return !((r->notify && (!addr_ok(r->notify, &dummy) || strchr(r->notify, ' '))) ||
		 (r->orcpt && (!addr_ok(r->orcpt, &dummy) || !strchr(r->orcpt, ';'))));
}

bool smtp_client_envelope_ok(const struct smtp_msg *m)
{
	bool dummy = false;

	return m != NULL && m->nrcpts > 0 && addr_ok(m->from, &dummy) &&
	       !(m->nbody && m->body == NULL) && !(m->envid && strlen(m->envid) > 100);
}

int smtp_client_submit(struct smtp_client *c, const struct smtp_msg *m)
{
	bool utf8 = false;

	if (c->state == S_CLOSED || c->state == S_QUIT_SENT || c->quit_req)
		return -EPIPE;
	if (!smtp_client_envelope_ok(m))
		return -EINVAL;
	(void)addr_ok(m->from, &utf8);
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (!smtp_client_rcpt_ok(&m->rcpts[i]))
			return -EINVAL;
		(void)addr_ok(m->rcpts[i].addr, &utf8);
	}

	struct mstate *ms = calloc(1, sizeof(*ms));
	if (ms == NULL)
		return -ENOMEM;
	ms->rst = calloc(m->nrcpts, 1);
	if (ms->rst == NULL) {
		free(ms);
		return -ENOMEM;
	}
	ms->m = m;
	ms->utf8 = utf8;

	/* The size after CRLF normalisation (what BDAT counts), whether any
	 * rewriting is needed, 8-bit bytes: one pass, this being per message. */
	size_t size = 0, fix;
	struct body_scan bs = {0};
	uint8_t prev = 0, last = '\n';
	bool canon = true, hibit = false;
	for (size_t k = 0; k < m->nbody; k++) {
		if (m->body[k].len == 0)
			continue;
		size += m->body[k].len;
		if (canon)
			canon = span_canonical(m->body[k].p, m->body[k].len, &prev, &hibit);
	}
	if (canon && prev == '\r')
		canon = false; /* a CR at the very end */
	if (canon) {
		last = prev;
	} else {
		prev = 0;
		for (size_t k = 0; k < m->nbody; k++) {
			if (m->body[k].len == 0)
				continue;
			body_scan(m->body[k].p, m->body[k].len, &prev, &bs);
			last = prev;
		}
		hibit = bs.hibit;
	}
	size_t nlf = bs.nlf, ncr = bs.ncr, crlf = bs.crlf;
	/* Every LF after a CR pairs with that CR; the rest of each are bare. */
	fix = (nlf - crlf) + (ncr - crlf);
	ms->canonical = fix == 0;
	ms->ends_crlf = size == 0 || last == '\n' || last == '\r';
	size += fix;
	if (!ms->ends_crlf)
		size += 2;
	ms->wire_size = size;
	ms->eightbit = hibit;
	if (c->q_tail)
		c->q_tail->next = ms;
	else
		c->q_head = ms;
	c->q_tail = ms;
	pump(c);
	return 0;
}

void smtp_client_quit(struct smtp_client *c)
{
	c->quit_req = true;
	pump(c);
}

size_t smtp_client_rx_space(struct smtp_client *c, uint8_t **p)
{
	/* Pending events point into the buffer: move bytes only when they
	 * have all been taken. */
	if (c->rx_off > 0 && c->ev_head == c->ev_n) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	*p = c->rx + c->rx_len;
	return sizeof(c->rx) - c->rx_len;
}

void smtp_client_rx_commit(struct smtp_client *c, size_t n)
{
	if (n > sizeof(c->rx) - c->rx_len)
		dmta_panic("smtp_client: rx_commit of %zu bytes beyond the buffer", n);
	c->rx_len += n;
	while (c->state != S_CLOSED && c->rx_off < c->rx_len) {
		struct smtp_reply r;

		if (c->state == S_TLS_WAIT) {
			protocol_error(c, R_INJECT, NULL, 0);
			break;
		}
		int rc = smtp_reply_parse((const char *)c->rx + c->rx_off, c->rx_len - c->rx_off,
					  &r, c->rx_last);
		if (rc == -2) {
			c->rx_last = c->rx_len - c->rx_off;
			break;
		}
		if (rc < 0) {
			c->stats.malformed++;
			size_t show = c->rx_len - c->rx_off;
			protocol_error(c, R_PROTO, (const char *)c->rx + c->rx_off,
				       show > 512 ? 512 : show);
			break;
		}
		c->rx_off += (size_t)rc;
		c->rx_last = 0;
		c->stats.replies++;
		if (c->cfg.trace)
			c->cfg.trace(c->cfg.trace_arg, 'S', r.raw, r.raw_len);
		c->cur = &r;
		on_reply(c, &r);
		c->cur = NULL;
	}
	if (c->state == S_CLOSED) {
		c->rx_off = c->rx_len;
		c->rx_last = 0;
	}
}

size_t smtp_client_feed(struct smtp_client *c, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len && c->state != S_CLOSED) {
		uint8_t *p;
		size_t room = smtp_client_rx_space(c, &p);

		if (room == 0)
			break; /* the caller must take events first */
		if (room > len - done)
			room = len - done;
		memcpy(p, (const uint8_t *)buf + done, room);
		smtp_client_rx_commit(c, room);
		done += room;
	}
	return done;
}

int smtp_client_event(struct smtp_client *c, struct smtp_event *ev)
{
	if (c->ev_head == c->ev_n) {
		c->ev_head = c->ev_n = 0;
		return 0;
	}
	*ev = c->ev[c->ev_head++];
	return 1;
}

size_t smtp_client_tx_iov(struct smtp_client *c, struct iovec *iov, size_t max)
{
	size_t k = 0;

	if (c->seg_head == c->seg_n && c->enc.active)
		encode_slice(c, &c->enc, ENCODE_SLICE);
	for (size_t i = c->seg_head; i < c->seg_n && k < max; i++, k++) {
		const struct seg *s = &c->segs[i];
		size_t skip = i == c->seg_head ? c->seg_head_off : 0;
		const uint8_t *base = s->ext ? s->ext : c->out + s->off;

		iov[k].iov_base = (void *)(base + skip);
		iov[k].iov_len = s->len - skip;
	}
	return k;
}

void smtp_client_tx_done(struct smtp_client *c, size_t n)
{
	while (n > 0) {
		if (c->seg_head == c->seg_n)
			dmta_panic("smtp_client: tx_done beyond the queued bytes");
		struct seg *s = &c->segs[c->seg_head];
		size_t left = s->len - c->seg_head_off;

		if (n < left) {
			c->seg_head_off += n;
			return;
		}
		n -= left;
		c->seg_head++;
		c->seg_head_off = 0;
	}
	if (c->seg_head == c->seg_n) {
		c->seg_head = c->seg_n = 0;
		c->out_len = 0;
	}
}

size_t smtp_client_tx_pending(const struct smtp_client *c)
{
	size_t n = 0;

	for (size_t i = c->seg_head; i < c->seg_n; i++)
		n += c->segs[i].len;
	return n - c->seg_head_off;
}

enum smtp_deadline smtp_client_deadline(const struct smtp_client *c, uint64_t *ms)
{
	static const uint64_t len[] = {
	    [SMTP_DL_NONE] = 0,		  [SMTP_DL_GREETING] = 300000,
	    [SMTP_DL_MAIL] = 300000,	  [SMTP_DL_RCPT] = 300000,
	    [SMTP_DL_DATA_INIT] = 120000, [SMTP_DL_DATA_BLOCK] = 180000,
	    [SMTP_DL_DATA_END] = 600000,  [SMTP_DL_OTHER] = 300000,
	    [SMTP_DL_TLS] = 300000,
	};
	enum smtp_deadline d = SMTP_DL_NONE;

	if (c->state == S_TLS_WAIT)
		d = SMTP_DL_TLS;
	else if (c->state != S_CLOSED && c->pend_n > 0) {
		switch (c->pend[c->pend_head].kind) {
		case P_GREETING:
			d = SMTP_DL_GREETING;
			break;
		case P_MAIL:
			d = SMTP_DL_MAIL;
			break;
		case P_RCPT:
			d = SMTP_DL_RCPT;
			break;
		case P_DATA:
			d = SMTP_DL_DATA_INIT;
			break;
		case P_DOT:
		case P_BDAT:
			d = (c->enc.active || c->seg_head != c->seg_n) ? SMTP_DL_DATA_BLOCK
								       : SMTP_DL_DATA_END;
			break;
		default:
			d = SMTP_DL_OTHER;
			break;
		}
	}
	if (ms)
		*ms = len[d];
	return d;
}

void smtp_client_tls_started(struct smtp_client *c)
{
	if (c->state == S_GREETING && c->cfg.tls == SMTP_TLS_IMPLICIT) {
		c->tls_active = true;
		return;
	}
	if (c->state != S_TLS_WAIT)
		dmta_panic("smtp_client: tls_started in state %d", c->state);
	/* RFC 3207 4.2: forget everything learned before TLS. */
	c->tls_active = true;
	c->ext = 0;
	c->auth_mechs = 0;
	c->size_limit = 0;
	c->rx_off = c->rx_len = c->rx_last = 0;
	char line[512];
	int n = snprintf(line, sizeof(line), "EHLO %s", c->cfg.helo_name);
	cmd_send(c, P_EHLO, 0, line, (size_t)n, SIZE_MAX);
	c->state = S_EHLO;
}

void smtp_client_tls_failed(struct smtp_client *c, const char *why)
{
	if (c->state == S_CLOSED)
		return;
	(void)why;
	fail_all_local(c, R_TLSFAIL);
	session_close(c);
}

void smtp_client_eof(struct smtp_client *c)
{
	if (c->state == S_CLOSED)
		return;
	fail_all_local(c, c->state == S_QUIT_SENT ? R_CLOSING : R_LOST);
	session_close(c);
}

void smtp_client_timeout(struct smtp_client *c)
{
	if (c->state == S_CLOSED)
		return;
	fail_all_local(c, R_TIMEOUT);
	session_close(c);
}

bool smtp_client_closed(const struct smtp_client *c)
{
	return c->state == S_CLOSED;
}

unsigned smtp_client_extensions(const struct smtp_client *c, uint64_t *size_limit)
{
	if (size_limit)
		*size_limit = c->size_limit;
	return c->ext;
}

bool smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}

const struct smtp_client_stats *smtp_client_stats(const struct smtp_client *c)
{
	return &c->stats;
}

const char *smtp_event_name(enum smtp_event_type t)
{
	switch (t) {
	case SMTP_EV_GREETING:
		return "greeting";
	case SMTP_EV_READY:
		return "ready";
	case SMTP_EV_TLS_NEEDED:
		return "tls-needed";
	case SMTP_EV_RCPT:
		return "rcpt";
	case SMTP_EV_MSG:
		return "msg";
	case SMTP_EV_PROTOCOL_ERROR:
		return "protocol-error";
	case SMTP_EV_CLOSED:
		return "closed";
	default:
		return "?";
	}
}

const char *smtp_deadline_name(enum smtp_deadline d)
{
	static const char *const names[] = {"none",	  "greeting", "mail",  "rcpt", "data-init",
					    "data-block", "data-end", "other", "tls"};

	return (unsigned)d < sizeof(names) / sizeof(names[0]) ? names[d] : "?";
}
