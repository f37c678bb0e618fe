/*
 * queue_egress.c - see queue_egress.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_conf.h"
#include "queue/queue_egress.h"

#define EGRESS_MAX_SOURCES 256
#define EGRESS_MAX_WEIGHT  1000

struct member {
	unsigned src;
	long weight, cur;
};

struct pool {
	char *name;
	struct member *m;
	unsigned n;
	long total;
};

struct queue_egress {
	struct {
		char *name;
		struct in_addr addr;
	} src[EGRESS_MAX_SOURCES];
	unsigned nsrc;
	struct pool *pools;
	unsigned npools;
	int def; /* the default pool */
};

struct source_keys {
	const char *address;
};

static const struct dmta_conf_key source_keys[] = {
    {.name = "address",
     .type = DMTA_CONF_STR,
     .example = "198.18.0.10",
     DMTA_CONF_AT(struct source_keys, address),
     .help = "The IPv4 address mail from this source leaves from; on DPDK the\n"
	     "workers answer ARP for it, on kernel sockets it is bound (it must be\n"
	     "an address of this host)."},
};

const struct dmta_conf_section queue_source_conf_section = {
    .name = "source a",
    .help = "An egress source: a named local address (several sources spread mail\n"
	    "over several addresses; limits apply per source and site).",
    .keys = source_keys,
    .nkeys = DMTA_CONF_NKEYS(source_keys),
    .family = true,
};

struct pool_keys {
	const char *sources;
};

static const struct dmta_conf_key pool_keys[] = {
    {.name = "sources",
     .type = DMTA_CONF_STR,
     .example = "a:3, b:1",
     DMTA_CONF_AT(struct pool_keys, sources),
     .help = "NAME[:WEIGHT], ...: the sources of this pool, used in proportion to\n"
	     "their weights (default 1, at most 1000)."},
};

const struct dmta_conf_section queue_pool_conf_section = {
    .name = "pool bulk",
    .help = "A pool of sources; a message names its pool (\"pool\" in dmta-inject's\n"
	    "JSON, an X-Dmta-Pool: header, or its user's default). A message naming\n"
	    "a pool without a section is refused, and a [user NAME] pool without one\n"
	    "keeps dmtad from starting. Without [source] sections a pool may name\n"
	    "the implicit source: sources = default.",
    .keys = pool_keys,
    .nkeys = DMTA_CONF_NKEYS(pool_keys),
    .family = true,
};

struct egress_keys {
	const char *default_pool;
};

static const struct dmta_conf_key egress_keys[] = {
    {.name = "default_pool",
     .type = DMTA_CONF_STR,
     .example = "bulk",
     DMTA_CONF_AT(struct egress_keys, default_pool),
     .help = "The pool of messages that name none (unset: every source, weight 1)."},
};

const struct dmta_conf_section queue_egress_conf_section = {
    .name = "queue",
    .keys = egress_keys,
    .nkeys = DMTA_CONF_NKEYS(egress_keys),
};

struct load {
	const struct dmta_conf *conf;
	struct queue_egress *eg;
	char *err;
	size_t errlen;
	int rc;
};

static void load_source(const char *sect, void *arg)
{
	struct load *l = arg;
	struct queue_egress *eg = l->eg;
	struct source_keys k = {0};
	const char *name = sect + strlen("source ");

	if (l->rc != 0)
		return;
	if (dmta_conf_read_over(l->conf, sect, &queue_source_conf_section, &k) != 0) {
		snprintf(l->err, l->errlen, "%s", dmta_conf_last_error());
		l->rc = -EINVAL;
		return;
	}
	if (eg->nsrc == EGRESS_MAX_SOURCES) {
		snprintf(l->err, l->errlen, "[%s]: more than %d sources", sect, EGRESS_MAX_SOURCES);
		l->rc = -EINVAL;
		return;
	}
	if (k.address == NULL || inet_pton(AF_INET, k.address, &eg->src[eg->nsrc].addr) != 1 ||
	    eg->src[eg->nsrc].addr.s_addr == 0) {
		snprintf(l->err, l->errlen, "%s: [%s] address: '%s': not an IPv4 address",
			 dmta_conf_source(l->conf), sect, k.address ? k.address : "");
		l->rc = -EINVAL;
		return;
	}
	for (unsigned i = 0; i < eg->nsrc; i++)
		if (eg->src[i].addr.s_addr == eg->src[eg->nsrc].addr.s_addr) {
			snprintf(l->err, l->errlen, "%s: [%s] address %s is also source %s's",
				 dmta_conf_source(l->conf), sect, k.address, eg->src[i].name);
			l->rc = -EINVAL;
			return;
		}
	eg->src[eg->nsrc].name = strdup(name);
	if (eg->src[eg->nsrc].name == NULL) {
		l->rc = -ENOMEM;
		return;
	}
	eg->nsrc++;
}

/* "a:3, b:1" into @p p; 0 or -EINVAL with the reason in @p why. */
static int parse_members(const struct queue_egress *eg, const char *s, struct pool *p, char *why,
			 size_t whylen)
{
	char buf[4096], *save = NULL, *tok;

	if (s == NULL || strlen(s) >= sizeof(buf)) {
		snprintf(why, whylen, "sources: missing or too long");
		return -EINVAL;
	}
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *colon, *end;
		long w = 1;
		int src;

		while (isspace((unsigned char)*tok))
			tok++;
		end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char)end[-1]))
			*--end = '\0';
		colon = strchr(tok, ':');
		if (colon != NULL) {
			*colon = '\0';
			w = strtol(colon + 1, &end, 10);
			if (*end != '\0' || w < 1 || w > EGRESS_MAX_WEIGHT) {
				snprintf(why, whylen, "sources: '%s': weight from 1 to %d",
					 colon + 1, EGRESS_MAX_WEIGHT);
				return -EINVAL;
			}
		}
		src = queue_egress_source(eg, tok);
		if (src < 0) {
			snprintf(why, whylen, "sources: '%s': no [source %s]", tok, tok);
			return -EINVAL;
		}
		for (unsigned i = 0; i < p->n; i++)
			if (p->m[i].src == (unsigned)src) {
				snprintf(why, whylen, "sources: '%s' named twice", tok);
				return -EINVAL;
			}
		p->m[p->n++] = (struct member){.src = (unsigned)src, .weight = w};
		p->total += w;
	}
	if (p->n == 0) {
		snprintf(why, whylen, "sources: empty");
		return -EINVAL;
	}
	return 0;
}

static int pool_add(struct queue_egress *eg, const char *name, struct pool **out)
{
	struct pool *v = realloc(eg->pools, (eg->npools + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	eg->pools = v;
	v = &v[eg->npools];
	*v = (struct pool){.name = strdup(name), .m = calloc(eg->nsrc, sizeof(*v->m))};
	if (v->name == NULL || v->m == NULL) {
		free(v->name);
		free(v->m);
		return -ENOMEM;
	}
	eg->npools++;
	*out = v;
	return 0;
}

static void load_pool(const char *sect, void *arg)
{
	struct load *l = arg;
	struct pool_keys k = {0};
	struct pool *p;
	char why[256];

	if (l->rc != 0)
		return;
	if (dmta_conf_read_over(l->conf, sect, &queue_pool_conf_section, &k) != 0) {
		snprintf(l->err, l->errlen, "%s", dmta_conf_last_error());
		l->rc = -EINVAL;
		return;
	}
	l->rc = pool_add(l->eg, sect + strlen("pool "), &p);
	if (l->rc == 0 && parse_members(l->eg, k.sources, p, why, sizeof(why)) != 0) {
		snprintf(l->err, l->errlen, "%s: [%s] %s", dmta_conf_source(l->conf), sect, why);
		l->rc = -EINVAL;
	}
}

int queue_egress_load(const struct dmta_conf *conf, struct queue_egress **out, char *err,
		      size_t errlen)
{
	struct queue_egress *eg = calloc(1, sizeof(*eg));
	struct load l = {conf, eg, err, errlen, 0};
	struct egress_keys k = {0};
	struct pool *p;

	*out = NULL;
	if (eg == NULL)
		return -ENOMEM;
	if (conf != NULL)
		dmta_conf_sections(conf, "source ", load_source, &l);
	/* Without [source] sections, pools name the implicit one. */
	if (l.rc == 0 && eg->nsrc == 0) {
		eg->src[0].name = strdup("default");
		eg->nsrc = eg->src[0].name ? 1 : 0;
		l.rc = eg->nsrc ? 0 : -ENOMEM;
	}
	if (conf != NULL) {
		if (l.rc == 0)
			dmta_conf_sections(conf, "pool ", load_pool, &l);
		if (l.rc == 0 && dmta_conf_read(conf, &queue_egress_conf_section, &k) != 0) {
			snprintf(err, errlen, "%s", dmta_conf_last_error());
			l.rc = -EINVAL;
		}
	}
	if (l.rc == 0 && k.default_pool != NULL) {
		eg->def = queue_egress_pool(eg, k.default_pool);
		if (eg->def < 0) {
			snprintf(err, errlen, "%s: [queue] default_pool: '%s': no [pool %s]",
				 dmta_conf_source(conf), k.default_pool, k.default_pool);
			l.rc = -EINVAL;
		}
	} else if (l.rc == 0) {
		/* Every source, weight 1, under a name no section can take. */
		l.rc = pool_add(eg, "", &p);
		for (unsigned i = 0; l.rc == 0 && i < eg->nsrc; i++) {
			p->m[p->n++] = (struct member){.src = i, .weight = 1};
			p->total++;
		}
		eg->def = (int)eg->npools - 1;
	}
	if (l.rc != 0) {
		if (l.rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		queue_egress_free(eg);
		return l.rc;
	}
	*out = eg;
	return 0;
}

void queue_egress_free(struct queue_egress *eg)
{
	if (eg == NULL)
		return;
	for (unsigned i = 0; i < eg->nsrc; i++)
		free(eg->src[i].name);
	for (unsigned i = 0; i < eg->npools; i++) {
		free(eg->pools[i].name);
		free(eg->pools[i].m);
	}
	free(eg->pools);
	free(eg);
}

unsigned queue_egress_nsources(const struct queue_egress *eg)
{
	return eg->nsrc;
}

const char *queue_egress_source_name(const struct queue_egress *eg, unsigned i)
{
	return i < eg->nsrc ? eg->src[i].name : "";
}

struct in_addr queue_egress_source_addr(const struct queue_egress *eg, unsigned i)
{
	struct in_addr none = {0};

	return i < eg->nsrc ? eg->src[i].addr : none;
}

int queue_egress_source(const struct queue_egress *eg, const char *name)
{
	for (unsigned i = 0; i < eg->nsrc; i++)
		if (strcmp(eg->src[i].name, name) == 0)
			return (int)i;
	return -1;
}

int queue_egress_pool(const struct queue_egress *eg, const char *name)
{
	if (name == NULL)
		return eg->def;
	for (unsigned i = 0; i < eg->npools; i++)
		if (eg->pools[i].name[0] != '\0' && strcmp(eg->pools[i].name, name) == 0)
			return (int)i;
	return -1;
}

int queue_egress_check_pool(const struct queue_egress *eg, const char *pool, char *why,
			    size_t whylen)
{
	if (queue_egress_pool(eg, pool) >= 0)
		return 0;
	snprintf(why, whylen, "pool '%s': no [pool %s] in the configuration", pool, pool);
	return -EBADMSG;
}

const char *queue_egress_pool_name(const struct queue_egress *eg, int pool)
{
	if (pool < 0 || (unsigned)pool >= eg->npools)
		pool = eg->def;
	return eg->pools[pool].name[0] ? eg->pools[pool].name : "default";
}

unsigned queue_egress_pick(struct queue_egress *eg, int pool)
{
	struct pool *p;
	struct member *best = NULL;

	if (pool < 0 || (unsigned)pool >= eg->npools)
		pool = eg->def;
	p = &eg->pools[pool];
	/* Smooth weighted round robin: every member gains its weight, the
	 * richest is picked and pays the total. */
	for (unsigned i = 0; i < p->n; i++) {
		p->m[i].cur += p->m[i].weight;
		if (best == NULL || p->m[i].cur > best->cur)
			best = &p->m[i];
	}
	best->cur -= p->total;
	return best->src;
}
