/*
 * dns_resolver.h - destinations resolved with c-ares inside the caller's loop.
 *
 * SYNOPSIS
 *	r = dns_resolver_new(&cfg, watch_fn, watch_arg);
 *	rc = dns_resolve(r, domain, done_fn, arg);
 *	dest = dns_resolve_cached(r, domain);
 *
 *	loop:	timeout = dns_resolver_next_timeout_ms(r);
 *		epoll_wait(..., timeout);
 *		for each ready fd of the resolver: dns_resolver_process(r, fd, events);
 *		dns_resolver_tick(r);
 *
 *	dns_resolver_stats(r, &st);
 *	dns_resolver_free(r);
 *
 * DESCRIPTION
 *	The resolver never blocks and starts no thread. Its sockets are
 *	c-ares's; @watch_fn tells the caller which to watch: watch_fn(fd,
 *	want_read, want_write, arg), with both false meaning "forget this
 *	fd". The caller reports readiness with dns_resolver_process() and
 *	calls dns_resolver_tick() after each wait, which runs c-ares's
 *	timeouts and delivers finished results. The configuration (routes
 *	included) must outlive the resolver.
 *
 *	dns_resolve() starts resolving @domain and returns at once. @done_fn
 *	is called later, from dns_resolver_process() or dns_resolver_tick(),
 *	never from inside dns_resolve(), with a destination it owns (free it
 *	with dns_dest_free()). When dns_resolve() fails its callback is never
 *	called. Requests for the same name share one query (in-flight
 *	deduplication); at most cfg->max_in_flight queries are outstanding,
 *	the rest wait in order.
 *
 *	Routing (RFC 5321 §5.1, RFC 7505): [relay] first, then [routes], else
 *	MX records sorted by preference with equal preferences shuffled on
 *	every answer, cache hits included; exchangers named by an IP literal,
 *	or with no address, are skipped; at most max_mx exchangers and
 *	max_addrs addresses per host and family. No MX records: the domain's
 *	own A/AAAA (implicit MX). Verdicts:
 *	  null MX				permanent 5.1.10
 *	  best MX is this host ([dns] local_names)	permanent 5.4.6
 *	  NXDOMAIN, bad domain name		permanent 5.1.2
 *	  no MX and no address; every MX
 *	  host without address			permanent 5.4.4
 *	  SERVFAIL, REFUSED, timeout, malformed
 *	  reply, CNAME loop (on the MX or on
 *	  every host)				temporary 4.4.3
 *	  only IPv6 addresses			temporary 4.4.4 (IPv6 not used yet)
 *	With several servers configured, a SERVFAIL or REFUSED from one
 *	sends the query on to the next.
 *
 *	dns_resolve_cached() answers from the cache alone: the destination
 *	(owned by the caller) or NULL when some record set is not cached.
 *	It is the scheduler's fast path and never sends a query.
 *
 *	Record sets are cached per (name, type) for their TTL clamped to
 *	[ttl_min, ttl_max]; NXDOMAIN/NODATA for the SOA's negative TTL
 *	clamped to [ttl_min, negative_ttl_max]; temporary failures for
 *	tempfail_ttl. Exchangers shared by many domains are looked up once.
 *
 *	dns_resolver_free() cancels what is outstanding: those callbacks run
 *	with a temporary failure, then the memory goes. It must not be called
 *	from inside a callback.
 *
 * DIAGNOSTICS
 *	dns_resolver_new() returns NULL and sets errno (EINVAL: bad servers
 *	list; ENOMEM; EIO: c-ares failed to start). dns_resolve() returns 0 or
 *	-ENOMEM.
 */
#ifndef DNS_RESOLVER_H
#define DNS_RESOLVER_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/dns_conf.h"
#include "dns/dns_dest.h"

#define DNS_EV_READ  1u
#define DNS_EV_WRITE 2u

struct dns_resolver;

typedef void (*dns_watch_fn)(int fd, bool want_read, bool want_write, void *arg);
typedef void (*dns_done_fn)(struct dns_dest *dest, void *arg);

/** Counters, for telemetry: monotonic except the gauges at the end. */
struct dns_stats {
	uint64_t requests;     /* dns_resolve() and dns_resolve_cached() calls */
	uint64_t cache_hits;   /* record sets found in the cache */
	uint64_t cache_misses; /* record sets not in the cache */
	uint64_t dedup;	       /* misses that joined a query already in flight */
	uint64_t queries;      /* queries handed to c-ares */
	uint64_t answers;      /* replies parsed */
	uint64_t nxdomain;     /* ... of which NXDOMAIN */
	uint64_t nodata;       /* ... of which NODATA */
	uint64_t failures;     /* queries ending in a temporary failure */
	uint64_t timeouts;     /* ... of which timeouts */
	uint64_t retries;   /* tries that timed out inside c-ares (the query may still succeed) */
	uint64_t malformed; /* replies rejected by the parser */
	uint64_t bad_addrs; /* A/AAAA records no mail can go to (0/8, multicast...) */
	uint64_t dest_ok, dest_temp, dest_perm;
	uint64_t evictions;	/* cache entries pushed out by the size bound */
	uint64_t in_flight;	/* gauge: queries outstanding */
	uint64_t in_flight_max; /* gauge: the most ever outstanding */
	uint64_t waiting;	/* gauge: lookups queued behind max_in_flight */
	uint64_t cache_entries; /* gauge */
	uint64_t neg_entries;	/* gauge: ... of which negative (NXDOMAIN, NODATA, failure) */
};

struct dns_resolver *dns_resolver_new(const struct dns_config *cfg, dns_watch_fn watch,
				      void *watch_arg);
int dns_resolve(struct dns_resolver *r, const char *domain, dns_done_fn done, void *arg);
struct dns_dest *dns_resolve_cached(struct dns_resolver *r, const char *domain);

void dns_resolver_process(struct dns_resolver *r, int fd, unsigned events);
void dns_resolver_tick(struct dns_resolver *r);
/** -1: nothing pending; 0: results are ready; else ms until c-ares wants a tick. */
int dns_resolver_next_timeout_ms(struct dns_resolver *r);
/** Requests not yet delivered. */
unsigned dns_resolver_pending(const struct dns_resolver *r);

void dns_resolver_stats(const struct dns_resolver *r, struct dns_stats *st);
void dns_resolver_free(struct dns_resolver *r);

/**
 * Clamp a TTL as the cache does: positive answers to [ttl_min, ttl_max],
 * NXDOMAIN/NODATA to [ttl_min, neg_ttl_max], temporary failures to
 * tempfail_ttl. Seconds.
 */
uint32_t dns_ttl_clamp(const struct dns_config *cfg, enum dns_rr_status status, uint32_t ttl);

#endif
