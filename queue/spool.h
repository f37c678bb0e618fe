/*
 * spool.h - the durable message spool in LMDB.
 *
 * SYNOPSIS
 *	sp = spool_open(&(struct spool_opts){ .path = dir, .create = true });
 *	spool_begin(sp, true, &t);
 *	spool_put(t, &env, bytes, len);   (many per transaction: group commit)
 *	spool_commit(t);                  (durable on return; then acknowledge)
 *	spool_close(sp);
 *
 * DESCRIPTION
 *	One LMDB environment in the spool directory (data.mdb, lock.mdb) with
 *	named databases for message bytes, envelopes, metadata and
 *	quarantined records; queue/FORMAT.md documents them. There is no
 *	index: readers walk the envelopes (spool_foreach_from()) and keep
 *	what they need in memory, as the daemon's scheduler does.
 *
 *	The daemon and any number of short-lived injectors may open the spool
 *	at once: LMDB serialises writers with a process-shared robust mutex,
 *	so an injector killed while it writes leaves its transaction unseen
 *	and the lock reusable. The environment is opened with LMDB's default
 *	durability (fsync at commit; never MDB_NOSYNC), so spool_commit()
 *	returning 0 means the messages survive a crash or power loss.
 *
 *	A transaction belongs to one thread. An LMDB environment must be opened
 *	once per process.
 *
 * DIAGNOSTICS
 *	0 or -errno. -ENOSPC: map full or disk full (a temporary failure,
 *	sendmail exit 75); -EACCES / -EROFS / -ENOENT at open: the spool
 *	cannot be created (exit 73); -EBADMSG: a record failed to decode (the
 *	caller may quarantine it); -EIO: LMDB reported corruption.
 */
#ifndef QUEUE_SPOOL_H
#define QUEUE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue_env.h"

struct dmta_conf;
struct dmta_conf_section;
struct spool;
struct spool_txn;

#define SPOOL_WAKE_SOCKET    "wake.sock"
#define SPOOL_FORMAT_VERSION 2

struct spool_opts {
	const char *path;	     /* the spool directory */
	uint64_t map_size;	     /* LMDB map size; 0 means the default */
	uint64_t message_size_limit; /* what injectors accept (not enforced here) */
	bool create;		     /* create the directory (one level) and databases */
	bool readonly;		     /* MDB_RDONLY: inspection tools */
	/* The daemon's check: the directory must belong to us (or root) and
	 * not be writable by others, else whoever can write it can plant
	 * links where dmtad writes its files. */
	bool check_owner;
};

/** The [spool] keys. */
extern const struct dmta_conf_section spool_conf_section;

/**
 * Read [spool] path, map_size and message_size_limit from @p conf (NULL:
 * the defaults) into @p o; create and readonly are left alone. 0 or -EINVAL.
 */
int spool_opts_from_conf(const struct dmta_conf *conf, struct spool_opts *o);

/**
 * Open (and create) the spool. NULL + errno; errmsg gets one line. A
 * format-1 spool is read as it is when @p o is read-only, else converted
 * to the current format in the transaction that opens it.
 */
struct spool *spool_open(const struct spool_opts *o, char *errmsg, size_t errlen);
void spool_close(struct spool *sp);
const char *spool_path(const struct spool *sp);

/** Begin a read or write transaction. Writers wait for the writer lock. */
int spool_begin(struct spool *sp, bool write, struct spool_txn **out);
/** Commit and fsync; @p t is gone afterwards whatever the result. */
int spool_commit(struct spool_txn *t);
/** Abandon; nothing written is visible. */
void spool_abort(struct spool_txn *t);

/**
 * Store a new message: assigns env->qid, sets size and, when zero,
 * arrival_ns and next_attempt_ns to now. Indexes it. Not durable before
 * spool_commit().
 */
int spool_put(struct spool_txn *t, struct queue_env *env, const void *msg, size_t len);

/** Decode the envelope of @p qid (a view valid until the transaction ends). */
int spool_env_get(struct spool_txn *t, uint64_t qid, struct queue_env *env);
/** Rewrite an envelope (state changes, hold, next attempt). -ENOENT when absent. */
int spool_env_store(struct spool_txn *t, const struct queue_env *env);
/** The message bytes (a view valid until the transaction ends). */
int spool_msg_get(struct spool_txn *t, uint64_t qid, const void **p, size_t *len);
/** Remove a message: its envelope and its bytes. -ENOENT when neither is there. */
int spool_delete(struct spool_txn *t, uint64_t qid);
/** Move a bad envelope record and its bytes aside (with @p reason), log it. */
int spool_quarantine(struct spool_txn *t, uint64_t qid, const char *reason);

/**
 * Call @p fn for every message in queue id order. Records that fail to
 * decode are skipped and counted in *@p bad (logged once each). @p fn
 * returns 0 to go on, anything else stops the walk and is returned.
 */
int spool_foreach(struct spool_txn *t,
		  int (*fn)(struct spool_txn *t, const struct queue_env *env, void *arg), void *arg,
		  unsigned *bad);

/** Like spool_foreach(), from queue id @p first on (new messages since a scan). */
int spool_foreach_from(struct spool_txn *t, uint64_t first,
		       int (*fn)(struct spool_txn *t, const struct queue_env *env, void *arg),
		       void *arg, unsigned *bad);

/**
 * Up to @p max queue ids due at or before @p now_ns (not on hold), earliest
 * first. Count or -errno. A walk over every envelope, for tools and tests:
 * the daemon keeps its schedule in memory.
 */
int spool_due(struct spool_txn *t, uint64_t now_ns, uint64_t *qids, int max);
/** Up to @p max queue ids with active recipients at @p domain (any case),
 * in queue id order. Count or -errno. A walk, as spool_due(). */
int spool_by_domain(struct spool_txn *t, const char *domain, uint64_t *qids, int max);

struct spool_check_report {
	uint64_t messages;    /* envelopes that decode */
	uint64_t bad_env;     /* envelopes that do not (quarantined when repairing) */
	uint64_t orphan_msg;  /* message bytes without an envelope */
	uint64_t missing_msg; /* envelopes without message bytes */
	uint64_t size_mismatch;
	uint64_t quarantined; /* records in quarantine (after repair) */
};

/** Verify every record; with @p repair, quarantine what does not decode or
 * has lost its other half. */
int spool_check(struct spool *sp, bool repair, struct spool_check_report *rep);

struct spool_stats {
	uint64_t messages, recipients, bytes;
	uint64_t pending, deferred, delivered, bounced, held;
	uint64_t quarantined;
	uint64_t map_size, map_used;
};
int spool_get_stats(struct spool_txn *t, struct spool_stats *st);

/** Message for a spool error code (LMDB's or errno). */
const char *spool_strerror(int err);

/**
 * Ask a running daemon to look at the spool (@p what: "wake", "flush",
 * "flush DOMAIN"). 0 when sent; -ENOENT / -ECONNREFUSED when no daemon
 * listens, which is not an error for injectors.
 */
int spool_wake(const char *spool_path, const char *what);
/** The daemon's side: a bound non-blocking datagram socket, or -errno. */
int spool_wake_listen(const char *spool_path);

#endif
