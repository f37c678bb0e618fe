/*
 * dns_dest.h - a destination: where mail for one domain goes.
 *
 * SYNOPSIS
 *	dns_mx_order(mx, n, &rng);
 *	dest = dns_dest_build(&in);
 *	dns_dest_print(stdout, dest, json);
 *	dns_dest_free(dest);
 *
 * DESCRIPTION
 *	A destination is the resolver's answer as the scheduler sees it: a
 *	verdict (ok, temporary failure, permanent failure) with an enhanced
 *	status code (RFC 3463) and a reason, a TTL, and the hosts to try in
 *	order, each with its preference, port and addresses (IPv4 used, IPv6
 *	kept for later). It is one allocation that the receiver owns and frees
 *	with dns_dest_free(); nothing in it points outside.
 *
 *	The site key lets the scheduler treat domains that share exchangers
 *	as one destination (one worker, one set of connection limits).
 *
 *	dns_mx_order() sorts exchangers by preference and shuffles those of
 *	equal preference (RFC 5321 §5.1), drawing from the caller's xorshift
 *	state so that tests can fix the sequence.
 *
 *	dns_dest_print() writes the text form (several lines) or one JSON
 *	object on one line; `dmta-route` and `dmta-queue route` use it.
 */
#ifndef DNS_DEST_H
#define DNS_DEST_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum dns_verdict {
	DNS_VERDICT_OK = 0,
	DNS_VERDICT_TEMP, /* try again later */
	DNS_VERDICT_PERM, /* bounce now */
};

enum dns_source {
	DNS_SRC_MX = 0,	  /* MX records */
	DNS_SRC_IMPLICIT, /* no MX: the domain's own address (RFC 5321 §5.1) */
	DNS_SRC_ROUTE,	  /* [routes] */
	DNS_SRC_RELAY,	  /* [relay] */
	DNS_SRC_LITERAL,  /* an address literal, user@[192.0.2.1] */
	DNS_SRC_NONE,	  /* failed before any source was known */
};

struct dns_host {
	const char *name;
	uint16_t pref;
	uint16_t port; /* 0: the default (25) */
	uint16_t n_v4, n_v6;
	const struct in_addr *v4;
	const struct in6_addr *v6;
};

struct dns_dest {
	const char *domain;
	enum dns_verdict verdict;
	enum dns_source source;
	const char *status; /* "2.0.0", "5.1.10", "4.4.3", ... */
	const char *reason;
	uint32_t ttl; /* seconds this answer may be reused */
	/*
	 * The MX "site": equal for destinations with the same set of
	 * (exchanger name, port), whatever their order or preferences, e.g.
	 * the many domains hosted by one provider; 0 when there are no
	 * hosts. For sharding destinations over workers (DESIGN.md §1).
	 */
	uint64_t site;
	uint16_t n_hosts;
	uint16_t n_skipped; /* exchangers dropped: literal, no address, over max_mx */
	const struct dns_host *hosts;
};

/** An exchanger on its way into a destination. */
struct dns_dest_host {
	const char *name;
	uint16_t pref;
	uint16_t port;
	uint16_t n_v4, n_v6;
	const struct in_addr *v4; /* n_v4 entries, copied */
	const struct in6_addr *v6;
};

struct dns_dest_in {
	const char *domain;
	enum dns_verdict verdict;
	enum dns_source source;
	const char *status;
	const char *reason;
	uint32_t ttl;
	unsigned n_hosts;
	unsigned n_skipped;
	const struct dns_dest_host *hosts;
};

/** Sort by preference, shuffle equal preferences. */
struct dns_mx_ref {
	uint16_t pref;
	uint16_t idx; /* caller's index */
};
void dns_mx_order(struct dns_mx_ref *mx, unsigned n, uint64_t *rng);

/** xorshift64*: the resolver's source of shuffles; *state must not be 0. */
static inline uint64_t dns_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/** NULL + errno (ENOMEM) on failure. */
struct dns_dest *dns_dest_build(const struct dns_dest_in *in);
void dns_dest_free(struct dns_dest *d);

const char *dns_verdict_name(enum dns_verdict v);
const char *dns_source_name(enum dns_source s);

void dns_dest_print(FILE *f, const struct dns_dest *d, bool json);

#endif
