/*
 * dmta_control.h - the control thread: spool, schedule, DNS, bounces and
 *	the delivery log, around a delivery backend.
 *
 * SYNOPSIS
 *	ctl = dmta_control_new(conf, make, make_arg, shards, err, sizeof(err));
 *	rc = dmta_control_run(ctl, stop_fd);
 *	dmta_control_free(ctl);
 *
 * DESCRIPTION
 *	One thread, one epoll loop (dmta_loop.h), no blocking: it sleeps until
 *	an injector's wake-up datagram (or dmta-queue flush), a DNS socket, a
 *	backend socket, the next scheduled attempt, or stop_fd.
 *
 *	The spool, the schedule and the DSNs are queue_ctl's (queue_ctl.h): it
 *	loads new mail, hands out due jobs, takes their results and commits
 *	every change in one transaction at the end of the turn. This module
 *	adds what is not the queue's: each due job's destination is resolved
 *	(from the DNS cache, or by a query that the jobs for that domain wait
 *	on together), the job is handed to the delivery backend, and the
 *	delivery log gets one line per recipient per attempt (and per
 *	recipient whose lifetime ran out).
 *
 *	SIGHUP on stop_fd reloads the configuration (dmta_control_reload()).
 *	Any other signal there: the backend is drained (idle sessions quit; jobs in flight
 *	get up to [control] stop_timeout to finish), the last changes are
 *	committed and everything is freed. Messages still undelivered stay in
 *	the spool for the next start.
 *
 *	Configuration: [spool], [queue] and [dest ...] (scheduler), [dns],
 *	[routes], [relay] (destinations), and:
 *	  [smtp]  helo_name (hostname), tls (opportunistic|none|required),
 *	          ca_file, connect_timeout (30s), idle_timeout (5s),
 *	          transaction_timeout (30min), allow_private_mx (no: exchangers
 *	          from DNS or address literals on loopback, private or other
 *	          non-public addresses are skipped; [routes] and [relay]
 *	          hosts are always used). tls = required towards MX hosts
 *	          insists on STARTTLS but verifies no certificate (MX names
 *	          are not authenticated without DANE or MTA-STS): it keeps
 *	          passive eavesdroppers out, not an active attacker.
 *	  [relay] tls (required, or implicit for port 465, or none; not
 *	          opportunistic, which would fall back to plaintext), verify (yes),
 *	          user, password_file, auth_plaintext (no), ca_file
 *	  [log]   delivery (SPOOL/delivery.log), delivery_max_size (100M),
 *	          delivery_keep (5)
 *	  [control] stop_timeout (10s), stats_interval (1s; 0: off),
 *	          max_jobs (10000) and max_job_bytes (512M): jobs out at
 *	          once (waiting for DNS or in the backend) and their message
 *	          bytes, each job holding a copy. At the bound no job is
 *	          handed out until some come back (back-pressure; the bytes
 *	          bound may be passed by one message).
 *
 *	The live view (dmta_stats.h): dmta_control_new() takes the spool's
 *	daemon lock (SPOOL/dmtad.pid; a second dmtad on the same spool is
 *	refused), and every stats_interval the loop takes a snapshot (the
 *	scheduler's queue, jobs out, delivery counters and rate, DNS cache, the
 *	backend's per-worker sessions and TCP retransmissions) and writes it
 *	to SPOOL/dmtad.stats, and hands it to the backend's publish() (DPDK
 *	telemetry's /dmta/control). The file is removed at a clean stop.
 *
 *	Metrics (dmta_metrics.h): with [metrics] listen, each view is also
 *	formatted as Prometheus text (with the counters the view lacks: routes,
 *	status classes, the spool commit histogram, and the backend's own
 *	families) and handed to the metrics server's thread; the view is then
 *	taken at least once a second.
 *
 *	Delivery events (dmta_events.h): with [events] url, each reception,
 *	attempt outcome, expiry and delay warning is also an event, written
 *	and synced to SPOOL/events before the turn's spool commit, and posted
 *	by a thread of its own.
 *
 * DIAGNOSTICS
 *	dmta_control_new() returns NULL with one line in err.
 */
#ifndef DMTA_CONTROL_H
#define DMTA_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/dmta_conf.h"
#include "queue/queue_ctl.h"

struct dmta_control;

struct dmta_control_stats {
	uint64_t jobs;		      /* jobs handed to the backend (or settled by DNS) */
	uint64_t attempts;	      /* recipient attempts (delivered, deferred or bounced) */
	uint64_t delivered;	      /* recipients */
	uint64_t deferred;	      /* recipient attempts */
	uint64_t bounced;	      /* recipients refused for good by an attempt (5xx, DNS) */
	uint64_t inflight;	      /* gauge: jobs made and not done (DNS, backend) */
	uint64_t inflight_bytes;      /* gauge: their message bytes, held in memory */
	uint64_t throttled;	      /* turns that stopped at max_jobs/max_job_bytes */
	struct queue_ctl_stats queue; /* loading, expiry, DSNs and commits */
};

struct dmta_backend;
struct dmta_loop;
struct dmta_job;

/**
 * Makes the control thread's delivery backend from @p arg, the instance
 * its maker passed to dmta_control_new(): NULL with errno. The backend's
 * free() runs once, from dmta_control_free(), and gives back every job it
 * still holds through @p done.
 */
typedef struct dmta_backend *dmta_backend_new_fn(void *arg, struct dmta_loop *loop,
						 void (*done)(void *ctl, struct dmta_job *job),
						 void *ctl);

/**
 * @p make: the delivery backend, made from @p make_arg (NULL: kernel
 * sockets). @p shards: the workers destinations are spread over (0:
 * [queue] workers).
 */
struct dmta_control *dmta_control_new(const struct dmta_conf *conf, dmta_backend_new_fn *make,
				      void *make_arg, unsigned shards, char *err, size_t errlen);

/** Run until @p stop_fd is readable (a signalfd); 0 or -errno. */
int dmta_control_run(struct dmta_control *ctl, int stop_fd);

/**
 * Read the configuration file again and apply what can change while we
 * run (a SIGHUP on stop_fd does this between two turns): [routes], [relay]
 * host, user, password and TLS, [smtp] tls, [queue] and [dest DOMAIN]
 * limits and retry settings, [log], [control]. What was built at start
 * (dmta_reload.h) is kept, and named in one warning line. A file that does
 * not read, or has a bad value anywhere, is refused whole with one error
 * line, and the running configuration stays. Sessions and jobs are not
 * touched: jobs out finish under the settings they were given. 0 or
 * -EINVAL (refused).
 */
int dmta_control_reload(struct dmta_control *ctl);

void dmta_control_get_stats(const struct dmta_control *ctl, struct dmta_control_stats *st);

void dmta_control_free(struct dmta_control *ctl);

#endif
