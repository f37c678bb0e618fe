/*
 * dmta_job.h - what the control thread hands a delivery backend (one SMTP
 *	transaction: one message to some recipients at one destination) and
 *	what it gets back.
 *
 * DESCRIPTION
 *	The control thread fills a job (message bytes, envelope, the resolved
 *	destination, the TLS and AUTH policy) and gives it to a backend with
 *	submit(). The backend owns nothing in it but the result fields (and
 *	wait_next, its own link), which it fills before calling the control
 *	thread's done() exactly once per job: when the job is finished, or
 *	at the latest from its free(). A backend is the kernel-socket one
 *	(dmta_kbackend.h) or the DPDK workers' behind their rings
 *	(dmta_dbackend.h); both run the session pool (dmta_pool.h).
 */
#ifndef DMTA_JOB_H
#define DMTA_JOB_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dns/dns_dest.h"
#include "queue/queue_env.h"
#include "queue/queue_sched.h"
#include "smtp/smtp_client.h"

struct dmta_job;
struct dmta_stats;
struct dmta_stats_worker;

/** The destination as resolved, shared by the jobs that go there. */
struct dmta_route {
	struct dns_dest *dest;
	unsigned refs;
};

struct dmta_job_policy {
	enum smtp_tls_policy tls;
	bool tls_verify;
	const char *auth_user; /* NULL: no AUTH */
	const char *auth_pass;
	bool auth_plaintext_ok;
	/* Loopback, private, link-local and other non-public addresses may be
	 * connected to: yes for [routes] and [relay] (the operator named
	 * them), [smtp] allow_private_mx (no) for what DNS or an address
	 * literal gave, so that a hostile domain cannot aim us at ourselves. */
	bool private_ok;
};

struct dmta_job {
	/* Filled by the control thread; read-only for the backend. */
	struct queue_job sjob; /* the scheduler's job */
	struct queue_env env;  /* an owning copy of the envelope */
	struct dmta_route *route;
	void *bytes; /* the message, an owning copy */
	size_t len;
	struct smtp_chunk chunk;
	struct smtp_rcpt *rcpts; /* sjob.nrcpt of them, in job order */
	struct smtp_msg msg;	 /* what the SMTP engine sends */
	struct dmta_job_policy policy;
	struct in_addr src; /* the egress source's address; 0: the backend's default */
	uint64_t start_ns;
	struct dmta_job *wait_next; /* the pool's: waiting for a connection */

	/* Filled by the backend before done(). */
	bool connected;	 /* false: no SMTP transaction happened */
	bool local;	 /* the outcome came from here (a refusal by our own SMTP
			  * engine, a local error), not from the destination:
			  * it must not count as the destination failing */
	char reply[512]; /* the reason when !connected */
	int *code;	 /* per recipient (sjob.nrcpt) */
	char **text;	 /* per recipient, one line, owned by the job */
	char mx[256];	 /* the exchanger that answered (or was tried last) */
	char ip[48];	 /* its address */
	char tls[96];	 /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
};

/** The control thread's side: a job is finished (called once per job). */
typedef void dmta_job_done_fn(void *ctl, struct dmta_job *job);

struct dmta_backend {
	const char *name;
	/** Take a job; it comes back through done(). 0 or -errno (then not taken). */
	int (*submit)(void *be, struct dmta_job *job);
	/** Milliseconds until the backend needs tick(), -1 for none. */
	int (*next_timeout_ms)(void *be);
	/** Timeouts: connect, SMTP deadlines, idle sessions. */
	void (*tick)(void *be);
	/** Close idle sessions and stop taking jobs (shutdown). */
	void (*drain)(void *be);
	/** Jobs in progress; after drain(), also sessions still closing. */
	unsigned (*busy)(void *be);
	/** Give back every job still held, through done(), and let go of the
	 *  loop; once, from dmta_control_free(). The kernel backend frees
	 *  itself; the DPDK one stays dmtad's to free (dmta_dbackend.h). */
	void (*free)(void *be);
	/** Optional: each worker's sessions and TCP counters into @p w (at most
	 *  @p max), read without stopping anyone. How many workers. */
	unsigned (*workers)(void *be, struct dmta_stats_worker *w, unsigned max);
	/** Optional: the control thread's view, each time it is taken. */
	void (*publish)(void *be, const struct dmta_stats *s);
	/** Optional: more Prometheus families (dmta_metrics.h) into @p out,
	 *  read as workers() reads, each time the view is taken. */
	void (*metrics)(void *be, FILE *out);
	void *be;
};

#endif
