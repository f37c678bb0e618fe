/*
 * dmta_conf.c - see dmta_conf.h.
 *
 * The entries are a flat array in file order; configurations have tens of
 * keys and are read at start-up, so a linear search is the simple choice.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* The last value refused, for a caller that reports one line (dmtad's
 * start-up error); every refusal is also logged. */
static __thread char last_error[512];

__attribute__((format(printf, 1, 2))) static void conf_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	dmta_err("%s", last_error);
}

const char *dmta_conf_last_error(void)
{
	return last_error[0] ? last_error : "invalid settings";
}

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

int dmta_parse_rate(const char *s, uint64_t *per_day)
{
	static const char *const units[] = {"/s",    "/sec", "/min", "/m", "/h",
					    "/hour", "/d",   "/day", NULL};
	static const uint64_t scale[] = {86400, 86400, 1440, 1440, 24, 24, 1, 1};

	return parse_scaled(s, units, scale, 86400, per_day);
}

void dmta_rate_format(uint64_t per_day, char *buf, size_t len)
{
	static const char *const units[] = {"/s", "/min", "/h"};
	static const uint64_t scale[] = {86400, 1440, 24};

	for (size_t i = 0; i < 3; i++) {
		if (per_day % scale[i] == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(per_day / scale[i]),
				 units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu/day", (unsigned long long)per_day);
}

/* A number the way a user would write it for a key of @p type: "5m", "64k". */
static void value_format(enum dmta_conf_type type, uint64_t v, char *buf, size_t len)
{
	static const char *const dunits[] = {"w", "d", "h", "m", "s"};
	static const uint64_t dscale[] = {604800000, 86400000, 3600000, 60000, 1000};
	static const char *const sunits[] = {"G", "M", "k"};
	static const uint64_t sscale[] = {1ULL << 30, 1ULL << 20, 1ULL << 10};
	bool duration = type == DMTA_CONF_DURATION;
	const char *const *units = duration ? dunits : sunits;
	const uint64_t *scale = duration ? dscale : sscale;
	size_t n = duration ? 5 : type == DMTA_CONF_SIZE ? 3 : 0;

	if (type == DMTA_CONF_RATE) {
		dmta_rate_format(v, buf, len);
		return;
	}

	for (size_t i = 0; i < n; i++) {
		if (v != 0 && v % scale[i] == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(v / scale[i]), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu%s", (unsigned long long)v, duration && v != 0 ? "ms" : "");
}

/*
 * Parse @p s as a value of key @p k into *@p v (a number, 0/1, or an enum's
 * value). On failure writes why into @p why and returns -EINVAL.
 */
static int key_parse(const struct dmta_conf_key *k, const char *s, uint64_t *v, char *why,
		     size_t whylen)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	int rc = 0;

	switch (k->type) {
	case DMTA_CONF_STR:
	case DMTA_CONF_GROUP:
		*v = 0;
		return 0;
	case DMTA_CONF_BOOL:
		for (size_t i = 0; i < 4; i++) {
			if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
				*v = strcasecmp(s, yes[i]) == 0;
				return 0;
			}
		}
		snprintf(why, whylen, "'%s': expected yes or no", s);
		return -EINVAL;
	case DMTA_CONF_ENUM: {
		size_t used = 0;

		for (const struct dmta_conf_enum *e = k->values; e->name != NULL; e++) {
			if (strcmp(s, e->name) == 0) {
				*v = (uint64_t)e->value;
				return 0;
			}
		}
		used = (size_t)snprintf(why, whylen, "'%s': expected", s);
		for (const struct dmta_conf_enum *e = k->values; e->name != NULL && used < whylen;
		     e++)
			used += (size_t)snprintf(why + used, whylen - used, "%s %s",
						 e == k->values ? "" : (e[1].name ? "," : " or"),
						 e->name);
		return -EINVAL;
	}
	case DMTA_CONF_U64:
		rc = dmta_parse_u64(s, v);
		break;
	case DMTA_CONF_DURATION:
		rc = dmta_parse_duration_ms(s, v);
		break;
	case DMTA_CONF_SIZE:
		rc = dmta_parse_size(s, v);
		break;
	case DMTA_CONF_RATE:
		rc = dmta_parse_rate(s, v);
		break;
	}
	if (rc != 0) {
		snprintf(why, whylen, "'%s': not a valid %s", s,
			 k->type == DMTA_CONF_U64	 ? "number"
			 : k->type == DMTA_CONF_DURATION ? "duration (e.g. 250ms, 30s, 5m, 5d)"
			 : k->type == DMTA_CONF_RATE ? "rate (e.g. 20/s, 600/min, 3600/h, 1000/day)"
						     : "size (e.g. 4096, 64k, 10M)");
		return -EINVAL;
	}
	if (*v < k->min || (k->max != 0 && *v > k->max)) {
		char lo[32], hi[40] = "";

		value_format(k->type, k->min, lo, sizeof(lo));
		if (k->max != 0) {
			memcpy(hi, " to ", 5);
			value_format(k->type, k->max, hi + 4, sizeof(hi) - 4);
		}
		snprintf(why, whylen, "'%s': out of range (%s %s%s)", s,
			 k->max ? "from" : "at least", lo, hi);
		return -EINVAL;
	}
	return 0;
}

/* Whether @p k's field has a width its values fit in. */
static bool key_field_ok(const struct dmta_conf_key *k)
{
	uint64_t max = k->max ? k->max : UINT64_MAX;

	switch (k->type) {
	case DMTA_CONF_STR:
		return k->size == sizeof(const char *);
	case DMTA_CONF_BOOL:
		return k->size == sizeof(bool);
	case DMTA_CONF_ENUM:
		return k->size == sizeof(int) && k->values != NULL;
	case DMTA_CONF_GROUP:
		return k->group != NULL;
	default:
		if (k->type == DMTA_CONF_DURATION && k->unit > 1)
			max /= k->unit;
		return k->size == 8 || (k->size > 0 && k->size < 8 && max < 1ULL << (8 * k->size));
	}
}

static void key_store(void *out, const struct dmta_conf_key *k, uint64_t v, const char *s)
{
	unsigned char *p = (unsigned char *)out + k->off;

	if (k->type == DMTA_CONF_DURATION && k->unit > 1)
		v /= k->unit;
	switch (k->type) {
	case DMTA_CONF_STR:
		memcpy(p, &s, sizeof(s));
		return;
	case DMTA_CONF_BOOL:
		*(bool *)p = v != 0;
		return;
	case DMTA_CONF_ENUM: {
		int e = (int)v;

		memcpy(p, &e, sizeof(e));
		return;
	}
	default:
		break;
	}
	switch (k->size) {
	case 1:
		*p = (uint8_t)v;
		break;
	case 2: {
		uint16_t x = (uint16_t)v;

		memcpy(p, &x, sizeof(x));
		break;
	}
	case 4: {
		uint32_t x = (uint32_t)v;

		memcpy(p, &x, sizeof(x));
		break;
	}
	case 8:
		memcpy(p, &v, sizeof(v));
		break;
	default:
		dmta_panic("config key %s: a field of %zu bytes", k->name, k->size);
	}
}

static int read_keys(const struct dmta_conf *conf, const char *section, const char *prefix,
		     const struct dmta_conf_section *sec, void *out, bool overlay)
{
	int rc = 0;

	for (size_t i = 0; i < sec->nkeys; i++) {
		const struct dmta_conf_key *k = &sec->keys[i];
		char name[128], why[256];
		const char *s = NULL;
		uint64_t v;

		snprintf(name, sizeof(name), "%s%s", prefix, k->name);
		if (k->type == DMTA_CONF_GROUP) {
			rc |=
			    read_keys(conf, section, name, k->group, (char *)out + k->off, overlay);
			continue;
		}
		if (conf != NULL)
			s = dmta_conf_get(conf, section, name);
		if (s == NULL && (overlay || k->def == NULL))
			continue;
		if (key_parse(k, s ? s : k->def, &v, why, sizeof(why)) != 0) {
			if (s == NULL)
				dmta_panic("[%s] %s: default %s", section, name, why);
			conf_error("%s: [%s] %s: %s", conf->source, section, name, why);
			rc = -EINVAL;
			continue;
		}
		key_store(out, k, v, s ? s : k->def);
	}
	return rc;
}

int dmta_conf_read(const struct dmta_conf *conf, const struct dmta_conf_section *sec, void *out)
{
	return read_keys(conf, sec->name, "", sec, out, false);
}

int dmta_conf_read_over(const struct dmta_conf *conf, const char *name,
			const struct dmta_conf_section *sec, void *out)
{
	return read_keys(conf, name, "", sec, out, true);
}

/* The typed getters: a key of one use, read as a table key would be. */
static int conf_ranged(const struct dmta_conf *conf, const char *section, const char *key,
		       enum dmta_conf_type type, uint64_t def, uint64_t min, uint64_t max,
		       uint64_t *out)
{
	const struct dmta_conf_key k = {
	    .name = key, .type = type, .min = min, .max = max == UINT64_MAX ? 0 : max};
	const char *s = dmta_conf_get(conf, section, key);
	char why[256];
	uint64_t v;

	if (s == NULL) {
		*out = def;
		return 0;
	}
	if (key_parse(&k, s, &v, why, sizeof(why)) != 0) {
		conf_error("%s: [%s] %s: %s", conf->source, section, key, why);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int dmta_conf_u64(const struct dmta_conf *conf, const char *section, const char *key, uint64_t def,
		  uint64_t min, uint64_t max, uint64_t *out)
{
	return conf_ranged(conf, section, key, DMTA_CONF_U64, def, min, max, out);
}

int dmta_conf_duration_ms(const struct dmta_conf *conf, const char *section, const char *key,
			  uint64_t def_ms, uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
	return conf_ranged(conf, section, key, DMTA_CONF_DURATION, def_ms, min_ms, max_ms, out);
}

int dmta_conf_size(const struct dmta_conf *conf, const char *section, const char *key, uint64_t def,
		   uint64_t min, uint64_t max, uint64_t *out)
{
	return conf_ranged(conf, section, key, DMTA_CONF_SIZE, def, min, max, out);
}

int dmta_conf_bool(const struct dmta_conf *conf, const char *section, const char *key, bool def,
		   bool *out)
{
	uint64_t v;
	int rc = conf_ranged(conf, section, key, DMTA_CONF_BOOL, def, 0, 1, &v);

	if (rc == 0)
		*out = v != 0;
	return rc;
}

/* Each line of @p text after @p lead ("# " for help, "#" for examples). */
static void sample_lines(FILE *fp, const char *text, const char *lead)
{
	while (text != NULL && *text != '\0') {
		const char *nl = strchr(text, '\n');
		int n = nl ? (int)(nl - text) : (int)strlen(text);

		fprintf(fp, "%s%.*s\n", n ? lead : "#", n, text);
		text = nl ? nl + 1 : NULL;
	}
}

static int sample_check(const struct dmta_conf_section *sec, const char *prefix, char *err,
			size_t errlen)
{
	for (size_t i = 0; i < sec->nkeys; i++) {
		const struct dmta_conf_key *k = &sec->keys[i];
		char name[128], why[256];
		uint64_t v;

		snprintf(name, sizeof(name), "%s%s", prefix, k->name);
		if (!key_field_ok(k)) {
			snprintf(err, errlen, "[%s] %s: its field cannot hold its values",
				 sec->name, name);
			return -EINVAL;
		}
		if (k->type == DMTA_CONF_GROUP) {
			if (sample_check(k->group, name, err, errlen) != 0)
				return -EINVAL;
		} else if (k->def != NULL && key_parse(k, k->def, &v, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "[%s] %s: default %s", sec->name, name, why);
			return -EINVAL;
		}
	}
	return 0;
}

static void sample_keys(FILE *fp, const struct dmta_conf_section *sec, const char *prefix,
			bool family)
{
	for (size_t i = 0; i < sec->nkeys; i++) {
		const struct dmta_conf_key *k = &sec->keys[i];
		const char *v = family && k->example ? k->example : k->def;
		bool commented = family || v == NULL;

		if (!family)
			sample_lines(fp, k->help, "# ");
		if (k->type == DMTA_CONF_GROUP) {
			char name[128];

			snprintf(name, sizeof(name), "%s%s", prefix, k->name);
			sample_keys(fp, k->group, name, family);
			continue;
		}
		if (v == NULL)
			v = k->example ? k->example : "";
		fprintf(fp, "%s%s%s = %s\n", commented ? "#" : "", prefix, k->name, v);
	}
}

/* Every default of every table parses and fits its field. */
static int tables_check(const struct dmta_conf_section *const *secs, size_t nsecs, char *err,
			size_t errlen)
{
	for (size_t i = 0; i < nsecs; i++)
		if (sample_check(secs[i], "", err, errlen) != 0)
			return -EINVAL;
	return 0;
}

int dmta_conf_sample(FILE *fp, const struct dmta_conf_section *const *secs, size_t nsecs, char *err,
		     size_t errlen)
{
	if (tables_check(secs, nsecs, err, errlen) != 0)
		return -EINVAL;
	for (size_t i = 0; i < nsecs; i++) {
		const struct dmta_conf_section *sec = secs[i];

		if (i == 0 || strcmp(secs[i - 1]->name, sec->name) != 0)
			fprintf(fp, "\n%s[%s]\n", sec->family ? "#" : "", sec->name);
		sample_lines(fp, sec->help, "# ");
		sample_keys(fp, sec, "", sec->family);
		sample_lines(fp, sec->example, "#");
	}
	return ferror(fp) ? -EIO : 0;
}

/* @p text for roff: backslashes, hyphens and a leading dot or quote made literal. */
static void man_text(FILE *fp, const char *text, size_t n)
{
	if (n > 0 && (text[0] == '.' || text[0] == '\''))
		fputs("\\&", fp);
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\\')
			fputs("\\e", fp);
		else if (text[i] == '-')
			fputs("\\-", fp);
		else
			putc(text[i], fp);
	}
}

/* Help text: its lines as one paragraph, roff fills them. */
static void man_lines(FILE *fp, const char *text)
{
	while (text != NULL && *text != '\0') {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);

		man_text(fp, text, n);
		putc('\n', fp);
		text = nl ? nl + 1 : NULL;
	}
}

static void man_type(FILE *fp, const struct dmta_conf_key *k)
{
	static const char *const names[] = {
	    [DMTA_CONF_STR] = "text",
	    [DMTA_CONF_U64] = "a number",
	    [DMTA_CONF_BOOL] = "yes or no",
	    [DMTA_CONF_DURATION] = "a duration",
	    [DMTA_CONF_SIZE] = "a size",
	    [DMTA_CONF_ENUM] = "one of",
	    [DMTA_CONF_RATE] = "a rate (N/s, N/min, N/h or N/day)",
	    [DMTA_CONF_GROUP] = "",
	};

	fputs(names[k->type], fp);
	if (k->type == DMTA_CONF_ENUM)
		for (const struct dmta_conf_enum *e = k->values; e->name != NULL; e++) {
			fputs(e == k->values ? " " : ", ", fp);
			man_text(fp, e->name, strlen(e->name));
		}
	if (k->type == DMTA_CONF_U64 && k->max != 0)
		fprintf(fp, ", %llu to %llu", (unsigned long long)k->min,
			(unsigned long long)k->max);
	else if (k->type == DMTA_CONF_U64 && k->min != 0)
		fprintf(fp, ", at least %llu", (unsigned long long)k->min);
}

static void man_keys(FILE *fp, const struct dmta_conf_section *sec, const char *prefix)
{
	for (size_t i = 0; i < sec->nkeys; i++) {
		const struct dmta_conf_key *k = &sec->keys[i];
		char name[128];

		snprintf(name, sizeof(name), "%s%s", prefix, k->name);
		if (k->type == DMTA_CONF_GROUP) {
			man_keys(fp, k->group, name);
			continue;
		}
		fputs(".TP\n.B ", fp);
		man_text(fp, name, strlen(name));
		fputs("\n(", fp);
		man_type(fp, k);
		if (k->def != NULL) {
			fputs("; default ", fp);
			man_text(fp, k->def[0] ? k->def : "empty",
				 strlen(k->def[0] ? k->def : "empty"));
		} else if (k->example != NULL) {
			fputs("; unset by default, for example ", fp);
			man_text(fp, k->example, strlen(k->example));
		}
		fputs(")\n", fp);
		man_lines(fp, k->help);
	}
}

int dmta_conf_man(FILE *fp, const struct dmta_conf_section *const *secs, size_t nsecs, char *err,
		  size_t errlen)
{
	if (tables_check(secs, nsecs, err, errlen) != 0)
		return -EINVAL;
	for (size_t i = 0; i < nsecs; i++) {
		const struct dmta_conf_section *sec = secs[i];

		if (i == 0 || strcmp(secs[i - 1]->name, sec->name) != 0) {
			fputs(".SS [", fp);
			man_text(fp, sec->name, strlen(sec->name));
			fputs("]\n", fp);
		}
		if (sec->help != NULL) {
			fputs(".PP\n", fp);
			man_lines(fp, sec->help);
		}
		man_keys(fp, sec, "");
		if (sec->example != NULL) {
			fputs(".PP\nFor example:\n.PP\n.nf\n", fp);
			man_lines(fp, sec->example);
			fputs(".fi\n", fp);
		}
	}
	return ferror(fp) ? -EIO : 0;
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

void dmta_conf_sections(const struct dmta_conf *conf, const char *prefix,
			void (*fn)(const char *section, void *arg), void *arg)
{
	size_t plen = strlen(prefix);

	for (size_t i = 0; i < conf->n; i++) {
		const char *sec = conf->v[i].section;
		bool seen = false;

		if (strncmp(sec, prefix, plen) != 0)
			continue;
		/* Each name once, where it first appears. */
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(conf->v[k].section, sec) == 0;
		if (!seen)
			fn(sec, arg);
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
