/*
 * dns_conf.h - the [dns], [routes] and [relay] sections of dmta.conf.
 *
 * SYNOPSIS
 *	dns_config_defaults(&cfg);
 *	rc = dns_config_load(&cfg, conf);
 *	route = dns_config_route(&cfg, domain);
 *	n = dns_hostlist_parse(text, hosts, max, err, errlen);
 *	dns_config_release(&cfg);
 *
 * DESCRIPTION
 *	[dns]
 *	servers = ADDR[:PORT][,ADDR...]  (default: the system's resolv.conf)
 *	timeout = 5s	  a lookup gives up (temporary failure) within this
 *			  time: c-ares doubles the wait each round over the
 *			  servers, so the first try gets
 *			  timeout / (servers * (2^tries - 1)).
 *			  A destination takes two rounds of lookups (MX,
 *			  then the exchangers' addresses in parallel), one
 *			  more per CNAME hop a server did not follow.
 *	tries = 2	  rounds over the servers
 *	ttl_min = 30s, ttl_max = 1d	  bounds on positive TTLs
 *	negative_ttl_max = 3h		  bound on negative TTLs (RFC 2308 §5)
 *	tempfail_ttl = 5s  how long a temporary failure is remembered (0: not)
 *	cache_size = 100000	record sets kept
 *	max_in_flight = 256	queries outstanding at once; more wait
 *	max_mx = 10		exchangers kept per domain (best first)
 *	max_addrs = 8		addresses kept per host and family
 *	ipv6 = yes		also ask for AAAA (kept for later; unused now)
 *	local_names = NAME[,NAME...]	this host's own names: an MX list
 *			  holding one of them is cut to the exchangers
 *			  more preferred than it (RFC 5321 §5.1); when
 *			  none is, the mail would loop (permanent 5.4.6)
 *
 *	[routes]
 *	example.test = 198.18.1.10:2525, mx2.example.test
 *	.example.org = relay.example.org     (a leading dot: subdomains too)
 *	A static route replaces the MX lookup for that domain: the hosts are
 *	tried in the order given; names among them are resolved (A/AAAA).
 *
 *	[relay]
 *	host = smtp.example.net:587[, ...]   every domain goes there.
 *
 *	dns_hostlist_parse() reads "host[:port], [v6addr]:port, 1.2.3.4" lists
 *	(the same grammar in both sections).
 *
 * DIAGNOSTICS
 *	dns_config_load() returns 0 or -EINVAL after logging
 *	"FILE: [section] key: reason"; dns_hostlist_parse() returns the count
 *	or -EINVAL with a reason in err.
 */
#ifndef DNS_CONF_H
#define DNS_CONF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/dmta_conf.h"
#include "dns/dns_msg.h"

#define DNS_ROUTE_HOSTS_MAX 16
#define DNS_HOSTS_MAX	    100 /* bound on max_mx */

struct dns_route_host {
	char name[DNS_NAME_MAX + 1]; /* canonical name, or the address text */
	uint16_t port;		     /* 0: default */
	uint8_t family;		     /* AF_INET/AF_INET6 for an address, 0 for a name */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
};

struct dns_route {
	char *domain; /* canonical; without the leading dot for subdomain routes */
	bool subdomains;
	unsigned n;
	struct dns_route_host *hosts;
};

struct dns_config {
	char *servers; /* NULL: resolv.conf */
	uint64_t timeout_ms;
	unsigned tries;
	uint32_t ttl_min, ttl_max, neg_ttl_max, tempfail_ttl; /* seconds */
	size_t cache_size;
	unsigned max_in_flight;
	unsigned max_mx;
	unsigned max_addrs;
	bool ipv6;
	char **local; /* canonical names, n_local of them */
	unsigned n_local;
	struct dns_route *routes;
	unsigned n_routes;
	struct dns_route relay; /* relay.n == 0: none */
};

/* [dns] in two parts (its free-form keys, then the others), [routes], [relay] host. */
struct dmta_conf_section;
extern const struct dmta_conf_section dns_text_conf_section;
extern const struct dmta_conf_section dns_conf_section;
extern const struct dmta_conf_section dns_routes_conf_section;
extern const struct dmta_conf_section dns_relay_conf_section;

void dns_config_defaults(struct dns_config *cfg);
int dns_config_load(struct dns_config *cfg, const struct dmta_conf *conf);
void dns_config_release(struct dns_config *cfg);

/** Whether @name (canonical) is one of [dns] local_names. */
bool dns_config_is_local(const struct dns_config *cfg, const char *name);

/** The route for a canonical domain: exact first, then the closest parent with subdomains. */
const struct dns_route *dns_config_route(const struct dns_config *cfg, const char *domain);

int dns_hostlist_parse(const char *text, struct dns_route_host *hosts, unsigned max, char *err,
		       size_t errlen);

/**
 * Put @in into canonical form in @out: lower case, no final dot, checked
 * (labels of 1..63 letters, digits, '-' or '_', at most 253 in all).
 * Returns 0 or -EINVAL.
 */
int dns_name_canon(const char *in, char out[DNS_NAME_MAX + 1]);

/**
 * As dns_name_canon(), and a name with non-ASCII (UTF-8) labels is first
 * turned into its A-labels (IDNA2008, via libidn2): "bücher.example" is
 * looked up as "xn--bcher-kva.example". 0 or -EINVAL.
 */
int dns_name_canon_idna(const char *in, char out[DNS_NAME_MAX + 1]);

#endif
