/*
 * dmta_pool.h - SMTP sessions per destination, over any byte transport.
 *
 * SYNOPSIS
 *	pool = dmta_pool_new(&pc, &xport, done, ctl);
 *	dmta_pool_submit(pool, job);
 *	transport news:  dmta_pool_connected(c)  dmta_pool_failed(c, err)
 *	                 dmta_pool_readable(c)   dmta_pool_writable(c)
 *	timers:          dmta_pool_tick(pool)    dmta_pool_next_deadline(pool)
 *	dmta_pool_drain(pool); dmta_pool_free(pool);
 *	dmta_pool_read_stats(pool, &st);          (from any thread)
 *
 * DESCRIPTION
 *	The delivery logic that does not care what carries the bytes: a job
 *	goes to an idle session of its destination when there is one
 *	(connection reuse, up to the job's messages-per-connection limit), else
 *	to a new connection. A destination is a (domain, source address)
 *	pair: a session opened from one source address never carries a job
 *	that is to leave from another, and connections are counted per
 *	source (the limits are per (source, destination)). A source address
 *	the transport cannot use fails the job at once, as a local failure. Connecting walks the
 *destination's hosts and their addresses in order (MX failover): a refused or timed-out connection,
 *or a session that fails before it is ready (a 421 greeting, a TLS failure), moves on to the next
 *address. Idle sessions are closed with QUIT after idle_ms. A destination has at most the job's
 *	max_connections connections, those still saying goodbye (QUIT,
 *	close_notify) included, for the receiver counts them too: a job
 *	that finds none idle and the limit reached waits in the pool until
 *	one goes idle or closes.
 *
 *	The transport (kernel sockets in the control thread, the userspace TCP
 *	on a worker lcore) opens, reads, writes and closes, and tells the pool
 *	what happened through the four dmta_pool_*() calls above; the pool
 *	calls done() once for every job it took. One pool belongs to one
 *	thread. Each of the four calls may close the connection (the
 *	transport's close() runs first): after one of them returns, the
 *	transport must not touch that connection again for the same event;
 *	dmta_pool_connected() also reads and writes what it can, so one call
 *	per event is always enough.
 *
 *	Deadlines: each wait of the SMTP engine (a reply, room to write body
 *	bytes) runs from when it begins, and only a whole reply or body bytes
 *	taken start it again, so a server that sends a byte every few minutes
 *	still times out; and a whole job, connecting included, ends after
 *	job_timeout_ms ([smtp] transaction_timeout, 30 min) whatever the
 *	server does. What our own side cannot do (the engine refuses an
 *	address or ENVID, no memory) fails the job with job->local set and
 *	no connection: it is not the destination's failure.
 *
 *	Its counters (struct dmta_pool_stats) are written by the pool's thread
 *	alone, each as one relaxed 64-bit atomic store (a plain store on the
 *	machines we run on: no lock, no fence), so that another thread may
 *	read them with dmta_pool_read_stats() while a worker runs the pool.
 */
#ifndef DMTA_POOL_H
#define DMTA_POOL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/base/dmta_conf.h"
#include "core/control/dmta_job.h"
#include "smtp/smtp_tls.h"

struct dmta_pool;

/** A connection as the transport sees it: its handle lives in xh/fd. */
struct dmta_pool_conn {
	void *xh; /* the transport's handle (e.g. a struct tcp_conn *) */
	int fd;	  /* or its file descriptor, -1 when none */
};

struct dmta_pool_xport {
	/** Start connecting @p c from local address @p src (0: the transport's
	 *  default) to @p a; later dmta_pool_connected() or dmta_pool_failed().
	 *  0, or -errno when it failed at once: -EADDRNOTAVAIL when @p src
	 *  (not 0) cannot be used here, which no other destination address
	 *  would change. The connection is then watched for writability, as
	 *  if want_write(true) had been called. */
	int (*connect)(void *x, struct dmta_pool_conn *c, struct in_addr src, struct in_addr a,
		       uint16_t port);
	/** Bytes taken (maybe fewer than offered), -EAGAIN (dmta_pool_writable()
	 *  follows), or -errno. */
	ssize_t (*writev)(void *x, struct dmta_pool_conn *c, const struct iovec *iov, int n);
	/** Bytes read, 0 at end of stream, -EAGAIN, or -errno. */
	ssize_t (*read)(void *x, struct dmta_pool_conn *c, void *buf, size_t n);
	/** Whether dmta_pool_writable() is wanted. Taken as on after connect()
	 *  until the pool first turns it off. */
	void (*want_write)(void *x, struct dmta_pool_conn *c, bool on);
	/** Close (gracefully when @p graceful) and forget the handle. */
	void (*close)(void *x, struct dmta_pool_conn *c, bool graceful);
	/** Monotonic nanoseconds. */
	uint64_t (*now_ns)(void *x);
	void *x;
};

struct dmta_pool_conf {
	const char *helo_name;
	uint64_t connect_timeout_ms; /* per address */
	uint64_t idle_ms;	     /* idle session lifetime */
	uint64_t job_timeout_ms;     /* a whole job, connecting included; 0: none */
	struct smtp_tls_ctx *tls_ctx;
	smtp_trace_fn *trace; /* SMTP conversation trace, or NULL */
};

/** [smtp] and [relay]: the keys below. */
extern const struct dmta_conf_section dmta_pool_conf_section;
extern const struct dmta_conf_section dmta_pool_relay_conf_section;

/**
 * The [smtp] settings every pool shares, wherever it runs (see the table in
 * dmta_pool.c): helo_name (default: queue_myhostname(), written into
 * @p helo), connect_timeout, idle_timeout and transaction_timeout; and the
 * CA file for verification ([relay] ca_file, else [smtp] ca_file, else
 * NULL for the system's) into *@p ca_file. tls_ctx and trace are the
 * caller's. 0 or -EINVAL (logged).
 */
int dmta_pool_conf_load(const struct dmta_conf *conf, struct dmta_pool_conf *pc, char *helo,
			size_t helo_len, const char **ca_file);

/** NULL with errno. The configuration is copied (helo_name too). */
struct dmta_pool *dmta_pool_new(const struct dmta_pool_conf *pc, const struct dmta_pool_xport *xp,
				dmta_job_done_fn *done, void *ctl);
/** Fail what is in progress ("stopped"), close everything, free. */
void dmta_pool_free(struct dmta_pool *pool);

/** Take a job: 0, or -errno (not taken). */
int dmta_pool_submit(struct dmta_pool *pool, struct dmta_job *job);

void dmta_pool_connected(struct dmta_pool_conn *c);
void dmta_pool_failed(struct dmta_pool_conn *c, int err);
void dmta_pool_readable(struct dmta_pool_conn *c);
void dmta_pool_writable(struct dmta_pool_conn *c);

/** Run due deadlines (connect, SMTP, idle). */
void dmta_pool_tick(struct dmta_pool *pool);
/** The earliest deadline (monotonic ns), or UINT64_MAX. */
uint64_t dmta_pool_next_deadline(const struct dmta_pool *pool);
/** Quit idle sessions and take no more jobs. */
void dmta_pool_drain(struct dmta_pool *pool);
/** Jobs in progress; after dmta_pool_drain(), also the sessions still
 *  saying goodbye (QUIT, close_notify), so that waiting for zero lets them. */
unsigned dmta_pool_busy(const struct dmta_pool *pool);

struct dmta_pool_stats {
	uint64_t conns;		 /* gauge: connections (connecting, in SMTP, closing) */
	uint64_t connecting;	 /* gauge: ... of which connecting */
	uint64_t idle;		 /* gauge: ... of which idle, waiting for a job */
	uint64_t busy;		 /* gauge: jobs in progress */
	uint64_t opened;	 /* connections started (each address tried) */
	uint64_t connect_failed; /* ... that failed: refused, timed out, unreachable */
	uint64_t jobs;		 /* jobs taken */
	uint64_t reused;	 /* ... that went to an idle session */
};

/** A copy of @p pool's counters; from any thread (a little stale at worst). */
void dmta_pool_read_stats(const struct dmta_pool *pool, struct dmta_pool_stats *st);

/** Call @p fn for every connection the transport holds (the pool's thread only). */
void dmta_pool_foreach_conn(struct dmta_pool *pool, void (*fn)(void *arg, struct dmta_pool_conn *c),
			    void *arg);

#endif
