/*
 * queue_names.c - see queue_names.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/queue_names.h"

static uint64_t hash(const char *p, bool nocase)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (nocase && c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		h ^= c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

int queue_names_init(struct queue_names *ns, size_t max, bool nocase)
{
	size_t cap = 8;

	memset(ns, 0, sizeof(*ns));
	while (cap < 2 * max)
		cap *= 2;
	ns->key = calloc(cap, sizeof(*ns->key));
	ns->val = calloc(cap, sizeof(*ns->val));
	if (ns->key == NULL || ns->val == NULL) {
		queue_names_free(ns);
		return -ENOMEM;
	}
	ns->mask = cap - 1;
	ns->max = max;
	ns->nocase = nocase;
	return 0;
}

int queue_names_put(struct queue_names *ns, const char *name, uint32_t **slot)
{
	size_t i = (size_t)hash(name, ns->nocase) & ns->mask;

	for (; ns->key[i] != NULL; i = (i + 1) & ns->mask) {
		if (ns->nocase ? strcasecmp(ns->key[i], name) == 0
			       : strcmp(ns->key[i], name) == 0) {
			*slot = &ns->val[i];
			return 0;
		}
	}
	if (ns->n >= ns->max)
		return -ENOSPC;
	ns->key[i] = name;
	ns->val[i] = 0;
	ns->n++;
	*slot = &ns->val[i];
	return 1;
}

void queue_names_free(struct queue_names *ns)
{
	free(ns->key);
	free(ns->val);
	memset(ns, 0, sizeof(*ns));
}
