/*
 * dmta_conf.h - dmta.conf, the one configuration file of every dmta program.
 *
 * SYNOPSIS
 *	path = dmta_conf_path(cli_path);
 *	conf = dmta_conf_load(path, err, sizeof(err));
 *	s = dmta_conf_str(conf, "spool", "path", "/var/spool/dmta");
 *	rc = dmta_conf_u64(conf, "port", "rx_desc", 1024, 64, 32768, &v);
 *	rc = dmta_conf_read(conf, &spool_conf_section, &opts);
 *	dmta_conf_warn_unused(conf, (const char *[]){"spool", NULL});
 *	dmta_conf_free(conf);
 *	dmta_conf_sample(stdout, sections, nsections);
 *	dmta_conf_man(stdout, sections, nsections);   (dmta.conf(5)'s key reference)
 *
 * DESCRIPTION
 *	An INI file with [sections] and key = value lines, parsed by libinih.
 *	Each module declares its keys once, in a table (struct
 *	dmta_conf_section) beside the code that uses them: name, type,
 *	default, range, the field it fills and a help text. The same tables
 *	read the file (dmta_conf_read) and write tools/dmta.conf.sample
 *	(dmta_conf_sample), so the two cannot drift. Errors are reported as
 *	"FILE: [section] key: reason" in err-style log lines. Keys nobody
 *	asked for are reported by dmta_conf_warn_unused() so that typos do not
 *	pass silently. The typed getters below read single keys the same way.
 *
 *	The file is found as DESIGN.md says: -c FILE, else $DMTA_CONFIG, else
 *	/etc/dmta/dmta.conf. A missing default file means all defaults; a
 *	file named explicitly (by -c or $DMTA_CONFIG) must exist.
 *
 * DIAGNOSTICS
 *	Loaders return NULL and set errno; getters and readers return 0 or
 *	-EINVAL. A table whose default does not parse is a broken invariant:
 *	dmta_conf_read() panics, and dmta_conf_sample() (run by a unit test)
 *	refuses it.
 */
#ifndef DMTA_CONF_H
#define DMTA_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DMTA_CONF_DEFAULT_PATH "/etc/dmta/dmta.conf"

struct dmta_conf;

/* Durations in tables are in milliseconds. */
#define DMTA_CONF_SEC(n)  ((uint64_t)(n)*1000)
#define DMTA_CONF_MIN(n)  (DMTA_CONF_SEC(n) * 60)
#define DMTA_CONF_HOUR(n) (DMTA_CONF_MIN(n) * 60)
#define DMTA_CONF_DAY(n)  (DMTA_CONF_HOUR(n) * 24)

enum dmta_conf_type {
	DMTA_CONF_STR,	    /* const char *, pointing into the configuration (or def) */
	DMTA_CONF_U64,	    /* an unsigned integer field of any width */
	DMTA_CONF_BOOL,	    /* bool: yes/no, true/false, on/off, 1/0 */
	DMTA_CONF_DURATION, /* "250ms", "30s", "5m", "2h", "5d", "1w"; a bare number is seconds */
	DMTA_CONF_SIZE,	    /* "4096", "64k", "10M", "1G", in bytes */
	DMTA_CONF_ENUM,	    /* one of values[], stored as its value in an int-sized field */
	DMTA_CONF_RATE,	    /* "20/s", "600/min", "3600/h", "1000/day"; a bare number is per
			     * second; stored as events per day (0: unlimited) */
	DMTA_CONF_GROUP,    /* the keys of group, each named name + its own name */
};

/** A name an enum key accepts and the value stored for it. Lists end with a NULL name. */
struct dmta_conf_enum {
	const char *name;
	int value;
};

struct dmta_conf_section;

/**
 * One key: the single place its name, default and range are written.
 * Free-form values (host lists, addresses) are STR keys that the module
 * parses after reading them.
 */
struct dmta_conf_key {
	const char *name;
	enum dmta_conf_type type;
	/* The default as it would be written in the file; NULL: unset (the
	 * field is left as the caller set it, and the sample shows the key
	 * commented out with example). */
	const char *def;
	const char *example;
	uint64_t min, max; /* U64, DURATION (ms), SIZE (bytes); max 0 means no limit */
	uint64_t unit;	   /* DURATION: the field counts units of this many ms (0: ms) */
	const struct dmta_conf_enum *values;   /* ENUM */
	const struct dmta_conf_section *group; /* GROUP */
	size_t off, size;		       /* the field, see DMTA_CONF_AT() */
	const char *help;		       /* lines separated by '\n', or NULL */
};

/** The field a key fills: .off and .size of @p member in @p type. */
#define DMTA_CONF_AT(type, member)                                                                 \
	.off = offsetof(type, member), .size = sizeof(((type *)0)->member)

/**
 * A section's keys. One section may be declared in parts by the modules
 * that own its keys (each reads its part into its own struct); the sample
 * writes consecutive parts under one header. A family of sections such as
 * [dest DOMAIN] is written commented out, under its example name.
 */
struct dmta_conf_section {
	const char *name; /* "queue"; for a family its example: "dest example.org" */
	const char *help;
	const struct dmta_conf_key *keys;
	size_t nkeys;
	bool family;
	const char *example; /* free-form lines shown commented out after the keys */
};

/** The number of entries of a key array, for struct dmta_conf_section's nkeys. */
#define DMTA_CONF_NKEYS(keys) (sizeof(keys) / sizeof((keys)[0]))

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

/** The last value a reader or getter of this thread refused, as the line
 *  it logged ("FILE: [section] key: 'value': reason"). */
const char *dmta_conf_last_error(void);

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
 * Call @p fn once for each section whose name begins with @p prefix (e.g.
 * "dkim " for the [dkim DOMAIN] family, "dest " for [dest DOMAIN]), in
 * file order. A section with no keys is not seen (the parser keeps keys,
 * not headers).
 */
void dmta_conf_sections(const struct dmta_conf *conf, const char *prefix,
			void (*fn)(const char *section, void *arg), void *arg);

/**
 * Warn about every key of the given sections that no getter asked for, and
 * return how many. dmta.conf is shared by all programs, so each checks only
 * the sections it owns. @p sections ends with NULL; NULL alone means all.
 */
int dmta_conf_warn_unused(const struct dmta_conf *conf, const char *const *sections);

void dmta_conf_free(struct dmta_conf *conf);

/**
 * Fill @p out from [sec->name] of @p conf (NULL: defaults only): each key
 * set in the file is parsed and range-checked, each key not set takes its
 * default. Every bad key is reported on a line of its own
 * ("FILE: [section] key: reason"); 0 or -EINVAL once all were read.
 */
int dmta_conf_read(const struct dmta_conf *conf, const struct dmta_conf_section *sec, void *out);

/**
 * As dmta_conf_read(), from section @p name (a member of a family such as
 * "dest example.org"), and only the keys set there change @p out: the
 * caller fills in what the family inherits first.
 */
int dmta_conf_read_over(const struct dmta_conf *conf, const char *name,
			const struct dmta_conf_section *sec, void *out);

/**
 * Write the sample configuration of @p secs (each section's help, then
 * each key's help and "key = default", or "#key = example" when it has
 * no default) to @p fp. Checks every default against its key's type and
 * range first: 0, or -EINVAL with the broken key named in @p err.
 */
int dmta_conf_sample(FILE *fp, const struct dmta_conf_section *const *secs, size_t nsecs, char *err,
		     size_t errlen);

/**
 * The key reference of @p secs as roff for dmta.conf(5): a subsection per
 * section, a tagged paragraph per key (its type, default or example, and
 * help). Checks the tables as dmta_conf_sample() does; 0 or -EINVAL.
 */
int dmta_conf_man(FILE *fp, const struct dmta_conf_section *const *secs, size_t nsecs, char *err,
		  size_t errlen);

/* Parsers behind the getters, usable on their own (e.g. for CLI flags). 0 or -EINVAL. */
int dmta_parse_u64(const char *s, uint64_t *out);
int dmta_parse_duration_ms(const char *s, uint64_t *out);
int dmta_parse_size(const char *s, uint64_t *out);
/** A rate "N/s", "N/min", "N/h", "N/day" (a bare N is per second) as events per day. */
int dmta_parse_rate(const char *s, uint64_t *per_day);
/** Events per day written back the way a user would: "20/s", "3600/h", "7/day". */
void dmta_rate_format(uint64_t per_day, char *buf, size_t len);

#endif
