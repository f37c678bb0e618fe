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
 *	line (JSON). The work is dns_show(), shared with `dmta-queue route`.
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
#include "dns/dns_show.h"

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
	unsigned flags = 0;
	struct dns_config cfg;
	struct dmta_conf *conf;
	char err[512];
	int c, rc;

	dmta_log_init("dmta-route", DMTA_LOG_WARN);
	while ((c = getopt_long(argc, argv, "c:jsvh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cpath = optarg;
			break;
		case 'j':
			flags |= DNS_SHOW_JSON;
			break;
		case 's':
			flags |= DNS_SHOW_STATS;
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
	if (dns_config_load(&cfg, conf) < 0) {
		dns_config_release(&cfg);
		dmta_conf_free(conf);
		return 2;
	}
	rc = dns_show(&cfg, argv + optind, argc - optind, flags, stdout);
	if (rc < 0) {
		dmta_err("cannot start the resolver: %s", strerror(-rc));
		rc = 2;
	}
	dns_config_release(&cfg);
	dmta_conf_free(conf);
	return rc;
}
