/*
 * dns_show.c - print destinations as the scheduler sees them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_log.h"
#include "dns/dns_loop.h"
#include "dns/dns_show.h"

static void show_done(struct dns_dest *d, void *arg)
{
	*(struct dns_dest **)arg = d;
}

void dns_stats_print_json(FILE *out, const struct dns_stats *st)
{
	fprintf(
	    out,
	    "{\"requests\":%lu,\"cache_hits\":%lu,\"cache_misses\":%lu,\"dedup\":%lu,"
	    "\"queries\":%lu,\"answers\":%lu,\"nxdomain\":%lu,\"nodata\":%lu,"
	    "\"failures\":%lu,\"timeouts\":%lu,\"retries\":%lu,\"malformed\":%lu,\"bad_addrs\":%lu,"
	    "\"dest_ok\":%lu,\"dest_temp\":%lu,\"dest_perm\":%lu,\"evictions\":%lu,"
	    "\"in_flight\":%lu,\"in_flight_max\":%lu,\"waiting\":%lu,\"cache_entries\":%lu,"
	    "\"neg_entries\":%lu}",
	    st->requests, st->cache_hits, st->cache_misses, st->dedup, st->queries, st->answers,
	    st->nxdomain, st->nodata, st->failures, st->timeouts, st->retries, st->malformed,
	    st->bad_addrs, st->dest_ok, st->dest_temp, st->dest_perm, st->evictions, st->in_flight,
	    st->in_flight_max, st->waiting, st->cache_entries, st->neg_entries);
}

int dns_show(const struct dns_config *cfg, char *const *domains, int n, unsigned flags, FILE *out)
{
	struct dns_loop *loop = dns_loop_new();
	struct dns_resolver *r = loop ? dns_resolver_new(cfg, dns_loop_watch, loop) : NULL;
	struct dns_dest **dests = calloc(n > 0 ? (size_t)n : 1, sizeof(*dests));
	int rc = 0, err = errno;

	if (!loop || !r || !dests) {
		dns_resolver_free(r);
		dns_loop_free(loop);
		free(dests);
		return -(err ? err : ENOMEM);
	}
	dns_loop_attach(loop, r);
	for (int i = 0; i < n; i++) {
		if (dns_resolve(r, domains[i], show_done, &dests[i]) < 0) {
			dmta_err("out of memory resolving %s", domains[i]);
			rc = 1;
		}
	}
	/* Every lookup ends within [dns] timeout; a CNAME chain may take one
	 * lookup per hop, and the exchangers' addresses one more. */
	if (dns_loop_run(loop, cfg->timeout_ms * (DNS_CNAME_MAX + 2)) < 0)
		dmta_err("gave up waiting for the resolver");
	for (int i = 0; i < n; i++) {
		if (!dests[i]) {
			rc = 1;
			continue;
		}
		dns_dest_print(out, dests[i], flags & DNS_SHOW_JSON);
		if (dests[i]->verdict != DNS_VERDICT_OK)
			rc = 1;
	}
	if (flags & DNS_SHOW_STATS) {
		struct dns_stats st;

		dns_resolver_stats(r, &st);
		fputs("{\"stats\":", out);
		dns_stats_print_json(out, &st);
		fputs("}\n", out);
	}
	/* Results that missed the deadline arrive (cancelled) in here. */
	dns_resolver_free(r);
	dns_loop_free(loop);
	for (int i = 0; i < n; i++)
		dns_dest_free(dests[i]);
	free(dests);
	return rc;
}
