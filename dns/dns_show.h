/*
 * dns_show.h - print destinations as the scheduler sees them: the body of
 *		`dmta-route DOMAIN...` and `dmta-queue route DOMAIN...`.
 *
 * SYNOPSIS
 *	rc = dns_show(&cfg, domains, n, flags, stdout);
 *
 * DESCRIPTION
 *	Starts a resolver on @cfg in a loop of its own (dns_loop), asks for
 *	every domain at once, waits (bounded by the configured timeout), and
 *	prints each destination in the order given with dns_dest_print():
 *	text, or one JSON object a line with DNS_SHOW_JSON. DNS_SHOW_STATS
 *	adds the resolver's counters as a last JSON line {"stats":{...}}.
 *	A domain given twice is resolved twice (the second time from the
 *	same queries or the cache), which shows equal preferences shuffled.
 *
 * DIAGNOSTICS
 *	Returns 0 when every destination is ok, 1 when some is not (or did
 *	not come in time), -errno when the resolver cannot start.
 */
#ifndef DNS_SHOW_H
#define DNS_SHOW_H

#include <stdio.h>

#include "dns/dns_conf.h"
#include "dns/dns_resolver.h"

#define DNS_SHOW_JSON  1u
#define DNS_SHOW_STATS 2u

int dns_show(const struct dns_config *cfg, char *const *domains, int n, unsigned flags, FILE *out);

/** The counters as one JSON object (no newline): {"requests":...}. */
void dns_stats_print_json(FILE *out, const struct dns_stats *st);

#endif
