/*
 * dns_dest.c - destinations: ordering, building, printing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_json.h"
#include "dns/dns_dest.h"

void dns_mx_order(struct dns_mx_ref *mx, unsigned n, uint64_t *rng)
{
	/* Insertion sort: n is bounded by the reply size and usually < 10. */
	for (unsigned i = 1; i < n; i++) {
		struct dns_mx_ref t = mx[i];
		unsigned j = i;

		while (j > 0 && mx[j - 1].pref > t.pref) {
			mx[j] = mx[j - 1];
			j--;
		}
		mx[j] = t;
	}
	/* Fisher-Yates within each run of equal preference. */
	for (unsigned s = 0; s < n;) {
		unsigned e = s + 1;

		while (e < n && mx[e].pref == mx[s].pref)
			e++;
		for (unsigned i = e - 1; i > s; i--) {
			unsigned j = s + (unsigned)(dns_rand(rng) % (i - s + 1));
			struct dns_mx_ref t = mx[i];

			mx[i] = mx[j];
			mx[j] = t;
		}
		s = e;
	}
}

/* A 64-bit hash of one exchanger, mixed so that summing them is fair. */
static uint64_t host_hash(const char *name, uint16_t port)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (port ? port : 25u);

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	/* splitmix64 finaliser */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

struct dns_dest *dns_dest_build(const struct dns_dest_in *in)
{
	size_t sz = align8(sizeof(struct dns_dest));
	size_t hosts_off, addr_off, str_off;
	struct dns_dest *d;
	char *base;

	hosts_off = sz;
	sz += align8(in->n_hosts * sizeof(struct dns_host));
	addr_off = sz;
	for (unsigned i = 0; i < in->n_hosts; i++)
		sz += in->hosts[i].n_v6 * sizeof(struct in6_addr) +
		      in->hosts[i].n_v4 * sizeof(struct in_addr);
	str_off = sz;
	sz += strlen(in->domain) + 1 + strlen(in->status) + 1 + strlen(in->reason) + 1;
	for (unsigned i = 0; i < in->n_hosts; i++)
		sz += strlen(in->hosts[i].name) + 1;

	base = malloc(sz);
	if (!base)
		return NULL;
	d = (struct dns_dest *)(void *)base;
	struct dns_host *h = (struct dns_host *)(void *)(base + hosts_off);
	char *a = base + addr_off, *s = base + str_off;

#define PUTS(dst, src)                                                                             \
	do {                                                                                       \
		size_t l_ = strlen(src) + 1;                                                       \
		memcpy(s, (src), l_);                                                              \
		(dst) = s;                                                                         \
		s += l_;                                                                           \
	} while (0)

	PUTS(d->domain, in->domain);
	PUTS(d->status, in->status);
	PUTS(d->reason, in->reason);
	d->verdict = in->verdict;
	d->source = in->source;
	d->ttl = in->ttl;
	d->n_hosts = (uint16_t)in->n_hosts;
	d->n_skipped = (uint16_t)in->n_skipped;
	d->hosts = h;
	d->site = 0;
	for (unsigned i = 0; i < in->n_hosts; i++) {
		const struct dns_dest_host *src = &in->hosts[i];

		/* A sum: the same set in any order gives the same site. */
		d->site += host_hash(src->name, src->port);

		PUTS(h[i].name, src->name);
		h[i].pref = src->pref;
		h[i].port = src->port;
		h[i].n_v4 = src->n_v4;
		h[i].n_v6 = src->n_v6;
		/* v6 first: 16-byte entries keep the 4-byte ones aligned. */
		if (src->n_v6)
			memcpy(a, src->v6, src->n_v6 * sizeof(struct in6_addr));
		h[i].v6 = (const struct in6_addr *)(void *)a;
		a += src->n_v6 * sizeof(struct in6_addr);
		if (src->n_v4)
			memcpy(a, src->v4, src->n_v4 * sizeof(struct in_addr));
		h[i].v4 = (const struct in_addr *)(void *)a;
		a += src->n_v4 * sizeof(struct in_addr);
	}
#undef PUTS
	return d;
}

void dns_dest_free(struct dns_dest *d)
{
	free(d);
}

const char *dns_verdict_name(enum dns_verdict v)
{
	switch (v) {
	case DNS_VERDICT_OK:
		return "ok";
	case DNS_VERDICT_TEMP:
		return "temporary";
	case DNS_VERDICT_PERM:
		return "permanent";
	default:
		return "?";
	}
}

const char *dns_source_name(enum dns_source s)
{
	switch (s) {
	case DNS_SRC_MX:
		return "mx";
	case DNS_SRC_IMPLICIT:
		return "implicit";
	case DNS_SRC_ROUTE:
		return "route";
	case DNS_SRC_RELAY:
		return "relay";
	case DNS_SRC_LITERAL:
		return "literal";
	case DNS_SRC_NONE:
		return "none";
	default:
		return "?";
	}
}

/* An array of addresses as strings. */
static void json_addrs(struct dmta_json *j, int af, const void *a, size_t size, unsigned n)
{
	char ip[INET6_ADDRSTRLEN];

	dmta_json_arr(j);
	for (unsigned k = 0; k < n; k++)
		dmta_json_str(j, inet_ntop(af, (const char *)a + k * size, ip, sizeof(ip)));
	dmta_json_arr_end(j);
}

void dns_dest_print(FILE *f, const struct dns_dest *d, bool json)
{
	char ip[INET6_ADDRSTRLEN], site[17];
	struct dmta_json j;

	if (!json) {
		fprintf(f, "%s: %s %s (%s) via %s, ttl %us, site %016lx\n", d->domain,
			dns_verdict_name(d->verdict), d->status, d->reason,
			dns_source_name(d->source), d->ttl, d->site);
		for (unsigned i = 0; i < d->n_hosts; i++) {
			const struct dns_host *h = &d->hosts[i];

			fprintf(f, "  %5u %s", h->pref, h->name);
			if (h->port)
				fprintf(f, " port %u", h->port);
			for (unsigned k = 0; k < h->n_v4; k++)
				fprintf(f, " %s", inet_ntop(AF_INET, &h->v4[k], ip, sizeof(ip)));
			for (unsigned k = 0; k < h->n_v6; k++)
				fprintf(f, " %s", inet_ntop(AF_INET6, &h->v6[k], ip, sizeof(ip)));
			fputc('\n', f);
		}
		if (d->n_skipped)
			fprintf(f, "  (%u exchanger%s skipped)\n", d->n_skipped,
				d->n_skipped == 1 ? "" : "s");
		return;
	}
	dmta_json_init_file(&j, f);
	dmta_json_obj(&j);
	dmta_json_kstr(&j, "domain", d->domain);
	dmta_json_kstr(&j, "verdict", dns_verdict_name(d->verdict));
	dmta_json_kstr(&j, "status", d->status);
	dmta_json_kstr(&j, "reason", d->reason);
	dmta_json_kstr(&j, "source", dns_source_name(d->source));
	dmta_json_ku64(&j, "ttl", d->ttl);
	snprintf(site, sizeof(site), "%016lx", d->site);
	dmta_json_kstr(&j, "site", site);
	dmta_json_ku64(&j, "skipped", d->n_skipped);
	dmta_json_key(&j, "hosts");
	dmta_json_arr(&j);
	for (unsigned i = 0; i < d->n_hosts; i++) {
		const struct dns_host *h = &d->hosts[i];

		dmta_json_obj(&j);
		dmta_json_ku64(&j, "pref", h->pref);
		dmta_json_kstr(&j, "name", h->name);
		dmta_json_ku64(&j, "port", h->port ? h->port : 25);
		dmta_json_key(&j, "ipv4");
		json_addrs(&j, AF_INET, h->v4, sizeof(h->v4[0]), h->n_v4);
		dmta_json_key(&j, "ipv6");
		json_addrs(&j, AF_INET6, h->v6, sizeof(h->v6[0]), h->n_v6);
		dmta_json_obj_end(&j);
	}
	dmta_json_arr_end(&j);
	dmta_json_obj_end(&j);
	dmta_json_finish(&j);
	fputc('\n', f);
}
