/*
 * dmta_reload.c - see dmta_reload.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/control/dmta_pool.h"
#include "core/control/dmta_reload.h"
#include "queue/queue_ctl.h"
#include "queue/queue_egress.h"
#include "queue/queue_rules.h"
#include "queue/queue_sched.h"

/*
 * [queue] workers and the DSN keys are read once by queue_ctl_open();
 * [dns] makes the resolver (servers, cache); [smtp] and [relay] timeouts,
 * names and CA files make the session pools; [metrics] and [events] start
 * threads; [source NAME] and [pool NAME] make the egress the scheduler
 * and the workers hold; the listener thread reads [listen], [user NAME]
 * and [dkim DOMAIN] when it starts. Everything else that dmtad reads is
 * applied by a reload.
 */
static const struct dmta_conf_key queue_workers_key[] = {
    {.name = "workers", .type = DMTA_CONF_U64},
};

static const struct dmta_conf_section queue_workers = {
    .name = "queue",
    .keys = queue_workers_key,
    .nkeys = 1,
};

const struct dmta_reload_fixed dmta_reload_fixed_list[] = {
    {"eal", NULL},
    {"port", NULL},
    {"net", NULL},
    {"workers", NULL},
    {"tcp", NULL},
    {"spool", NULL},
    {"delivery", NULL},
    {"dns", NULL},
    {"metrics", NULL},
    {"events", NULL},
    {"queue", &queue_workers},
    {"queue", &queue_host_conf_section},
    {"queue", &queue_ctl_conf_section},
    {"queue", &queue_egress_conf_section},
    {"smtp", &dmta_pool_conf_section},
    {"relay", &dmta_pool_relay_conf_section},
    {"source ", NULL},
    {"pool ", NULL},
    {"listen", NULL},
    {"user ", NULL},
    {"dkim ", NULL},
};

const size_t dmta_reload_nfixed =
    sizeof(dmta_reload_fixed_list) / sizeof(dmta_reload_fixed_list[0]);

struct pairs {
	char *text;
	size_t len;
	FILE *out;
};

static void add_pair(const char *key, const char *value, void *arg)
{
	struct pairs *p = arg;

	fprintf(p->out, "%s=%s\n", key, value);
}

/* The raw "key=value\n" lines of [section], in file order (malloc'd; NULL on ENOMEM). */
static char *section_text(const struct dmta_conf *conf, const char *section)
{
	struct pairs p = {NULL, 0, NULL};

	p.out = open_memstream(&p.text, &p.len);
	if (p.out == NULL)
		return NULL;
	dmta_conf_foreach(conf, section, add_pair, &p);
	if (fclose(p.out) != 0) {
		free(p.text);
		return NULL;
	}
	return p.text;
}

static bool same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* ", [section] key" (or "[section]" for NULL @p key) at the end of @p buf. */
static void append(char *buf, size_t cap, size_t *used, const char *section, const char *key)
{
	int n;

	if (*used + 1 >= cap)
		return;
	n = snprintf(buf + *used, cap - *used, "%s[%s]%s%s", *used ? ", " : "", section,
		     key ? " " : "", key ? key : "");
	if (n > 0)
		*used += (size_t)n < cap - *used ? (size_t)n : cap - *used - 1;
}

/* A family's sections (names with its prefix) in old and new, one change each. */
struct family {
	const struct dmta_conf *old, *new;
	const struct dmta_conf *in; /* the one being walked */
	char *buf;
	size_t cap, *used;
	int n;
};

struct find {
	const char *name;
	bool found;
};

static void find_section(const char *section, void *arg)
{
	struct find *f = arg;

	if (strcmp(section, f->name) == 0)
		f->found = true;
}

static void family_section(const char *section, void *arg)
{
	struct family *fa = arg;
	struct find f = {section, false};
	char *a, *b;

	/* A section in both is compared once, while walking old. */
	if (fa->in == fa->new) {
		dmta_conf_sections(fa->old, section, find_section, &f);
		if (f.found)
			return;
	}
	a = section_text(fa->old, section);
	b = section_text(fa->new, section);
	if (!same(a, b)) {
		append(fa->buf, fa->cap, fa->used, section, NULL);
		fa->n++;
	}
	free(a);
	free(b);
}

int dmta_reload_fixed(const struct dmta_conf *old, const struct dmta_conf *new,
		      const struct dmta_reload_fixed *fixed, size_t nfixed, char *buf, size_t cap)
{
	size_t used = 0;
	int n = 0;

	if (cap > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < nfixed; i++) {
		const struct dmta_reload_fixed *f = &fixed[i];
		size_t len = strlen(f->section);

		if (len > 0 && f->section[len - 1] == ' ') {
			struct family fa = {old, new, old, buf, cap, &used, 0};

			dmta_conf_sections(old, f->section, family_section, &fa);
			fa.in = new;
			dmta_conf_sections(new, f->section, family_section, &fa);
			n += fa.n;
			continue;
		}
		if (f->keys == NULL) {
			char *a = section_text(old, f->section), *b = section_text(new, f->section);

			if (!same(a, b)) {
				append(buf, cap, &used, f->section, NULL);
				n++;
			}
			free(a);
			free(b);
			continue;
		}
		for (size_t k = 0; k < f->keys->nkeys; k++) {
			const char *key = f->keys->keys[k].name;

			if (!same(dmta_conf_get(old, f->section, key),
				  dmta_conf_get(new, f->section, key))) {
				append(buf, cap, &used, f->section, key);
				n++;
			}
		}
	}
	return n;
}

struct dest_check {
	const struct dmta_conf *conf;
	struct queue_dest_limits def;
	int bad;
};

/* A [dest DOMAIN] section, read as the scheduler will read it. */
static void dest_check(const char *section, void *arg)
{
	struct dest_check *c = arg;
	struct queue_dest_limits l = c->def;

	if (dmta_conf_read_over(c->conf, section, &queue_dest_conf_section, &l) != 0)
		c->bad++;
}

static int reload_parse(struct dmta_reload *r, const struct dmta_conf *boot, char *err,
			size_t errlen)
{
	const struct dmta_conf *conf = r->conf;
	struct queue_sched_conf old;
	struct dmta_pool_conf pc;
	struct dest_check c;
	char helo[256];
	const char *ca;

	if (dmta_control_conf_load(conf, &r->cc) != 0 || queue_sched_conf_load(conf, &r->sc) != 0 ||
	    dmta_pool_conf_load(conf, &pc, helo, sizeof(helo), &ca) != 0) {
		snprintf(err, errlen, "invalid settings");
		return -EINVAL;
	}
	if (dns_config_load(&r->dns, conf) != 0) {
		snprintf(err, errlen, "bad [dns], [routes] or [relay] settings");
		return -EINVAL;
	}
	if (queue_rules_load_conf(conf, &r->rules, err, errlen) != 0)
		return -EINVAL;
	/* The scheduler reads [dest DOMAIN] when a destination first shows,
	 * and would keep the defaults for a bad one; a reload checks them all
	 * now. */
	c = (struct dest_check){conf, r->sc.dest, 0};
	dmta_conf_sections(conf, "dest ", dest_check, &c);
	if (c.bad) {
		snprintf(err, errlen, "bad [dest ...] settings");
		return -EINVAL;
	}
	if (r->cc.relay_user != NULL) {
		if (r->cc.relay_password_file == NULL) {
			snprintf(err, errlen, "[relay] user needs [relay] password_file");
			return -EINVAL;
		}
		r->relay_pass = dmta_control_conf_secret(r->cc.relay_password_file, err, errlen);
		r->relay_user = strdup(r->cc.relay_user);
		if (r->relay_pass == NULL || r->relay_user == NULL)
			return -EINVAL;
	}
	/* queue_ctl keeps its own copy of the lifetime for the DSNs it writes:
	 * the lifetime stays as it was ([queue] workers too: the scheduler
	 * keeps its shards). */
	if (queue_sched_conf_load(boot, &old) == 0)
		r->sc.lifetime_ms = old.lifetime_ms;
	r->sc.conf = conf;
	return 0;
}

struct dmta_reload *dmta_reload_read(const char *path, const struct dmta_conf *boot, char *err,
				     size_t errlen)
{
	struct dmta_reload *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	dns_config_defaults(&r->dns);
	r->conf = dmta_conf_load(path, err, errlen);
	if (r->conf == NULL || reload_parse(r, boot, err, errlen) != 0) {
		dmta_reload_free(r);
		return NULL;
	}
	return r;
}

void dmta_reload_free(struct dmta_reload *r)
{
	while (r != NULL) {
		struct dmta_reload *next = r->next;

		dns_config_release(&r->dns);
		queue_rules_free(r->rules);
		free(r->relay_user);
		if (r->relay_pass != NULL) {
			explicit_bzero(r->relay_pass, strlen(r->relay_pass));
			free(r->relay_pass);
		}
		dmta_conf_free(r->conf);
		free(r);
		r = next;
	}
}
