/*
 * dns_cache.h - record sets kept for their TTL, bounded in size.
 *
 * SYNOPSIS
 *	c = dns_cache_new(max_entries);
 *	rr = dns_cache_get(c, name, qtype, now_ms);
 *	dns_cache_put(c, name, qtype, rr, expires_ms);
 *	dns_cache_free(c);
 *
 * DESCRIPTION
 *	A hash table keyed by (qtype, name) with an LRU list. Names must be in
 *	the canonical form the resolver uses (lower case, no final dot).
 *
 *	dns_cache_get() returns the record set (borrowed: take a reference to
 *	keep it past the next cache call) or NULL when absent or expired; an
 *	expired entry is dropped on the way. A hit moves the entry to the
 *	front of the LRU list.
 *
 *	dns_cache_put() takes over one reference to @rr and replaces any
 *	entry with the same key. When the cache is full the least recently
 *	used entry goes first. Time is given by the caller, in milliseconds
 *	on any monotonic clock, so that the cache can be tested without
 *	waiting.
 *
 * DIAGNOSTICS
 *	dns_cache_new() returns NULL and sets errno; dns_cache_put() returns
 *	0 or -ENOMEM (the reference is then released).
 */
#ifndef DNS_CACHE_H
#define DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns_msg.h"

struct dns_cache;

struct dns_cache_stats {
	uint64_t entries;
	uint64_t negative;  /* entries that say NXDOMAIN, NODATA or a failure */
	uint64_t evictions; /* pushed out by the size bound */
	uint64_t expired;   /* dropped because their TTL ran out */
};

struct dns_cache *dns_cache_new(size_t max_entries);
struct dns_rrset *dns_cache_get(struct dns_cache *c, const char *name, uint16_t qtype,
				uint64_t now_ms);
int dns_cache_put(struct dns_cache *c, const char *name, uint16_t qtype, struct dns_rrset *rr,
		  uint64_t expires_ms);
void dns_cache_stats(const struct dns_cache *c, struct dns_cache_stats *st);
void dns_cache_free(struct dns_cache *c);

#endif
