/*
 * dns_cache.c - record sets kept for their TTL, bounded in size.
 *
 * DESCRIPTION
 *	Chained hash table (power-of-two buckets, FNV-1a over qtype and name)
 *	plus an intrusive doubly linked LRU list. Entries are allocated with
 *	their key inline: one allocation per entry besides the record set.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_cache.h"

struct ent {
	struct ent *hnext;
	struct ent *prev, *next; /* LRU: head is the most recent */
	uint64_t expires_ms;
	struct dns_rrset *rr;
	uint32_t hash;
	uint16_t qtype;
	char name[];
};

struct dns_cache {
	struct ent **tab;
	size_t mask;
	size_t n, max;
	size_t negative; /* entries whose record set is not DNS_RR_OK */
	struct ent *head, *tail;
	uint64_t evictions, expired;
};

static uint32_t key_hash(const char *name, uint16_t qtype)
{
	uint32_t h = 2166136261u ^ qtype;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

struct dns_cache *dns_cache_new(size_t max_entries)
{
	struct dns_cache *c;
	size_t b = 16;

	if (max_entries == 0) {
		errno = EINVAL;
		return NULL;
	}
	while (b < max_entries && b < ((size_t)1 << 30))
		b <<= 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->tab = calloc(b, sizeof(*c->tab));
	if (!c->tab) {
		free(c);
		return NULL;
	}
	c->mask = b - 1;
	c->max = max_entries;
	return c;
}

static void lru_unlink(struct dns_cache *c, struct ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct dns_cache *c, struct ent *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static struct ent **find(struct dns_cache *c, const char *name, uint16_t qtype, uint32_t h)
{
	struct ent **pp = &c->tab[h & c->mask];

	for (; *pp; pp = &(*pp)->hnext) {
		struct ent *e = *pp;

		if (e->hash == h && e->qtype == qtype && strcmp(e->name, name) == 0)
			return pp;
	}
	return pp;
}

static void drop(struct dns_cache *c, struct ent **pp)
{
	struct ent *e = *pp;

	*pp = e->hnext;
	lru_unlink(c, e);
	if (e->rr->status != DNS_RR_OK)
		c->negative--;
	dns_rrset_unref(e->rr);
	free(e);
	c->n--;
}

struct dns_rrset *dns_cache_get(struct dns_cache *c, const char *name, uint16_t qtype,
				uint64_t now_ms)
{
	uint32_t h = key_hash(name, qtype);
	struct ent **pp = find(c, name, qtype, h);
	struct ent *e = *pp;

	if (!e)
		return NULL;
	if (now_ms >= e->expires_ms) {
		drop(c, pp);
		c->expired++;
		return NULL;
	}
	if (c->head != e) {
		lru_unlink(c, e);
		lru_push(c, e);
	}
	return e->rr;
}

int dns_cache_put(struct dns_cache *c, const char *name, uint16_t qtype, struct dns_rrset *rr,
		  uint64_t expires_ms)
{
	uint32_t h = key_hash(name, qtype);
	struct ent **pp = find(c, name, qtype, h);
	struct ent *e;
	size_t nl = strlen(name) + 1;

	if (*pp)
		drop(c, pp);
	while (c->n >= c->max && c->tail) {
		struct ent *t = c->tail;

		drop(c, find(c, t->name, t->qtype, t->hash));
		c->evictions++;
	}
	e = malloc(sizeof(*e) + nl);
	if (!e) {
		dns_rrset_unref(rr);
		return -ENOMEM;
	}
	memcpy(e->name, name, nl);
	e->hash = h;
	e->qtype = qtype;
	e->rr = rr;
	e->expires_ms = expires_ms;
	pp = &c->tab[h & c->mask];
	e->hnext = *pp;
	*pp = e;
	lru_push(c, e);
	c->n++;
	if (rr->status != DNS_RR_OK)
		c->negative++;
	return 0;
}

void dns_cache_stats(const struct dns_cache *c, struct dns_cache_stats *st)
{
	st->entries = c->n;
	st->negative = c->negative;
	st->evictions = c->evictions;
	st->expired = c->expired;
}

void dns_cache_free(struct dns_cache *c)
{
	if (!c)
		return;
	while (c->head) {
		struct ent *e = c->head;

		c->head = e->next;
		dns_rrset_unref(e->rr);
		free(e);
	}
	free(c->tab);
	free(c);
}
