/*
 * dmta_conf.c - see dmta_conf.h.
 *
 * The entries are a flat array in file order; configurations have tens of
 * keys and are read at start-up, so a linear search is the simple choice.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"

struct conf_entry {
	char *section;
	char *key;
	char *value;
	bool used; /* asked for by some getter */
};

struct dmta_conf {
	char *source;
	struct conf_entry *v;
	size_t n, cap;
};

const char *dmta_conf_path(const char *cli_path)
{
	const char *env;

	if (cli_path != NULL && cli_path[0] != '\0')
		return cli_path;
	env = getenv("DMTA_CONFIG");
	if (env != NULL && env[0] != '\0')
		return env;
	return DMTA_CONF_DEFAULT_PATH;
}

struct dmta_conf *dmta_conf_new(void)
{
	struct dmta_conf *conf = calloc(1, sizeof(*conf));

	if (conf == NULL)
		return NULL;
	conf->source = strdup("(defaults)");
	if (conf->source == NULL) {
		free(conf);
		errno = ENOMEM;
		return NULL;
	}
	return conf;
}

static struct conf_entry *conf_find(const struct dmta_conf *conf, const char *section,
				    const char *key)
{
	/* Last one wins, as with repeated keys in main.cf. */
	for (size_t i = conf->n; i-- > 0;) {
		struct conf_entry *e = &conf->v[i];

		if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static int conf_add(struct dmta_conf *conf, const char *section, const char *key, const char *value)
{
	struct conf_entry *e;

	if (conf->n == conf->cap) {
		size_t cap = conf->cap ? conf->cap * 2 : 16;
		struct conf_entry *v = realloc(conf->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		conf->v = v;
		conf->cap = cap;
	}
	e = &conf->v[conf->n];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value);
	e->used = false;
	if (e->section == NULL || e->key == NULL || e->value == NULL) {
		free(e->section);
		free(e->key);
		free(e->value);
		return -ENOMEM;
	}
	conf->n++;
	return 0;
}

int dmta_conf_set(struct dmta_conf *conf, const char *section, const char *key, const char *value)
{
	struct conf_entry *e = conf_find(conf, section, key);
	char *dup;

	if (e == NULL)
		return conf_add(conf, section, key, value);
	dup = strdup(value);
	if (dup == NULL)
		return -ENOMEM;
	free(e->value);
	e->value = dup;
	return 0;
}

static int conf_ini_line(void *user, const char *section, const char *name, const char *value)
{
	struct dmta_conf *conf = user;

	if (name == NULL) /* a section header alone */
		return 1;
	if (section[0] == '\0') {
		dmta_err("%s: key '%s' outside any [section]", conf->source, name);
		return 0;
	}
	return dmta_conf_set(conf, section, name, value ? value : "") == 0;
}

struct dmta_conf *dmta_conf_load(const char *path, char *err, size_t errlen)
{
	struct dmta_conf *conf;
	FILE *fp;
	int rc;

	conf = dmta_conf_new();
	if (conf == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	fp = fopen(path, "r");
	if (fp == NULL) {
		int e = errno;

		if (e == ENOENT && strcmp(path, DMTA_CONF_DEFAULT_PATH) == 0)
			return conf;
		snprintf(err, errlen, "cannot open config %s: %s", path, strerror(e));
		dmta_conf_free(conf);
		errno = e;
		return NULL;
	}
	free(conf->source);
	conf->source = strdup(path);
	if (conf->source == NULL) {
		fclose(fp);
		dmta_conf_free(conf);
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	rc = ini_parse_file(fp, conf_ini_line, conf);
	fclose(fp);
	if (rc != 0) {
		if (rc > 0)
			snprintf(err, errlen, "%s:%d: syntax error", path, rc);
		else
			snprintf(err, errlen, "%s: cannot parse (out of memory)", path);
		dmta_conf_free(conf);
		errno = EINVAL;
		return NULL;
	}
	return conf;
}

const char *dmta_conf_source(const struct dmta_conf *conf)
{
	return conf->source;
}

const char *dmta_conf_get(const struct dmta_conf *conf, const char *section, const char *key)
{
	struct conf_entry *e = conf_find(conf, section, key);

	if (e == NULL)
		return NULL;
	e->used = true;
	return e->value;
}

const char *dmta_conf_str(const struct dmta_conf *conf, const char *section, const char *key,
			  const char *def)
{
	const char *v = dmta_conf_get(conf, section, key);

	return v ? v : def;
}

int dmta_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* A number followed by an optional unit from @p units; scales checked for overflow. */
static int parse_scaled(const char *s, const char *const *units, const uint64_t *scale,
			uint64_t def_scale, uint64_t *out)
{
	char num[32];
	size_t i = 0;
	uint64_t v, mul = def_scale;

	if (s == NULL)
		return -EINVAL;
	while (isdigit((unsigned char)s[i]) && i < sizeof(num) - 1) {
		num[i] = s[i];
		i++;
	}
	num[i] = '\0';
	if (i == 0 || dmta_parse_u64(num, &v) != 0)
		return -EINVAL;
	if (s[i] != '\0') {
		size_t u;

		for (u = 0; units[u] != NULL; u++)
			if (strcasecmp(s + i, units[u]) == 0)
				break;
		if (units[u] == NULL)
			return -EINVAL;
		mul = scale[u];
	}
	if (mul != 0 && v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

int dmta_parse_duration_ms(const char *s, uint64_t *out)
{
	static const char *const units[] = {"ms", "s", "m", "h", "d", "w", NULL};
	static const uint64_t scale[] = {1, 1000, 60000, 3600000, 86400000, 604800000};

	return parse_scaled(s, units, scale, 1000, out);
}

int dmta_parse_size(const char *s, uint64_t *out)
{
	static const char *const units[] = {"b", "k", "kb", "m", "mb", "g", "gb", NULL};
	static const uint64_t scale[] = {1,	     1ULL << 10, 1ULL << 10, 1ULL << 20,
					 1ULL << 20, 1ULL << 30, 1ULL << 30};

	return parse_scaled(s, units, scale, 1, out);
}

typedef int (*parse_fn)(const char *s, uint64_t *out);

static int conf_ranged(const struct dmta_conf *conf, const char *section, const char *key,
		       uint64_t def, uint64_t min, uint64_t max, uint64_t *out, parse_fn parse,
		       const char *what)
{
	const char *s = dmta_conf_get(conf, section, key);
	uint64_t v;

	if (s == NULL) {
		*out = def;
		return 0;
	}
	if (parse(s, &v) != 0) {
		dmta_err("%s: [%s] %s = '%s': not a valid %s", conf->source, section, key, s, what);
		return -EINVAL;
	}
	if (v < min || v > max) {
		dmta_err("%s: [%s] %s = '%s': out of range [%llu, %llu]", conf->source, section,
			 key, s, (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int dmta_conf_u64(const struct dmta_conf *conf, const char *section, const char *key, uint64_t def,
		  uint64_t min, uint64_t max, uint64_t *out)
{
	return conf_ranged(conf, section, key, def, min, max, out, dmta_parse_u64, "number");
}

int dmta_conf_duration_ms(const struct dmta_conf *conf, const char *section, const char *key,
			  uint64_t def_ms, uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
	return conf_ranged(conf, section, key, def_ms, min_ms, max_ms, out, dmta_parse_duration_ms,
			   "duration (e.g. 250ms, 30s, 5m, 5d)");
}

int dmta_conf_size(const struct dmta_conf *conf, const char *section, const char *key, uint64_t def,
		   uint64_t min, uint64_t max, uint64_t *out)
{
	return conf_ranged(conf, section, key, def, min, max, out, dmta_parse_size,
			   "size (e.g. 4096, 64k, 10M)");
}

int dmta_conf_bool(const struct dmta_conf *conf, const char *section, const char *key, bool def,
		   bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	const char *s = dmta_conf_get(conf, section, key);

	if (s == NULL) {
		*out = def;
		return 0;
	}
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	dmta_err("%s: [%s] %s = '%s': expected yes or no", conf->source, section, key, s);
	return -EINVAL;
}

void dmta_conf_foreach(const struct dmta_conf *conf, const char *section,
		       void (*fn)(const char *key, const char *value, void *arg), void *arg)
{
	for (size_t i = 0; i < conf->n; i++) {
		struct conf_entry *e = &conf->v[i];

		if (strcmp(e->section, section) == 0) {
			e->used = true;
			fn(e->key, e->value, arg);
		}
	}
}

static bool section_listed(const char *section, const char *const *sections)
{
	if (sections == NULL)
		return true;
	for (; *sections != NULL; sections++)
		if (strcmp(*sections, section) == 0)
			return true;
	return false;
}

int dmta_conf_warn_unused(const struct dmta_conf *conf, const char *const *sections)
{
	int n = 0;

	for (size_t i = 0; i < conf->n; i++) {
		const struct conf_entry *e = &conf->v[i];

		if (!e->used && section_listed(e->section, sections)) {
			dmta_warn("%s: unknown key [%s] %s (ignored)", conf->source, e->section,
				  e->key);
			n++;
		}
	}
	return n;
}

void dmta_conf_free(struct dmta_conf *conf)
{
	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->n; i++) {
		free(conf->v[i].section);
		free(conf->v[i].key);
		free(conf->v[i].value);
	}
	free(conf->v);
	free(conf->source);
	free(conf);
}
