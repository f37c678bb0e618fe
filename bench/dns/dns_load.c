/*
 * dns_load.c - many destinations at once through the resolver and its loop.
 *
 * SYNOPSIS
 *	dns-load -c FILE [-n COUNT] [--same DOMAIN] [--prefix P --suffix S] [--rounds R]
 *		 [--tick-ms MS] [--deadline-ms MS] [--hits N]
 *
 * DESCRIPTION
 *	Asks for COUNT destinations at once (PREFIX, a number, SUFFIX:
 *	default d1.bulk.test, d2.bulk.test ..., or COUNT times the same DOMAIN), runs the loop until
 *	all have answered, and prints one JSON object: verdict counts,
 *	elapsed time, lookups per second, the resolver's counters, the cache
 *	hit rate, and how punctual a periodic timer in the same loop stayed
 *	(its largest gap between two firings): the loop must never block.
 *	--rounds repeats the whole set (later rounds come from the cache).
 *	--pause-ms sleeps between rounds (to let TTLs run out).
 *	--hits N then answers the first domain N times from the cache alone
 *	(dns_resolve_cached), in bench_cached_hits(), for callgrind.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "dns/dns_resolver.h"
#include "dns/dns_loop.h"

struct tally {
	uint64_t ok, temp, perm, done;
	uint64_t last_fire_ns, max_gap_ns, fires;
	uint64_t max_pending;
	struct dns_resolver *r;
};

static void done(struct dns_dest *d, void *arg)
{
	struct tally *t = arg;

	t->done++;
	if (d->verdict == DNS_VERDICT_OK)
		t->ok++;
	else if (d->verdict == DNS_VERDICT_TEMP)
		t->temp++;
	else
		t->perm++;
	dns_dest_free(d);
}

static void tick(void *arg)
{
	struct tally *t = arg;
	uint64_t now = dmta_now_ns();

	if (t->last_fire_ns && now - t->last_fire_ns > t->max_gap_ns)
		t->max_gap_ns = now - t->last_fire_ns;
	t->last_fire_ns = now;
	t->fires++;
}

/* Not inlined: callgrind --toggle-collect=bench_cached_hits measures this. */
__attribute__((noinline)) uint64_t bench_cached_hits(struct dns_resolver *r, const char *domain,
						     uint64_t n);
__attribute__((noinline)) uint64_t bench_cached_hits(struct dns_resolver *r, const char *domain,
						     uint64_t n)
{
	uint64_t got = 0;

	for (uint64_t i = 0; i < n; i++) {
		struct dns_dest *d = dns_resolve_cached(r, domain);

		if (d) {
			got += d->n_hosts;
			dns_dest_free(d);
		}
	}
	return got;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"same", required_argument, NULL, 's'},
	    {"prefix", required_argument, NULL, 'p'},
	    {"suffix", required_argument, NULL, 'S'},
	    {"rounds", required_argument, NULL, 'r'},
	    {"tick-ms", required_argument, NULL, 't'},
	    {"deadline-ms", required_argument, NULL, 'd'},
	    {"hits", required_argument, NULL, 'H'},
	    {"pause-ms", required_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0},
	};
	const char *cpath = NULL, *same = NULL, *prefix = "d", *suffix = ".bulk.test";
	uint64_t count = 1000, rounds = 1, tick_ms = 10, deadline_ms = 60000, hits = 0,
		 pause_ms = 0;
	struct dmta_conf *conf;
	struct dns_config cfg;
	struct tally t = {0};
	char err[512], name[300];
	int c;

	dmta_log_init("dns-load", DMTA_LOG_WARN);
	while ((c = getopt_long(argc, argv, "c:n:", opts, NULL)) != -1) {
		int rc = 0;

		switch (c) {
		case 'c':
			cpath = optarg;
			break;
		case 'n':
			rc = dmta_parse_u64(optarg, &count);
			break;
		case 's':
			same = optarg;
			break;
		case 'p':
			prefix = optarg;
			break;
		case 'S':
			suffix = optarg;
			break;
		case 'r':
			rc = dmta_parse_u64(optarg, &rounds);
			break;
		case 't':
			rc = dmta_parse_u64(optarg, &tick_ms);
			break;
		case 'd':
			rc = dmta_parse_u64(optarg, &deadline_ms);
			break;
		case 'H':
			rc = dmta_parse_u64(optarg, &hits);
			break;
		case 'P':
			rc = dmta_parse_u64(optarg, &pause_ms);
			break;
		default:
			rc = -EINVAL;
		}
		if (rc < 0 || tick_ms == 0) {
			fprintf(stderr, "usage: dns-load -c FILE [-n COUNT] [--same DOMAIN] "
					"[--prefix P --suffix S] [--rounds R] [--tick-ms MS] "
					"[--deadline-ms MS] [--hits N] [--pause-ms MS]\n");
			return 2;
		}
	}
	conf = dmta_conf_load(dmta_conf_path(cpath), err, sizeof(err));
	if (!conf) {
		dmta_err("%s", err);
		return 2;
	}
	if (dns_config_load(&cfg, conf) < 0)
		return 2;

	struct dns_loop *loop = dns_loop_new();
	struct dns_resolver *r = loop ? dns_resolver_new(&cfg, dns_loop_watch, loop) : NULL;

	if (!r)
		dmta_fatal("cannot start the resolver: %s", strerror(errno));
	dns_loop_attach(loop, r);
	t.r = r;
	if (dns_loop_every(loop, (unsigned)tick_ms, tick, &t) < 0)
		dmta_fatal("timerfd: %s", strerror(errno));

	uint64_t t0 = dmta_now_ns();
	int timed_out = 0;
	double first_round_ms = 0;

	for (uint64_t round = 0; round < rounds; round++) {
		uint64_t r0;

		if (round && pause_ms) {
			/* Between rounds only (the loop is idle): lets TTLs run out. */
			struct timespec ts = {(time_t)(pause_ms / 1000),
					      (long)(pause_ms % 1000) * 1000000L};

			nanosleep(&ts, NULL);
		}
		r0 = dmta_now_ns();

		for (uint64_t i = 1; i <= count; i++) {
			const char *d = same;

			if (!d) {
				snprintf(name, sizeof(name), "%s%lu%s", prefix, i, suffix);
				d = name;
			}
			if (dns_resolve(r, d, done, &t) < 0)
				dmta_fatal("out of memory");
		}
		t.last_fire_ns = 0; /* the gap is measured while the loop runs */
		if (dns_loop_run(loop, deadline_ms) < 0)
			timed_out = 1;
		if (round == 0)
			first_round_ms = (double)(dmta_now_ns() - r0) / 1e6;
	}
	double ms = (double)(dmta_now_ns() - t0) / 1e6;
	struct dns_stats st;

	dns_resolver_stats(r, &st);
	printf("{\"count\":%lu,\"rounds\":%lu,\"done\":%lu,\"ok\":%lu,\"temp\":%lu,\"perm\":%lu,"
	       "\"timed_out\":%d,\"elapsed_ms\":%.1f,\"first_round_ms\":%.1f,"
	       "\"first_round_per_s\":%.0f,\"timer_fires\":%lu,\"timer_period_ms\":%lu,"
	       "\"timer_max_gap_ms\":%.2f,\"loop_max_busy_ms\":%.2f,\"loop_max_busy_cpu_ms\":%.2f,"
	       "\"max_in_flight_conf\":%u,",
	       count, rounds, t.done, t.ok, t.temp, t.perm, timed_out, ms, first_round_ms,
	       first_round_ms > 0 ? (double)count * 1000.0 / first_round_ms : 0.0, t.fires, tick_ms,
	       (double)t.max_gap_ns / 1e6, (double)dns_loop_max_busy_ns(loop) / 1e6,
	       (double)dns_loop_max_busy_cpu_ns(loop) / 1e6, cfg.max_in_flight);
	printf("\"hit_rate\":%.4f,\"stats\":{\"requests\":%lu,\"cache_hits\":%lu,"
	       "\"cache_misses\":%lu,\"dedup\":%lu,\"queries\":%lu,\"answers\":%lu,"
	       "\"failures\":%lu,\"timeouts\":%lu,\"retries\":%lu,\"malformed\":%lu,\"in_flight_"
	       "max\":%lu,"
	       "\"cache_entries\":%lu,\"evictions\":%lu}",
	       st.cache_hits + st.cache_misses
		   ? (double)st.cache_hits / (double)(st.cache_hits + st.cache_misses)
		   : 0.0,
	       st.requests, st.cache_hits, st.cache_misses, st.dedup, st.queries, st.answers,
	       st.failures, st.timeouts, st.retries, st.malformed, st.in_flight_max,
	       st.cache_entries, st.evictions);
	if (hits) {
		snprintf(name, sizeof(name), "%s1%s", prefix, suffix);
		const char *d = same ? same : name;
		uint64_t h0 = dmta_now_ns(), got = bench_cached_hits(r, d, hits);
		double hms = (double)(dmta_now_ns() - h0) / 1e6;

		printf(",\"hits\":%lu,\"hit_hosts\":%lu,\"hits_ns_each\":%.1f", hits, got,
		       hms * 1e6 / (double)hits);
	}
	printf("}\n");
	dns_resolver_free(r);
	dns_loop_free(loop);
	dns_config_release(&cfg);
	dmta_conf_free(conf);
	return timed_out ? 1 : 0;
}
