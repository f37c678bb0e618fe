/*
 * queue_ctl.h - the queue's half of dmtad's control thread: the spool, the
 *	scheduler and DSNs wired together, committed in groups.
 *
 * SYNOPSIS
 *	qc = queue_ctl_open(conf, shards, &hooks, now, err, sizeof(err));
 *	(take the daemon's lock on queue_ctl_spool(qc) here)
 *	queue_ctl_start(qc, now, err, sizeof(err));
 *	epoll on queue_ctl_wake_fd(qc);  on readable: queue_ctl_on_wake(qc, now);
 *	each turn of the loop:
 *		queue_ctl_tick(qc, now);		    (loads new mail first)
 *		n = queue_ctl_jobs(qc, now, jobs, max);	    -> the delivery backend
 *		queue_ctl_result(qc, &job, &res, now);	    <- its outcomes
 *		queue_ctl_commit_async(qc, now);	    (once, at the end)
 *	sleep no longer than queue_ctl_next_due(); not at all while
 *	queue_ctl_pending(qc).
 *	queue_ctl_commit(qc, now);			    (at the end: synchronous)
 *	queue_ctl_close(qc);
 *
 * DESCRIPTION
 *	This is the one place where the daemon changes its spool. At open,
 *	every message with recipients still to deliver is loaded into the
 *	scheduler. Injectors and dmta-queue wake the daemon through the
 *	spool's datagram socket: "wake" (new messages: loaded by queue id
 *	from the highest seen), "flush [DOMAIN]" (retry now), "sync" (holds,
 *	releases or deletions made by dmta-queue: the scheduler is brought in
 *	line with the spool).
 *
 *	What the scheduler decides (recipient states and replies, backoff,
 *	failure DSNs, delay DSNs, removal of finished messages) is kept in
 *	memory, in order, and written by queue_ctl_commit() in one write
 *	transaction (group commit). The spool's writer lock is therefore held
 *	only while a commit runs, so injectors are not held up by a turn of
 *	the loop. A DSN is an ordinary spooled message, written in the same
 *	transaction as the change that caused it and scheduled after the
 *	commit.
 *
 *	The loop does not wait for the disk: queue_ctl_commit_async() hands
 *	what is pending to a committer thread and returns, and the loop goes
 *	on handing out jobs and taking results, which make the next batch
 *	(two lists: one being written, one being filled). When the commit is
 *	durable the committer says "committed" on the wake socket, and the
 *	control thread takes the batch back (in queue_ctl_on_wake() or at its
 *	next commit call): counters, DSNs to load, messages found gone. Only
 *	the committer and the control thread's synchronous commits write, one
 *	transaction at a time; LMDB's writer lock orders them with the SMTP
 *	listener's and the injectors' commits in the same environment.
 *	queue_ctl_commit() waits for a batch that is out, then writes the rest
 *	in the caller's thread (tests, shutdown). Batches are handed over at
 *	most one per 5 ms (sooner when a transaction's worth waits): a commit
 *	costs a flush of the disk whatever it holds, and what it writes was
 *	acknowledged to no one (a crash in between delivers twice, loses
 *	nothing).
 *
 *	DSNs (RFC 3464) are addressed to the envelope sender, never to <> or
 *	for a DSN. Failures are reported when the scheduler says a recipient
 *	failed for good (a 5xx reply, a DNS verdict, or the [queue] lifetime);
 *	a "delayed" warning is sent once per message whose recipients are
 *	still deferred [queue] delay_warning after arrival (0: never). Both
 *	name [queue] myhostname as the reporting MTA; their text for people
 *	comes from [queue] bounce_template / delay_template when set.
 *
 *	Invariants: nothing is acknowledged here (the injectors acknowledge
 *	after their own commit). Delivery results are not acknowledgements:
 *	the scheduler moves on before they are durable, so a crash may lose
 *	the removal of a delivered message or a deferral's new state, never a
 *	message: after a restart the message is still spooled and is tried
 *	again (delivered twice at worst). A failure DSN is written in the same
 *	transaction as the bounce it reports. If a commit fails (disk or LMDB map full),
 *	nothing of it is written and nothing is dropped: the changes stay
 *	pending, in order, and are written with later ones at the next
 *	commit after a pause (0.5 s, doubling to 30 s); meanwhile
 *	queue_ctl_jobs() hands out no job, so no delivery happens whose
 *	outcome cannot be recorded. Only if dmtad stops before a commit
 *	succeeds is the spool behind the scheduler: after a restart the
 *	messages concerned are tried again, so mail may be delivered twice,
 *	never lost. A message deleted behind the daemon's back is forgotten by the
 *	scheduler when a change to it finds it gone.
 *
 * DIAGNOSTICS
 *	queue_ctl_open: NULL + errno and one line in @p err. Others: 0, a
 *	count, or -errno (logged).
 */
#ifndef QUEUE_CTL_H
#define QUEUE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue_sched.h"
#include "queue/spool.h"

struct dmta_conf;
struct queue_ctl;
struct queue_egress;

/** Its part of [queue]: bounce_template, delay_template. */
extern const struct dmta_conf_section queue_ctl_conf_section;

struct queue_ctl_hooks {
	/**
	 * Optional: recipients @p rcpt[0..n) of @p env failed for good with no
	 * attempt to report it (their lifetime ran out); for the delivery log.
	 */
	void (*expired)(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n);
	/**
	 * Optional: @p env was taken into the scheduler (new mail, or the
	 * spool's at start); @p msg and @p len are its bytes (NULL if they
	 * could not be read), valid during the call. For delivery events.
	 */
	void (*loaded)(void *ctx, const struct queue_env *env, const void *msg, size_t len);
	/** Optional: a delay warning is queued for recipients @p rcpt[0..n) of @p env. */
	void (*delayed)(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n);
	void *ctx;
};

struct queue_ctl_stats {
	uint64_t loaded;  /* messages read from the spool into the scheduler */
	uint64_t expired; /* recipients failed for good by lifetime */
	uint64_t dsns;	  /* failure DSNs queued */
	uint64_t delays;  /* delay DSNs queued */
	uint64_t commits; /* spool transactions */
	uint64_t commit_errors;
	uint64_t last_commit_ns; /* how long the last one took (handover to durable) */
};

/**
 * Open the spool ([spool]) and make the scheduler ([queue], [dest ...])
 * with @p shards shards (0: [queue] workers). @p hooks may be NULL.
 */
struct queue_ctl *queue_ctl_open(const struct dmta_conf *conf, unsigned shards,
				 const struct queue_ctl_hooks *hooks, uint64_t now_ns, char *err,
				 size_t errlen);
/**
 * Listen for wake-ups and load the spool into the scheduler. Apart from
 * open so that the caller can first make sure it is the spool's only
 * daemon. 0, or -errno with one line in @p err.
 */
int queue_ctl_start(struct queue_ctl *qc, uint64_t now_ns, char *err, size_t errlen);
/** Commit what is pending, then close everything. */
void queue_ctl_close(struct queue_ctl *qc);

int queue_ctl_wake_fd(const struct queue_ctl *qc);
/** Drain the wake socket and act on what it says. Count of datagrams or -errno. */
int queue_ctl_on_wake(struct queue_ctl *qc, uint64_t now_ns);
/** Load messages spooled since the last load. Count or -errno. */
int queue_ctl_load_new(struct queue_ctl *qc, uint64_t now_ns);
/** Bring holds and deletions made behind the daemon's back into the scheduler. */
int queue_ctl_sync(struct queue_ctl *qc, uint64_t now_ns);

/** Load new mail if a wake-up or a DSN asked for it, then let the scheduler move on. */
int queue_ctl_tick(struct queue_ctl *qc, uint64_t now_ns);
int queue_ctl_jobs(struct queue_ctl *qc, uint64_t now_ns, struct queue_job *jobs, int max);
/** The outcome of a job from queue_ctl_jobs(); the job is gone afterwards. */
int queue_ctl_result(struct queue_ctl *qc, struct queue_job *job, const struct queue_result *res,
		     uint64_t now_ns);
/** Wait for a batch that is out, then make every change since durable in
 *  one transaction, in this thread. 0 or -errno: then they stay pending;
 *  -EAGAIN: too soon after a failure. */
int queue_ctl_commit(struct queue_ctl *qc, uint64_t now_ns);

/**
 * Hand the changes since the last commit (up to a transaction's worth) to
 * the committer thread and return at once; take back a batch it has
 * finished. Nothing is handed over while a batch is out: what comes
 * meanwhile goes with the next one, and nothing sooner than 5 ms after the
 * last handover (queue_ctl_next_due() says when). 0, or -EAGAIN too soon
 * after a failure.
 */
int queue_ctl_commit_async(struct queue_ctl *qc, uint64_t now_ns);

/** True when changes can be committed now or new mail waits to be loaded
 *  (not while a batch is out: its "committed" wakes the loop). */
bool queue_ctl_pending(const struct queue_ctl *qc);
/** When the next message or the held commit becomes due (wall clock ns;
 *  UINT64_MAX: none). */
uint64_t queue_ctl_next_due(const struct queue_ctl *qc);

struct spool *queue_ctl_spool(struct queue_ctl *qc);
struct queue_sched *queue_ctl_sched(struct queue_ctl *qc);
/** The egress sources and pools ([source], [pool]) the scheduler picks from. */
struct queue_egress *queue_ctl_egress(struct queue_ctl *qc);
void queue_ctl_get_stats(const struct queue_ctl *qc, struct queue_ctl_stats *st);

#endif
