/*
 * queue_user.c - [user NAME] defaults; see queue_user.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/queue_egress.h"
#include "queue/queue_msg.h"
#include "queue/queue_user.h"

struct user_keys {
	const char *pool, *priority, *tenant, *fixed;
};

#define UK(m) DMTA_CONF_AT(struct user_keys, m)

static const struct dmta_conf_key user_keys[] = {
    {.name = "pool",
     .type = DMTA_CONF_STR,
     .example = "transactional",
     UK(pool),
     .help = "Egress pool of this user's messages ([pool NAME]; unset: [queue] default_pool)."},
    {.name = "priority",
     .type = DMTA_CONF_STR,
     .example = "high",
     UK(priority),
     .help = "Priority lane: high, normal or bulk (unset: normal)."},
    {.name = "tenant",
     .type = DMTA_CONF_STR,
     .example = "shop",
     UK(tenant),
     .help = "Tenant or campaign tag, shared fairly within a lane and logged."},
    {.name = "fixed",
     .type = DMTA_CONF_STR,
     .example = "tenant, priority",
     UK(fixed),
     .help = "Of pool, priority and tenant, those this user's X-Dmta-* fields may not\n"
	     "change (the fields are still removed): what this section says, or the\n"
	     "default when it says nothing, holds. For tenants who must not pass\n"
	     "for one another or jump the queue."},
};

const struct dmta_conf_section queue_user_conf_section = {
    .name = "user alice",
    .help = "Defaults for messages from SMTP AUTH user NAME (dmtad's listeners) or\n"
	    "local user NAME (dmta-sendmail, the maildrop). Pool and tenant names are\n"
	    "1 to 64 of A-Z a-z 0-9 . _ -. A message's X-Dmta-Pool, X-Dmta-Priority\n"
	    "and X-Dmta-Tenant fields override these (unless fixed), and are removed\n"
	    "before it is signed and queued.",
    .keys = user_keys,
    .nkeys = DMTA_CONF_NKEYS(user_keys),
    .family = true,
};

/* What "fixed" may name. */
#define FIX_POOL     0x1
#define FIX_PRIORITY 0x2
#define FIX_TENANT   0x4

struct user {
	char *name, *pool, *tenant;
	int priority;	/* -1: not set */
	unsigned fixed; /* FIX_* */
};

/* "tenant, priority" into FIX_* bits; -1 for a word that is none of them. */
static int parse_fixed(const char *list, unsigned *out)
{
	static const char *const names[] = {"pool", "priority", "tenant"};
	const char *p = list;

	*out = 0;
	while (*p) {
		size_t n;
		unsigned i;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		for (i = 0; i < 3; i++)
			if (strlen(names[i]) == n && strncasecmp(p, names[i], n) == 0)
				break;
		if (i == 3)
			return -1;
		*out |= 1u << i;
		p += n;
	}
	return 0;
}

struct queue_users {
	struct user *v;
	size_t n;
};

struct load_ctx {
	const struct dmta_conf *conf;
	struct queue_users *us;
	char *err;
	size_t errlen;
	int rc;
};

static void load_section(const char *sect, void *arg)
{
	struct load_ctx *lc = arg;
	struct user_keys k = {0};
	const char *name = sect + strlen("user "), *why = NULL, *key = NULL;
	struct user *u, *v;
	unsigned fixed = 0;

	if (lc->rc != 0)
		return;
	if (dmta_conf_read_over(lc->conf, sect, &queue_user_conf_section, &k) != 0) {
		snprintf(lc->err, lc->errlen, "%s", dmta_conf_last_error());
		lc->rc = -EINVAL;
		return;
	}
	if (k.pool && queue_tag_check(k.pool, &why) < 0)
		key = "pool";
	else if (k.tenant && queue_tag_check(k.tenant, &why) < 0)
		key = "tenant";
	else if (k.priority && queue_prio_parse(k.priority) < 0)
		key = "priority", why = "want high, normal or bulk";
	else if (k.fixed && parse_fixed(k.fixed, &fixed) < 0)
		key = "fixed", why = "want a list of pool, priority and tenant";
	if (key != NULL) {
		snprintf(lc->err, lc->errlen, "%s: [%s] %s: %s", dmta_conf_source(lc->conf), sect,
			 key, why);
		lc->rc = -EINVAL;
		return;
	}
	v = realloc(lc->us->v, (lc->us->n + 1) * sizeof(*v));
	if (v == NULL) {
		lc->rc = -ENOMEM;
		return;
	}
	lc->us->v = v;
	u = &v[lc->us->n];
	*u = (struct user){.name = strdup(name),
			   .pool = k.pool ? strdup(k.pool) : NULL,
			   .tenant = k.tenant ? strdup(k.tenant) : NULL,
			   .priority = k.priority ? queue_prio_parse(k.priority) : -1,
			   .fixed = fixed};
	lc->us->n++;
	if (u->name == NULL || (k.pool && u->pool == NULL) || (k.tenant && u->tenant == NULL))
		lc->rc = -ENOMEM;
}

struct queue_users *queue_users_load(const struct dmta_conf *conf, char *err, size_t errlen)
{
	struct queue_users *us = calloc(1, sizeof(*us));
	struct load_ctx lc = {conf, us, err, errlen, 0};

	if (us == NULL) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	if (conf != NULL)
		dmta_conf_sections(conf, "user ", load_section, &lc);
	if (lc.rc != 0) {
		if (lc.rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		queue_users_free(us);
		errno = -lc.rc;
		return NULL;
	}
	return us;
}

static const struct user *find(const struct queue_users *us, const char *name)
{
	const struct user *u = NULL;

	if (us == NULL || name == NULL)
		return NULL;
	/* The last section of a name wins, as a later key does in one section. */
	for (size_t i = 0; i < us->n; i++)
		if (strcmp(us->v[i].name, name) == 0)
			u = &us->v[i];
	return u;
}

/* Set the fields of @p env that @p mask names to @p u's: what its section
 * says, else the default (no pool, normal, no tenant) when @p all. */
static int apply(const struct user *u, unsigned mask, bool all, struct queue_env *env)
{
	if ((mask & FIX_POOL) && (u->pool || all) && queue_env_set_pool(env, u->pool) < 0)
		return -ENOMEM;
	if ((mask & FIX_TENANT) && (u->tenant || all) && queue_env_set_tenant(env, u->tenant) < 0)
		return -ENOMEM;
	if ((mask & FIX_PRIORITY) && (u->priority >= 0 || all))
		env->priority = (uint8_t)(u->priority >= 0 ? u->priority : QUEUE_PRIO_NORMAL);
	return 0;
}

int queue_users_apply(const struct queue_users *us, const char *name, struct queue_env *env)
{
	const struct user *u = find(us, name);

	return u ? apply(u, FIX_POOL | FIX_PRIORITY | FIX_TENANT, false, env) : 0;
}

long queue_users_take(const struct queue_users *us, const char *user, struct queue_env *env,
		      char *msg, size_t *len, const char **why)
{
	const struct user *u = find(us, user);
	long n;

	if (u != NULL && apply(u, FIX_POOL | FIX_PRIORITY | FIX_TENANT, false, env) < 0)
		goto nomem;
	n = msg != NULL ? queue_msg_take_fields(msg, len, env, why) : 0;
	if (n > 0 && u != NULL && u->fixed && apply(u, u->fixed, true, env) < 0)
		goto nomem;
	return n;
nomem:
	*why = "out of memory";
	return -ENOMEM;
}

int queue_users_check_pools(const struct queue_users *us, const struct queue_egress *eg,
			    const struct dmta_conf *conf, char *err, size_t errlen)
{
	for (size_t i = 0; us != NULL && i < us->n; i++) {
		const struct user *u = &us->v[i];

		if (u->pool != NULL && queue_egress_pool(eg, u->pool) < 0) {
			snprintf(err, errlen, "%s: [user %s] pool: '%s': no [pool %s]",
				 dmta_conf_source(conf), u->name, u->pool, u->pool);
			return -EINVAL;
		}
	}
	return 0;
}

void queue_users_free(struct queue_users *us)
{
	if (us == NULL)
		return;
	for (size_t i = 0; i < us->n; i++) {
		free(us->v[i].name);
		free(us->v[i].pool);
		free(us->v[i].tenant);
	}
	free(us->v);
	free(us);
}
