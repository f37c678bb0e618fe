/*
 * test_pool.c - the session pool (dmta_pool.h) over a fake transport, on
 *	an injected clock.
 *
 * DESCRIPTION
 *	The fake transport plays the servers: each connection the pool opens
 *	gets the script of the address it went to (how to answer connect(),
 *	the greeting, EHLO, HELO, MAIL, each RCPT, DATA, the end of data,
 *	QUIT), and a reset or a stall where a test wants one. The test moves
 *	the bytes (pump()) and the clock (now_ns) itself, so every case is
 *	deterministic and nothing sleeps.
 *
 *	What is checked is what the pool reports through done(): connected,
 *	reply, code[] and text[] per recipient, mx and ip; and what the
 *	servers saw: connections opened, commands, QUIT, and how each
 *	connection was closed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <cmocka.h>

#include "core/base/dmta_time.h"
#include "core/control/dmta_pool.h"

#define MAX_CONNS  16
#define MAX_RCPTS  4
#define MAX_ADDRS  4
#define IDLE_MS	   5000
#define CONNECT_MS 1000

/* How a server answers connect(). */
enum srv_connect {
	SRV_ACCEPT = 0,	  /* connected, then the greeting */
	SRV_REFUSE_NOW,	  /* connect() itself fails */
	SRV_REFUSE_LATER, /* dmta_pool_failed(ECONNREFUSED) */
	SRV_SILENT,	  /* no answer at all: the pool's connect timeout */
};

/*
 * A server's answers. NULL: the usual one ("250 ok" and the like); "":
 * no answer at all. Replies are whole lines with their CRLF.
 */
struct script {
	enum srv_connect connect;
	const char *greeting;
	const char *ehlo;
	const char *helo;
	const char *mail;
	const char *rcpt[MAX_RCPTS]; /* by the recipient's place in the transaction */
	const char *data;
	const char *dot;
	const char *quit;
	bool rst_in_body; /* reset (read: -ECONNRESET) once body bytes arrive */
	size_t room;	  /* bytes writev() takes before -EAGAIN (0: no limit) */
};

enum srv_state {
	SRV_CMD = 0, /* reading commands */
	SRV_BODY,    /* reading the body after 354, until "." */
	SRV_BDAT,    /* reading bdat_left bytes of a BDAT chunk */
	SRV_GONE,    /* reset or closed by the server */
};

/* One connection as the server side sees it. */
struct fconn {
	struct dmta_pool_conn *pc;
	const struct script *sc;
	struct in_addr src; /* the source address the pool asked for */
	struct in_addr addr;
	uint16_t port;
	bool open;	      /* the pool holds it */
	bool graceful;	      /* how the pool closed it */
	bool connect_pending; /* to report to the pool: connected or failed */
	bool news;	      /* bytes, end of stream or an error to read */
	bool want_write;
	enum srv_state st;
	size_t bdat_left;
	unsigned nrcpt; /* RCPTs in the current transaction */
	unsigned nmail; /* transactions started */
	unsigned nquit; /* QUITs seen */
	size_t room;	/* writev() budget left; SIZE_MAX: none */
	size_t body;	/* body bytes seen in all */
	int read_err;	/* once the input is read: this error */
	bool eof;	/* once the input is read: end of stream */
	char *out;	/* everything the client wrote */
	size_t outlen, outcap, parsed;
	char *in; /* what the server said, not read yet */
	size_t inlen, incap, inoff;
};

struct tjob {
	struct dmta_job job; /* first: done() gives it back */
	struct dmta_route route;
	struct dns_dest dest;
	struct dns_host hosts[2];
	struct in_addr v4[2][MAX_ADDRS];
	struct smtp_rcpt rcpts[MAX_RCPTS];
	char addr[MAX_RCPTS][32];
	int code[MAX_RCPTS];
	char *text[MAX_RCPTS];
	struct smtp_chunk chunk;
	char *body;
	unsigned ndone;
};

struct fake {
	struct dmta_pool *pool;
	uint64_t now;
	const struct script *scripts[256]; /* by the address's last byte */
	struct in_addr bad_src;		   /* connect() from it: -EADDRNOTAVAIL */
	struct fconn conns[MAX_CONNS];
	unsigned nconns;
	struct tjob *done[16];
	unsigned ndone;
};

/* ---- the fake servers ---- */

static void buf_add(char **b, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 1024;

		while (c < *len + n + 1)
			c *= 2;
		*b = realloc(*b, c);
		assert_non_null(*b);
		*cap = c;
	}
	memcpy(*b + *len, p, n);
	*len += n;
	(*b)[*len] = '\0';
}

static void srv_say(struct fconn *fc, const char *s)
{
	buf_add(&fc->in, &fc->inlen, &fc->incap, s, strlen(s));
	fc->news = true;
}

/* The server's last words, then the end of the stream. */
static void srv_close(struct fconn *fc, const char *last)
{
	srv_say(fc, last);
	fc->eof = true;
}

/* The scripted answer, the usual one when the script has none. */
static void srv_answer(struct fconn *fc, const char *scripted, const char *usual)
{
	srv_say(fc, scripted ? scripted : usual);
}

static bool starts(const char *line, const char *cmd)
{
	return strncasecmp(line, cmd, strlen(cmd)) == 0;
}

/* One command line from the client (without its CRLF). */
static void srv_command(struct fconn *fc, const char *line)
{
	const struct script *sc = fc->sc;

	if (starts(line, "EHLO")) {
		srv_answer(fc, sc->ehlo, "250 mx.peer.test\r\n");
	} else if (starts(line, "HELO")) {
		srv_answer(fc, sc->helo, "250 mx.peer.test\r\n");
	} else if (starts(line, "MAIL")) {
		fc->nrcpt = 0;
		fc->nmail++;
		srv_answer(fc, sc->mail, "250 2.1.0 ok\r\n");
	} else if (starts(line, "RCPT")) {
		srv_answer(fc, fc->nrcpt < MAX_RCPTS ? sc->rcpt[fc->nrcpt] : NULL,
			   "250 2.1.5 ok\r\n");
		fc->nrcpt++;
	} else if (starts(line, "DATA")) {
		srv_answer(fc, sc->data, "354 go on\r\n");
		if (sc->data == NULL || starts(sc->data, "354"))
			fc->st = SRV_BODY;
	} else if (starts(line, "BDAT")) {
		fc->bdat_left = strtoul(line + 5, NULL, 10);
		fc->st = SRV_BDAT;
	} else if (starts(line, "RSET")) {
		srv_say(fc, "250 2.0.0 ok\r\n");
	} else if (starts(line, "QUIT")) {
		fc->nquit++;
		fc->st = SRV_GONE;
		if (sc->quit == NULL || sc->quit[0] != '\0')
			srv_close(fc, sc->quit ? sc->quit : "221 2.0.0 bye\r\n");
	} else {
		srv_say(fc, "500 5.5.1 what\r\n");
	}
}

static void srv_body_seen(struct fconn *fc)
{
	if (fc->sc->rst_in_body) {
		fc->read_err = -ECONNRESET;
		fc->news = true;
		fc->st = SRV_GONE;
	}
}

/* Read what the client wrote since the last time, as a server would. */
static void srv_run(struct fconn *fc)
{
	while (fc->st != SRV_GONE && fc->parsed < fc->outlen) {
		char *p = fc->out + fc->parsed, *eol;
		size_t avail = fc->outlen - fc->parsed;

		if (fc->st == SRV_BDAT) {
			size_t n = avail < fc->bdat_left ? avail : fc->bdat_left;

			fc->parsed += n;
			fc->body += n;
			fc->bdat_left -= n;
			if (n > 0)
				srv_body_seen(fc);
			if (fc->st == SRV_BDAT && fc->bdat_left == 0) {
				fc->st = SRV_CMD;
				srv_answer(fc, fc->sc->dot, "250 2.0.0 queued\r\n");
			}
			continue;
		}
		eol = memmem(p, avail, "\r\n", 2);
		if (eol == NULL)
			return;
		*eol = '\0';
		fc->parsed += (size_t)(eol - p) + 2;
		if (fc->st == SRV_BODY) {
			if (strcmp(p, ".") == 0) {
				fc->st = SRV_CMD;
				srv_answer(fc, fc->sc->dot, "250 2.0.0 queued\r\n");
			} else {
				fc->body += (size_t)(eol - p) + 2;
				srv_body_seen(fc);
			}
		} else {
			srv_command(fc, p);
		}
		*eol = '\r';
	}
}

/* ---- the transport the pool sees ---- */

static int x_connect(void *x, struct dmta_pool_conn *c, struct in_addr src, struct in_addr a,
		     uint16_t port)
{
	struct fake *f = x;
	const struct script *sc = f->scripts[ntohl(a.s_addr) & 0xff];
	struct fconn *fc;

	assert_non_null(sc);
	assert_true(f->nconns < MAX_CONNS);
	if (sc->connect == SRV_REFUSE_NOW ||
	    (f->bad_src.s_addr != 0 && src.s_addr == f->bad_src.s_addr)) {
		/* Counted as a connection that was tried, but never open. */
		fc = &f->conns[f->nconns++];
		*fc = (struct fconn){.sc = sc, .src = src, .addr = a, .port = port};
		return sc->connect == SRV_REFUSE_NOW ? -ECONNREFUSED : -EADDRNOTAVAIL;
	}
	fc = &f->conns[f->nconns++];
	*fc = (struct fconn){.pc = c,
			     .sc = sc,
			     .src = src,
			     .addr = a,
			     .port = port,
			     .open = true,
			     .want_write = true,
			     .room = sc->room ? sc->room : SIZE_MAX};
	fc->connect_pending = sc->connect != SRV_SILENT;
	c->xh = fc;
	return 0;
}

static ssize_t x_writev(void *x, struct dmta_pool_conn *c, const struct iovec *iov, int n)
{
	struct fconn *fc = c->xh;
	ssize_t total = 0;

	assert_true(fc->open);
	if (fc->st == SRV_GONE && fc->read_err != 0)
		return fc->read_err;
	for (int i = 0; i < n && fc->room > 0; i++) {
		size_t k = iov[i].iov_len < fc->room ? iov[i].iov_len : fc->room;

		buf_add(&fc->out, &fc->outlen, &fc->outcap, iov[i].iov_base, k);
		if (fc->room != SIZE_MAX)
			fc->room -= k;
		total += (ssize_t)k;
		if (k < iov[i].iov_len)
			break;
	}
	srv_run(fc);
	return total > 0 ? total : -EAGAIN;
}

static ssize_t x_read(void *x, struct dmta_pool_conn *c, void *buf, size_t n)
{
	struct fconn *fc = c->xh;
	size_t avail = fc->inlen - fc->inoff;

	assert_true(fc->open);
	if (avail > 0) {
		if (n > avail)
			n = avail;
		memcpy(buf, fc->in + fc->inoff, n);
		fc->inoff += n;
		return (ssize_t)n;
	}
	if (fc->read_err != 0)
		return fc->read_err;
	return fc->eof ? 0 : -EAGAIN;
}

static void x_want_write(void *x, struct dmta_pool_conn *c, bool on)
{
	struct fconn *fc = c->xh;

	fc->want_write = on;
}

static void x_close(void *x, struct dmta_pool_conn *c, bool graceful)
{
	struct fconn *fc = c->xh;

	assert_true(fc->open);
	fc->open = false;
	fc->graceful = graceful;
	c->xh = NULL;
}

static uint64_t x_now(void *x)
{
	return ((struct fake *)x)->now;
}

static void on_done(void *ctl, struct dmta_job *job)
{
	struct fake *f = ctl;
	struct tjob *tj = (struct tjob *)job;

	tj->ndone++;
	assert_true(f->ndone < 16);
	f->done[f->ndone++] = tj;
}

/*
 * Deliver what the servers have for the pool (connects, bytes, errors,
 * room to write) until nothing is left: the event loop of a transport.
 */
static void pump(struct fake *f)
{
	bool more = true;

	while (more) {
		more = false;
		for (unsigned i = 0; i < f->nconns; i++) {
			struct fconn *fc = &f->conns[i];

			if (!fc->open)
				continue;
			if (fc->connect_pending) {
				fc->connect_pending = false;
				more = true;
				if (fc->sc->connect == SRV_REFUSE_LATER) {
					dmta_pool_failed(fc->pc, ECONNREFUSED);
					continue;
				}
				srv_answer(fc, fc->sc->greeting, "220 mx.peer.test ESMTP\r\n");
				fc->news = false;
				dmta_pool_connected(fc->pc);
				continue;
			}
			if (fc->news) {
				fc->news = false;
				more = true;
				dmta_pool_readable(fc->pc);
				continue;
			}
			if (fc->want_write && fc->room > 0 && fc->st != SRV_GONE) {
				size_t before = fc->outlen;

				dmta_pool_writable(fc->pc);
				more = more || fc->outlen != before || fc->news;
			}
		}
	}
}

static void tick_at(struct fake *f, uint64_t now)
{
	f->now = now;
	dmta_pool_tick(f->pool);
	pump(f);
}

/* [smtp] transaction_timeout for the next fake_start() (0: none). */
static uint64_t fake_job_timeout_ms;

static void fake_start(struct fake *f, uint32_t idle_ms)
{
	struct dmta_pool_conf pc = {
	    .helo_name = "dmta.test",
	    .connect_timeout_ms = CONNECT_MS,
	    .idle_ms = idle_ms,
	    .job_timeout_ms = fake_job_timeout_ms,
	};
	struct dmta_pool_xport xp = {
	    .connect = x_connect,
	    .writev = x_writev,
	    .read = x_read,
	    .want_write = x_want_write,
	    .close = x_close,
	    .now_ns = x_now,
	    .x = f,
	};

	memset(f, 0, sizeof(*f));
	f->now = 1000 * DMTA_NS_PER_S;
	f->pool = dmta_pool_new(&pc, &xp, on_done, f);
	assert_non_null(f->pool);
}

static void fake_stop(struct fake *f)
{
	dmta_pool_free(f->pool);
	for (unsigned i = 0; i < f->nconns; i++) {
		free(f->conns[i].out);
		free(f->conns[i].in);
	}
}

static struct in_addr addr(unsigned last)
{
	struct in_addr a;

	a.s_addr = htonl((198u << 24) | (18u << 16) | (1u << 8) | last);
	return a;
}

/* ---- jobs ---- */

/*
 * A job for peer.test to @p nrcpt recipients; its exchangers are
 * mx1.peer.test with addresses @p a1 (0-terminated, last bytes of
 * 198.18.1.x) and, when @p a2 names any, mx2.peer.test with those.
 */
static struct tjob *job_new(unsigned nrcpt, size_t body_len, const unsigned *a1, const unsigned *a2)
{
	struct tjob *tj = calloc(1, sizeof(*tj));
	const unsigned *lists[2] = {a1, a2};
	static const char *names[2] = {"mx1.peer.test", "mx2.peer.test"};

	assert_non_null(tj);
	assert_true(nrcpt <= MAX_RCPTS);
	for (unsigned h = 0; h < 2 && lists[h] != NULL && lists[h][0] != 0; h++) {
		unsigned n = 0;

		while (lists[h][n] != 0) {
			assert_true(n < MAX_ADDRS);
			tj->v4[h][n] = addr(lists[h][n]);
			n++;
		}
		tj->hosts[h] = (struct dns_host){.name = names[h],
						 .pref = (uint16_t)(10 * (h + 1)),
						 .n_v4 = (uint16_t)n,
						 .v4 = tj->v4[h]};
		tj->dest.n_hosts++;
	}
	tj->dest.domain = "peer.test";
	tj->dest.verdict = DNS_VERDICT_OK;
	tj->dest.hosts = tj->hosts;
	tj->route.dest = &tj->dest;
	tj->route.refs = 1;
	tj->body = malloc(body_len + 64);
	assert_non_null(tj->body);
	{
		size_t n = (size_t)snprintf(tj->body, 64, "Subject: test\r\n\r\n");

		while (n + 72 <= body_len) {
			memset(tj->body + n, 'y', 70);
			memcpy(tj->body + n + 70, "\r\n", 2);
			n += 72;
		}
		tj->chunk = (struct smtp_chunk){.p = tj->body, .len = n};
	}
	for (unsigned i = 0; i < nrcpt; i++) {
		snprintf(tj->addr[i], sizeof(tj->addr[i]), "r%u@peer.test", i);
		tj->rcpts[i].addr = tj->addr[i];
	}
	tj->job.sjob.domain = "peer.test";
	tj->job.sjob.nrcpt = nrcpt;
	tj->job.sjob.max_messages_per_connection = 100;
	tj->job.route = &tj->route;
	tj->job.policy.tls = SMTP_TLS_NONE;
	tj->job.code = tj->code;
	tj->job.text = tj->text;
	tj->job.msg = (struct smtp_msg){.from = "a@dmta.test",
					.rcpts = tj->rcpts,
					.nrcpts = nrcpt,
					.body = &tj->chunk,
					.nbody = 1,
					.user = &tj->job};
	return tj;
}

/* A one-recipient job to mx1 (198.18.1.1) under the destination's limits
 * (0: the default). */
static struct tjob *job_limited(uint32_t max_msgs, uint32_t max_conns)
{
	struct tjob *tj = job_new(1, 500, (const unsigned[]){1, 0}, NULL);

	if (max_msgs != 0)
		tj->job.sjob.max_messages_per_connection = max_msgs;
	tj->job.sjob.max_connections = max_conns;
	return tj;
}

static void job_free(struct tjob *tj)
{
	for (unsigned i = 0; i < MAX_RCPTS; i++)
		free(tj->text[i]);
	free(tj->body);
	free(tj);
}

static void submit(struct fake *f, struct tjob *tj)
{
	int rc = dmta_pool_submit(f->pool, &tj->job);

	if (rc != 0)
		fail_msg("dmta_pool_submit: got %d, want 0", rc);
	pump(f);
}

/* ---- checks ---- */

static void want_done_once(const struct tjob *tj)
{
	if (tj->ndone != 1)
		fail_msg("done() called %u times for the job, want 1", tj->ndone);
}

static void want_rcpt(const struct tjob *tj, unsigned i, int code, const char *text)
{
	want_done_once(tj);
	if (!tj->job.connected)
		fail_msg("recipient %u: job not connected (reply \"%s\"), want code %d", i,
			 tj->job.reply, code);
	if (tj->code[i] != code)
		fail_msg("recipient %u: got code %d (\"%s\"), want %d", i, tj->code[i],
			 tj->text[i] ? tj->text[i] : "(null)", code);
	if (text != NULL && (tj->text[i] == NULL || strstr(tj->text[i], text) == NULL))
		fail_msg("recipient %u: got text \"%s\", want it to hold \"%s\"", i,
			 tj->text[i] ? tj->text[i] : "(null)", text);
}

static void want_not_connected(const struct tjob *tj, const char *reply)
{
	want_done_once(tj);
	if (tj->job.connected)
		fail_msg("job connected (code %d), want a connection failure \"%s\"", tj->code[0],
			 reply);
	if (strstr(tj->job.reply, reply) == NULL)
		fail_msg("got reply \"%s\", want it to hold \"%s\"", tj->job.reply, reply);
}

static void want_where(const struct tjob *tj, const char *mx, unsigned last)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = addr(last);

	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	if (strcmp(tj->job.mx, mx) != 0 || strcmp(tj->job.ip, ip) != 0)
		fail_msg("got mx %s ip %s, want %s %s", tj->job.mx, tj->job.ip, mx, ip);
}

static void want_conns(const struct fake *f, unsigned n)
{
	if (f->nconns != n)
		fail_msg("got %u connections tried, want %u", f->nconns, n);
}

static void want_stat(const char *name, uint64_t got, uint64_t want)
{
	if (got != want)
		fail_msg("stats %s: got %llu, want %llu", name, (unsigned long long)got,
			 (unsigned long long)want);
}

static bool client_said(const struct fconn *fc, const char *line)
{
	return fc->out != NULL && strstr(fc->out, line) != NULL;
}

static const unsigned ONE[] = {1, 0};
static const struct script OK = {0};

/* ---- the tests ---- */

static void test_delivered(void **state)
{
	struct fake f;
	struct tjob *tj;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &OK;
	tj = job_new(2, 1000, ONE, NULL);
	submit(&f, tj);
	want_rcpt(tj, 0, 250, "250 2.0.0 queued");
	want_rcpt(tj, 1, 250, "250 2.0.0 queued");
	want_where(tj, "mx1.peer.test", 1);
	want_conns(&f, 1);
	assert_true(client_said(&f.conns[0], "EHLO dmta.test\r\n"));
	assert_true(client_said(&f.conns[0], "MAIL FROM:<a@dmta.test>"));
	assert_true(client_said(&f.conns[0], "RCPT TO:<r1@peer.test>"));
	assert_true(client_said(&f.conns[0], "\r\n.\r\n"));
	if (f.conns[0].body < 900)
		fail_msg("server got %zu body bytes, want the message's", f.conns[0].body);
	/* The session stays, idle, for the next job. */
	assert_true(f.conns[0].open);
	assert_int_equal(f.conns[0].nquit, 0);
	fake_stop(&f);
	job_free(tj);
}

struct stage_case {
	const char *name;
	struct script sc;
	/* The outcome: a code per recipient, or 0 for "not connected". */
	int code[2];
	const char *text; /* in the recipients' text, or in the job's reply */
};

/* Each class of reply at each stage of a transaction, one address. */
static const struct stage_case stages[] = {
    {"greeting 421", {.greeting = "421 4.3.2 too busy\r\n"}, {0}, "421 4.3.2 too busy"},
    {"greeting 450", {.greeting = "450 4.7.1 later\r\n"}, {0}, "450 4.7.1 later"},
    {"greeting 554", {.greeting = "554 5.7.1 go away\r\n"}, {0}, "554 5.7.1 go away"},
    {"EHLO 451", {.ehlo = "451 4.3.0 not now\r\n"}, {0}, "451 4.3.0 not now"},
    {"EHLO 421", {.ehlo = "421 4.3.2 closing\r\n"}, {0}, "421 4.3.2 closing"},
    {"EHLO 502, HELO 250", {.ehlo = "502 5.5.1 no\r\n"}, {250, 250}, "250 2.0.0 queued"},
    {"EHLO 502, HELO 550",
     {.ehlo = "502 5.5.1 no\r\n", .helo = "550 5.7.1 not you\r\n"},
     {0},
     "550 5.7.1 not you"},
    {"MAIL 451", {.mail = "451 4.3.0 try later\r\n"}, {451, 451}, "451 4.3.0 try later"},
    {"MAIL 553", {.mail = "553 5.1.8 bad sender\r\n"}, {553, 553}, "553 5.1.8 bad sender"},
    {"RCPT 250, 451", {.rcpt = {NULL, "451 4.2.1 full\r\n"}}, {250, 451}, NULL},
    {"RCPT 550, 250", {.rcpt = {"550 5.1.1 no such user\r\n"}}, {550, 250}, NULL},
    {"RCPT 450, 550",
     {.rcpt = {"450 4.2.0 greylisted\r\n", "550 5.1.1 no such user\r\n"}},
     {450, 550},
     NULL},
    {"DATA 451", {.data = "451 4.3.0 no\r\n"}, {451, 451}, "451 4.3.0 no"},
    {"DATA 554", {.data = "554 5.5.1 no valid recipients\r\n"}, {554, 554}, "554 5.5.1"},
    {"end of data 452", {.dot = "452 4.3.1 disk full\r\n"}, {452, 452}, "452 4.3.1 disk full"},
    {"end of data 554", {.dot = "554 5.6.0 spam\r\n"}, {554, 554}, "554 5.6.0 spam"},
    {"end of data 421", {.dot = "421 4.3.2 closing\r\n"}, {421, 421}, "421 4.3.2 closing"},
    {"connect refused at once", {.connect = SRV_REFUSE_NOW}, {0}, "connect: Connection refused"},
    {"connect refused later", {.connect = SRV_REFUSE_LATER}, {0}, "connect: Connection refused"},
};

static void test_reply_classes(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(stages) / sizeof(stages[0]); k++) {
		const struct stage_case *c = &stages[k];
		struct fake f;
		struct tjob *tj;

		fake_start(&f, IDLE_MS);
		f.scripts[1] = &c->sc;
		tj = job_new(2, 500, ONE, NULL);
		submit(&f, tj);
		print_message("case: %s\n", c->name);
		if (c->code[0] == 0) {
			want_not_connected(tj, c->text);
			want_where(tj, "mx1.peer.test", 1);
			/* No session came of it: nothing is left open. */
			for (unsigned i = 0; i < f.nconns; i++)
				if (f.conns[i].open)
					fail_msg("%s: connection %u left open", c->name, i);
		} else {
			/* Mixed outcomes are told apart by code; a stage that
			 * answers for everyone also by its text. */
			for (unsigned i = 0; i < 2; i++)
				want_rcpt(tj, i, c->code[i],
					  c->code[0] == c->code[1] ? c->text : NULL);
		}
		fake_stop(&f);
		job_free(tj);
	}
}

/* A session that fails before its transaction moves on to the next
 * address; one that got as far as a transaction reports it as is. */
static void test_greeting_moves_on(void **state)
{
	static const unsigned two[] = {1, 2, 0};
	static const struct script busy = {.greeting = "421 4.3.2 too busy\r\n"};
	static const struct script refuse = {.greeting = "554 5.7.1 not here\r\n"};
	const struct script *first[] = {&busy, &refuse};

	(void)state;
	for (unsigned k = 0; k < 2; k++) {
		struct fake f;
		struct tjob *tj;

		fake_start(&f, IDLE_MS);
		f.scripts[1] = first[k];
		f.scripts[2] = &OK;
		tj = job_new(1, 500, two, NULL);
		submit(&f, tj);
		want_rcpt(tj, 0, 250, NULL);
		want_where(tj, "mx1.peer.test", 2);
		want_conns(&f, 2);
		/* Closed at once: the next address does not wait for a goodbye. */
		if (f.conns[0].open || f.conns[0].graceful)
			fail_msg("greeting %u: open %d graceful %d, want aborted", k,
				 f.conns[0].open, f.conns[0].graceful);
		fake_stop(&f);
		job_free(tj);
	}
}

/*
 * A busy server that says 421 at length: a long multi-line greeting whose
 * last line comes with a thousand more 421 lines in one write. The session
 * ends with bytes of that write still unread in the pool's buffer; none of
 * them may reach the next server's session.
 */
static void test_busy_greeting_flood(void **state)
{
	static const unsigned two[] = {1, 2, 0};
	static char head[50 * 200 + 1], tail[21 * 1000 + 1];
	static const struct script busy = {.greeting = head};
	struct fake f;
	struct tjob *tj;

	(void)state;
	for (unsigned i = 0; i < 200; i++)
		memcpy(head + 50 * i, "421-4.3.2 too busy, too busy, too busy, too busy\r\n", 50);
	for (unsigned i = 0; i < 1000; i++)
		memcpy(tail + 21 * i, "421 4.3.2 too busy \r\n", 21);
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &busy;
	f.scripts[2] = &OK;
	tj = job_new(1, 500, two, NULL);
	submit(&f, tj);
	/* The greeting is not over yet: the pool waits for its last line. */
	want_conns(&f, 1);
	assert_int_equal(tj->ndone, 0);
	srv_say(&f.conns[0], tail);
	pump(&f);
	want_rcpt(tj, 0, 250, "250 2.0.0 queued");
	want_where(tj, "mx1.peer.test", 2);
	want_conns(&f, 2);
	/* The case is the one described only if the pool did read past the
	 * greeting's last line. */
	if (f.conns[0].inoff <= sizeof(head) - 1 + 21)
		fail_msg("the pool read %zu bytes of the busy server, want more than %zu",
			 f.conns[0].inoff, sizeof(head) - 1 + 21);
	fake_stop(&f);
	job_free(tj);
}

/* MX failover: refused, no answer (the injected clock runs out the connect
 * timeout), then the second exchanger takes it. */
static void test_mx_failover(void **state)
{
	static const unsigned mx1[] = {1, 2, 0}, mx2[] = {3, 0};
	static const struct script refused = {.connect = SRV_REFUSE_NOW};
	static const struct script silent = {.connect = SRV_SILENT};
	struct fake f;
	struct tjob *tj;
	struct dmta_pool_stats st;
	uint64_t t0;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &refused;
	f.scripts[2] = &silent;
	f.scripts[3] = &OK;
	t0 = f.now;
	tj = job_new(1, 500, mx1, mx2);
	submit(&f, tj);
	want_conns(&f, 2);
	assert_int_equal(tj->ndone, 0);
	if (dmta_pool_next_deadline(f.pool) != t0 + CONNECT_MS * DMTA_NS_PER_MS)
		fail_msg("next deadline: got %llu, want the connect timeout at %llu",
			 (unsigned long long)dmta_pool_next_deadline(f.pool),
			 (unsigned long long)(t0 + CONNECT_MS * DMTA_NS_PER_MS));
	tick_at(&f, t0 + CONNECT_MS * DMTA_NS_PER_MS - 1);
	want_conns(&f, 2);
	tick_at(&f, t0 + CONNECT_MS * DMTA_NS_PER_MS);
	want_conns(&f, 3);
	if (f.conns[1].open || f.conns[1].graceful)
		fail_msg("the timed-out connection: open %d graceful %d, want aborted",
			 f.conns[1].open, f.conns[1].graceful);
	want_rcpt(tj, 0, 250, NULL);
	want_where(tj, "mx2.peer.test", 3);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("opened", st.opened, 2);
	want_stat("connect_failed", st.connect_failed, 2);
	fake_stop(&f);
	job_free(tj);
}

/* Every address fails: the job comes back unconnected, naming the last. */
static void test_all_addresses_fail(void **state)
{
	static const unsigned mx1[] = {1, 0}, mx2[] = {2, 0};
	static const struct script refused = {.connect = SRV_REFUSE_LATER};
	static const struct script silent = {.connect = SRV_SILENT};
	struct fake f;
	struct tjob *tj;
	struct dmta_pool_stats st;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &refused;
	f.scripts[2] = &silent;
	tj = job_new(1, 500, mx1, mx2);
	submit(&f, tj);
	assert_int_equal(tj->ndone, 0);
	tick_at(&f, f.now + CONNECT_MS * DMTA_NS_PER_MS);
	want_not_connected(tj, "connect: timed out");
	want_where(tj, "mx2.peer.test", 2);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("conns", st.conns, 0);
	want_stat("busy", st.busy, 0);
	want_stat("connecting", st.connecting, 0);
	fake_stop(&f);
	job_free(tj);
}

/* A reset while the body goes out: the recipients are deferred (the
 * message may or may not have arrived: RFC 5321 6.1 says send again). */
static void test_rst_in_data(void **state)
{
	static const struct script rst = {.rst_in_body = true};
	struct fake f;
	struct tjob *tj, *next;
	struct dmta_pool_stats st;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &rst;
	tj = job_new(2, 64 * 1024, ONE, NULL);
	submit(&f, tj);
	want_done_once(tj);
	if (!tj->job.connected)
		fail_msg("got not connected (\"%s\"), want a transaction", tj->job.reply);
	for (unsigned i = 0; i < 2; i++)
		if (tj->code[i] / 100 != 4)
			fail_msg("recipient %u: got code %d (\"%s\"), want 4xx", i, tj->code[i],
				 tj->text[i] ? tj->text[i] : "(null)");
	if (f.conns[0].open)
		fail_msg("the reset connection is still open");
	dmta_pool_read_stats(f.pool, &st);
	want_stat("conns", st.conns, 0);
	/* The next job gets a new connection. */
	f.scripts[1] = &OK;
	next = job_new(1, 500, ONE, NULL);
	submit(&f, next);
	want_rcpt(next, 0, 250, NULL);
	want_conns(&f, 2);
	fake_stop(&f);
	job_free(tj);
	job_free(next);
}

/* The server refuses in the middle of a body it cannot take at once. */
static void test_refused_mid_body(void **state)
{
	static const struct script slow = {.dot = "", .room = 4096};
	struct fake f;
	struct tjob *tj;
	struct fconn *fc;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &slow;
	tj = job_new(1, 256 * 1024, ONE, NULL);
	submit(&f, tj);
	fc = &f.conns[0];
	if (fc->st != SRV_BODY)
		fail_msg("server state %d, want the body under way (%d)", fc->st, SRV_BODY);
	if (!fc->want_write)
		fail_msg("the pool does not wait to write the rest of the body");
	assert_int_equal(tj->ndone, 0);
	srv_say(fc, "554 5.6.0 enough\r\n");
	pump(&f);
	want_rcpt(tj, 0, 554, "554 5.6.0 enough");
	fake_stop(&f);
	job_free(tj);
}

/* PIPELINING and CHUNKING: every recipient refused while the BDAT body is
 * still on its way; the refusals stand, whatever the BDAT reply says. */
static void test_rcpts_refused_pipelined(void **state)
{
	static const struct script rej = {
	    .ehlo = "250-mx.peer.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
	    .rcpt = {"550 5.1.1 no such user\r\n", "550 5.1.1 no such user\r\n"},
	    .dot = "554 5.5.1 no valid recipients\r\n",
	    .room = 8192};
	struct fake f;
	struct tjob *tj;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &rej;
	tj = job_new(2, 512 * 1024, ONE, NULL);
	submit(&f, tj);
	for (unsigned k = 0; k < 1000 && tj->ndone == 0; k++) {
		f.conns[0].room = 8192;
		pump(&f);
	}
	want_rcpt(tj, 0, 550, "550 5.1.1 no such user");
	want_rcpt(tj, 1, 550, "550 5.1.1 no such user");
	fake_stop(&f);
	job_free(tj);
}

/* An idle session says QUIT after idle_ms on the pool's clock, not before. */
static void test_idle_timeout(void **state)
{
	struct fake f;
	struct tjob *tj;
	struct dmta_pool_stats st;
	uint64_t t0;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &OK;
	t0 = f.now;
	tj = job_new(1, 500, ONE, NULL);
	submit(&f, tj);
	want_rcpt(tj, 0, 250, NULL);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("idle", st.idle, 1);
	if (dmta_pool_next_deadline(f.pool) != t0 + IDLE_MS * DMTA_NS_PER_MS)
		fail_msg("next deadline: got %llu, want the idle timeout at %llu",
			 (unsigned long long)dmta_pool_next_deadline(f.pool),
			 (unsigned long long)(t0 + IDLE_MS * DMTA_NS_PER_MS));
	tick_at(&f, t0 + IDLE_MS * DMTA_NS_PER_MS - 1);
	if (f.conns[0].nquit != 0 || !f.conns[0].open)
		fail_msg("before idle_ms: got %u QUITs, open %d; want 0, open", f.conns[0].nquit,
			 f.conns[0].open);
	tick_at(&f, t0 + IDLE_MS * DMTA_NS_PER_MS);
	if (f.conns[0].nquit != 1)
		fail_msg("at idle_ms: got %u QUITs, want 1", f.conns[0].nquit);
	if (f.conns[0].open || !f.conns[0].graceful)
		fail_msg("after QUIT: open %d graceful %d, want closed gracefully", f.conns[0].open,
			 f.conns[0].graceful);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("conns", st.conns, 0);
	want_stat("idle", st.idle, 0);
	if (dmta_pool_next_deadline(f.pool) != UINT64_MAX)
		fail_msg("next deadline with nothing open: got %llu, want none",
			 (unsigned long long)dmta_pool_next_deadline(f.pool));
	fake_stop(&f);
	job_free(tj);
}

/* idle_timeout = 0: a session says QUIT at the first tick after its job. */
static void test_idle_zero(void **state)
{
	struct fake f;
	struct tjob *tj;

	(void)state;
	fake_start(&f, 0);
	f.scripts[1] = &OK;
	tj = job_new(1, 500, ONE, NULL);
	submit(&f, tj);
	want_rcpt(tj, 0, 250, NULL);
	tick_at(&f, f.now);
	if (f.conns[0].nquit != 1 || f.conns[0].open)
		fail_msg("idle 0: got %u QUITs, open %d; want 1, closed", f.conns[0].nquit,
			 f.conns[0].open);
	fake_stop(&f);
	job_free(tj);
}

/* Up to max_messages_per_connection jobs on one connection, then QUIT; the
 * next job gets a new connection. */
static void test_messages_per_connection(void **state)
{
	struct fake f;
	struct tjob *tj[3];
	struct dmta_pool_stats st;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &OK;
	for (unsigned i = 0; i < 3; i++)
		tj[i] = job_limited(2, 0);
	submit(&f, tj[0]);
	want_rcpt(tj[0], 0, 250, NULL);
	submit(&f, tj[1]);
	want_rcpt(tj[1], 0, 250, NULL);
	want_conns(&f, 1);
	if (f.conns[0].nmail != 2)
		fail_msg("got %u transactions on the first connection, want 2", f.conns[0].nmail);
	if (f.conns[0].nquit != 1 || f.conns[0].open)
		fail_msg("after the second message: got %u QUITs, open %d; want 1, closed",
			 f.conns[0].nquit, f.conns[0].open);
	submit(&f, tj[2]);
	want_rcpt(tj[2], 0, 250, NULL);
	want_conns(&f, 2);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("jobs", st.jobs, 3);
	want_stat("reused", st.reused, 1);
	want_stat("opened", st.opened, 2);
	fake_stop(&f);
	for (unsigned i = 0; i < 3; i++)
		job_free(tj[i]);
}

/* A connection saying goodbye still counts against max_connections: the
 * next job waits until the server has closed it. */
static void test_limit_counts_goodbyes(void **state)
{
	static const struct script slow_quit = {.quit = ""};
	struct fake f;
	struct tjob *a, *b;
	struct fconn *fc;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &slow_quit;
	a = job_limited(1, 1);
	b = job_limited(1, 1);
	submit(&f, a);
	want_rcpt(a, 0, 250, NULL);
	fc = &f.conns[0];
	if (fc->nquit != 1 || !fc->open)
		fail_msg("after the only allowed message: got %u QUITs, open %d; want 1, open",
			 fc->nquit, fc->open);
	submit(&f, b);
	want_conns(&f, 1);
	assert_int_equal(b->ndone, 0);
	if (dmta_pool_busy(f.pool) != 1)
		fail_msg("busy: got %u, want 1 (the waiting job)", dmta_pool_busy(f.pool));
	/* Now the server says goodbye: the waiting job gets its connection. */
	srv_close(fc, "221 2.0.0 bye\r\n");
	pump(&f);
	want_conns(&f, 2);
	want_rcpt(b, 0, 250, NULL);
	fake_stop(&f);
	job_free(a);
	job_free(b);
}

/* At max_connections, a job waits for the first session to go idle and
 * takes it rather than opening another connection. */
static void test_limit_waits_for_idle(void **state)
{
	static const struct script hold_dot = {.dot = ""};
	struct fake f;
	struct tjob *tj[3];
	struct dmta_pool_stats st;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &hold_dot;
	for (unsigned i = 0; i < 3; i++) {
		tj[i] = job_limited(0, 2);
		submit(&f, tj[i]);
	}
	want_conns(&f, 2);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("busy", st.busy, 3);
	want_stat("conns", st.conns, 2);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(tj[i]->ndone, 0);
	/* The first server answers the end of data: its session takes the
	 * waiting job (and the server answers that one at once). */
	f.conns[0].sc = &OK;
	srv_say(&f.conns[0], "250 2.0.0 queued\r\n");
	pump(&f);
	want_rcpt(tj[0], 0, 250, NULL);
	want_rcpt(tj[2], 0, 250, NULL);
	assert_int_equal(tj[1]->ndone, 0);
	want_conns(&f, 2);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("reused", st.reused, 1);
	want_stat("busy", st.busy, 1);
	fake_stop(&f);
	/* Freeing the pool gives the job in flight back, unconnected. */
	want_not_connected(tj[1], "dmtad stopped during delivery");
	for (unsigned i = 0; i < 3; i++)
		job_free(tj[i]);
}

/* 198.18.0.@p last: a source address of ours. */
static struct in_addr src_addr(unsigned last)
{
	struct in_addr a;

	a.s_addr = htonl((198u << 24) | (18u << 16) | last);
	return a;
}

static void want_src(const struct fconn *fc, unsigned last)
{
	char got[INET_ADDRSTRLEN], want[INET_ADDRSTRLEN];
	struct in_addr w = src_addr(last);

	if (fc->src.s_addr != w.s_addr) {
		inet_ntop(AF_INET, &fc->src, got, sizeof(got));
		inet_ntop(AF_INET, &w, want, sizeof(want));
		fail_msg("connection from %s, want %s", got, want);
	}
}

/*
 * The source address is part of the destination: a session opened from
 * one address never carries a job that is to leave from another, and
 * max_connections counts each source's connections apart.
 */
static void test_source_in_key(void **state)
{
	static const struct script hold_dot = {.dot = ""};
	struct fake f;
	struct tjob *a, *b, *c, *d;
	struct dmta_pool_stats st;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &hold_dot;
	a = job_limited(0, 1);
	b = job_limited(0, 1);
	c = job_limited(0, 1);
	a->job.src = src_addr(10);
	b->job.src = src_addr(11);
	c->job.src = src_addr(10);
	submit(&f, a);
	submit(&f, b); /* another source: its own connection, not a wait */
	want_conns(&f, 2);
	want_src(&f.conns[0], 10);
	want_src(&f.conns[1], 11);
	submit(&f, c); /* source .10 is at its limit: c waits for a's session */
	want_conns(&f, 2);
	assert_int_equal(c->ndone, 0);
	/* b's session goes idle first: c must not take it. */
	f.conns[1].sc = &OK;
	srv_say(&f.conns[1], "250 2.0.0 queued\r\n");
	pump(&f);
	want_rcpt(b, 0, 250, NULL);
	assert_int_equal(c->ndone, 0);
	want_conns(&f, 2);
	/* a's does: c goes on it. */
	f.conns[0].sc = &OK;
	srv_say(&f.conns[0], "250 2.0.0 queued\r\n");
	pump(&f);
	want_rcpt(a, 0, 250, NULL);
	want_rcpt(c, 0, 250, NULL);
	if (f.conns[0].nmail != 2)
		fail_msg("got %u transactions from .10, want 2", f.conns[0].nmail);
	/* A job with no source (the default address) is a third destination. */
	f.scripts[1] = &OK;
	d = job_limited(0, 1);
	submit(&f, d);
	want_rcpt(d, 0, 250, NULL);
	want_conns(&f, 3);
	if (f.conns[2].src.s_addr != 0)
		fail_msg("a job without a source connected from a source address");
	dmta_pool_read_stats(f.pool, &st);
	want_stat("reused", st.reused, 1);
	want_stat("opened", st.opened, 3);
	fake_stop(&f);
	job_free(a);
	job_free(b);
	job_free(c);
	job_free(d);
}

/*
 * A source address the transport cannot use (not on this host) is our
 * failure, not the destination's: the job is deferred as local, naming the
 * address, without trying the other exchangers; jobs waiting behind it
 * fail the same way, one after another.
 */
static void test_source_unusable_is_local(void **state)
{
	struct fake f;
	struct tjob *tj[3];
	struct dmta_pool_stats st;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &OK;
	f.scripts[2] = &OK;
	f.bad_src = src_addr(12);
	for (unsigned i = 0; i < 3; i++) {
		tj[i] = job_new(1, 500, ONE, (const unsigned[]){2, 0});
		tj[i]->job.src = src_addr(12);
		tj[i]->job.sjob.max_connections = 1;
		assert_int_equal(dmta_pool_submit(f.pool, &tj[i]->job), 0);
	}
	pump(&f);
	want_conns(&f, 3); /* one try per job: no failover to mx2 */
	for (unsigned i = 0; i < 3; i++) {
		want_not_connected(tj[i], "451 4.3.0 source address 198.18.0.12 cannot be used");
		if (!tj[i]->job.local)
			fail_msg("job %u: got local false, want true", i);
	}
	dmta_pool_read_stats(f.pool, &st);
	want_stat("connect_failed", st.connect_failed, 0);
	want_stat("busy", st.busy, 0);
	want_stat("conns", st.conns, 0);
	fake_stop(&f);
	for (unsigned i = 0; i < 3; i++)
		job_free(tj[i]);
}

/* Draining: waiting jobs fail, new ones are refused, a session whose job
 * ends says QUIT, and the pool counts it busy until it has closed. */
/*
 * What our own engine refuses (an address it cannot put on a RCPT line, an
 * ENVID too long) never reaches a server and is not a connection failure:
 * no connection is made, the job comes back local, the bad address fails
 * for good and the others of the job are deferred to go without it.
 */
static void test_engine_refusal_is_local(void **state)
{
	static char long_envid[200];
	struct fake f;
	struct tjob *tj, *next;
	struct dmta_pool_stats st;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &OK;
	tj = job_new(2, 500, ONE, NULL);
	snprintf(tj->addr[0], sizeof(tj->addr[0]), "\"x>y\"@peer.test");
	submit(&f, tj);
	want_conns(&f, 0);
	want_done_once(tj);
	if (!tj->job.local)
		fail_msg("got local false, want true: a refusal of ours is no destination failure");
	want_rcpt(tj, 0, 553, "5.1.3");
	want_rcpt(tj, 1, 451, NULL);
	dmta_pool_read_stats(f.pool, &st);
	want_stat("connect_failed", st.connect_failed, 0);
	want_stat("busy", st.busy, 0);

	/* A sender's ENVID the engine will not send fails every recipient. */
	memset(long_envid, 'e', sizeof(long_envid) - 1);
	next = job_new(2, 500, ONE, NULL);
	next->job.msg.envid = long_envid;
	submit(&f, next);
	want_conns(&f, 0);
	if (!next->job.local)
		fail_msg("ENVID: got local false, want true");
	want_rcpt(next, 0, 554, NULL);
	want_rcpt(next, 1, 554, NULL);
	fake_stop(&f);
	job_free(tj);
	job_free(next);
}

/*
 * A server that drips its reply a byte a minute: each byte used to start
 * the reply's five minutes again, holding the job for as long as the
 * server liked. The wait runs from when the command went out.
 */
static void test_slow_drip_times_out(void **state)
{
	static const struct script drip = {.mail = ""};
	const char *reply = "250 2.1.0 ok\r\n";
	uint64_t t0;
	struct fake f;
	struct tjob *tj;
	unsigned minutes = 0;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &drip;
	tj = job_new(1, 500, ONE, NULL);
	submit(&f, tj);
	t0 = f.now;
	while (tj->ndone == 0 && minutes < strlen(reply)) {
		char one[2] = {reply[minutes], '\0'};

		minutes++;
		tick_at(&f, t0 + minutes * 60 * DMTA_NS_PER_S);
		if (tj->ndone != 0)
			break;
		srv_say(&f.conns[0], one);
		pump(&f);
	}
	if (tj->ndone == 0)
		fail_msg("no outcome after %u minutes of one byte a minute, want a timeout at 5",
			 minutes);
	if (minutes != 5)
		fail_msg("timed out after %u minutes, want 5 (MAIL's reply time)", minutes);
	want_rcpt(tj, 0, 451, NULL);
	fake_stop(&f);
	job_free(tj);
}

/* Replies that each come within their own time still end at the job's. */
static void test_job_deadline(void **state)
{
	static const struct script slow = {.mail = "", .rcpt = {""}, .data = ""};
	uint64_t t0, min = 60 * DMTA_NS_PER_S;
	struct fake f;
	struct tjob *tj;

	(void)state;
	fake_job_timeout_ms = 9 * 60 * 1000;
	fake_start(&f, IDLE_MS);
	fake_job_timeout_ms = 0;
	f.scripts[1] = &slow;
	tj = job_new(1, 500, ONE, NULL);
	submit(&f, tj);
	t0 = f.now;
	tick_at(&f, t0 + 4 * min);
	srv_say(&f.conns[0], "250 2.1.0 ok\r\n"); /* MAIL, after 4 minutes */
	pump(&f);
	tick_at(&f, t0 + 8 * min);
	srv_say(&f.conns[0], "250 2.1.5 ok\r\n"); /* RCPT, after 4 more */
	pump(&f);
	tick_at(&f, t0 + 9 * min - 1);
	if (tj->ndone != 0)
		fail_msg("done before the job's 9 minutes (code %d)", tj->code[0]);
	tick_at(&f, t0 + 9 * min);
	if (tj->ndone == 0)
		fail_msg("no outcome at the job's deadline (9 min), want a timeout");
	want_rcpt(tj, 0, 451, NULL);
	fake_stop(&f);
	job_free(tj);
}

/*
 * A domain whose MX points at this host (or a private network) does not
 * get us to connect there, unless the operator named the host ([routes],
 * [relay]: policy.private_ok). 198.18.0.0/15, where every other test
 * goes, is a benchmarking range and public for this purpose.
 */
static void test_private_addresses(void **state)
{
	static const unsigned two[] = {1, 2, 0};
	static const char *const priv[] = {"127.0.0.1",	  "10.1.2.1",	"172.20.0.1", "192.168.1.1",
					   "169.254.0.1", "100.64.0.1", "0.0.0.1",    "224.0.0.1"};

	(void)state;
	for (size_t k = 0; k < sizeof(priv) / sizeof(priv[0]); k++) {
		for (int ok = 0; ok < 2; ok++) {
			struct fake f;
			struct tjob *tj;

			fake_start(&f, IDLE_MS);
			f.scripts[1] = &OK;
			f.scripts[2] = &OK;
			tj = job_new(1, 500, two, NULL);
			assert_int_equal(inet_pton(AF_INET, priv[k], &tj->v4[0][0]), 1);
			tj->job.policy.private_ok = ok;
			submit(&f, tj);
			want_rcpt(tj, 0, 250, NULL);
			if (!ok && strcmp(tj->job.ip, "198.18.1.2") != 0)
				fail_msg("%s: delivered via %s, want it skipped for 198.18.1.2",
					 priv[k], tj->job.ip);
			if (ok && strcmp(tj->job.ip, priv[k]) != 0)
				fail_msg("%s allowed: delivered via %s, want %s", priv[k],
					 tj->job.ip, priv[k]);
			want_conns(&f, 1);
			fake_stop(&f);
			job_free(tj);
		}
	}
}

static void test_drain(void **state)
{
	static const struct script hold = {.dot = "", .quit = ""};
	struct fake f;
	struct tjob *busy, *waiting, *late;
	int rc;

	(void)state;
	fake_start(&f, IDLE_MS);
	f.scripts[1] = &hold;
	busy = job_limited(0, 1);
	waiting = job_limited(0, 1);
	late = job_new(1, 500, ONE, NULL);
	submit(&f, busy);
	submit(&f, waiting);
	want_conns(&f, 1);
	dmta_pool_drain(f.pool);
	want_not_connected(waiting, "451 4.3.2 dmtad is stopping");
	rc = dmta_pool_submit(f.pool, &late->job);
	if (rc != -ESHUTDOWN)
		fail_msg("submit while draining: got %d, want %d", rc, -ESHUTDOWN);
	srv_say(&f.conns[0], "250 2.0.0 queued\r\n");
	pump(&f);
	want_rcpt(busy, 0, 250, NULL);
	if (f.conns[0].nquit != 1)
		fail_msg("after draining: got %u QUITs, want 1", f.conns[0].nquit);
	if (dmta_pool_busy(f.pool) != 1)
		fail_msg("busy while saying goodbye: got %u, want 1", dmta_pool_busy(f.pool));
	srv_close(&f.conns[0], "221 2.0.0 bye\r\n");
	pump(&f);
	if (dmta_pool_busy(f.pool) != 0)
		fail_msg("busy after the goodbye: got %u, want 0", dmta_pool_busy(f.pool));
	fake_stop(&f);
	assert_int_equal(late->ndone, 0);
	job_free(busy);
	job_free(waiting);
	job_free(late);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delivered),
	    cmocka_unit_test(test_reply_classes),
	    cmocka_unit_test(test_greeting_moves_on),
	    cmocka_unit_test(test_busy_greeting_flood),
	    cmocka_unit_test(test_mx_failover),
	    cmocka_unit_test(test_all_addresses_fail),
	    cmocka_unit_test(test_rst_in_data),
	    cmocka_unit_test(test_refused_mid_body),
	    cmocka_unit_test(test_rcpts_refused_pipelined),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_idle_zero),
	    cmocka_unit_test(test_messages_per_connection),
	    cmocka_unit_test(test_limit_counts_goodbyes),
	    cmocka_unit_test(test_limit_waits_for_idle),
	    cmocka_unit_test(test_source_in_key),
	    cmocka_unit_test(test_source_unusable_is_local),
	    cmocka_unit_test(test_engine_refusal_is_local),
	    cmocka_unit_test(test_slow_drip_times_out),
	    cmocka_unit_test(test_job_deadline),
	    cmocka_unit_test(test_private_addresses),
	    cmocka_unit_test(test_drain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
