/*
 * dmta_metrics.h - dmtad's counters for Prometheus: GET /metrics on
 *	[metrics] listen, in the text exposition format (version 0.0.4).
 *
 * SYNOPSIS
 *	rc = dmta_metrics_conf_load(conf, &mc);
 *	m = dmta_metrics_start(mc.listen, err, sizeof(err));   (NULL: see err)
 *	each time the control thread takes its view:
 *		out = open_memstream(&text, &len);
 *		dmta_metrics_write(out, &stats, &extra);
 *		backend->metrics(be, out);                      (optional)
 *		fclose(out);
 *		dmta_metrics_publish(m, text, len);             (takes text)
 *	dmta_metrics_hist_observe(&extra.commit, seconds);
 *	dmta_metrics_stop(m);
 *
 * DESCRIPTION
 *	The HTTP side is libmicrohttpd in a thread of its own: it answers GET
 *	/metrics with the last text the control thread published, and nothing
 *	else (404; 405 for other methods). The control thread formats the text
 *	once per view ([control] stats_interval) and swaps it in under a mutex;
 *	a scrape copies it under the same mutex. Neither side waits for the
 *	other longer than a memcpy, and the workers are never asked anything:
 *	their counters reach the view as dmta_stats.h says.
 *
 *	Names follow Prometheus's conventions: dmta_ prefix, counters end in
 *	_total, durations in seconds. Families are written whole (every sample
 *	of one name together), as the format requires.
 *
 *	dmta_metrics_family() and dmta_metrics_sample() are for other writers
 *	(the DPDK backend's per-worker TCP counters) so that every line comes
 *	out the same way.
 *
 * DIAGNOSTICS
 *	dmta_metrics_start(): NULL with one line in err (bad address, port in
 *	use). dmta_metrics_conf_load(): 0 or -EINVAL (logged).
 */
#ifndef DMTA_METRICS_H
#define DMTA_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/base/dmta_conf.h"

struct dmta_stats;
struct dmta_metrics;

extern const struct dmta_conf_section dmta_metrics_conf_section;

struct dmta_metrics_conf {
	const char *listen; /* ADDR:PORT; NULL: no metrics */
};

int dmta_metrics_conf_load(const struct dmta_conf *conf, struct dmta_metrics_conf *mc);

/* A histogram with fixed bounds (seconds). */
#define DMTA_METRICS_HIST_BUCKETS 12

struct dmta_metrics_hist {
	uint64_t bucket[DMTA_METRICS_HIST_BUCKETS]; /* per bound, not cumulative */
	uint64_t inf;				    /* above the last bound */
	uint64_t count;
	double sum;
};

/** The bounds every dmta histogram uses, DMTA_METRICS_HIST_BUCKETS of them. */
extern const double dmta_metrics_hist_bounds[DMTA_METRICS_HIST_BUCKETS];

void dmta_metrics_hist_observe(struct dmta_metrics_hist *h, double seconds);

#define DMTA_METRICS_MAX_WORKERS 128 /* as DMTA_STATS_MAX_WORKERS */

/* Replies by their enhanced status code's class and subject (RFC 3463). */
#define DMTA_METRICS_SUBJECTS 8

/* Queued messages by age: under 1 min, 5 min, 1 h, 6 h, 1 day, and older. */
#define DMTA_METRICS_AGES 6
extern const char *const dmta_metrics_age_names[DMTA_METRICS_AGES];
extern const uint64_t dmta_metrics_age_bounds_s[DMTA_METRICS_AGES - 1];

/** What the view (struct dmta_stats) does not hold. */
struct dmta_metrics_extra {
	/* The queue's census, taken with each view. */
	uint64_t queue_bytes;
	uint64_t queue_rcpts_pending, queue_rcpts_deferred; /* still to deliver */
	uint64_t queue_age[DMTA_METRICS_AGES];		    /* messages */
	struct dmta_metrics_hist commit;		    /* spool commit durations */
	uint64_t deferred_by[DMTA_METRICS_SUBJECTS];	    /* 4.X.* replies, by X */
	uint64_t bounced_by[DMTA_METRICS_SUBJECTS];	    /* 5.X.* replies, by X */
	uint64_t delivered_by_route[3], bounced_by_route[3],
	    deferred_by_route[3]; /* mx, route, relay */
	/* SMTP transactions per worker (the job's shard), with TLS or without;
	 * nworkers of them. */
	uint64_t tls_by_worker[DMTA_METRICS_MAX_WORKERS][2];
	unsigned nworkers;
	uint64_t reloads, reloads_refused;
	/* Delivery events (dmta_events.h); all 0 without [events]. */
	uint64_t events_queued, events_posted, events_dropped, events_post_failures;
	uint64_t events_backlog;
};

/** Count a message that arrived @p age_s seconds ago under its age bucket. */
void dmta_metrics_count_age(struct dmta_metrics_extra *x, uint64_t age_s);

/**
 * The queue's census into @p x: bytes, recipients still to deliver, and
 * messages by age at @p now_ns (wall clock), walking the messages @p s
 * tracks (@p messages of them, as its stats say: the walk's bound).
 */
struct queue_sched;
void dmta_metrics_census(struct dmta_metrics_extra *x, const struct queue_sched *s,
			 uint64_t messages, uint64_t now_ns);

/** Count a recipient's reply @p status ("5.1.1", or NULL) under @p by. */
void dmta_metrics_count_status(uint64_t *by, const char *status);

/** "# HELP" and "# TYPE" for @p name (type "counter", "gauge" or "histogram"). */
void dmta_metrics_family(FILE *out, const char *name, const char *type, const char *help);

/** One sample: @p name{@p labels} @p v; @p labels may be NULL. */
void dmta_metrics_sample(FILE *out, const char *name, const char *labels, uint64_t v);

/** Every metric of the view @p s and @p x into @p out. */
void dmta_metrics_write(FILE *out, const struct dmta_stats *s, const struct dmta_metrics_extra *x);

/** Serve GET /metrics on @p listen (ADDR:PORT, IPv4; port 0: any free one). */
struct dmta_metrics *dmta_metrics_start(const char *listen, char *err, size_t errlen);

/** The text to serve from now on; @p text (malloc'd) becomes the server's. */
void dmta_metrics_publish(struct dmta_metrics *m, char *text, size_t len);

/** The port it listens on (the one chosen, for port 0). */
uint16_t dmta_metrics_port(const struct dmta_metrics *m);

/** Scrapes answered so far (relaxed). */
uint64_t dmta_metrics_scrapes(const struct dmta_metrics *m);

void dmta_metrics_stop(struct dmta_metrics *m);

#endif
