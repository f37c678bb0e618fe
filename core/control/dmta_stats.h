/*
 * dmta_stats.h - a running dmtad's live view: what the control thread
 *	publishes, and how dmta-queue and DPDK telemetry read it.
 *
 * SYNOPSIS
 *	n = dmta_stats_format(&s, buf, cap);       (one JSON object)
 *	n = dmta_stats_parse(buf, len, &s);        (its inverse)
 *	dmta_stats_print(out, &s, age_s);          (the text of dmta-queue stats)
 *	dmta_stats_walk(&s, fn, arg);              (every scalar, for telemetry)
 *	rc = dmta_stats_publish(spool_path, &s);   (SPOOL/dmtad.stats, atomically)
 *	dmta_stats_unpublish(spool_path);
 *	fd = dmta_stats_lock(spool_path, &owner);  (dmtad: one daemon per spool)
 *	pid = dmta_stats_owner(spool_path);        (who holds that lock)
 *	rc = dmta_stats_load(spool_path, now, &live);
 *	dmta_stats_rate_push(&r, t_ns, count);  x = dmta_stats_rate(&r, window_ns);
 *
 * DESCRIPTION
 *	The control thread fills a struct dmta_stats once per [control]
 *	stats_interval: the scheduler's queue, jobs in flight, delivery
 *	counters since start and the delivery rate, DNS cache counters, and per
 *	worker its SMTP sessions and TCP retransmissions (read from the
 *	workers without locks: relaxed 64-bit loads, a few packets stale). It
 *	writes the JSON form to SPOOL/dmtad.stats: a temporary file renamed
 *	over the old one, so a reader sees a whole snapshot or the previous
 *	one. No fsync: it is a view, not data.
 *
 *	A file alone does not say a daemon runs (it may be left by one that
 *	was killed). dmtad holds a POSIX write lock on SPOOL/dmtad.pid while it
 *	runs; the kernel drops it when the process ends, however it ends.
 *	dmta_stats_load() reports a daemon only while that lock is held, and
 *	its view only when the file names the lock holder's pid and is no
 *	older than two intervals (plus two seconds).
 *
 *	Counters that do not apply are DMTA_STATS_NA (JSON null, text "n/a"):
 *	TCP retransmissions over kernel sockets before any connection closed,
 *	for instance.
 *
 *	The JSON (one line; unknown keys are ignored by the parser, so fields
 *	can be added):
 *	  {"version":1,"pid":N,"backend":"dpdk","time_ms":T,"started_ms":T,
 *	   "interval_ms":N,
 *	   "queue":{"messages","waiting","ready","in_flight","held",
 *	            "destinations","suspended","sites","throttled"},
 *	   "jobs":{"in_flight","waiting_dns"},
 *	   "delivery":{"attempts","delivered","deferred","bounced","expired",
 *	               "rate_10s","rate"},
 *	   "classes":{"bad-mailbox","inactive-mailbox","quota","spam-block",
 *	              "policy","content","dns","routing","protocol","tls","other"},
 *	   "bounces":{"generated","delay_warnings"},
 *	   "spool":{"loaded","commits","commit_errors"},
 *	   "dns":{"hits","misses","entries","negative","in_flight","failures",
 *	          "queries"},
 *	   "workers":[{"id","jobs","sessions","connecting","idle","opened",
 *	               "connect_failed","retransmits"}, ...],
 *	   "suspensions":[{"kind","name","source","why","until_ms","throttled"}, ...]}
 *	Delivery counters count recipients, as the delivery log does (one line
 *	per recipient per attempt); rates are recipients delivered per second.
 *
 * DIAGNOSTICS
 *	dmta_stats_format(): length, or -ENOSPC. dmta_stats_parse(): bytes
 *	consumed, -2 when the input ends inside the object, -1 when it is
 *	malformed or lacks version, pid or time_ms. The file functions: 0 or
 *	-errno.
 */
#ifndef DMTA_STATS_H
#define DMTA_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DMTA_STATS_VERSION     1
#define DMTA_STATS_MAX_WORKERS 128
#define DMTA_STATS_FILE	       "dmtad.stats"
#define DMTA_STATS_LOCK_FILE   "dmtad.pid"
#define DMTA_STATS_NA	       UINT64_MAX /* a counter that does not apply */

struct dmta_stats_worker {
	uint64_t jobs;		 /* gauge: jobs in progress */
	uint64_t sessions;	 /* gauge: connections open (connecting, in SMTP, closing) */
	uint64_t connecting;	 /* gauge: ... of which connecting */
	uint64_t idle;		 /* gauge: ... of which idle, waiting for a job */
	uint64_t opened;	 /* connections started */
	uint64_t connect_failed; /* connection attempts that failed */
	uint64_t retransmits;	 /* TCP segments sent again, or DMTA_STATS_NA */
};

#define DMTA_STATS_MAX_SUSP 32

/* A suspension or throttle in force (queue_sched_suspensions()). */
struct dmta_stats_susp {
	char kind[8];	    /* "domain", "site", "source" */
	char name[128];	    /* the domain, the site's first exchanger, the source */
	char source[32];    /* the source it applies to, "" for a source */
	char why[48];	    /* "manual", "connection failures", a rule's name */
	uint64_t until_ms;  /* wall clock; DMTA_STATS_NA: until resumed */
	uint64_t throttled; /* 1: limits lowered, 0: stopped */
};

struct dmta_stats {
	uint64_t pid;
	char backend[16];
	uint64_t time_ms;     /* wall clock, when taken */
	uint64_t started_ms;  /* wall clock, when dmtad started */
	uint64_t interval_ms; /* how often it is published */
	/* The scheduler's queue (messages it tracks). */
	uint64_t messages, waiting, ready, in_flight, held, dests, suspended, sites, throttled;
	/* Jobs (one message to one destination) out now. */
	uint64_t jobs_busy; /* with the delivery backend */
	uint64_t jobs_dns;  /* waiting for a DNS answer */
	/* Since start, per recipient (the delivery log's lines). */
	uint64_t attempts, delivered, deferred, bounced, expired;
	double rate_10s; /* recipients delivered per second, the last 10 s */
	double rate;	 /* ... since start */
	/* Failed attempts (recipients) per bounce class, QUEUE_CLASS_* order (queue_rules.h). */
	uint64_t classes[12];
	uint64_t bounces;    /* failure DSNs generated */
	uint64_t delay_dsns; /* "delayed" DSNs generated */
	uint64_t loaded, commits, commit_errors;
	uint64_t dns_hits, dns_misses, dns_entries, dns_negative, dns_in_flight, dns_failures,
	    dns_queries;
	unsigned nworkers;
	struct dmta_stats_worker workers[DMTA_STATS_MAX_WORKERS];
	unsigned nsusp; /* the first DMTA_STATS_MAX_SUSP of them */
	struct dmta_stats_susp susp[DMTA_STATS_MAX_SUSP];
};

/** The JSON form of @p s into @p buf (NUL-terminated): its length or -ENOSPC. */
int dmta_stats_format(const struct dmta_stats *s, char *buf, size_t cap);

/** Parse what dmta_stats_format() writes: bytes consumed, -2 incomplete, -1 malformed. */
int dmta_stats_parse(const char *buf, size_t len, struct dmta_stats *s);

/** One scalar: its group (NULL: top level or a worker's), its key, its value. */
typedef void dmta_stats_walk_fn(void *arg, const char *group, const char *key, bool is_double,
				uint64_t u, double d);

/** Call @p fn for each scalar of @p s in JSON order (backend and workers excepted). */
void dmta_stats_walk(const struct dmta_stats *s, dmta_stats_walk_fn *fn, void *arg);

/** Call @p fn for each counter of one worker. */
void dmta_stats_walk_worker(const struct dmta_stats_worker *w, dmta_stats_walk_fn *fn, void *arg);

/** The text view (dmta-queue stats) of a view taken @p age_s seconds ago. */
void dmta_stats_print(FILE *out, const struct dmta_stats *s, double age_s);

/** Write SPOOL/dmtad.stats atomically (temporary file, rename). 0 or -errno. */
int dmta_stats_publish(const char *spool_path, const struct dmta_stats *s);

/** Remove SPOOL/dmtad.stats (at a clean stop). */
void dmta_stats_unpublish(const char *spool_path);

/**
 * Take the daemon lock on SPOOL/dmtad.pid and write our pid into it: the
 * descriptor to keep open while running, -EAGAIN when another process
 * holds it (its pid in *@p owner), or -errno.
 */
int dmta_stats_lock(const char *spool_path, int64_t *owner);

/** The pid holding the daemon lock, 0 when none, or -errno. */
int64_t dmta_stats_owner(const char *spool_path);

/** What dmta-queue learns about the daemon on a spool. */
struct dmta_stats_live {
	int64_t pid;  /* the daemon holding the spool's lock; 0: not running */
	bool fresh;   /* stats is its view, taken age_s ago */
	double age_s; /* of the file found (fresh or not); < 0 when there is none */
	struct dmta_stats stats;
};

/** Fill @p live (wall clock @p now_ns). 0, or -errno when the lock cannot be read. */
int dmta_stats_load(const char *spool_path, uint64_t now_ns, struct dmta_stats_live *live);

/* The delivery rate over a sliding window: samples of a counter. */
#define DMTA_STATS_RATE_SLOTS 64

struct dmta_stats_rate {
	uint64_t t[DMTA_STATS_RATE_SLOTS], v[DMTA_STATS_RATE_SLOTS];
	unsigned head, n;
};

/** Record counter value @p v at monotonic time @p t_ns. */
void dmta_stats_rate_push(struct dmta_stats_rate *r, uint64_t t_ns, uint64_t v);

/**
 * Per second, from the oldest sample within @p window_ns of the newest one
 * (or the one just before the newest, when samples are further apart) to
 * the newest; 0 with fewer than two samples.
 */
double dmta_stats_rate(const struct dmta_stats_rate *r, uint64_t window_ns);

#endif
