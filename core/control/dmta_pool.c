/*
 * dmta_pool.c - see dmta_pool.h.
 *
 * A connection (struct pool_conn) is CONN_CONNECTING (the transport has
 * not said connected yet; it walks the destination's addresses) or in
 * CONN_SESSION (the SMTP session runs; it carries the job it was opened
 * for, then later ones while it stays under the per-connection message
 * limit). Between jobs a session waits on its destination's idle list.
 *
 * Invariants:
 *	- A connection with no job is idle (on its destination's idle list)
 *	  or saying goodbye (max_msgs cut to msgs, never idle again).
 *	- A destination (struct pool_dest) is a domain and the source address
 *	  its jobs leave from: a session only ever carries jobs of the
 *	  source it was opened from.
 *	- A destination counts every connection it has in nconns, those
 *	  saying goodbye included: the receiver still counts them. Jobs wait
 *	  on the destination while it is at the job's connection limit and
 *	  no session is idle.
 *	- Every job taken is given back through done() exactly once.
 *	- Bytes one server sent are never fed to another server's session.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_str.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_pool.h"
#include "queue/queue_sched.h"
#include "smtp/smtp_session.h"

enum conn_state {
	CONN_CONNECTING = 0,
	CONN_SESSION,
};

struct pool_dest {
	char *domain;
	struct in_addr src;	/* the jobs' source address (0: the default) */
	struct pool_conn *idle; /* idle sessions, most recent first */
	unsigned nconns;	/* connections open, closing ones included */
	/* Jobs waiting for a connection: the scheduler counts jobs, but a
	 * session saying QUIT still holds a connection at the receiver. */
	struct dmta_job *wait_head, *wait_tail;
	bool kicking; /* dest_kick() runs: a nested call leaves the queue to it */
	struct pool_dest *next;
};

struct pool_conn {
	struct dmta_pool_conn xc; /* first: the transport's view */
	struct dmta_pool *pool;
	struct pool_dest *d;
	enum conn_state st;
	bool open; /* the transport holds a handle */
	struct smtp_session *s;
	struct dmta_job *job;	 /* the job in progress, NULL when idle */
	unsigned host_i, addr_i; /* the address tried (while connecting) */
	bool ready_seen;	 /* the session got past EHLO/TLS/AUTH */
	bool plain;		 /* opportunistic TLS failed here: this address in plaintext */
	bool connecting;	 /* counted in st.connecting */
	bool want_out;		 /* EPOLLOUT is armed */
	uint32_t msgs;		 /* messages finished on this connection */
	uint32_t max_msgs;
	uint64_t deadline_ns; /* 0: none */
	/* The engine's current wait (SMTP_DL_*) and when it runs out: set when
	 * the wait begins or the server makes progress (a whole reply, body
	 * bytes taken), never by a byte that completes nothing, so a server
	 * that drips a byte every few minutes still times out. */
	int stage;
	uint64_t stage_replies, stage_until;
	bool stage_progress;
	uint64_t job_until; /* the whole job's deadline (transaction_timeout), 0: none */
	char mx[256], ip[48];
	struct pool_conn *next, *prev; /* all connections */
	struct pool_conn *idle_next;
	size_t roff, rlen;
	uint8_t rbuf[16384];
};

struct dmta_pool {
	struct dmta_pool_conf conf;
	struct dmta_pool_xport xp;
	char *helo;
	dmta_job_done_fn *done;
	void *ctl;
	struct pool_dest *dests;
	struct pool_conn *conns;
	struct dmta_pool_stats st; /* see ST_ADD() */
	bool draining;
};

/*
 * The only writer of a counter is the pool's thread: a relaxed load and
 * store (no read-modify-write, so no locked instruction) keep a reader on
 * another thread from seeing a torn value.
 */
#define ST_ADD(pool, f, d)                                                                         \
	__atomic_store_n(&(pool)->st.f, (pool)->st.f + (uint64_t)(d), __ATOMIC_RELAXED)

static void conn_try(struct pool_conn *c);
static void dest_kick(struct dmta_pool *pool, struct pool_dest *d);

static struct pool_dest *dest_get(struct dmta_pool *pool, const char *domain, struct in_addr src)
{
	struct pool_dest *d;

	for (d = pool->dests; d != NULL; d = d->next)
		if (d->src.s_addr == src.s_addr && strcmp(d->domain, domain) == 0)
			return d;
	d = calloc(1, sizeof(*d));
	if (d == NULL || (d->domain = strdup(domain)) == NULL) {
		free(d);
		return NULL;
	}
	d->src = src;
	d->next = pool->dests;
	pool->dests = d;
	return d;
}

static void idle_remove(struct pool_conn *c)
{
	struct pool_conn **pp;

	for (pp = &c->d->idle; *pp != NULL; pp = &(*pp)->idle_next)
		if (*pp == c) {
			*pp = c->idle_next;
			c->idle_next = NULL;
			ST_ADD(c->pool, idle, -1);
			return;
		}
}

static void idle_push(struct pool_conn *c)
{
	c->idle_next = c->d->idle;
	c->d->idle = c;
	ST_ADD(c->pool, idle, 1);
}

static void set_connecting(struct pool_conn *c, bool on)
{
	if (c->connecting != on)
		ST_ADD(c->pool, connecting, on ? 1 : -1);
	c->connecting = on;
}

/* One line of reply text for the spool and the log. */
static char *one_line(const char *text, size_t len)
{
	char *s = malloc(len + 1);
	size_t n = 0;

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char ch = text[i];

		if (ch == '\r')
			continue;
		if (ch == '\n') {
			if (i + 1 < len)
				s[n++] = ' ';
			continue;
		}
		s[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
	}
	s[n] = '\0';
	return s;
}

static void job_finish(struct dmta_pool *pool, struct dmta_job *job, bool connected,
		       const char *reply)
{
	job->connected = connected;
	if (!connected && reply != job->reply)
		snprintf(job->reply, sizeof(job->reply), "%s", reply ? reply : "connection failed");
	ST_ADD(pool, busy, -1);
	pool->done(pool->ctl, job);
}

static uint64_t pool_now(const struct dmta_pool *pool)
{
	return pool->xp.now_ns(pool->xp.x);
}

static void conn_close_fd(struct pool_conn *c, bool graceful)
{
	if (c->open) {
		c->pool->xp.close(c->pool->xp.x, &c->xc, graceful);
		c->open = false;
	}
	smtp_session_free(c->s);
	c->s = NULL;
	c->stage = -1; /* the next session's first wait is a new one */
	c->want_out = false;
	/* Bytes one server sent are never fed to the next one's session. */
	c->roff = c->rlen = 0;
}

static void conn_free(struct pool_conn *c)
{
	struct dmta_pool *pool = c->pool;
	struct pool_dest *d = c->d;

	conn_close_fd(c, true);
	set_connecting(c, false);
	if (c->job == NULL)
		idle_remove(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		pool->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ST_ADD(pool, conns, -1);
	d->nconns--;
	free(c);
	dest_kick(pool, d);
}

/* The current address failed: try the next, or fail the job. */
static void conn_retry(struct pool_conn *c, const char *why, bool next_addr)
{
	struct dmta_job *job = c->job;

	dmta_debug("%s: %s[%s]: %s", c->d->domain, c->mx, c->ip, why);
	conn_close_fd(c, false);
	if (next_addr) {
		c->addr_i++;
		c->plain = false;
	}
	if (job != NULL) {
		snprintf(job->reply, sizeof(job->reply), "%s[%s]: %s", c->mx, c->ip, why);
		for (uint32_t i = 0; i < job->sjob.nrcpt; i++) {
			job->code[i] = 0;
			free(job->text[i]);
			job->text[i] = NULL;
		}
	}
	conn_try(c);
}

static void conn_next_addr(struct pool_conn *c, const char *why)
{
	conn_retry(c, why, true);
}

static void conn_set_out(struct pool_conn *c, bool want)
{
	if (c->want_out == want || !c->open)
		return;
	c->pool->xp.want_write(c->pool->xp.x, &c->xc, want);
	c->want_out = want;
}

/* Send what the session has; true while the connection lives. */
static void conn_flush(struct pool_conn *c)
{
	struct iovec iov[16];
	size_t k;

	while (c->s != NULL && (k = smtp_session_tx_iov(c->s, iov, 16)) > 0) {
		ssize_t n = c->pool->xp.writev(c->pool->xp.x, &c->xc, iov, (int)k);

		if (n == -EAGAIN || n == 0) {
			conn_set_out(c, true);
			return;
		}
		if (n < 0) {
			/* The read side will see the same error and end the session. */
			smtp_session_eof(c->s);
			return;
		}
		smtp_session_tx_done(c->s, (size_t)n);
		c->stage_progress = true;
	}
	conn_set_out(c, false);
}

static void conn_arm(struct pool_conn *c)
{
	uint64_t ms, replies, now = pool_now(c->pool);
	enum smtp_deadline k;

	/* A session saying goodbye (max_msgs cut to msgs) is no longer idle:
	 * its QUIT gets the engine's deadline, not a new idle period. */
	if (c->job == NULL && c->s != NULL && smtp_session_ready(c->s) && c->msgs < c->max_msgs) {
		c->stage = SMTP_DL_NONE;
		c->deadline_ns = now + c->pool->conf.idle_ms * DMTA_NS_PER_MS;
		return;
	}
	if (c->s == NULL || (k = smtp_session_deadline(c->s, &ms)) == SMTP_DL_NONE) {
		c->stage = SMTP_DL_NONE;
		c->deadline_ns = c->job != NULL ? c->job_until : 0;
		return;
	}
	/* Only a new wait or progress moves the deadline: the engine gives
	 * each wait's full length, whatever part of it has passed. */
	replies = smtp_client_stats(smtp_session_client(c->s))->replies;
	if ((int)k != c->stage || replies != c->stage_replies ||
	    (c->stage_progress && k == SMTP_DL_DATA_BLOCK)) {
		c->stage = (int)k;
		c->stage_replies = replies;
		c->stage_until = now + ms * DMTA_NS_PER_MS;
	}
	c->stage_progress = false;
	c->deadline_ns = c->stage_until;
	if (c->job != NULL && c->job_until != 0 && c->job_until < c->deadline_ns)
		c->deadline_ns = c->job_until;
}

/* The job starts on @p c now: its whole-transaction deadline. */
static void conn_job_begins(struct pool_conn *c)
{
	uint64_t ms = c->pool->conf.job_timeout_ms;

	c->job_until = ms ? pool_now(c->pool) + ms * DMTA_NS_PER_MS : 0;
}

/* The job on this session is over; keep the session for the next one or end it. */
static void conn_job_done(struct pool_conn *c)
{
	struct dmta_pool *pool = c->pool;
	struct dmta_job *job = c->job;

	dmta_str_copy(job->mx, sizeof(job->mx), c->mx);
	dmta_str_copy(job->ip, sizeof(job->ip), c->ip);
	dmta_str_copy(job->tls, sizeof(job->tls), smtp_session_tls(c->s));
	c->job = NULL;
	c->msgs++;
	job_finish(pool, job, true, NULL);
	if (c->msgs >= c->max_msgs || pool->draining) {
		c->max_msgs = c->msgs; /* closing: never idle again */
		smtp_session_quit(c->s);
	} else {
		idle_push(c);
		dest_kick(pool, c->d);
	}
}

/*
 * Take the session's events. Returns false when the connection was freed or
 * moved to another address (the caller must not touch it).
 */
static bool conn_events(struct pool_conn *c)
{
	struct smtp_event ev;

	while (c->s != NULL && smtp_session_event(c->s, &ev)) {
		struct dmta_job *job = c->job;

		switch (ev.type) {
		case SMTP_EV_READY:
			c->ready_seen = true;
			break;
		case SMTP_EV_RCPT:
			if (job != NULL && ev.rcpt < job->sjob.nrcpt) {
				job->code[ev.rcpt] = ev.code;
				free(job->text[ev.rcpt]);
				job->text[ev.rcpt] = one_line(ev.text, ev.text_len);
			}
			break;
		case SMTP_EV_MSG:
			if (job == NULL)
				break;
			if (!c->ready_seen && job->policy.tls == SMTP_TLS_OPPORTUNISTIC &&
			    !c->plain && smtp_session_tls_failed(c->s)) {
				/* Opportunistic TLS that fails is no reason not to
				 * deliver (Postfix's level "may" does the same): this
				 * exchanger again, in plaintext. */
				char *why = one_line(ev.text, ev.text_len);

				dmta_info("%s: %s[%s]: %s; trying again in plaintext", c->d->domain,
					  c->mx, c->ip, why ? why : "TLS failed");
				c->plain = true;
				conn_retry(c, why ? why : "TLS failed", false);
				free(why);
				return false;
			}
			if (!c->ready_seen) {
				/* Refused before any transaction (421 greeting,
				 * TLS failure): the next exchanger may do better. */
				char *why = one_line(ev.text, ev.text_len);

				conn_next_addr(c, why ? why : "session failed");
				free(why);
				return false;
			}
			conn_job_done(c);
			break;
		case SMTP_EV_CLOSED:
			if (c->job != NULL) {
				/* The engine reports every message before it
				 * closes; this is a broken promise, not a path. */
				dmta_panic("pool: %s: session closed with a job on it",
					   c->d->domain);
			}
			conn_flush(c); /* QUIT's tail or close_notify */
			conn_free(c);
			return false;
		default:
			break;
		}
	}
	return true;
}

static void conn_read(struct pool_conn *c)
{
	bool eof = false;

	for (;;) {
		size_t took;

		if (c->roff == c->rlen) {
			ssize_t n =
			    c->pool->xp.read(c->pool->xp.x, &c->xc, c->rbuf, sizeof(c->rbuf));

			if (n == -EAGAIN)
				break;
			if (n <= 0) {
				eof = true;
				break;
			}
			c->roff = 0;
			c->rlen = (size_t)n;
		}
		took = smtp_session_rx(c->s, c->rbuf + c->roff, c->rlen - c->roff);
		c->roff += took;
		if (!conn_events(c))
			return;
		if (took == 0)
			c->roff = c->rlen; /* the session has ended: nobody reads on */
	}
	if (eof) {
		smtp_session_eof(c->s);
		if (!conn_events(c))
			return;
	}
	conn_flush(c);
	conn_arm(c);
}

/*
 * Our side failed (no memory, the engine refused the message): no other
 * address would do better, and the destination did nothing wrong. The job
 * is deferred as a local failure and the connection closed.
 */
static void conn_local_failure(struct pool_conn *c, const char *why)
{
	struct dmta_job *job = c->job;

	dmta_warn("%s: %s[%s]: %s", c->d->domain, c->mx, c->ip, why);
	c->job = NULL;
	snprintf(job->mx, sizeof(job->mx), "%s", c->mx);
	snprintf(job->ip, sizeof(job->ip), "%s", c->ip);
	job->local = true;
	job_finish(c->pool, job, false, why);
	conn_free(c);
}

/* Start SMTP on a new connection; false when c was moved on or freed. */
static bool conn_start_session(struct pool_conn *c)
{
	struct dmta_pool *pool = c->pool;
	struct dmta_job *job = c->job;
	char key[300];
	const struct dns_host *h = &job->route->dest->hosts[c->host_i];
	struct smtp_session_config sc = {
	    .client =
		{
		    .helo_name = pool->helo,
		    .tls = c->plain ? SMTP_TLS_NONE : job->policy.tls,
		    .auth_user = job->policy.auth_user,
		    .auth_pass = job->policy.auth_pass,
		    .auth_plaintext_ok = job->policy.auth_plaintext_ok,
		    .max_rcpts = 0,
		    .trace = pool->conf.trace,
		},
	    .tls_ctx = pool->conf.tls_ctx,
	    .tls_sni = c->mx,
	    .tls_dest_key = key,
	    .tls_verify = job->policy.tls_verify,
	};

	snprintf(key, sizeof(key), "%s:%u", c->mx, h->port ? h->port : 25);
	c->ready_seen = false;
	c->s = smtp_session_new(&sc);
	if (c->s == NULL) {
		conn_local_failure(c, "451 4.3.0 cannot create an SMTP session");
		return false;
	}
	c->st = CONN_SESSION;
	set_connecting(c, false);
	if (smtp_session_submit(c->s, &job->msg) != 0) {
		conn_local_failure(c, "451 4.3.0 message refused by the SMTP engine");
		return false;
	}
	conn_flush(c);
	conn_arm(c);
	return true;
}

/*
 * Not a public unicast address: this host, private networks (RFC 1918),
 * shared address space (RFC 6598), link-local, multicast, reserved, and
 * 0/8. 198.18.0.0/15 (benchmarking, RFC 2544) is not among them.
 */
static bool addr_private(struct in_addr a)
{
	uint32_t x = ntohl(a.s_addr);

	return (x >> 24) == 0 || (x >> 24) == 10 || (x >> 24) == 127 ||
	       (x & 0xffc00000u) == 0x64400000u || /* 100.64/10 */
	       (x & 0xffff0000u) == 0xa9fe0000u || /* 169.254/16 */
	       (x & 0xfff00000u) == 0xac100000u || /* 172.16/12 */
	       (x & 0xffff0000u) == 0xc0a80000u || /* 192.168/16 */
	       (x >> 28) >= 0xe;		   /* 224/4, 240/4 */
}

/* Connect to the next address there is, or fail the job. */
static void conn_try(struct pool_conn *c)
{
	struct dmta_pool *pool = c->pool;
	struct dmta_job *job = c->job;
	const struct dns_dest *dest = job->route->dest;

	for (; c->host_i < dest->n_hosts; c->host_i++, c->addr_i = 0) {
		const struct dns_host *h = &dest->hosts[c->host_i];

		for (; c->addr_i < h->n_v4; c->addr_i++) {
			uint16_t port = h->port ? h->port : 25;
			int rc;

			snprintf(c->mx, sizeof(c->mx), "%s", h->name);
			inet_ntop(AF_INET, &h->v4[c->addr_i], c->ip, sizeof(c->ip));
			if (!job->policy.private_ok && addr_private(h->v4[c->addr_i])) {
				snprintf(job->reply, sizeof(job->reply),
					 "%s[%s]: not a public address; not used "
					 "([smtp] allow_private_mx)",
					 c->mx, c->ip);
				continue;
			}
			c->xc.xh = NULL;
			c->xc.fd = -1;
			rc = pool->xp.connect(pool->xp.x, &c->xc, job->src, h->v4[c->addr_i], port);
			if (rc == -EADDRNOTAVAIL && job->src.s_addr != 0) {
				/* Our source address, not the destination: no
				 * other exchanger would do better. */
				char why[160], sa[INET_ADDRSTRLEN];

				inet_ntop(AF_INET, &job->src, sa, sizeof(sa));
				snprintf(why, sizeof(why),
					 "451 4.3.0 source address %s cannot be used: %s", sa,
					 strerror(-rc));
				conn_local_failure(c, why);
				return;
			}
			if (rc != 0) {
				ST_ADD(pool, connect_failed, 1);
				snprintf(job->reply, sizeof(job->reply), "%s[%s]: connect: %s",
					 c->mx, c->ip, strerror(-rc));
				continue;
			}
			c->open = true;
			/* Connecting watches for writability (see connect() in
			 * dmta_pool.h): the first flush with nothing left turns
			 * it off, else a kernel socket reports itself writable
			 * for as long as it lives, the loop spins, and each
			 * wake-up pushes an idle session's deadline away. */
			c->want_out = true;
			c->st = CONN_CONNECTING;
			set_connecting(c, true);
			ST_ADD(pool, opened, 1);
			c->deadline_ns =
			    pool_now(pool) + pool->conf.connect_timeout_ms * DMTA_NS_PER_MS;
			if (c->job_until != 0 && c->job_until < c->deadline_ns)
				c->deadline_ns = c->job_until;
			return;
		}
	}
	/* Every address tried. */
	c->job = NULL;
	if (job->reply[0] == '\0')
		snprintf(job->reply, sizeof(job->reply), "%s: no address to deliver to",
			 job->sjob.domain);
	snprintf(job->mx, sizeof(job->mx), "%s", c->mx);
	snprintf(job->ip, sizeof(job->ip), "%s", c->ip);
	job_finish(pool, job, false, job->reply);
	conn_free(c);
}

void dmta_pool_connected(struct dmta_pool_conn *xc)
{
	struct pool_conn *c = (struct pool_conn *)xc;

	/* What already arrived (a greeting with the handshake's last ACK) is
	 * read at once, so that one call per transport event is enough. */
	if (c->st == CONN_CONNECTING && conn_start_session(c))
		conn_read(c);
}

void dmta_pool_failed(struct dmta_pool_conn *xc, int err)
{
	struct pool_conn *c = (struct pool_conn *)xc;
	char why[128];

	if (c->st == CONN_CONNECTING) {
		ST_ADD(c->pool, connect_failed, 1);
		snprintf(why, sizeof(why), "connect: %s", strerror(err));
		conn_next_addr(c, why);
		return;
	}
	/* A broken session: the engine fails what is pending and closes. */
	smtp_session_eof(c->s);
	if (conn_events(c)) {
		conn_flush(c);
		conn_arm(c);
	}
}

void dmta_pool_readable(struct dmta_pool_conn *xc)
{
	struct pool_conn *c = (struct pool_conn *)xc;

	if (c->st == CONN_SESSION)
		conn_read(c); /* may free c */
}

void dmta_pool_writable(struct dmta_pool_conn *xc)
{
	struct pool_conn *c = (struct pool_conn *)xc;

	if (c->st == CONN_SESSION) {
		conn_flush(c);
		conn_arm(c);
	}
}

/* Start @p job on an idle session of its destination. false: none would take it. */
static bool dest_reuse(struct pool_dest *d, struct dmta_job *job)
{
	struct pool_conn *c;

	while ((c = d->idle) != NULL) {
		idle_remove(c);
		c->job = job;
		if (smtp_session_submit(c->s, &job->msg) == 0) {
			conn_job_begins(c);
			ST_ADD(c->pool, reused, 1);
			conn_flush(c);
			conn_arm(c);
			return true;
		}
		/* The session is closing after all. */
		c->job = NULL;
		c->max_msgs = c->msgs;
		smtp_session_quit(c->s);
	}
	return false;
}

/* Start @p job on a new connection. */
static void dest_connect(struct dmta_pool *pool, struct pool_dest *d, struct dmta_job *job)
{
	struct pool_conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		job->local = true;
		job_finish(pool, job, false, "451 4.3.0 out of memory");
		return;
	}
	c->pool = pool;
	c->d = d;
	c->xc.fd = -1;
	c->job = job;
	c->max_msgs =
	    job->sjob.max_messages_per_connection ? job->sjob.max_messages_per_connection : 100;
	c->next = pool->conns;
	if (pool->conns)
		pool->conns->prev = c;
	pool->conns = c;
	ST_ADD(pool, conns, 1);
	d->nconns++;
	conn_job_begins(c);
	conn_try(c);
}

/* Give waiting jobs an idle session, or a new connection while the
 * destination is under its limit. Each job leaves the queue before it
 * starts, so a done() that submits again finds the queue consistent. */
static bool dest_full(const struct pool_dest *d, const struct dmta_job *job)
{
	return job->sjob.max_connections != 0 && d->nconns >= job->sjob.max_connections;
}

static void dest_kick(struct dmta_pool *pool, struct pool_dest *d)
{
	struct dmta_job *job;

	/* A job that fails at once (every address refused, an unusable
	 * source) frees its connection, which kicks the destination again:
	 * the loop below goes on instead, so the stack does not grow with
	 * the queue. */
	if (d->kicking)
		return;
	d->kicking = true;
	while ((job = d->wait_head) != NULL) {
		if (!pool->draining && d->idle == NULL && dest_full(d, job))
			break;
		d->wait_head = job->wait_next;
		if (d->wait_head == NULL)
			d->wait_tail = NULL;
		job->wait_next = NULL;
		if (pool->draining) {
			job->local = true;
			job_finish(pool, job, false, "451 4.3.2 dmtad is stopping");
			continue;
		}
		if (dest_reuse(d, job))
			continue;
		if (dest_full(d, job)) {
			/* The idle sessions were closing after all: wait for them. */
			job->wait_next = d->wait_head;
			d->wait_head = job;
			if (d->wait_tail == NULL)
				d->wait_tail = job;
			break;
		}
		dest_connect(pool, d, job);
	}
	d->kicking = false;
}

/*
 * What our SMTP engine would refuse never goes out: an address it cannot
 * put on a RCPT line fails for good (553 5.1.3), the others of the job are
 * deferred to go without it, and a sender or ENVID it cannot send fails
 * them all. No connection is made, and nothing counts against the
 * destination (job->local). True when the job was settled so.
 */
static bool job_refused_here(struct dmta_pool *pool, struct dmta_job *job)
{
	bool env_ok = smtp_client_envelope_ok(&job->msg), any = !env_ok;

	for (uint32_t i = 0; i < job->sjob.nrcpt && !any; i++)
		any = !smtp_client_rcpt_ok(&job->msg.rcpts[i]);
	if (!any)
		return false;
	for (uint32_t i = 0; i < job->sjob.nrcpt; i++) {
		const char *why;

		if (!env_ok) {
			job->code[i] = 554;
			why = "554 5.6.0 envelope not usable in SMTP (sender or ENVID)";
		} else if (!smtp_client_rcpt_ok(&job->msg.rcpts[i])) {
			job->code[i] = 553;
			why = "553 5.1.3 recipient address not usable in SMTP";
		} else {
			job->code[i] = 451;
			why = "451 4.3.0 another recipient of this transaction was refused; "
			      "trying again without it";
		}
		free(job->text[i]);
		job->text[i] = strdup(why);
	}
	dmta_warn("%s: message %llu: envelope refused by the SMTP engine; not sent",
		  job->sjob.domain, (unsigned long long)job->sjob.qid);
	job->connected = true;
	job->local = true;
	job->mx[0] = job->ip[0] = job->tls[0] = '\0';
	pool->done(pool->ctl, job);
	return true;
}

int dmta_pool_submit(struct dmta_pool *pool, struct dmta_job *job)
{
	struct pool_dest *d;

	if (pool->draining)
		return -ESHUTDOWN;
	d = dest_get(pool, job->sjob.pool_key ? job->sjob.pool_key : job->sjob.domain, job->src);
	if (d == NULL)
		return -ENOMEM;
	job->reply[0] = '\0';
	job->local = false;
	ST_ADD(pool, jobs, 1);
	if (job_refused_here(pool, job))
		return 0;
	ST_ADD(pool, busy, 1);
	job->wait_next = NULL;
	if (d->wait_tail != NULL)
		d->wait_tail->wait_next = job;
	else
		d->wait_head = job;
	d->wait_tail = job;
	dest_kick(pool, d);
	return 0;
}

uint64_t dmta_pool_next_deadline(const struct dmta_pool *pool)
{
	uint64_t first = UINT64_MAX;

	for (const struct pool_conn *c = pool->conns; c != NULL; c = c->next)
		if (c->deadline_ns != 0 && c->deadline_ns < first)
			first = c->deadline_ns;
	return first;
}

void dmta_pool_tick(struct dmta_pool *pool)
{
	uint64_t now = pool_now(pool);
	struct pool_conn *c, *next;

	for (c = pool->conns; c != NULL; c = next) {
		next = c->next;
		if (c->deadline_ns == 0 || c->deadline_ns > now)
			continue;
		c->deadline_ns = 0;
		if (c->st == CONN_CONNECTING) {
			ST_ADD(pool, connect_failed, 1);
			if (c->job_until != 0 &&
			    now >= c->job_until) /* no address after this one */
				c->host_i = c->job->route->dest->n_hosts;
			conn_next_addr(c, "connect: timed out");
		} else if (c->job == NULL && smtp_session_ready(c->s) && c->msgs < c->max_msgs) {
			idle_remove(c);
			c->job = NULL;
			/* Keep it off the idle list while it says goodbye. */
			c->max_msgs = c->msgs;
			smtp_session_quit(c->s);
			conn_flush(c);
			conn_arm(c);
		} else {
			smtp_session_timeout(c->s);
			if (conn_events(c)) {
				conn_flush(c);
				conn_arm(c);
			}
		}
		/* A callback may have freed connections after c: start over. */
		next = pool->conns;
		now = pool_now(pool);
	}
}

void dmta_pool_drain(struct dmta_pool *pool)
{

	pool->draining = true;
	for (struct pool_dest *d = pool->dests; d != NULL; d = d->next) {
		dest_kick(pool, d); /* fails what waits */
		while (d->idle != NULL) {
			struct pool_conn *c = d->idle;

			idle_remove(c);
			c->max_msgs = c->msgs;
			smtp_session_quit(c->s);
			conn_flush(c);
			conn_arm(c);
		}
	}
}

unsigned dmta_pool_busy(const struct dmta_pool *pool)
{
	uint64_t conns = pool->st.conns, busy = pool->st.busy;

	/* Every job has its connection, so once draining the connections
	 * still open are the jobs and the sessions saying goodbye. */
	return (unsigned)(pool->draining && conns > busy ? conns : busy);
}

void dmta_pool_read_stats(const struct dmta_pool *pool, struct dmta_pool_stats *st)
{
	st->conns = __atomic_load_n(&pool->st.conns, __ATOMIC_RELAXED);
	st->connecting = __atomic_load_n(&pool->st.connecting, __ATOMIC_RELAXED);
	st->idle = __atomic_load_n(&pool->st.idle, __ATOMIC_RELAXED);
	st->busy = __atomic_load_n(&pool->st.busy, __ATOMIC_RELAXED);
	st->opened = __atomic_load_n(&pool->st.opened, __ATOMIC_RELAXED);
	st->connect_failed = __atomic_load_n(&pool->st.connect_failed, __ATOMIC_RELAXED);
	st->jobs = __atomic_load_n(&pool->st.jobs, __ATOMIC_RELAXED);
	st->reused = __atomic_load_n(&pool->st.reused, __ATOMIC_RELAXED);
}

void dmta_pool_foreach_conn(struct dmta_pool *pool, void (*fn)(void *arg, struct dmta_pool_conn *c),
			    void *arg)
{
	for (struct pool_conn *c = pool->conns; c != NULL; c = c->next)
		if (c->open)
			fn(arg, &c->xc);
}

void dmta_pool_free(struct dmta_pool *pool)
{
	if (pool == NULL)
		return;
	pool->draining = true; /* closing connections start no waiting job */
	while (pool->conns != NULL) {
		struct pool_conn *c = pool->conns;

		if (c->job != NULL) {
			struct dmta_job *job = c->job;

			c->job = NULL;
			job->local = true;
			job_finish(pool, job, false, "dmtad stopped during delivery");
		}
		conn_free(c);
	}
	while (pool->dests != NULL) {
		struct pool_dest *d = pool->dests;

		pool->dests = d->next;
		free(d->domain);
		free(d);
	}
	free(pool->helo);
	free(pool);
}

/* The keys dmta_pool_conf_load() reads, with the CA files beside the pool's own. */
struct pool_keys {
	struct dmta_pool_conf pc;
	const char *smtp_ca, *relay_ca;
};

#define POOL(m) DMTA_CONF_AT(struct pool_keys, m)
static const struct dmta_conf_key smtp_keys[] = {
    {.name = "helo_name",
     .type = DMTA_CONF_STR,
     .example = "mail.example.org",
     POOL(pc.helo_name),
     .help = "EHLO name (default: [queue] myhostname)"},
    {.name = "ca_file",
     .type = DMTA_CONF_STR,
     .example = "/etc/ssl/certs/ca-certificates.crt",
     POOL(smtp_ca),
     .help = "CA bundle for verification (default: the system's)"},
    {.name = "connect_timeout",
     .type = DMTA_CONF_DURATION,
     .def = "30s",
     .min = 100,
     .max = DMTA_CONF_MIN(10),
     POOL(pc.connect_timeout_ms)},
    {.name = "idle_timeout",
     .type = DMTA_CONF_DURATION,
     .def = "5s",
     .max = DMTA_CONF_HOUR(1),
     POOL(pc.idle_ms),
     .help = "idle sessions are kept this long for the next message to the same place"},
    {.name = "transaction_timeout",
     .type = DMTA_CONF_DURATION,
     .def = "30m",
     .max = DMTA_CONF_DAY(1),
     POOL(pc.job_timeout_ms),
     .help = "a whole delivery attempt, connecting included, ends after this long\n"
	     "however slowly the server answers (0: no limit)"},
};

const struct dmta_conf_section dmta_pool_conf_section = {
    .name = "smtp",
    .keys = smtp_keys,
    .nkeys = DMTA_CONF_NKEYS(smtp_keys),
};

static const struct dmta_conf_key relay_keys[] = {
    {.name = "ca_file",
     .type = DMTA_CONF_STR,
     .example = "/etc/ssl/certs/ca-certificates.crt",
     POOL(relay_ca),
     .help = "(default: [smtp] ca_file)"},
};

const struct dmta_conf_section dmta_pool_relay_conf_section = {
    .name = "relay",
    .keys = relay_keys,
    .nkeys = DMTA_CONF_NKEYS(relay_keys),
};

int dmta_pool_conf_load(const struct dmta_conf *conf, struct dmta_pool_conf *pc, char *helo,
			size_t helo_len, const char **ca_file)
{
	struct pool_keys k;

	memset(&k, 0, sizeof(k));
	if ((dmta_conf_read(conf, &dmta_pool_conf_section, &k) |
	     dmta_conf_read(conf, &dmta_pool_relay_conf_section, &k)) != 0)
		return -EINVAL;
	*pc = k.pc;
	if (pc->helo_name != NULL && pc->helo_name[0] != '\0')
		snprintf(helo, helo_len, "%s", pc->helo_name);
	else
		queue_myhostname(conf, helo, helo_len);
	pc->helo_name = helo;
	*ca_file = k.relay_ca != NULL ? k.relay_ca : k.smtp_ca;
	return 0;
}

struct dmta_pool *dmta_pool_new(const struct dmta_pool_conf *pc, const struct dmta_pool_xport *xp,
				dmta_job_done_fn *done, void *ctl)
{
	struct dmta_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->conf = *pc;
	pool->xp = *xp;
	pool->helo = strdup(pc->helo_name);
	if (pool->helo == NULL) {
		free(pool);
		errno = ENOMEM;
		return NULL;
	}
	pool->conf.helo_name = pool->helo;
	pool->done = done;
	pool->ctl = ctl;
	return pool;
}
