/*
 * dns_resolver.c - destinations resolved with c-ares inside the caller's loop.
 *
 * DESCRIPTION
 *	See dns_resolver.h for the contract. Inside, two kinds of object:
 *
 *	A lookup is one (name, type) question on its way: in the in-flight
 *	table (so that later askers join it), either started in c-ares or
 *	waiting in a FIFO behind max_in_flight. When its answer comes it is
 *	cached and handed to every waiter, then freed.
 *
 *	A job is one dns_resolve() request: it wants the MX set of its
 *	domain (slot 0), then the A and AAAA sets of each exchanger (slots
 *	1 + 2i and 2 + 2i). Each want is served from the cache at once or
 *	waits on a lookup. When nothing is outstanding the job builds its
 *	destination and goes on the ready list, which is delivered at the
 *	end of dns_resolver_process() / dns_resolver_tick() so that no
 *	callback ever runs inside dns_resolve() or inside c-ares.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "dns/dns_cache.h"
#include "dns/dns_resolver.h"

#define LOOKUP_BUCKETS (1u << 14)

struct job;

struct waiter {
	struct waiter *next;
	struct job *job;
	unsigned slot;
};

struct lookup {
	struct lookup *hnext;
	struct lookup *qnext;
	struct waiter *waiters;
	struct dns_resolver *r;
	uint32_t hash;
	uint32_t chain_ttl; /* smallest TTL of the CNAMEs followed so far */
	uint16_t qtype;
	uint16_t hops;
	char qname[DNS_NAME_MAX + 1]; /* what is asked now (the chain's end) */
	char name[];		      /* the key */
};

struct jhost {
	const char *name;
	uint16_t pref, port;
	const struct dns_route_host *route; /* the route entry, for literals */
	struct dns_rrset *rr[2];	    /* A, AAAA */
	struct waiter w[2];		    /* slots 1 + 2i and 2 + 2i */
};

enum job_state {
	JOB_MX = 1,
	JOB_ADDR,
	JOB_DONE,
};

struct job {
	struct dns_resolver *r;
	struct job *next; /* ready list */
	dns_done_fn done;
	void *arg;
	struct dns_dest *dest;
	enum job_state state;
	enum dns_source source;
	bool cache_only, miss;
	unsigned outstanding;
	uint32_t ttl;
	struct dns_rrset *mx;
	unsigned n_hosts, n_skipped;
	/* Sized when the exchangers are known, so that a request still
	 * waiting for its MX answer stays small (bulk senders queue many). */
	struct jhost *hosts;
	unsigned cap;
	struct waiter w0; /* slot 0: the MX set */
	char domain[DNS_NAME_MAX + 1];
};

struct dns_resolver {
	const struct dns_config *cfg;
	ares_channel ch;
	dns_watch_fn watch;
	void *watch_arg;
	struct dns_cache *cache;
	struct lookup *tab[LOOKUP_BUCKETS];
	/* Waiting for a query slot: address lookups (and CNAME follow-ups)
	 * of requests already under way go first, so that a burst of new
	 * domains cannot starve the requests it would let finish. */
	struct lookup *qhead, *qtail;
	struct lookup *phead, *ptail;
	struct job *ready, *ready_tail;
	struct job *scratch; /* for dns_resolve_cached() */
	unsigned max_hosts;
	unsigned jobs; /* not yet delivered */
	uint64_t rng;
	bool closing;
	bool in_ares;	   /* inside ares_process_fd() */
	bool multi_server; /* c-ares fails over on SERVFAIL/REFUSED */
	struct dns_stats st;
};

static void job_want(struct job *j, unsigned slot, const char *name, uint16_t qtype);
static void lookup_launch(struct dns_resolver *r, struct lookup *l);

static uint64_t now_ms(void)
{
	return dmta_now_ns() / DMTA_NS_PER_MS;
}

uint32_t dns_ttl_clamp(const struct dns_config *cfg, enum dns_rr_status status, uint32_t ttl)
{
	uint32_t max;

	switch (status) {
	case DNS_RR_OK:
		max = cfg->ttl_max;
		break;
	case DNS_RR_NODATA:
	case DNS_RR_NXDOMAIN:
		max = cfg->neg_ttl_max;
		break;
	case DNS_RR_TEMP:
		return cfg->tempfail_ttl;
	default:
		dmta_panic("dns_ttl_clamp: status %d", (int)status);
	}
	if (ttl < cfg->ttl_min)
		ttl = cfg->ttl_min;
	if (ttl > max)
		ttl = max;
	return ttl;
}

static uint32_t key_hash(const char *name, uint16_t qtype)
{
	uint32_t h = 2166136261u ^ qtype;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

/* ---- jobs ---- */

static struct job *job_new(struct dns_resolver *r)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j)
		j->r = r;
	return j;
}

/* Room for @n exchangers (n <= r->max_hosts). */
static void job_hosts(struct job *j, unsigned n)
{
	if (n <= j->cap)
		return;
	free(j->hosts);
	j->hosts = calloc(n, sizeof(*j->hosts));
	if (!j->hosts)
		dmta_panic("dns: out of memory for %u exchangers", n);
	j->cap = n;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->hosts);
	free(j);
}

static void job_reset(struct job *j)
{
	dns_rrset_unref(j->mx);
	j->mx = NULL;
	for (unsigned i = 0; i < j->n_hosts; i++) {
		dns_rrset_unref(j->hosts[i].rr[0]);
		dns_rrset_unref(j->hosts[i].rr[1]);
		j->hosts[i].rr[0] = j->hosts[i].rr[1] = NULL;
	}
	j->n_hosts = j->n_skipped = 0;
	j->outstanding = 0;
	j->miss = false;
	j->dest = NULL;
}

static void job_finish(struct job *j, enum dns_verdict v, const char *status, const char *reason,
		       const struct dns_dest_host *hosts, unsigned n_hosts)
{
	struct dns_resolver *r = j->r;
	struct dns_dest_in in = {
	    .domain = j->domain,
	    .verdict = v,
	    .source = j->source,
	    .status = status,
	    .reason = reason,
	    .ttl = j->ttl == UINT32_MAX ? r->cfg->ttl_max : j->ttl,
	    .n_hosts = n_hosts,
	    .n_skipped = j->n_skipped,
	    .hosts = hosts,
	};

	j->dest = dns_dest_build(&in);
	if (!j->dest)
		dmta_panic("dns: out of memory building a destination");
	j->state = JOB_DONE;
	switch (v) {
	case DNS_VERDICT_OK:
		r->st.dest_ok++;
		break;
	case DNS_VERDICT_TEMP:
		r->st.dest_temp++;
		break;
	case DNS_VERDICT_PERM:
		r->st.dest_perm++;
		break;
	}
	if (j->cache_only)
		return;
	/* The record sets are no longer needed: the destination holds copies. */
	struct dns_dest *d = j->dest;

	job_reset(j);
	j->dest = d;
	j->next = NULL;
	if (r->ready_tail)
		r->ready_tail->next = j;
	else
		r->ready = j;
	r->ready_tail = j;
}

static bool is_ip_literal(const char *s)
{
	struct in6_addr a;
	size_t n = strlen(s);

	/* Cheap test first: a dotted quad ends in a digit, an IPv6 text has
	 * a colon; a host name's last label is never all digits, but most
	 * end in a letter. */
	if (n == 0 || (!(s[n - 1] >= '0' && s[n - 1] <= '9') && !strchr(s, ':')))
		return false;
	return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

/* Every address lookup is in: assemble the destination. */
static void job_assemble(struct job *j)
{
	struct dns_resolver *r = j->r;
	const struct dns_config *cfg = r->cfg;
	struct dns_dest_host out[DNS_HOSTS_MAX];
	unsigned n = 0, with_v4 = 0;
	const char *temp_why = NULL;
	char reason[400];

	for (unsigned i = 0; i < j->n_hosts; i++) {
		struct jhost *h = &j->hosts[i];
		struct dns_dest_host *o = &out[n];

		memset(o, 0, sizeof(*o));
		o->name = h->name;
		o->pref = h->pref;
		o->port = h->port;
		if (h->route && h->route->family == AF_INET) {
			o->v4 = &h->route->addr.v4;
			o->n_v4 = 1;
		} else if (h->route && h->route->family == AF_INET6) {
			o->v6 = &h->route->addr.v6;
			o->n_v6 = 1;
		}
		for (int f = 0; f < 2; f++) {
			struct dns_rrset *rr = h->rr[f];

			if (!rr)
				continue;
			if (rr->status == DNS_RR_TEMP && !temp_why)
				temp_why = rr->why;
			if (rr->status != DNS_RR_OK)
				continue;
			unsigned k = rr->n < cfg->max_addrs ? rr->n : cfg->max_addrs;

			if (f == 0) {
				o->v4 = dns_rrset_v4(rr, 0);
				o->n_v4 = (uint16_t)k;
			} else {
				o->v6 = dns_rrset_v6(rr, 0);
				o->n_v6 = (uint16_t)k;
			}
		}
		if (o->n_v4 + o->n_v6 == 0) {
			j->n_skipped++; /* RFC 5321 §5.1: no address, try the next */
			continue;
		}
		with_v4 += o->n_v4 > 0;
		n++;
	}

	if (with_v4) {
		if (j->n_skipped)
			snprintf(reason, sizeof(reason), "%u of %u exchangers usable", n,
				 n + j->n_skipped);
		else
			snprintf(reason, sizeof(reason), "ok");
		job_finish(j, DNS_VERDICT_OK, "2.0.0", reason, out, n);
	} else if (n) {
		job_finish(j, DNS_VERDICT_TEMP, "4.4.4",
			   "only IPv6 addresses, and IPv6 is not used yet", out, n);
	} else if (temp_why) {
		snprintf(reason, sizeof(reason), "address lookup failed: %s", temp_why);
		job_finish(j, DNS_VERDICT_TEMP, "4.4.3", reason, NULL, 0);
	} else if (j->source == DNS_SRC_ROUTE || j->source == DNS_SRC_RELAY) {
		/* A broken route is the operator's to fix: hold the mail. */
		job_finish(j, DNS_VERDICT_TEMP, "4.4.3",
			   "no host of the configured route has an address", NULL, 0);
	} else if (j->source == DNS_SRC_IMPLICIT) {
		snprintf(reason, sizeof(reason), "%s has no MX and no address records", j->domain);
		job_finish(j, DNS_VERDICT_PERM, "5.4.4", reason, NULL, 0);
	} else {
		snprintf(reason, sizeof(reason), "no MX host of %s has an address", j->domain);
		job_finish(j, DNS_VERDICT_PERM, "5.4.4", reason, NULL, 0);
	}
}

static void job_addr_phase(struct job *j)
{
	j->state = JOB_ADDR;
	/* One extra count so that answers served from the cache during the
	 * loop cannot finish the job before every want is made. */
	j->outstanding = 1;
	for (unsigned i = 0; i < j->n_hosts; i++) {
		if (j->hosts[i].route && j->hosts[i].route->family)
			continue;
		j->outstanding++;
		job_want(j, 1 + 2 * i, j->hosts[i].name, DNS_T_A);
		if (j->r->cfg->ipv6) {
			j->outstanding++;
			job_want(j, 2 + 2 * i, j->hosts[i].name, DNS_T_AAAA);
		}
	}
	if (--j->outstanding == 0)
		job_assemble(j);
}

static void job_mx_answer(struct job *j)
{
	struct dns_resolver *r = j->r;
	const struct dns_rrset *mx = j->mx;
	char reason[400];

	switch ((enum dns_rr_status)mx->status) {
	case DNS_RR_TEMP:
		snprintf(reason, sizeof(reason), "MX lookup for %s failed: %s", j->domain, mx->why);
		job_finish(j, DNS_VERDICT_TEMP, "4.4.3", reason, NULL, 0);
		return;
	case DNS_RR_NXDOMAIN:
		snprintf(reason, sizeof(reason), "domain %s not found (NXDOMAIN)", j->domain);
		job_finish(j, DNS_VERDICT_PERM, "5.1.2", reason, NULL, 0);
		return;
	case DNS_RR_NODATA:
		/* RFC 5321 §5.1: no MX at all, the domain is its own exchanger. */
		j->source = DNS_SRC_IMPLICIT;
		job_hosts(j, 1);
		j->hosts[0] = (struct jhost){.name = j->domain, .pref = 0};
		j->n_hosts = 1;
		job_addr_phase(j);
		return;
	case DNS_RR_OK:
		break;
	default:
		dmta_panic("dns: MX status %u", mx->status);
	}
	if (mx->null_mx) {
		snprintf(reason, sizeof(reason), "%s does not accept mail (null MX, RFC 7505)",
			 j->domain);
		job_finish(j, DNS_VERDICT_PERM, "5.1.10", reason, NULL, 0);
		return;
	}

	struct dns_mx_ref ord[DNS_RR_MAX];

	for (unsigned i = 0; i < mx->n; i++) {
		ord[i].pref = dns_rrset_mx(mx, i)->pref;
		ord[i].idx = (uint16_t)i;
	}
	dns_mx_order(ord, mx->n, &r->rng);

	/* RFC 5321 §5.1: when this host is among the exchangers, only those
	 * strictly more preferred than it may be used; none means a loop. */
	unsigned n = mx->n;

	for (unsigned i = 0; i < mx->n && r->cfg->n_local; i++) {
		if (dns_config_is_local(r->cfg, dns_rrset_mx_name(mx, ord[i].idx))) {
			while (i > 0 && ord[i - 1].pref == ord[i].pref)
				i--;
			j->n_skipped += mx->n - i;
			n = i;
			break;
		}
	}
	if (n == 0) {
		snprintf(reason, sizeof(reason),
			 "mail for %s loops back to this host (its best MX is one of [dns] "
			 "local_names)",
			 j->domain);
		job_finish(j, DNS_VERDICT_PERM, "5.4.6", reason, NULL, 0);
		return;
	}
	job_hosts(j, n < r->cfg->max_mx ? n : r->cfg->max_mx);
	for (unsigned i = 0; i < n; i++) {
		const char *name = dns_rrset_mx_name(mx, ord[i].idx);

		if (j->n_hosts == r->cfg->max_mx || is_ip_literal(name)) {
			j->n_skipped++;
			continue;
		}
		j->hosts[j->n_hosts++] = (struct jhost){.name = name, .pref = ord[i].pref};
	}
	if (j->n_hosts == 0) {
		snprintf(reason, sizeof(reason), "no usable MX host for %s (IP literals only)",
			 j->domain);
		job_finish(j, DNS_VERDICT_PERM, "5.4.4", reason, NULL, 0);
		return;
	}
	job_addr_phase(j);
}

/* A record set for @slot has come (one reference is the job's now). */
static void job_got(struct job *j, unsigned slot, struct dns_rrset *rr)
{
	uint32_t t = dns_ttl_clamp(j->r->cfg, (enum dns_rr_status)rr->status, rr->ttl);

	if (t < j->ttl)
		j->ttl = t;
	if (slot == 0) {
		if (j->state != JOB_MX)
			dmta_panic("dns: MX answer in state %d", (int)j->state);
		j->mx = rr;
		job_mx_answer(j);
		return;
	}
	if (j->state != JOB_ADDR)
		dmta_panic("dns: address answer in state %d", (int)j->state);
	j->hosts[(slot - 1) / 2].rr[(slot - 1) % 2] = rr;
	if (--j->outstanding == 0)
		job_assemble(j);
}

static struct lookup *lookup_find(struct dns_resolver *r, const char *name, uint16_t qtype,
				  uint32_t h)
{
	for (struct lookup *l = r->tab[h & (LOOKUP_BUCKETS - 1)]; l; l = l->hnext)
		if (l->hash == h && l->qtype == qtype && strcmp(l->name, name) == 0)
			return l;
	return NULL;
}

static void job_want(struct job *j, unsigned slot, const char *name, uint16_t qtype)
{
	struct dns_resolver *r = j->r;
	struct dns_rrset *rr = dns_cache_get(r->cache, name, qtype, now_ms());
	struct waiter *w;
	struct lookup *l;
	uint32_t h;

	if (rr) {
		r->st.cache_hits++;
		dns_rrset_ref(rr);
		job_got(j, slot, rr);
		return;
	}
	r->st.cache_misses++;
	if (j->cache_only) {
		j->miss = true;
		return;
	}
	w = slot ? &j->hosts[(slot - 1) / 2].w[(slot - 1) % 2] : &j->w0;
	w->job = j;
	w->slot = slot;
	h = key_hash(name, qtype);
	l = lookup_find(r, name, qtype, h);
	if (l) {
		r->st.dedup++;
		w->next = l->waiters;
		l->waiters = w;
		return;
	}
	size_t nl = strlen(name) + 1;

	l = calloc(1, sizeof(*l) + nl);
	if (!l)
		dmta_panic("dns: out of memory for a lookup");
	l->r = r;
	l->hash = h;
	l->qtype = qtype;
	l->chain_ttl = UINT32_MAX;
	memcpy(l->name, name, nl);
	memcpy(l->qname, name, nl);
	w->next = NULL;
	l->waiters = w;
	l->hnext = r->tab[h & (LOOKUP_BUCKETS - 1)];
	r->tab[h & (LOOKUP_BUCKETS - 1)] = l;
	lookup_launch(r, l);
}

/* ---- lookups ---- */

static void lookup_done(struct dns_resolver *r, struct lookup *l, struct dns_rrset *rr)
{
	struct lookup **pp = &r->tab[l->hash & (LOOKUP_BUCKETS - 1)];
	uint32_t ttl;

	while (*pp != l)
		pp = &(*pp)->hnext;
	*pp = l->hnext;

	if (rr->status == DNS_RR_OK && l->chain_ttl < rr->ttl)
		rr->ttl = l->chain_ttl;
	ttl = dns_ttl_clamp(r->cfg, (enum dns_rr_status)rr->status, rr->ttl);
	if (ttl && !r->closing) {
		dns_rrset_ref(rr);
		if (dns_cache_put(r->cache, l->name, l->qtype, rr, now_ms() + ttl * 1000ULL) < 0)
			dmta_warn("dns: out of memory caching %s", l->name);
	}
	for (struct waiter *w = l->waiters, *next; w; w = next) {
		next = w->next;
		dns_rrset_ref(rr);
		job_got(w->job, w->slot, rr);
	}
	dns_rrset_unref(rr);
	free(l);
}

static const char *ares_why(const struct dns_resolver *r, int status)
{
	switch (status) {
	case ARES_ETIMEOUT:
		return "DNS timeout";
	case ARES_ECONNREFUSED:
		return r->multi_server ? "no DNS server answered (SERVFAIL, REFUSED or unreachable)"
				       : "DNS server unreachable (connection refused)";
	case ARES_ESERVFAIL:
		return "SERVFAIL from DNS server";
	case ARES_EREFUSED:
		return "REFUSED by DNS server";
	case ARES_EFORMERR:
		return "FORMERR from DNS server";
	case ARES_ENOTIMP:
		return "NOTIMP from DNS server";
	case ARES_EBADRESP:
		return "malformed DNS reply";
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return "resolver shut down";
	default:
		return ares_strerror(status);
	}
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;
	struct dns_resolver *r = l->r;
	struct dns_rrset *rr = NULL;

	r->st.in_flight--;
	r->st.retries += (uint64_t)timeouts;
	if (abuf && alen > 0 && status != ARES_EDESTRUCTION && status != ARES_ECANCELLED) {
		int rc = dns_msg_parse(abuf, (size_t)alen, l->qtype, &rr);

		if (rc == -ENOMEM)
			dmta_panic("dns: out of memory parsing a reply");
		if (rc < 0) {
			r->st.malformed++;
			dmta_warn("dns: malformed reply for %s %s", l->qname,
				  dns_type_name(l->qtype));
			rr = dns_rrset_new_status(l->qtype, DNS_RR_TEMP, 0, "malformed DNS reply");
		} else {
			r->st.answers++;
			r->st.bad_addrs += rr->dropped;
		}
	} else {
		if (status == ARES_ETIMEOUT)
			r->st.timeouts++;
		if (status == ARES_EBADRESP)
			r->st.malformed++;
		rr = dns_rrset_new_status(l->qtype, DNS_RR_TEMP, 0, ares_why(r, status));
	}
	if (!rr)
		dmta_panic("dns: out of memory for a record set");

	switch ((enum dns_rr_status)rr->status) {
	case DNS_RR_NXDOMAIN:
		r->st.nxdomain++;
		break;
	case DNS_RR_NODATA:
		if (rr->cname && !r->closing) {
			/* The reply stopped at a CNAME whose target it did not
			 * answer for: ask for the target, within the bound. */
			l->hops = (uint16_t)(l->hops + rr->hops);
			if (l->hops < DNS_CNAME_MAX) {
				if (rr->ttl < l->chain_ttl)
					l->chain_ttl = rr->ttl;
				snprintf(l->qname, sizeof(l->qname), "%s", rr->cname);
				dns_rrset_unref(rr);
				lookup_launch(r, l);
				return;
			}
			dns_rrset_unref(rr);
			rr = dns_rrset_new_status(l->qtype, DNS_RR_TEMP, 0, "CNAME chain too long");
			if (!rr)
				dmta_panic("dns: out of memory for a record set");
			r->st.failures++;
			break;
		}
		r->st.nodata++;
		break;
	case DNS_RR_TEMP:
		r->st.failures++;
		break;
	default:
		break;
	}
	lookup_done(r, l, rr);
}

static void lookup_launch(struct dns_resolver *r, struct lookup *l)
{
	if (r->closing) {
		struct dns_rrset *rr =
		    dns_rrset_new_status(l->qtype, DNS_RR_TEMP, 0, "resolver shut down");

		if (!rr)
			dmta_panic("dns: out of memory for a record set");
		lookup_done(r, l, rr);
		return;
	}
	/* Inside c-ares (an answer's callback) new queries wait: c-ares reads
	 * a socket until it runs dry, and queries sent from its callbacks
	 * would keep it from ever running dry under load, holding the loop.
	 * pump() starts them once c-ares has returned. */
	if (r->in_ares || r->st.in_flight >= r->cfg->max_in_flight) {
		struct lookup **head = &r->qhead, **tail = &r->qtail;

		if (l->qtype != DNS_T_MX || l->hops) {
			head = &r->phead;
			tail = &r->ptail;
		}
		l->qnext = NULL;
		if (*tail)
			(*tail)->qnext = l;
		else
			*head = l;
		*tail = l;
		r->st.waiting++;
		return;
	}
	r->st.queries++;
	if (++r->st.in_flight > r->st.in_flight_max)
		r->st.in_flight_max = r->st.in_flight;
	/* May call on_answer before returning (e.g. no servers): l must not
	 * be touched after this. */
	ares_query(r->ch, l->qname, 1 /* IN */, l->qtype, on_answer, l);
}

/* ---- the public face ---- */

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;

	if (r->watch)
		r->watch(fd, readable != 0, writable != 0, r->watch_arg);
}

static unsigned count_servers(const struct dns_config *cfg)
{
	unsigned n = 0;

	if (cfg->servers) {
		n = 1;
		for (const char *p = cfg->servers; *p; p++)
			n += *p == ',';
		return n;
	}
	FILE *f = fopen("/etc/resolv.conf", "r");
	char line[256];

	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f))
		n += strncmp(line, "nameserver", 10) == 0;
	fclose(f);
	return n ? (n > 3 ? 3 : n) : 1;
}

struct dns_resolver *dns_resolver_new(const struct dns_config *cfg, dns_watch_fn watch,
				      void *watch_arg)
{
	static bool lib_ready;
	struct ares_options o;
	struct dns_resolver *r;
	unsigned ns, rounds;
	int rc;

	if (!lib_ready) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			errno = EIO;
			return NULL;
		}
		lib_ready = true;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->cfg = cfg;
	r->watch = watch;
	r->watch_arg = watch_arg;
	r->max_hosts = cfg->max_mx > DNS_ROUTE_HOSTS_MAX ? cfg->max_mx : DNS_ROUTE_HOSTS_MAX;
	if (getrandom(&r->rng, sizeof(r->rng), GRND_NONBLOCK) != sizeof(r->rng) || !r->rng)
		r->rng = dmta_now_ns() ^ ((uint64_t)getpid() << 32) ^ 1;
	r->cache = dns_cache_new(cfg->cache_size);
	r->scratch = job_new(r);
	if (!r->cache || !r->scratch)
		goto fail_nomem;
	job_hosts(r->scratch, r->max_hosts); /* cache hits never allocate for it */
	r->scratch->cache_only = true;

	/* c-ares waits timeout << (try / servers) on each try: spread the
	 * configured budget so that the whole lookup ends within it. */
	ns = count_servers(cfg);
	rounds = (1u << cfg->tries) - 1;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = r;
	o.timeout = (int)(cfg->timeout_ms / (ns * rounds));
	if (o.timeout < 1)
		o.timeout = 1;
	o.tries = (int)cfg->tries;
	/* With several servers, a SERVFAIL or REFUSED from one sends the query
	 * on to the next (as libresolv does); c-ares 1.18 then reports the end
	 * of the road as "connection refused" whatever it was. With a single
	 * server there is nowhere to go: NOCHECKRESP lets the reply through
	 * so that the reason says what the server said. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	if (ns == 1)
		o.flags |= ARES_FLAG_NOCHECKRESP;
	r->multi_server = ns > 1;
	/* All answers come back on one UDP socket per server: room for a
	 * full window of them, or the kernel drops some and their queries
	 * wait out a timeout. */
	o.socket_receive_buffer_size = (int)(cfg->max_in_flight * 2048u);
	if (o.socket_receive_buffer_size < 256 * 1024)
		o.socket_receive_buffer_size = 256 * 1024;
	if (o.socket_receive_buffer_size > 4 * 1024 * 1024)
		o.socket_receive_buffer_size = 4 * 1024 * 1024;
	rc = ares_init_options(&r->ch, &o,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
				   ARES_OPT_FLAGS | ARES_OPT_SOCK_RCVBUF);
	if (rc != ARES_SUCCESS) {
		dmta_err("dns: c-ares: %s", ares_strerror(rc));
		dns_cache_free(r->cache);
		job_free(r->scratch);
		free(r);
		errno = rc == ARES_ENOMEM ? ENOMEM : EIO;
		return NULL;
	}
	if (cfg->servers) {
		rc = ares_set_servers_ports_csv(r->ch, cfg->servers);
		if (rc != ARES_SUCCESS) {
			dmta_err("dns: servers \"%s\": %s", cfg->servers, ares_strerror(rc));
			ares_destroy(r->ch);
			dns_cache_free(r->cache);
			job_free(r->scratch);
			free(r);
			errno = EINVAL;
			return NULL;
		}
	}
	return r;
fail_nomem:
	dns_cache_free(r->cache);
	job_free(r->scratch);
	free(r);
	errno = ENOMEM;
	return NULL;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3): fill the job's one host. */
static int literal_parse(const char *d, struct dns_route_host *h)
{
	size_t n = strlen(d);
	char buf[DNS_NAME_MAX + 1];

	if (n < 3 || d[n - 1] != ']' || n - 2 >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, d + 1, n - 2);
	buf[n - 2] = '\0';
	memset(h, 0, sizeof(*h));
	if (inet_pton(AF_INET, buf, &h->addr.v4) == 1) {
		h->family = AF_INET;
	} else if (strncasecmp(buf, "ipv6:", 5) == 0 &&
		   inet_pton(AF_INET6, buf + 5, &h->addr.v6) == 1) {
		h->family = AF_INET6;
	} else {
		return -EINVAL;
	}
	snprintf(h->name, sizeof(h->name), "%s", d);
	return 0;
}

static void job_start(struct job *j, const char *domain)
{
	struct dns_resolver *r = j->r;
	const struct dns_config *cfg = r->cfg;
	const struct dns_route *route;
	static struct dns_route_host lit; /* control thread only */
	char reason[400];

	r->st.requests++;
	j->state = JOB_MX;
	j->ttl = UINT32_MAX;
	j->source = DNS_SRC_NONE;
	if (domain[0] == '[') {
		snprintf(j->domain, sizeof(j->domain), "%s", domain);
		if (literal_parse(domain, &lit) < 0) {
			snprintf(reason, sizeof(reason), "bad address literal %.260s", domain);
			j->ttl = 0;
			job_finish(j, DNS_VERDICT_PERM, "5.1.2", reason, NULL, 0);
			return;
		}
		struct dns_dest_host h = {.name = lit.name};

		if (lit.family == AF_INET) {
			h.v4 = &lit.addr.v4;
			h.n_v4 = 1;
		} else {
			h.v6 = &lit.addr.v6;
			h.n_v6 = 1;
		}
		j->source = DNS_SRC_LITERAL;
		j->ttl = cfg->ttl_max;
		if (lit.family == AF_INET)
			job_finish(j, DNS_VERDICT_OK, "2.0.0", "address literal", &h, 1);
		else
			job_finish(j, DNS_VERDICT_TEMP, "4.4.4",
				   "only IPv6 addresses, and IPv6 is not used yet", &h, 1);
		return;
	}
	if (dns_name_canon_idna(domain, j->domain) < 0) {
		snprintf(j->domain, sizeof(j->domain), "%.*s", DNS_NAME_MAX, domain);
		for (char *p = j->domain; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
		j->ttl = 0;
		job_finish(j, DNS_VERDICT_PERM, "5.1.2",
			   "invalid domain name (neither a host name nor IDNA2008)", NULL, 0);
		return;
	}
	route = cfg->relay.n ? &cfg->relay : dns_config_route(cfg, j->domain);
	if (route) {
		j->source = cfg->relay.n ? DNS_SRC_RELAY : DNS_SRC_ROUTE;
		job_hosts(j, route->n);
		for (unsigned i = 0; i < route->n; i++)
			j->hosts[i] = (struct jhost){.name = route->hosts[i].name,
						     .pref = (uint16_t)i,
						     .port = route->hosts[i].port,
						     .route = &route->hosts[i]};
		j->n_hosts = route->n;
		job_addr_phase(j);
		return;
	}
	j->source = DNS_SRC_MX;
	job_want(j, 0, j->domain, DNS_T_MX);
}

int dns_resolve(struct dns_resolver *r, const char *domain, dns_done_fn done, void *arg)
{
	struct job *j = job_new(r);

	if (!j)
		return -ENOMEM;
	j->done = done;
	j->arg = arg;
	r->jobs++;
	job_start(j, domain);
	return 0;
}

struct dns_dest *dns_resolve_cached(struct dns_resolver *r, const char *domain)
{
	struct job *j = r->scratch;
	struct dns_dest *d;

	job_start(j, domain);
	d = j->miss ? NULL : j->dest;
	if (j->miss && j->dest)
		dns_dest_free(j->dest);
	job_reset(j);
	return d;
}

/* Start what waits, as far as max_in_flight allows. */
static struct lookup *dequeue(struct dns_resolver *r)
{
	struct lookup **head = r->phead ? &r->phead : &r->qhead;
	struct lookup **tail = r->phead ? &r->ptail : &r->qtail;
	struct lookup *q = *head;

	if (q) {
		*head = q->qnext;
		if (!*head)
			*tail = NULL;
		r->st.waiting--;
	}
	return q;
}

static void pump(struct dns_resolver *r)
{
	struct lookup *q;

	while (r->st.in_flight < r->cfg->max_in_flight && (q = dequeue(r)))
		lookup_launch(r, q);
}

static void deliver(struct dns_resolver *r)
{
	while (r->ready) {
		struct job *j = r->ready;

		r->ready = j->next;
		if (!r->ready)
			r->ready_tail = NULL;
		r->jobs--;
		j->done(j->dest, j->arg);
		job_free(j);
	}
}

void dns_resolver_process(struct dns_resolver *r, int fd, unsigned events)
{
	r->in_ares = true;
	ares_process_fd(r->ch, (events & DNS_EV_READ) ? fd : ARES_SOCKET_BAD,
			(events & DNS_EV_WRITE) ? fd : ARES_SOCKET_BAD);
	r->in_ares = false;
	pump(r);
	deliver(r);
}

void dns_resolver_tick(struct dns_resolver *r)
{
	r->in_ares = true;
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	r->in_ares = false;
	pump(r);
	deliver(r);
}

int dns_resolver_next_timeout_ms(struct dns_resolver *r)
{
	struct timeval tv, *t;

	if (r->ready || ((r->qhead || r->phead) && r->st.in_flight < r->cfg->max_in_flight))
		return 0;
	if (r->st.in_flight == 0)
		return -1;
	t = ares_timeout(r->ch, NULL, &tv);
	if (!t)
		return -1;
	return (int)(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
}

unsigned dns_resolver_pending(const struct dns_resolver *r)
{
	return r->jobs;
}

void dns_resolver_stats(const struct dns_resolver *r, struct dns_stats *st)
{
	struct dns_cache_stats cs;

	*st = r->st;
	dns_cache_stats(r->cache, &cs);
	st->evictions = cs.evictions;
	st->cache_entries = cs.entries;
	st->neg_entries = cs.negative;
}

void dns_resolver_free(struct dns_resolver *r)
{
	if (!r)
		return;
	r->closing = true;
	/* Queued lookups never reached c-ares: fail them first, then let
	 * c-ares fail its own (ARES_EDESTRUCTION), then tell the callers. */
	struct lookup *q;

	while ((q = dequeue(r)))
		lookup_launch(r, q);
	ares_destroy(r->ch);
	deliver(r);
	dns_cache_free(r->cache);
	job_reset(r->scratch);
	job_free(r->scratch);
	free(r);
}
