/*
 * queue_ctl.h - the queue's part of the daemon's control thread: the
 * spool, the scheduler and bounces wired together.
 *
 * SYNOPSIS
 *	qc = queue_ctl_open(conf, now, err, sizeof(err));
 *	epoll on queue_ctl_wake_fd(qc);  on readable: queue_ctl_on_wake(qc, now);
 *	loop:
 *		queue_ctl_tick(qc, now);
 *		n = queue_ctl_jobs(qc, now, jobs, max);   -> to the workers
 *		queue_ctl_result(qc, &job, &res, now);    <- from the workers
 *		queue_ctl_commit(qc);                     (once per loop turn)
 *	queue_ctl_close(qc);
 *
 * DESCRIPTION
 *	At open, every message with recipients still to deliver is loaded
 *	from the spool into the scheduler. Injectors wake the daemon through
 *	the spool's datagram socket: "wake" (new messages: loaded from the
 *	highest queue id seen on), "flush [DOMAIN]" (retry now), "sync"
 *	(dmta-queue changed holds or deleted messages: the scheduler is
 *	brought in line with the spool).
 *
 *	What the scheduler decides (new recipient states and replies, backoff,
 *	DSNs, removal of finished messages) is written into one open write
 *	transaction and made durable by queue_ctl_commit(): results are
 *	committed in batches, and a DSN is queued in the same transaction
 *	that records the failure it reports. A DSN is an ordinary spooled
 *	message, picked up after the commit.
 *
 *	Between a change and queue_ctl_commit() the spool's writer lock is
 *	held (injectors wait for it), so the loop commits once per turn, and
 *	nothing else in this process may write the spool meanwhile (LMDB's
 *	writer lock is not recursive).
 *
 *	If a commit fails, the spool keeps its older state and the messages
 *	concerned are tried again after a restart: mail may be delivered
 *	twice, never lost.
 *
 * DIAGNOSTICS
 *	queue_ctl_open: NULL + errno and one line in @p err. Others: 0 or
 *	-errno (logged).
 */
#ifndef QUEUE_CTL_H
#define QUEUE_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "queue/queue_sched.h"
#include "queue/spool.h"

struct dmta_conf;
struct queue_ctl;

struct queue_ctl *queue_ctl_open(const struct dmta_conf *conf, uint64_t now_ns, char *err,
				 size_t errlen);
void queue_ctl_close(struct queue_ctl *qc);

int queue_ctl_wake_fd(const struct queue_ctl *qc);
/** Drain the wake socket and act on what it says. Count of datagrams or -errno. */
int queue_ctl_on_wake(struct queue_ctl *qc, uint64_t now_ns);
/** Load messages spooled since the last load. Count or -errno. */
int queue_ctl_load_new(struct queue_ctl *qc, uint64_t now_ns);
/** Bring holds and deletions made behind the daemon's back into the scheduler. */
int queue_ctl_sync(struct queue_ctl *qc, uint64_t now_ns);
/** The same for any spool and scheduler pair (dmtad's control thread). */
int queue_sync(struct spool *sp, struct queue_sched *s, uint64_t now_ns);

int queue_ctl_tick(struct queue_ctl *qc, uint64_t now_ns);
int queue_ctl_jobs(struct queue_ctl *qc, uint64_t now_ns, struct queue_job *jobs, int max);
int queue_ctl_result(struct queue_ctl *qc, struct queue_job *job, const struct queue_result *res,
		     uint64_t now_ns);
/** Make every change since the last commit durable, then load new DSNs. */
int queue_ctl_commit(struct queue_ctl *qc, uint64_t now_ns);

struct spool *queue_ctl_spool(struct queue_ctl *qc);
struct queue_sched *queue_ctl_sched(struct queue_ctl *qc);

#endif
