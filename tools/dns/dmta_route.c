/*
 * dmta_route.c - show where mail for a domain goes, as the scheduler sees it.
 *
 * SYNOPSIS
 *	dmta-route [-c FILE] [--json] [--stats] [-v] DOMAIN...
 *
 * DESCRIPTION
 *	Resolves every DOMAIN at once with the configured resolver ([dns],
 *	[routes], [relay] of dmta.conf) and prints each destination in the
 *	order given: hosts with preference, port and addresses, the TTL, and
 *	the verdict with its status code. --json prints one object a line.
 *	A domain given more than once is resolved more than once (the later
 *	ones from the same queries or the cache), which shows the shuffling
 *	of equal preferences. --stats adds the resolver's counters as a last
 *	line (JSON) on stdout.
 *
 * EXIT STATUS
 *	0 when every destination is ok, 1 when some is not, 2 on usage or
 *	configuration errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "dns/dns_resolver.h"
#include "tools/dns/dns_loop.h"

static void done(struct dns_dest *d, void *arg)
{
	*(struct dns_dest **)arg = d;
}

static void usage(void)
{
	fprintf(stderr, "usage: dmta-route [-c FILE] [--json] [--stats] [-v] DOMAIN...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"stats", no_argument, NULL, 's'},
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cpath = NULL;
	bool json = false, stats = false;
	struct dns_config cfg;
	struct dmta_conf *conf;
	char err[512];
	int c, rc = 0;

	dmta_log_init("dmta-route", DMTA_LOG_WARN);
	while ((c = getopt_long(argc, argv, "c:jsvh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cpath = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			stats = true;
			break;
		case 'v':
			dmta_log_set_level(DMTA_LOG_DEBUG);
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	conf = dmta_conf_load(dmta_conf_path(cpath), err, sizeof(err));
	if (!conf) {
		dmta_err("%s", err);
		return 2;
	}
	if (dns_config_load(&cfg, conf) < 0)
		return 2;

	struct dns_loop *loop = dns_loop_new();
	struct dns_resolver *r = loop ? dns_resolver_new(&cfg, dns_loop_watch, loop) : NULL;
	int n = argc - optind;
	struct dns_dest **dests = calloc((size_t)n, sizeof(*dests));

	if (!r || !dests) {
		dmta_err("cannot start the resolver: %s", strerror(errno));
		return 2;
	}
	dns_loop_attach(loop, r);
	for (int i = 0; i < n; i++)
		if (dns_resolve(r, argv[optind + i], done, &dests[i]) < 0)
			dmta_fatal("out of memory");
	/* Bounded: every lookup ends within [dns] timeout; allow twice that
	 * per CNAME hop in the worst case. */
	if (dns_loop_run(loop, cfg.timeout_ms * (DNS_CNAME_MAX + 2) * 2) < 0)
		dmta_err("gave up waiting for the resolver");
	for (int i = 0; i < n; i++) {
		if (!dests[i]) {
			rc = 1;
			continue;
		}
		dns_dest_print(stdout, dests[i], json);
		if (dests[i]->verdict != DNS_VERDICT_OK)
			rc = 1;
		dns_dest_free(dests[i]);
	}
	if (stats) {
		struct dns_stats st;

		dns_resolver_stats(r, &st);
		printf("{\"stats\":{\"requests\":%lu,\"cache_hits\":%lu,\"cache_misses\":%lu,"
		       "\"dedup\":%lu,\"queries\":%lu,\"answers\":%lu,\"nxdomain\":%lu,"
		       "\"nodata\":%lu,\"failures\":%lu,\"timeouts\":%lu,\"malformed\":%lu,"
		       "\"in_flight_max\":%lu,\"cache_entries\":%lu}}\n",
		       st.requests, st.cache_hits, st.cache_misses, st.dedup, st.queries,
		       st.answers, st.nxdomain, st.nodata, st.failures, st.timeouts, st.malformed,
		       st.in_flight_max, st.cache_entries);
	}
	free(dests);
	dns_resolver_free(r);
	dns_loop_free(loop);
	dmta_conf_warn_unused(conf, (const char *const[]){"dns", "routes", "relay", NULL});
	dns_config_release(&cfg);
	dmta_conf_free(conf);
	return rc;
}
