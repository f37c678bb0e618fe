/*
 * smtp_server.c - sans-I/O SMTP server engine.
 *
 * DESCRIPTION
 *	See smtp_server.h for the contract. Inside, input is handled in the
 *	receive buffer where it landed: command lines are found with memchr
 *	and handled by one function per verb (a switch on the verb's first
 *	four letters); a DATA body is scanned a line at a time with memchr for
 *	LF and CR, and given to the caller as pieces of the buffer between the
 *	bytes that must go (the stuffed dot) or change (bare CR or LF when
 *	normalising). Only the strings an event names (addresses, parameters,
 *	AUTH data) are copied, into fixed buffers in the session.
 *
 *	A decision the caller owes stops the loop over the input (s->wait);
 *	smtp_server_reply() queues the answer and starts the loop again.
 *	Replies go into one output buffer that the caller drains, so the
 *	replies to a pipelined group leave in one write.
 *
 *	The DATA scanner never consumes a CR at the end of the input (it may
 *	be the first half of CRLF), nor a "." or ".\r" at the start of a line
 *	(it may be the end of data): those stay in the buffer until the next
 *	bytes arrive. So the byte before the scan's start is never a CR that
 *	still matters, and a line start ("bol") is only ever set by a real
 *	CRLF.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/base/dmta_log.h"
#include "smtp/smtp_server.h"

#define RX_SIZE	   (64 * 1024)
#define AUTH_MAX   1024 /* decoded AUTH data */
#define HELO_MAX   255
#define ENVID_MAX  100 /* RFC 3461 4.4 */
#define ORCPT_MAX  500 /* RFC 3461 4.2 */
#define NOTIFY_MAX 40
#define TIMEOUT_MS 300000 /* RFC 5321 4.5.3.2.7 */

enum state {
	ST_CMD,	     /* reading command lines */
	ST_SKIP,     /* dropping the rest of an over-long command line */
	ST_AUTH,     /* a base64 line after 334 */
	ST_DATA,     /* a DATA body */
	ST_BDAT,     /* the bytes of a BDAT chunk */
	ST_TLS_WAIT, /* 220 to STARTTLS sent; the caller runs the handshake */
	ST_CLOSED,
};

enum wait { W_NONE, W_MAIL, W_RCPT, W_AUTH, W_DATA_END };

enum auth_step { A_PLAIN, A_LOGIN_USER, A_LOGIN_PASS };

struct smtp_server {
	struct smtp_server_config cfg;
	enum state state;
	enum wait wait;
	bool helo_seen, esmtp, tls_active, authed;

	/* The transaction. */
	bool in_mail, utf8, bdat_seen, bdat_failed, bol;
	unsigned nrcpt, nrcpt_tried;
	enum smtp_body_type body_type;
	uint64_t msg_size;
	size_t line_len;
	const char *bad; /* the engine refuses this message with this reply */

	/* BDAT. */
	uint64_t bdat_left;
	bool bdat_last;
	const char *bdat_err; /* reply once the chunk is read, or NULL */

	/* AUTH. */
	enum auth_step astep;
	size_t auth_len; /* bytes of auth_buf used (LOGIN: the user) */
	char auth_buf[AUTH_MAX + 2];
	char auth_user[AUTH_MAX + 1];
	const char *authzid, *user, *pass;

	unsigned errors;

	/* Strings events name. */
	char helo[HELO_MAX + 1];
	char path[SMTP_SERVER_PATH_MAX + 1];
	char envid[ENVID_MAX + 1];
	char orcpt[ORCPT_MAX + 1];
	char notify[NOTIFY_MAX + 1];

	/* Receive side: rx[rx_off, rx_len) not yet consumed; rx_scan bytes
	 * of it were searched for LF already. */
	uint8_t rx[RX_SIZE];
	size_t rx_off, rx_len, rx_scan;

	/* Send side: out[out_off, out_len) queued. */
	char *out;
	size_t out_off, out_len, out_cap;

	struct smtp_server_event *ev;
	size_t ev_n, ev_cap, ev_head;

	struct smtp_server_stats stats;
};

/* Replies the engine makes (the code's class is the first digit). */
#define R_OK	     "250 2.0.0 Ok"
#define R_MAIL_OK    "250 2.1.0 Ok"
#define R_RCPT_OK    "250 2.1.5 Ok"
#define R_QUEUED     "250 2.0.0 Ok: queued"
#define R_AUTH_OK    "235 2.7.0 Authentication successful"
#define R_DATA	     "354 End data with <CR><LF>.<CR><LF>"
#define R_BYE	     "221 2.0.0 Bye"
#define R_TLS_GO     "220 2.0.0 Ready to start TLS"
#define R_VRFY	     "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"
#define R_HELP	     "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP"
#define R_UNKNOWN    "500 5.5.2 Error: command not recognized"
#define R_LONG	     "500 5.5.2 Error: line too long"
#define R_BADCHAR    "500 5.5.2 Error: NUL or bare CR in the command"
#define R_NOTIMPL    "502 5.5.1 Error: command not implemented"
#define R_SEQ_HELO   "503 5.5.1 Error: send HELO/EHLO first"
#define R_SEQ_NEST   "503 5.5.1 Error: nested MAIL command"
#define R_SEQ_MAIL   "503 5.5.1 Error: need MAIL command"
#define R_SEQ_RCPT   "554 5.5.1 Error: no valid recipients"
#define R_SEQ_BDAT   "503 5.5.1 Error: DATA and BDAT cannot be mixed, or an earlier BDAT failed"
#define R_SEQ_BIN    "503 5.5.1 Error: BODY=BINARYMIME needs BDAT"
#define R_SEQ_TLS    "503 5.5.1 Error: TLS already active"
#define R_SEQ_AUTH   "503 5.5.1 Error: already authenticated"
#define R_SEQ_AUTHTX "503 5.5.1 Error: AUTH not allowed during a mail transaction"
#define R_SEQ_EHLO   "503 5.5.1 Error: send EHLO first"
#define R_SYN_ARG    "501 5.5.4 Syntax error in parameters or arguments"
#define R_SYN_FROM   "501 5.1.7 Bad sender address syntax"
#define R_SYN_TO     "501 5.1.3 Bad recipient address syntax"
#define R_UTF8ADDR   "553 5.6.7 Non-ASCII address needs SMTPUTF8"
#define R_PARAM	     "555 5.5.4 Unsupported MAIL or RCPT parameter"
#define R_SIZE	     "552 5.3.4 Message size exceeds fixed limit"
#define R_TOOMANY    "452 4.5.3 Error: too many recipients"
#define R_BARE	     "554 5.6.0 Message refused: bare CR or LF in the text (RFC 5321 2.3.8)"
#define R_TEXTLONG   "554 5.6.0 Message refused: a text line is too long (RFC 5321 4.5.3.1.6)"
#define R_INJECT     "554 5.5.0 Error: commands pipelined after STARTTLS; closing"
#define R_AUTH_NONE  "502 5.5.1 Error: AUTH not offered"
#define R_AUTH_TLS   "538 5.7.11 Encryption required for requested authentication mechanism"
#define R_AUTH_MECH  "504 5.5.4 Unrecognized authentication type"
#define R_AUTH_B64   "501 5.5.2 Cannot decode the AUTH response"
#define R_AUTH_STOP  "501 5.0.0 Authentication cancelled"

/* ---------------------------------------------------------------- utils */

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 16;

	while (n < need)
		n *= 2;
	void *q = realloc(p, n * elem);
	if (q == NULL)
		dmta_panic("smtp_server: out of memory (%zu bytes)", n * elem);
	*cap = n;
	return q;
}

static struct smtp_server_event *emit(struct smtp_server *s, enum smtp_server_event_type t)
{
	if (s->ev_n == s->ev_cap)
		s->ev = grow(s->ev, &s->ev_cap, s->ev_n + 1, sizeof(*s->ev));
	struct smtp_server_event *e = &s->ev[s->ev_n++];
	memset(e, 0, sizeof(*e));
	e->type = t;
	return e;
}

static char *out_reserve(struct smtp_server *s, size_t n)
{
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + n > s->out_cap)
		s->out = grow(s->out, &s->out_cap, s->out_len + n, 1);
	return s->out + s->out_len;
}

static void out_commit(struct smtp_server *s, size_t n)
{
	if (s->out_off == s->out_len)
		s->stats.flushes++;
	if (s->cfg.trace) {
		/* Each line of the reply, without its CRLF. */
		const char *p = s->out + s->out_len, *end = p + n;
		while (p < end) {
			const char *q = memchr(p, '\n', (size_t)(end - p));
			s->cfg.trace(s->cfg.trace_arg, 'S', p, (size_t)(q - p - 1));
			p = q + 1;
		}
	}
	s->out_len += n;
	s->stats.replies++;
}

/* One reply line (a constant or a caller's line) and CRLF. */
static void reply_n(struct smtp_server *s, const char *line, size_t n)
{
	char *p = out_reserve(s, n + 2);

	memcpy(p, line, n);
	p[n] = '\r';
	p[n + 1] = '\n';
	out_commit(s, n + 2);
}

#define REPLY(s, lit) reply_n((s), (lit), sizeof(lit) - 1)

static void session_close(struct smtp_server *s);

static void txn_reset(struct smtp_server *s, bool tell)
{
	if (s->in_mail && tell)
		emit(s, SMTP_SEV_RESET);
	s->in_mail = s->bdat_seen = s->bdat_failed = false;
	s->nrcpt = s->nrcpt_tried = 0;
	s->body_type = SMTP_BODY_NONE;
	s->msg_size = 0;
	s->bad = NULL;
}

/* The client made a mistake; too many of them end the session (Postfix's
 * hard error limit). */
static void count_error(struct smtp_server *s)
{
	s->stats.errors++;
	if (++s->errors >= s->cfg.max_errors) {
		char l[300];
		int k = snprintf(l, sizeof(l), "421 4.7.0 %s Error: too many errors; closing",
				 s->cfg.hostname);
		reply_n(s, l, (size_t)k);
		session_close(s);
	}
}

static void err_n(struct smtp_server *s, const char *line, size_t n)
{
	reply_n(s, line, n);
	count_error(s);
}

#define ERR(s, lit) err_n((s), (lit), sizeof(lit) - 1)

static void session_close(struct smtp_server *s)
{
	if (s->state == ST_CLOSED)
		return;
	txn_reset(s, true);
	s->state = ST_CLOSED;
	s->wait = W_NONE;
	emit(s, SMTP_SEV_CLOSED);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_spaces(const char *p)
{
	while (is_space(*p))
		p++;
	return p;
}

/* ------------------------------------------------------- parsing helpers */

/* RFC 3461 4: xtext, "+HH" for '+', '=' and bytes outside '!'..'~'. Returns
 * the decoded length, or -1 when in[0..n) is not xtext or does not fit. */
static int xtext_decode(const char *in, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (o + 1 >= cap)
			return -1;
		if (ch == '+') {
			const char *h1, *h2;
			if (i + 2 >= n || (h1 = memchr(hex, in[i + 1], 16)) == NULL ||
			    (h2 = memchr(hex, in[i + 2], 16)) == NULL)
				return -1;
			out[o++] = (char)((h1 - hex) << 4 | (h2 - hex));
			i += 2;
		} else if (ch < '!' || ch > '~' || ch == '=') {
			return -1;
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return (int)o;
}

/*
 * "<path>" at *pp (RFC 5321 4.1.2): copies the mailbox (an optional source
 * route dropped) to s->path and moves *pp past '>'. Quoted local parts may
 * hold '>' and spaces. Returns 0, -1 for bad syntax, -2 for non-ASCII.
 */
static int parse_path(struct smtp_server *s, const char **pp, bool *nonascii)
{
	const char *p = *pp;
	size_t n = 0;
	bool quoted = false;

	if (*p != '<')
		return -1;
	p++;
	if (*p == '@') {
		/* A source route "@a,@b:" is ignored (RFC 5321 4.1.2, C). */
		const char *c = strchr(p, ':');
		if (c == NULL)
			return -1;
		p = c + 1;
	}
	for (;; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch > ' ' && ch < 0x7f && ch != '<' && ch != '>' && ch != '"' && ch != '\\') {
			if (n >= SMTP_SERVER_PATH_MAX)
				return -1;
			s->path[n++] = (char)ch;
			continue;
		}
		if (ch == '\0')
			return -1;
		if (!quoted && ch == '>')
			break;
		if (ch < ' ' || ch == 0x7f || (!quoted && (ch == '<' || ch == ' ')))
			return -1;
		if (ch >= 0x80)
			*nonascii = true;
		if (ch == '"') {
			quoted = !quoted;
		} else if (quoted && ch == '\\') {
			if (n >= SMTP_SERVER_PATH_MAX)
				return -1;
			s->path[n++] = (char)ch;
			p++;
			if (*p == '\0' || (unsigned char)*p < ' ')
				return -1;
			ch = (unsigned char)*p;
		}
		if (n >= SMTP_SERVER_PATH_MAX)
			return -1;
		s->path[n++] = (char)ch;
	}
	if (quoted)
		return -1;
	s->path[n] = '\0';
	*pp = p + 1;
	return 0;
}

/* Next "KEY[=VALUE]" of a parameter list: key and value bounds, *pp moved
 * past it. Returns false at the end. */
static bool next_param(const char **pp, const char **k, size_t *kl, const char **v, size_t *vl)
{
	const char *p = skip_spaces(*pp);

	if (*p == '\0')
		return false;
	*k = p;
	while (*p && !is_space(*p) && *p != '=')
		p++;
	*kl = (size_t)(p - *k);
	*v = NULL;
	*vl = 0;
	if (*p == '=') {
		*v = ++p;
		while (*p && !is_space(*p))
			p++;
		*vl = (size_t)(p - *v);
	}
	*pp = p;
	return true;
}

static bool key_is(const char *k, size_t kl, const char *want)
{
	return strlen(want) == kl && strncasecmp(k, want, kl) == 0;
}

static bool val_is(const char *v, size_t vl, const char *want)
{
	return v && key_is(v, vl, want);
}

/* After "FROM:" or "TO:" (the word checked by the caller), spaces allowed. */
static const char *after_word(const char *arg, const char *word)
{
	size_t n = strlen(word);

	if (strncasecmp(arg, word, n) != 0)
		return NULL;
	return skip_spaces(arg + n);
}

/* ------------------------------------------------------------- commands */

static void cmd_ehlo(struct smtp_server *s, const char *arg, bool esmtp)
{
	size_t n = strlen(arg);

	while (n > 0 && is_space(arg[n - 1]))
		n--;
	if (n == 0 || n > HELO_MAX) {
		ERR(s, R_SYN_ARG);
		return;
	}
	txn_reset(s, true);
	memcpy(s->helo, arg, n);
	s->helo[n] = '\0';
	s->helo_seen = true;
	s->esmtp = esmtp;

	char buf[1024];
	int k;
	if (!esmtp) {
		k = snprintf(buf, sizeof(buf), "250 %s", s->cfg.hostname);
		reply_n(s, buf, (size_t)k);
	} else {
		const struct smtp_server_config *c = &s->cfg;
		const char *kw[16];
		char size[40];
		size_t nk = 0;

		if (!c->no_pipelining)
			kw[nk++] = "PIPELINING";
		snprintf(size, sizeof(size), c->size_limit ? "SIZE %llu" : "SIZE",
			 (unsigned long long)c->size_limit);
		kw[nk++] = size;
		if (!c->no_8bitmime)
			kw[nk++] = "8BITMIME";
		if (!c->no_smtputf8)
			kw[nk++] = "SMTPUTF8";
		if (!c->no_chunking) {
			kw[nk++] = "CHUNKING";
			kw[nk++] = "BINARYMIME";
		}
		if (!c->no_dsn)
			kw[nk++] = "DSN";
		kw[nk++] = "ENHANCEDSTATUSCODES";
		if (c->tls_available && !s->tls_active)
			kw[nk++] = "STARTTLS";
		if (c->auth && (s->tls_active || c->auth_plaintext_ok) && !s->authed)
			kw[nk++] = "AUTH PLAIN LOGIN";
		if (c->requiretls && s->tls_active)
			kw[nk++] = "REQUIRETLS";
		k = snprintf(buf, sizeof(buf), "250-%s", c->hostname);
		for (size_t i = 0; i < nk; i++)
			k += snprintf(buf + k, sizeof(buf) - (size_t)k, "\r\n250%c%s",
				      i + 1 == nk ? ' ' : '-', kw[i]);
		reply_n(s, buf, (size_t)k);
	}
	struct smtp_server_event *e = emit(s, SMTP_SEV_HELO);
	e->helo = s->helo;
	e->esmtp = esmtp;
}

static void cmd_mail(struct smtp_server *s, const char *arg)
{
	const char *p, *k, *v;
	size_t kl, vl;
	bool nonascii = false, utf8 = false, reqtls = false;
	bool seen_size = false, seen_body = false, seen_ret = false, seen_envid = false;
	uint64_t size = 0;
	enum smtp_body_type body = SMTP_BODY_NONE;
	enum smtp_dsn_ret ret = SMTP_RET_DEFAULT;

	if (!s->helo_seen) {
		ERR(s, R_SEQ_HELO);
		return;
	}
	if (s->in_mail) {
		ERR(s, R_SEQ_NEST);
		return;
	}
	if ((p = after_word(arg, "FROM:")) == NULL || parse_path(s, &p, &nonascii) != 0) {
		ERR(s, R_SYN_FROM);
		return;
	}
	if (*p != '\0' && !is_space(*p)) {
		ERR(s, R_SYN_FROM);
		return;
	}
	while (next_param(&p, &k, &kl, &v, &vl)) {
		if (!s->esmtp)
			goto bad_param;
		if (key_is(k, kl, "SIZE") && v && !seen_size) {
			seen_size = true;
			if (vl == 0 || vl > 19)
				goto syntax;
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					goto syntax;
				size = size * 10 + (uint64_t)(v[i] - '0');
			}
		} else if (key_is(k, kl, "BODY") && v && !seen_body) {
			seen_body = true;
			if (val_is(v, vl, "7BIT"))
				body = SMTP_BODY_7BIT;
			else if (val_is(v, vl, "8BITMIME") && !s->cfg.no_8bitmime)
				body = SMTP_BODY_8BITMIME;
			else if (val_is(v, vl, "BINARYMIME") && !s->cfg.no_chunking)
				body = SMTP_BODY_BINARYMIME;
			else
				goto bad_param;
		} else if (key_is(k, kl, "SMTPUTF8") && !v && !s->cfg.no_smtputf8 && !utf8) {
			utf8 = true;
		} else if (key_is(k, kl, "REQUIRETLS") && !v && s->cfg.requiretls &&
			   s->tls_active && !reqtls) {
			reqtls = true;
		} else if (key_is(k, kl, "RET") && v && !s->cfg.no_dsn && !seen_ret) {
			seen_ret = true;
			if (val_is(v, vl, "FULL"))
				ret = SMTP_RET_FULL;
			else if (val_is(v, vl, "HDRS"))
				ret = SMTP_RET_HDRS;
			else
				goto syntax;
		} else if (key_is(k, kl, "ENVID") && v && !s->cfg.no_dsn && !seen_envid) {
			seen_envid = true;
			if (vl == 0 || xtext_decode(v, vl, s->envid, sizeof(s->envid)) < 0)
				goto syntax;
		} else if (key_is(k, kl, "AUTH") && v && s->cfg.auth) {
			/* RFC 4954 5: the submitter's identity; we keep none. */
			char tmp[SMTP_SERVER_PATH_MAX + 1];
			if (vl == 0 || xtext_decode(v, vl, tmp, sizeof(tmp)) < 0)
				goto syntax;
		} else {
			goto bad_param;
		}
	}
	if (nonascii && !utf8) {
		ERR(s, R_UTF8ADDR);
		return;
	}
	if (s->cfg.size_limit && size > s->cfg.size_limit) {
		/* Not the client's mistake: no error counted. */
		REPLY(s, R_SIZE);
		return;
	}
	struct smtp_server_event *e = emit(s, SMTP_SEV_MAIL);
	e->addr = s->path;
	e->size = size;
	e->body = body;
	e->smtputf8 = utf8;
	e->requiretls = reqtls;
	e->ret = ret;
	e->envid = seen_envid ? s->envid : NULL;
	s->body_type = body;
	s->utf8 = utf8;
	s->wait = W_MAIL;
	return;
syntax:
	ERR(s, R_SYN_ARG);
	return;
bad_param:
	ERR(s, R_PARAM);
}

/* RFC 3461 4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY. */
static bool notify_ok(const char *v, size_t vl)
{
	if (val_is(v, vl, "NEVER"))
		return true;
	const char *p = v, *end = v + vl;
	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		size_t n = (size_t)((c ? c : end) - p);
		if (!key_is(p, n, "SUCCESS") && !key_is(p, n, "FAILURE") && !key_is(p, n, "DELAY"))
			return false;
		if (c == NULL)
			return true;
		p = c + 1;
	}
	return false;
}

static void cmd_rcpt(struct smtp_server *s, const char *arg)
{
	const char *p, *k, *v;
	size_t kl, vl;
	bool nonascii = false, have_notify = false, have_orcpt = false;

	if (!s->in_mail) {
		ERR(s, R_SEQ_MAIL);
		return;
	}
	if ((p = after_word(arg, "TO:")) == NULL || parse_path(s, &p, &nonascii) != 0 ||
	    s->path[0] == '\0' || (*p != '\0' && !is_space(*p))) {
		ERR(s, R_SYN_TO);
		return;
	}
	while (next_param(&p, &k, &kl, &v, &vl)) {
		if (s->cfg.no_dsn || !s->esmtp)
			goto bad_param;
		if (key_is(k, kl, "NOTIFY") && v && !have_notify) {
			have_notify = true;
			if (vl > NOTIFY_MAX || !notify_ok(v, vl))
				goto syntax;
			memcpy(s->notify, v, vl);
			s->notify[vl] = '\0';
		} else if (key_is(k, kl, "ORCPT") && v && !have_orcpt) {
			/* addr-type ";" xtext (RFC 3461 4.2) */
			const char *semi = memchr(v, ';', vl);
			have_orcpt = true;
			if (semi == NULL || semi == v ||
			    xtext_decode(v, vl, s->orcpt, sizeof(s->orcpt)) < 0)
				goto syntax;
		} else {
			goto bad_param;
		}
	}
	if (nonascii && !s->utf8) {
		ERR(s, R_UTF8ADDR);
		return;
	}
	if (s->nrcpt_tried >= s->cfg.max_rcpts) {
		REPLY(s, R_TOOMANY);
		return;
	}
	s->nrcpt_tried++;
	struct smtp_server_event *e = emit(s, SMTP_SEV_RCPT);
	e->addr = s->path;
	e->notify = have_notify ? s->notify : NULL;
	e->orcpt = have_orcpt ? s->orcpt : NULL;
	s->wait = W_RCPT;
	return;
syntax:
	ERR(s, R_SYN_ARG);
	return;
bad_param:
	ERR(s, R_PARAM);
}

static void data_begin(struct smtp_server *s)
{
	s->msg_size = 0;
	s->line_len = 0;
	s->bad = NULL;
	s->bol = true;
}

static void cmd_data(struct smtp_server *s, const char *arg)
{
	if (*arg != '\0') {
		ERR(s, R_SYN_ARG);
		return;
	}
	if (!s->in_mail) {
		ERR(s, R_SEQ_MAIL);
		return;
	}
	if (s->nrcpt == 0) {
		ERR(s, R_SEQ_RCPT);
		return;
	}
	if (s->bdat_seen) {
		ERR(s, R_SEQ_BDAT);
		return;
	}
	if (s->body_type == SMTP_BODY_BINARYMIME) {
		ERR(s, R_SEQ_BIN);
		return;
	}
	REPLY(s, R_DATA);
	data_begin(s);
	s->state = ST_DATA;
}

static void chunk_end(struct smtp_server *s);

static void cmd_bdat(struct smtp_server *s, const char *arg)
{
	uint64_t n = 0;
	const char *p = arg;
	size_t digits = 0;

	if (s->cfg.no_chunking) {
		ERR(s, R_NOTIMPL);
		return;
	}
	for (; *p >= '0' && *p <= '9'; p++, digits++)
		n = n * 10 + (uint64_t)(*p - '0');
	if (digits == 0 || digits > 18 || (*p != '\0' && !is_space(*p))) {
		/* The length is unknown: nothing can be skipped. */
		ERR(s, R_SYN_ARG);
		return;
	}
	p = skip_spaces(p);
	s->bdat_last = false;
	if (*p != '\0') {
		size_t l = strlen(p);
		while (l > 0 && is_space(p[l - 1]))
			l--;
		if (!key_is(p, l, "LAST")) {
			ERR(s, R_SYN_ARG);
			return;
		}
		s->bdat_last = true;
	}
	/* Refused chunks are still read, so that the stream stays in step
	 * (RFC 3030 3). */
	s->bdat_err = NULL;
	if (!s->in_mail)
		s->bdat_err = R_SEQ_MAIL;
	else if (s->nrcpt == 0)
		s->bdat_err = R_SEQ_RCPT;
	else if (s->bdat_failed)
		s->bdat_err = R_SEQ_BDAT;
	if (s->bdat_err == NULL && !s->bdat_seen) {
		s->bdat_seen = true;
		data_begin(s);
	}
	s->bdat_left = n;
	s->state = ST_BDAT;
	if (n == 0)
		chunk_end(s);
}

static void cmd_auth(struct smtp_server *s, const char *arg);

static void cmd_starttls(struct smtp_server *s, const char *arg)
{
	if (!s->cfg.tls_available) {
		ERR(s, R_NOTIMPL);
		return;
	}
	if (s->tls_active) {
		ERR(s, R_SEQ_TLS);
		return;
	}
	if (*arg != '\0') {
		ERR(s, R_SYN_ARG);
		return;
	}
	if (s->rx_off < s->rx_len) {
		/* Bytes after STARTTLS in the same read would be taken as
		 * if they had come under TLS (CVE-2011-0411). */
		s->stats.tls_injection++;
		s->stats.errors++;
		REPLY(s, R_INJECT);
		session_close(s);
		return;
	}
	txn_reset(s, true);
	REPLY(s, R_TLS_GO);
	s->state = ST_TLS_WAIT;
	emit(s, SMTP_SEV_TLS_NEEDED);
}

/* One command line, NUL-terminated in place, without its line end. */
static void command(struct smtp_server *s, char *line, size_t n)
{
	uint32_t w = 0;
	size_t vl = 0;

	s->stats.commands++;
	while (vl < n && line[vl] != ' ')
		vl++;
	const char *arg = line + vl;
	if (*arg == ' ')
		arg++;
	if (s->cfg.trace) {
		size_t shown = n;
		if (vl == 4 && strncasecmp(line, "AUTH", 4) == 0) {
			/* AUTH PLAIN <secret>: the mechanism only. */
			const char *sp = strchr(arg, ' ');
			if (sp)
				shown = (size_t)(sp - line);
		}
		s->cfg.trace(s->cfg.trace_arg, 'C', line, shown);
	}
	if (vl == 4 || vl == 8) {
		for (int i = 0; i < 4; i++)
			w = w << 8 | (uint32_t)(line[i] & ~0x20);
	}
#define VERB(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
	if (vl == 8) {
		if (w == VERB('S', 'T', 'A', 'R') && strncasecmp(line + 4, "TTLS", 4) == 0)
			cmd_starttls(s, arg);
		else
			ERR(s, R_UNKNOWN);
		return;
	}
	switch (vl == 4 ? w : 0) {
	case VERB('M', 'A', 'I', 'L'):
		cmd_mail(s, arg);
		break;
	case VERB('R', 'C', 'P', 'T'):
		cmd_rcpt(s, arg);
		break;
	case VERB('D', 'A', 'T', 'A'):
		cmd_data(s, arg);
		break;
	case VERB('B', 'D', 'A', 'T'):
		cmd_bdat(s, arg);
		break;
	case VERB('E', 'H', 'L', 'O'):
		cmd_ehlo(s, arg, true);
		break;
	case VERB('H', 'E', 'L', 'O'):
		cmd_ehlo(s, arg, false);
		break;
	case VERB('R', 'S', 'E', 'T'):
		if (*arg != '\0') {
			ERR(s, R_SYN_ARG);
			break;
		}
		txn_reset(s, true);
		REPLY(s, R_OK);
		break;
	case VERB('N', 'O', 'O', 'P'):
		REPLY(s, R_OK);
		break;
	case VERB('Q', 'U', 'I', 'T'):
		REPLY(s, R_BYE);
		session_close(s);
		break;
	case VERB('V', 'R', 'F', 'Y'):
		if (*arg == '\0')
			ERR(s, R_SYN_ARG);
		else
			REPLY(s, R_VRFY);
		break;
	case VERB('H', 'E', 'L', 'P'):
		REPLY(s, R_HELP);
		break;
	case VERB('A', 'U', 'T', 'H'):
		cmd_auth(s, arg);
		break;
	case VERB('E', 'X', 'P', 'N'):
	case VERB('T', 'U', 'R', 'N'):
	case VERB('E', 'T', 'R', 'N'):
		ERR(s, R_NOTIMPL);
		break;
	default:
		ERR(s, R_UNKNOWN);
		break;
	}
#undef VERB
}

/* ----------------------------------------------------------------- AUTH */

/* Base64 (RFC 4648, padded) into auth_buf + off; returns the length or -1. */
static int b64_decode(struct smtp_server *s, const char *in, size_t n, size_t off)
{
	if (n % 4 != 0 || n / 4 * 3 > AUTH_MAX - off)
		return -1;
	if (n == 0)
		return 0;
	int k =
	    EVP_DecodeBlock((unsigned char *)s->auth_buf + off, (const unsigned char *)in, (int)n);
	if (k < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (in[n - 1] == '=')
		k--;
	if (in[n - 2] == '=')
		k--;
	return k;
}

static void auth_decide(struct smtp_server *s, const char *mech)
{
	struct smtp_server_event *e = emit(s, SMTP_SEV_AUTH);

	e->mech = mech;
	e->authzid = s->authzid;
	e->user = s->user;
	e->pass = s->pass;
	s->state = ST_CMD;
	s->wait = W_AUTH;
}

/* One AUTH response (the initial one or a line after 334). */
static void auth_step(struct smtp_server *s, const char *resp)
{
	size_t n = strlen(resp);
	int k;

	if (n == 1 && resp[0] == '*') {
		s->state = ST_CMD;
		ERR(s, R_AUTH_STOP);
		return;
	}
	switch (s->astep) {
	case A_PLAIN: {
		/* authzid NUL user NUL pass (RFC 4616) */
		if (n == 1 && resp[0] == '=')
			n = 0;
		if ((k = b64_decode(s, resp, n, 0)) < 0)
			goto bad;
		s->auth_buf[k] = '\0';
		char *u = memchr(s->auth_buf, '\0', (size_t)k);
		char *pw = u ? memchr(u + 1, '\0', (size_t)(s->auth_buf + k - u - 1)) : NULL;
		if (u == NULL || pw == NULL ||
		    memchr(pw + 1, '\0', (size_t)(s->auth_buf + k - pw - 1)))
			goto bad;
		s->authzid = s->auth_buf;
		s->user = u + 1;
		s->pass = pw + 1;
		auth_decide(s, "PLAIN");
		return;
	}
	case A_LOGIN_USER:
		if ((k = b64_decode(s, resp, n, 0)) < 0 || memchr(s->auth_buf, '\0', (size_t)k))
			goto bad;
		s->auth_buf[k] = '\0';
		s->auth_len = (size_t)k + 1;
		s->astep = A_LOGIN_PASS;
		s->state = ST_AUTH;
		REPLY(s, "334 UGFzc3dvcmQ6");
		return;
	case A_LOGIN_PASS:
		if ((k = b64_decode(s, resp, n, s->auth_len)) < 0 ||
		    memchr(s->auth_buf + s->auth_len, '\0', (size_t)k))
			goto bad;
		s->auth_buf[s->auth_len + (size_t)k] = '\0';
		s->authzid = "";
		s->user = s->auth_buf;
		s->pass = s->auth_buf + s->auth_len;
		auth_decide(s, "LOGIN");
		return;
	default:
		dmta_panic("smtp_server: bad AUTH step %d", s->astep);
	}
bad:
	s->state = ST_CMD;
	s->stats.malformed++;
	ERR(s, R_AUTH_B64);
}

static void cmd_auth(struct smtp_server *s, const char *arg)
{
	if (!s->cfg.auth) {
		ERR(s, R_AUTH_NONE);
		return;
	}
	if (!s->tls_active && !s->cfg.auth_plaintext_ok) {
		ERR(s, R_AUTH_TLS);
		return;
	}
	if (!s->esmtp) {
		ERR(s, R_SEQ_EHLO);
		return;
	}
	if (s->authed) {
		ERR(s, R_SEQ_AUTH);
		return;
	}
	if (s->in_mail) {
		ERR(s, R_SEQ_AUTHTX);
		return;
	}
	const char *sp = strchr(arg, ' ');
	size_t ml = sp ? (size_t)(sp - arg) : strlen(arg);
	const char *init = sp ? skip_spaces(sp) : NULL;

	if (key_is(arg, ml, "PLAIN")) {
		s->astep = A_PLAIN;
		if (init && *init) {
			auth_step(s, init);
		} else {
			s->state = ST_AUTH;
			REPLY(s, "334 ");
		}
	} else if (key_is(arg, ml, "LOGIN")) {
		s->astep = A_LOGIN_USER;
		if (init && *init) {
			auth_step(s, init);
		} else {
			s->state = ST_AUTH;
			REPLY(s, "334 VXNlcm5hbWU6");
		}
	} else {
		ERR(s, R_AUTH_MECH);
	}
}

/* ----------------------------------------------------------------- body */

static inline void body_piece(struct smtp_server *s, const void *p, size_t n)
{
	if (n == 0 || s->bad)
		return;
	s->msg_size += n;
	s->stats.body_bytes += n;
	struct smtp_server_event *e = emit(s, SMTP_SEV_BODY);
	e->data = p;
	e->len = n;
}

/* The whole body is in: refuse it now, or ask the caller. */
static void message_end(struct smtp_server *s, bool bdat)
{
	s->state = ST_CMD;
	if (s->bad == NULL && s->cfg.size_limit && s->msg_size > s->cfg.size_limit)
		s->bad = R_SIZE;
	if (s->bad) {
		reply_n(s, s->bad, strlen(s->bad));
		s->stats.refused++;
		txn_reset(s, true);
		return;
	}
	struct smtp_server_event *e = emit(s, SMTP_SEV_DATA_END);
	e->size = s->msg_size;
	e->bdat = bdat;
	s->wait = W_DATA_END;
}

/* The first CR or LF in [p, end), or end: sixteen bytes a step where
 * SSE2 is there (every x86-64), never reading past end. Body lines are
 * short, so this beats two memchr calls (one for each byte) per line. */
static inline const uint8_t *find_eol(const uint8_t *p, const uint8_t *end)
{
#ifdef __SSE2__
	const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned m = (unsigned)_mm_movemask_epi8(
		    _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
		if (m)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
	while (p < end && *p != '\r' && *p != '\n')
		p++;
	return p;
}

/* A bare CR or LF at *at: refuse the message, or give CRLF in its place. */
static void bare_eol(struct smtp_server *s, const uint8_t *at, const uint8_t **seg)
{
	s->stats.bare_eol++;
	if (s->cfg.bare_eol == SMTP_BARE_EOL_NORMALISE) {
		body_piece(s, *seg, (size_t)(at - *seg));
		body_piece(s, "\r\n", 2);
		*seg = at + 1;
	} else {
		s->bad = R_BARE;
	}
}

static void line_done(struct smtp_server *s)
{
	if (s->line_len > s->cfg.text_line_max && s->bad == NULL)
		s->bad = R_TEXTLONG;
	s->line_len = 0;
}

/* Scan DATA input. Returns true when the end of data was found. */
static bool data_scan(struct smtp_server *s)
{
	const uint8_t *p = s->rx + s->rx_off, *end = s->rx + s->rx_len;
	const uint8_t *seg = p;
	bool done = false;

	while (p < end) {
		if (s->bol) {
			if (*p == '.') {
				if (end - p < 2 || (p[1] == '\r' && end - p < 3))
					break; /* maybe the end: wait */
				if (p[1] == '\r' && p[2] == '\n') {
					body_piece(s, seg, (size_t)(p - seg));
					p += 3;
					seg = p;
					done = true;
					break;
				}
				/* A stuffed dot: drop it. */
				body_piece(s, seg, (size_t)(p - seg));
				seg = ++p;
				s->line_len++;
			}
			s->bol = false;
		}
		const uint8_t *q = find_eol(p, end);
		if (q == end) {
			s->line_len += (size_t)(end - p);
			p = end;
			break;
		}
		if (*q == '\r') {
			if (q + 1 == end) {
				/* Maybe the first half of CRLF: wait. */
				s->line_len += (size_t)(q - p);
				p = q;
				break;
			}
			if (q[1] == '\n') {
				s->line_len += (size_t)(q + 2 - p);
				line_done(s);
				s->bol = true;
				p = q + 2;
				continue;
			}
			/* A bare CR: part of the line, never its end. */
			s->line_len += (size_t)(q + 1 - p);
			bare_eol(s, q, &seg);
			p = q + 1;
			continue;
		}
		/* A bare LF: never a line start for "." (smuggling). */
		s->line_len += (size_t)(q + 1 - p);
		line_done(s);
		bare_eol(s, q, &seg);
		p = q + 1;
	}
	if (!done)
		body_piece(s, seg, (size_t)(p - seg));
	if (s->line_len > s->cfg.text_line_max && s->bad == NULL)
		s->bad = R_TEXTLONG;
	s->rx_off = (size_t)(p - s->rx);
	if (done)
		message_end(s, false);
	return done;
}

/* A BDAT chunk was read completely. */
static void chunk_end(struct smtp_server *s)
{
	s->state = ST_CMD;
	if (s->bdat_err) {
		const char *e = s->bdat_err;
		s->bdat_err = NULL;
		if (s->in_mail)
			s->bdat_failed = true;
		err_n(s, e, strlen(e));
		return;
	}
	if (s->cfg.size_limit && s->msg_size > s->cfg.size_limit)
		s->bad = R_SIZE;
	if (s->bdat_last || s->bad) {
		message_end(s, true);
		return;
	}
	/* "250 2.0.0 <n> octets received" (RFC 3030 2) */
	char l[64] = "250 2.0.0 ";
	char d[24];
	int nd = 0;
	uint64_t v = s->msg_size;
	do
		d[nd++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	size_t k = 10;
	while (nd > 0)
		l[k++] = d[--nd];
	memcpy(l + k, " octets received", 16);
	reply_n(s, l, k + 16);
}

static void bdat_step(struct smtp_server *s)
{
	size_t avail = s->rx_len - s->rx_off;
	size_t take = s->bdat_left < avail ? (size_t)s->bdat_left : avail;

	if (s->bdat_err == NULL)
		body_piece(s, s->rx + s->rx_off, take);
	s->rx_off += take;
	s->bdat_left -= take;
	if (s->bdat_left == 0)
		chunk_end(s);
}

/* -------------------------------------------------------------- the loop */

/* Handle one line in ST_CMD or ST_AUTH. Returns false when more input is
 * needed. */
static bool line_step(struct smtp_server *s)
{
	uint8_t *p = s->rx + s->rx_off;
	size_t avail = s->rx_len - s->rx_off;
	uint8_t *lf = memchr(p + s->rx_scan, '\n', avail - s->rx_scan);

	if (lf == NULL) {
		if (avail >= SMTP_SERVER_LINE_MAX) {
			s->stats.malformed++;
			s->rx_off = s->rx_len;
			s->rx_scan = 0;
			s->state = ST_SKIP;
			return false;
		}
		s->rx_scan = avail;
		return false;
	}
	size_t len = (size_t)(lf - p) + 1, n = len - 1;
	s->rx_off += len;
	s->rx_scan = 0;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	bool in_auth = s->state == ST_AUTH;
	if (len > SMTP_SERVER_LINE_MAX) {
		s->stats.malformed++;
		s->state = ST_CMD;
		ERR(s, R_LONG);
		return true;
	}
	if (memchr(p, '\0', n) || memchr(p, '\r', n)) {
		s->stats.malformed++;
		s->state = ST_CMD;
		ERR(s, R_BADCHAR);
		return true;
	}
	p[n] = '\0';
	if (in_auth) {
		s->stats.commands++;
		if (s->cfg.trace)
			s->cfg.trace(s->cfg.trace_arg, 'C', "<hidden>", 8);
		auth_step(s, (const char *)p);
	} else {
		command(s, (char *)p, n);
	}
	return true;
}

static void process(struct smtp_server *s)
{
	while (s->wait == W_NONE && s->rx_off < s->rx_len) {
		switch (s->state) {
		case ST_CMD:
		case ST_AUTH:
			if (!line_step(s))
				return;
			break;
		case ST_SKIP: {
			uint8_t *p = s->rx + s->rx_off;
			uint8_t *lf = memchr(p, '\n', s->rx_len - s->rx_off);
			if (lf == NULL) {
				s->rx_off = s->rx_len;
				return;
			}
			s->rx_off += (size_t)(lf - p) + 1;
			s->state = ST_CMD;
			ERR(s, R_LONG);
			break;
		}
		case ST_DATA:
			if (!data_scan(s))
				return;
			break;
		case ST_BDAT:
			bdat_step(s);
			break;
		case ST_TLS_WAIT:
			/* Plaintext where the TLS handshake should be. */
			s->stats.tls_injection++;
			s->stats.errors++;
			s->rx_off = s->rx_len;
			session_close(s);
			return;
		case ST_CLOSED:
			s->rx_off = s->rx_len;
			return;
		default:
			dmta_panic("smtp_server: bad state %d", s->state);
		}
	}
	if (s->state == ST_CLOSED)
		s->rx_off = s->rx_len;
}

/* ------------------------------------------------------------- public */

struct smtp_server *smtp_server_new(const struct smtp_server_config *cfg)
{
	struct smtp_server *s;

	if (cfg == NULL || cfg->hostname == NULL || cfg->hostname[0] == '\0' ||
	    strpbrk(cfg->hostname, "\r\n") || strlen(cfg->hostname) > 255 ||
	    (cfg->greeting && (strpbrk(cfg->greeting, "\r\n") || strlen(cfg->greeting) > 200))) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	s->cfg = *cfg;
	if (s->cfg.max_rcpts == 0)
		s->cfg.max_rcpts = 100;
	if (s->cfg.max_errors == 0)
		s->cfg.max_errors = 20;
	if (s->cfg.text_line_max == 0)
		s->cfg.text_line_max = 1000;
	s->tls_active = cfg->tls_implicit;
	s->state = ST_CMD;

	char g[512];
	int n = snprintf(g, sizeof(g), "220 %s %s", cfg->hostname,
			 cfg->greeting ? cfg->greeting : "ESMTP");
	reply_n(s, g, (size_t)n);
	return s;
}

void smtp_server_free(struct smtp_server *s)
{
	if (s == NULL)
		return;
	/* AUTH secrets do not outlive the session in freed memory. */
	OPENSSL_cleanse(s->auth_buf, sizeof(s->auth_buf));
	free(s->out);
	free(s->ev);
	free(s);
}

size_t smtp_server_rx_space(struct smtp_server *s, uint8_t **p)
{
	/* Pending events point into the buffer: move bytes only when they
	 * have all been taken. */
	if (s->rx_off > 0 && s->ev_head == s->ev_n) {
		memmove(s->rx, s->rx + s->rx_off, s->rx_len - s->rx_off);
		s->rx_len -= s->rx_off;
		s->rx_off = 0;
	}
	*p = s->rx + s->rx_len;
	return sizeof(s->rx) - s->rx_len;
}

void smtp_server_rx_commit(struct smtp_server *s, size_t n)
{
	if (n > sizeof(s->rx) - s->rx_len)
		dmta_panic("smtp_server: rx_commit of %zu bytes beyond the buffer", n);
	s->rx_len += n;
	process(s);
}

size_t smtp_server_feed(struct smtp_server *s, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len && s->state != ST_CLOSED) {
		uint8_t *p;
		size_t room = smtp_server_rx_space(s, &p);

		if (room == 0)
			break; /* take events, answer the decision */
		if (room > len - done)
			room = len - done;
		memcpy(p, (const uint8_t *)buf + done, room);
		smtp_server_rx_commit(s, room);
		done += room;
		if (s->state == ST_TLS_WAIT)
			break; /* the rest is for the TLS layer */
	}
	return done;
}

int smtp_server_event(struct smtp_server *s, struct smtp_server_event *ev)
{
	if (s->ev_head == s->ev_n) {
		s->ev_head = s->ev_n = 0;
		return 0;
	}
	*ev = s->ev[s->ev_head++];
	return 1;
}

bool smtp_server_waiting(const struct smtp_server *s)
{
	return s->wait != W_NONE;
}

int smtp_server_reply(struct smtp_server *s, int code, const char *text)
{
	enum wait w = s->wait;
	int cls = code / 100;

	if (w == W_NONE)
		return -EALREADY;
	if (code != 0) {
		if (code < 200 || code > 599 || cls == 3 ||
		    (w == W_AUTH && cls == 2 && code != 235))
			return -EINVAL;
		if (text && (strpbrk(text, "\r\n") || strlen(text) > 400))
			return -EINVAL;
	}
	if (code == 0) {
		switch (w) {
		case W_MAIL:
			REPLY(s, R_MAIL_OK);
			break;
		case W_RCPT:
			REPLY(s, R_RCPT_OK);
			break;
		case W_AUTH:
			REPLY(s, R_AUTH_OK);
			break;
		case W_DATA_END:
			REPLY(s, R_QUEUED);
			break;
		default:
			dmta_panic("smtp_server: bad wait %d", w);
		}
		cls = 2;
	} else {
		static const char *const dflt[] = {
		    [2] = "2.0.0 Ok", [4] = "4.3.0 Try again later", [5] = "5.7.1 Refused"};
		const char *t = text ? text : dflt[cls];
		size_t tl = strlen(t);
		char *p = out_reserve(s, tl + 6);

		p[0] = (char)('0' + code / 100);
		p[1] = (char)('0' + code / 10 % 10);
		p[2] = (char)('0' + code % 10);
		p[3] = ' ';
		memcpy(p + 4, t, tl);
		p[tl + 4] = '\r';
		p[tl + 5] = '\n';
		out_commit(s, tl + 6);
	}
	s->wait = W_NONE;
	switch (w) {
	case W_MAIL:
		s->in_mail = cls == 2;
		break;
	case W_RCPT:
		if (cls == 2)
			s->nrcpt++;
		break;
	case W_AUTH:
		if (cls == 2) {
			s->authed = true;
			snprintf(s->auth_user, sizeof(s->auth_user), "%s", s->user);
		} else {
			count_error(s);
		}
		OPENSSL_cleanse(s->auth_buf, sizeof(s->auth_buf));
		s->authzid = s->user = s->pass = NULL;
		break;
	case W_DATA_END:
		if (cls == 2)
			s->stats.messages++;
		else
			s->stats.refused++;
		txn_reset(s, false);
		break;
	default:
		dmta_panic("smtp_server: bad wait %d", w);
	}
	process(s);
	return 0;
}

size_t smtp_server_tx_iov(struct smtp_server *s, struct iovec *iov, size_t max)
{
	if (max == 0 || s->out_off == s->out_len)
		return 0;
	iov[0].iov_base = s->out + s->out_off;
	iov[0].iov_len = s->out_len - s->out_off;
	return 1;
}

void smtp_server_tx_done(struct smtp_server *s, size_t n)
{
	if (n > s->out_len - s->out_off)
		dmta_panic("smtp_server: tx_done beyond the queued bytes");
	s->out_off += n;
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
}

size_t smtp_server_tx_pending(const struct smtp_server *s)
{
	return s->out_len - s->out_off;
}

enum smtp_deadline smtp_server_deadline(const struct smtp_server *s, uint64_t *ms)
{
	enum smtp_deadline d;

	if (s->state == ST_CLOSED || s->wait != W_NONE)
		d = SMTP_DL_NONE;
	else if (s->state == ST_TLS_WAIT)
		d = SMTP_DL_TLS;
	else if (s->state == ST_DATA || s->state == ST_BDAT)
		d = SMTP_DL_DATA_BLOCK;
	else
		d = SMTP_DL_OTHER;
	if (ms)
		*ms = d == SMTP_DL_NONE ? 0 : TIMEOUT_MS;
	return d;
}

void smtp_server_tls_started(struct smtp_server *s)
{
	if (s->state != ST_TLS_WAIT)
		dmta_panic("smtp_server: tls_started in state %d", s->state);
	/* RFC 3207 4.2: forget everything learned before TLS. */
	s->tls_active = true;
	s->helo_seen = s->esmtp = s->authed = false;
	s->auth_user[0] = '\0';
	s->rx_off = s->rx_len = s->rx_scan = 0;
	s->state = ST_CMD;
}

void smtp_server_eof(struct smtp_server *s)
{
	session_close(s);
}

void smtp_server_timeout(struct smtp_server *s)
{
	if (s->state == ST_CLOSED)
		return;
	char l[300];
	int k = snprintf(l, sizeof(l), "421 4.4.2 %s Error: timeout exceeded", s->cfg.hostname);
	reply_n(s, l, (size_t)k);
	session_close(s);
}

bool smtp_server_closed(const struct smtp_server *s)
{
	return s->state == ST_CLOSED;
}

bool smtp_server_tls_active(const struct smtp_server *s)
{
	return s->tls_active;
}

const char *smtp_server_auth_user(const struct smtp_server *s)
{
	return s->authed ? s->auth_user : NULL;
}

const struct smtp_server_stats *smtp_server_stats(const struct smtp_server *s)
{
	return &s->stats;
}

const char *smtp_server_event_name(enum smtp_server_event_type t)
{
	switch (t) {
	case SMTP_SEV_HELO:
		return "helo";
	case SMTP_SEV_AUTH:
		return "auth";
	case SMTP_SEV_MAIL:
		return "mail";
	case SMTP_SEV_RCPT:
		return "rcpt";
	case SMTP_SEV_BODY:
		return "body";
	case SMTP_SEV_DATA_END:
		return "data-end";
	case SMTP_SEV_RESET:
		return "reset";
	case SMTP_SEV_TLS_NEEDED:
		return "tls-needed";
	case SMTP_SEV_CLOSED:
		return "closed";
	default:
		return "?";
	}
}
