/*
 * dmta_conf.h - dmta.conf, the one configuration file of every dmta program.
 *
 * SYNOPSIS
 *	path = dmta_conf_path(cli_path);
 *	conf = dmta_conf_load(path, err, sizeof(err));
 *	s = dmta_conf_str(conf, "spool", "path", "/var/spool/dmta");
 *	rc = dmta_conf_u64(conf, "port", "rx_desc", 1024, 64, 32768, &v);
 *	dmta_conf_warn_unused(conf, (const char *[]){"spool", NULL});
 *	dmta_conf_free(conf);
 *
 * DESCRIPTION
 *	An INI file with [sections] and key = value lines, parsed by libinih.
 *	Each module reads its own keys with their defaults next to the code
 *	that uses them; the typed getters validate and report
 *	"FILE: [section] key: reason" in err-style log lines. Keys nobody asked
 *	for are reported by dmta_conf_warn_unused() so that typos do not pass
 *	silently.
 *
 *	The file is found as DESIGN.md says: -c FILE, else $DMTA_CONFIG, else
 *	/etc/dmta/dmta.conf. A missing default file means all defaults; a
 *	file named explicitly (by -c or $DMTA_CONFIG) must exist.
 *
 * DIAGNOSTICS
 *	Loaders return NULL and set errno; getters return 0 or -EINVAL.
 */
#ifndef DMTA_CONF_H
#define DMTA_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DMTA_CONF_DEFAULT_PATH "/etc/dmta/dmta.conf"

struct dmta_conf;

/** The path to read: @p cli_path if not NULL, else $DMTA_CONFIG, else the default. */
const char *dmta_conf_path(const char *cli_path);

/**
 * Read and parse @p path. A missing file is an empty configuration only when
 * @p path is the default path. On error returns NULL, sets errno and writes
 * one line into @p err.
 */
struct dmta_conf *dmta_conf_load(const char *path, char *err, size_t errlen);

/** An empty configuration (all defaults), e.g. for tests. NULL on ENOMEM. */
struct dmta_conf *dmta_conf_new(void);

/** Set (or replace) a value; for tests and command-line overrides. 0 or -ENOMEM. */
int dmta_conf_set(struct dmta_conf *conf, const char *section, const char *key, const char *value);

/** The file the configuration came from ("(defaults)" when none). */
const char *dmta_conf_source(const struct dmta_conf *conf);

/** The raw value, or NULL when the key is not set. Marks the key as used. */
const char *dmta_conf_get(const struct dmta_conf *conf, const char *section, const char *key);

/** The value, or @p def when not set. */
const char *dmta_conf_str(const struct dmta_conf *conf, const char *section, const char *key,
			  const char *def);

/** An unsigned integer within [min, max]; 0 or -EINVAL (logged). */
int dmta_conf_u64(const struct dmta_conf *conf, const char *section, const char *key, uint64_t def,
		  uint64_t min, uint64_t max, uint64_t *out);

/** yes/no, true/false, on/off, 1/0; 0 or -EINVAL (logged). */
int dmta_conf_bool(const struct dmta_conf *conf, const char *section, const char *key, bool def,
		   bool *out);

/**
 * A duration such as "250ms", "30s", "5m", "2h", "5d" (a bare number means
 * seconds), in milliseconds, within [min_ms, max_ms]; 0 or -EINVAL (logged).
 */
int dmta_conf_duration_ms(const struct dmta_conf *conf, const char *section, const char *key,
			  uint64_t def_ms, uint64_t min_ms, uint64_t max_ms, uint64_t *out);

/** A size such as "4096", "64k", "10M", "1G" in bytes, within [min, max]. */
int dmta_conf_size(const struct dmta_conf *conf, const char *section, const char *key, uint64_t def,
		   uint64_t min, uint64_t max, uint64_t *out);

/** Call @p fn for each key of @p section in file order (marks them used). */
void dmta_conf_foreach(const struct dmta_conf *conf, const char *section,
		       void (*fn)(const char *key, const char *value, void *arg), void *arg);

/**
 * Warn about every key of the given sections that no getter asked for, and
 * return how many. dmta.conf is shared by all programs, so each checks only
 * the sections it owns. @p sections ends with NULL; NULL alone means all.
 */
int dmta_conf_warn_unused(const struct dmta_conf *conf, const char *const *sections);

void dmta_conf_free(struct dmta_conf *conf);

/* Parsers behind the getters, usable on their own (e.g. for CLI flags). 0 or -EINVAL. */
int dmta_parse_u64(const char *s, uint64_t *out);
int dmta_parse_duration_ms(const char *s, uint64_t *out);
int dmta_parse_size(const char *s, uint64_t *out);

#endif
