/*
 * queue_sched.h - which message goes where and when: per-destination
 * queues and limits, retries with backoff, suspension, expiry, hold.
 *
 * SYNOPSIS
 *	queue_sched_conf_load(conf, &sc);
 *	s = queue_sched_new(&sc, &ops, seed);
 *	queue_sched_add(s, env, now);            (from the spool at start, and
 *	                                          for each newly spooled message)
 *	queue_sched_tick(s, now);                (due messages, expiry)
 *	n = queue_sched_jobs(s, now, jobs, max); (delivery jobs to the workers)
 *	queue_sched_result(s, &job, &res, now);  (their outcome)
 *	queue_sched_free(s);
 *
 * DESCRIPTION
 *	The scheduler runs in the control thread and owns no I/O: the caller
 *	passes the time to every call (tests use a fake clock), and the
 *	scheduler reports what must be persisted through @p ops: store (an
 *	envelope changed), dsn (recipients that failed for good and want a
 *	DSN, once per recipient, grouped per message) and done (every
 *	recipient is final; remove the message).
 *
 *	A destination is a recipient domain (lower case) as seen from one
 *	egress source (queue_egress.h): each message's pool picks a source
 *	for each attempt, by weight. A job is one SMTP transaction: one
 *	message and up to max_recipients of its recipients at one
 *	destination. Limits per destination: max_connections (concurrent
 *	connections; QUEUE_JOBS_PER_CONNECTION jobs out for each),
 *	max_messages_per_connection (passed to the worker in the job),
 *	max_recipients (per transaction) and rate (token bucket, per second,
 *	minute, hour or day, with a burst of one second's worth and at least
 *	one). They come from [queue] dest_* keys and may be overridden per
 *	destination in a section [dest DOMAIN].
 *
 *	Sites: once DNS has answered for a destination, the control thread
 *	tells the scheduler its MX site (queue_sched_job_site()): domains
 *	whose exchangers are the same share one site per source, e.g. the
 *	thousands of domains a provider hosts. The same four limits apply per
 *	(source, site) as well: [queue] site_* (0: no limit at site level)
 *	and [site PATTERN] sections whose PATTERN (a glob, e.g.
 *	*.mail.protection.outlook.com) matches one of the site's exchangers,
 *	the first matching section in the file winning. A job needs room at
 *	both; until DNS has named a destination's site, it has one job out at
 *	a time when any site limit is configured. A destination's worker shard is FNV-1a of its name
 *until its site is known, then of (source, site), so that one site's traffic stays on one worker
 *while several sources spread a large provider (not for a smarthost: every domain would be on one
 *worker).
 *
 *	Priorities and tenants: a destination queues its items in three
 *	lanes, high, normal and bulk (the message's priority); a job is
 *	taken from the highest lane that has one, and within a lane the
 *	tenants (the message's tenant tag) take turns, one job each, so that
 *	no tenant starves another.
 *
 *	Throttling: queue_sched_throttle() suspends a job's (source, site)
 *	(its destination while the site is unknown) for a while, or lowers
 *	its rate or connections for a while, as the reply rules decide
 *	(queue_rules.h). An operator suspends a domain, a site (by MX host
 *	pattern) or a source with queue_sched_suspend() (dmta-queue suspend)
 *	until queue_sched_resume() or the given time.
 *
 *	Retries: after an attempt that leaves recipients deferred, the
 *	message's next attempt is min_backoff * 2^(attempts-1), at most
 *	max_backoff, times a random factor in [1 - jitter, 1 + jitter]
 *	(RFC 5321 section 4.5.4.1: retry in minutes at first, give up after
 *	days). A message older than lifetime (default 5 days) is expired:
 *	its remaining recipients are bounced and reported in one DSN.
 *
 *	Suspension: after suspend_after consecutive connection failures a
 *	destination is suspended for suspend_time (doubling on each renewed
 *	suspension, at most max_suspend_time); while suspended none of its
 *	messages is tried, so one dead domain burns no attempts. When the
 *	time is up one probe job goes out; success resumes the destination
 *	fully, failure suspends it again. Local failures (queue_result's
 *	local: our own SMTP engine refused an address, the spool or DNS
 *	failed here) neither count as failures nor end a suspension, so a
 *	hostile address cannot get its domain suspended for everyone.
 *
 *	Delay warnings (off by default, [queue] delay_warning): once a message
 *	has waited that long with deferred recipients, the sender gets one
 *	DSN with Action: delayed for them (RFC 3464), if NOTIFY allows it.
 *
 *	Held messages are not tried and do not expire until released.
 */
#ifndef QUEUE_SCHED_H
#define QUEUE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue_env.h"

struct dmta_conf;
struct dmta_conf_section;
struct queue_sched;

struct queue_dest_limits {
	uint32_t max_connections;
	uint32_t max_messages_per_connection;
	uint32_t max_recipients;
	uint64_t rate; /* jobs per day (DMTA_CONF_RATE), 0 = unlimited */
};

struct queue_egress;

/* The [queue] keys; their defaults and ranges are in queue_sched.c's table. */
struct queue_sched_conf {
	uint64_t min_backoff_ms;
	uint64_t max_backoff_ms;
	uint32_t jitter_pct; /* +- this % */
	uint64_t lifetime_ms;
	uint32_t suspend_after; /* consecutive connection failures */
	uint64_t suspend_ms;
	uint64_t max_suspend_ms;
	uint64_t delay_warning_ms;     /* warn the sender once after this long; 0 = never */
	uint32_t workers;	       /* shards */
	struct queue_dest_limits dest; /* defaults for every destination */
	struct queue_dest_limits site; /* defaults for every site (0: no limit) */
	const struct dmta_conf *conf;  /* for [dest DOMAIN] and [site PATTERN]; may be NULL */
	/* Sources and pools (NULL: one source); the caller's, outliving the
	 * scheduler. A reconfiguration keeps the first one. */
	struct queue_egress *egress;
};

struct queue_sched_ops {
	/** The envelope changed (states, replies, attempts, next attempt): persist it. */
	void (*store)(void *ctx, const struct queue_env *env);
	/** Recipients @p rcpt[0..n) of @p env failed for good: send one DSN for them. */
	void (*dsn)(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n);
	/**
	 * Optional (may be NULL): recipients @p rcpt[0..n) of @p env are still
	 * deferred after delay_warning: send one "delayed" DSN (once per message).
	 */
	void (*delay)(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n);
	/** Every recipient of @p env is final: remove the message from the spool. */
	void (*done)(void *ctx, const struct queue_env *env);
	void *ctx;
};

#define QUEUE_JOB_MAX_RCPT 1000
/*
 * Jobs out per connection a destination may open, once its last job
 * connected: the backend's session pool keeps max_connections itself and
 * holds the extra job until a session of the destination is free, so that
 * a session goes on to its next message without a round trip through the
 * control thread. Before that (a new destination, or one that fails to
 * connect), one job per connection, so that failures come one by one.
 * Four: the session pipelines two transactions, and two more wait in the
 * worker while the control thread hears of the first and sends the next
 * (dmtad-memif with its worker polling: 78,000-87,000 msg/s against
 * 60,000-77,000 with two; bench/RESULTS.md). A rate limit still holds: a
 * job goes out only when the destination's bucket has a token.
 */
#define QUEUE_JOBS_PER_CONNECTION 4

struct queue_job {
	uint64_t qid;
	const char *domain; /* owned by the scheduler; valid while it lives */
	unsigned shard;
	unsigned source; /* the egress source (queue_egress.h) */
	uint32_t max_messages_per_connection;
	uint32_t
	    max_connections; /* the limit of pool_key's connections, for the backend to keep too */
	/* What the backend's session pool keys connections by (with the
	 * source): the domain, or "site:MX" once the job's site is known and
	 * limits its connections, so that the site's domains share sessions
	 * and the receiver never sees more than the site's limit. */
	const char *pool_key;
	uint32_t nrcpt;
	uint32_t *rcpt; /* indices into the message's recipients (owned by the scheduler) */
	void *priv;
};

struct queue_result {
	bool connected; /* false: no SMTP session (connection failed); every recipient deferred */
	/* The outcome came from here, not from the destination (our SMTP
	 * engine refused the envelope, the spool or DNS failed locally): the
	 * recipients get code/text (or reply) as usual, but the destination's
	 * failure count, suspension and probe are left as they are. */
	bool local;
	const char *reply;	 /* the session-level reply when !connected */
	const int *code;	 /* per recipient of the job: SMTP reply code (2xx, 4xx, 5xx) */
	const char *const *text; /* per recipient: the reply text */
};

struct queue_sched_stats {
	uint64_t messages, waiting, ready, inflight, held;
	uint64_t dests, suspended; /* suspended: destinations, sites and sources */
	uint64_t sites, throttled;
};

/* What queue_sched_throttle() does to a (source, site). */
struct queue_throttle {
	bool suspend;		  /* stop sending for duration_ms; else lower the limits below */
	uint64_t duration_ms;	  /* how long (both kinds) */
	uint64_t rate;		  /* jobs per day while it lasts (0: unchanged) */
	uint32_t max_connections; /* while it lasts (0: unchanged) */
	const char *why;	  /* the rule's name, shown in stats */
};

/* One suspension or throttle in force, for dmta-queue stats. */
struct queue_suspension {
	const char *kind;   /* "domain", "site", "source" */
	const char *name;   /* the domain, the site's first exchanger, the source */
	const char *source; /* the source it applies to ("" for a source itself) */
	const char *why;    /* "manual", "connection failures", a rule's name */
	bool throttled;	    /* limits lowered, not stopped */
	uint64_t until_ns;  /* UINT64_MAX: until resumed */
};

/** [queue], the per-domain [dest DOMAIN] and per-site [site PATTERN] sections, and [queue]
 * myhostname. */
extern const struct dmta_conf_section queue_conf_section;
extern const struct dmta_conf_section queue_dest_conf_section;
extern const struct dmta_conf_section queue_site_conf_section;
extern const struct dmta_conf_section queue_host_conf_section;

/**
 * The name of this mail system: [queue] myhostname, else this host's name
 * (gethostname), else "localhost"; written into @p buf, which is returned.
 * It names bounces, delay notices and Message-IDs, and is the default EHLO
 * name. @p conf may be NULL.
 */
const char *queue_myhostname(const struct dmta_conf *conf, char *buf, size_t len);

/**
 * Defaults, then [queue] keys (@p conf may be NULL: defaults only); [dest
 * DOMAIN] sections are read per destination later. 0 or -EINVAL.
 */
int queue_sched_conf_load(const struct dmta_conf *conf, struct queue_sched_conf *c);

struct queue_sched *queue_sched_new(const struct queue_sched_conf *c,
				    const struct queue_sched_ops *ops, uint64_t seed);
void queue_sched_free(struct queue_sched *s);

/**
 * A reload: @p c replaces the configuration (its workers excepted: the
 * shards stay as they were) and every destination takes its limits anew
 * from it, [dest DOMAIN] included, from the next job on. Jobs out keep
 * what they were given; backoff already scheduled stays. @p c->conf must
 * outlive the scheduler or the next reconfiguration.
 */
void queue_sched_reconfigure(struct queue_sched *s, const struct queue_sched_conf *c);

/** Track a spooled message (copied). 0, -EEXIST or -ENOMEM. */
int queue_sched_add(struct queue_sched *s, const struct queue_env *env, uint64_t now_ns);
/** Forget a message (deleted by an admin). 0 or -ENOENT; -EBUSY while a job runs. */
int queue_sched_remove(struct queue_sched *s, uint64_t qid);
int queue_sched_hold(struct queue_sched *s, uint64_t qid);
int queue_sched_release(struct queue_sched *s, uint64_t qid, uint64_t now_ns);
/** Make every waiting message (at @p domain, or all for NULL) due now. Count. */
int queue_sched_flush(struct queue_sched *s, const char *domain, uint64_t now_ns);

/** Move due messages to their destinations' queues; expire old ones. Count expired. */
int queue_sched_tick(struct queue_sched *s, uint64_t now_ns);
/** Up to @p max jobs that limits allow now. Count. */
int queue_sched_jobs(struct queue_sched *s, uint64_t now_ns, struct queue_job *jobs, int max);
/** The outcome of a job from queue_sched_jobs(); the job is gone afterwards. 0 or -errno. */
int queue_sched_result(struct queue_sched *s, struct queue_job *job, const struct queue_result *res,
		       uint64_t now_ns);

/**
 * The site of @p job's destination, now that DNS has answered: @p site is
 * dns_dest's site key (0: none), @p mx[0..nmx) its exchangers in order. The
 * destination joins the (source, site) and the job counts there from now
 * (until then a destination has one job out at a time if sites have
 * limits). With
 * @p shard_by_site the destination's worker becomes the site's; without
 * (a smarthost, where every domain has the same site) it stays the
 * domain's, so the workers share the relay's traffic. Returns the job's
 * shard.
 */
unsigned queue_sched_job_site(struct queue_sched *s, struct queue_job *job, uint64_t site,
			      const char *const *mx, unsigned nmx, bool shard_by_site);
/** The name of @p job's site (its first exchanger), or NULL while unknown. */
const char *queue_sched_job_site_name(const struct queue_sched *s, const struct queue_job *job);
/** Apply a reply rule's action to @p job's (source, site), before queue_sched_result(). */
void queue_sched_throttle(struct queue_sched *s, const struct queue_job *job,
			  const struct queue_throttle *t, uint64_t now_ns);
/**
 * Suspend what @p target names: "DOMAIN", "site:PATTERN" (an exchanger name
 * or glob) or "source:NAME", for @p duration_ms (0: until resumed). It also
 * holds for destinations and sites that appear later. 0, -EINVAL (no such
 * source) or -ENOMEM.
 */
int queue_sched_suspend(struct queue_sched *s, const char *target, uint64_t duration_ms,
			uint64_t now_ns);
/** End what queue_sched_suspend() and the rules started for @p target. 0 or -ENOENT. */
int queue_sched_resume(struct queue_sched *s, const char *target, uint64_t now_ns);
/** Up to @p max suspensions and throttles in force at @p now_ns (views valid until the next call).
 * Count. */
size_t queue_sched_suspensions(const struct queue_sched *s, uint64_t now_ns,
			       struct queue_suspension *v, size_t max);

/** When the next message becomes due (UINT64_MAX: none), for the caller's timer. */
uint64_t queue_sched_next_due(const struct queue_sched *s);

/** The shard of a destination. */
unsigned queue_sched_shard(const struct queue_sched *s, const char *domain);
/** The limits that apply to @p domain. */
struct queue_dest_limits queue_sched_limits(struct queue_sched *s, const char *domain);
/** True while @p domain is suspended at @p now_ns. */
bool queue_sched_suspended(struct queue_sched *s, const char *domain, uint64_t now_ns);
/** The delay before attempt @p attempts + 1, without jitter, in ms. */
uint64_t queue_sched_backoff_ms(const struct queue_sched_conf *c, uint32_t attempts);
/** The current envelope of a tracked message (a view), or NULL. */
const struct queue_env *queue_sched_env(const struct queue_sched *s, uint64_t qid);
/** Up to @p max queue ids of tracked messages. Count. */
size_t queue_sched_ids(const struct queue_sched *s, uint64_t *ids, size_t max);
void queue_sched_get_stats(const struct queue_sched *s, struct queue_sched_stats *st);

#endif
