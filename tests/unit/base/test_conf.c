/*
 * test_conf.c - dmta.conf parsing, typed getters, key tables and the sample.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/dmta-test-conf-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_parse_and_get(void **state)
{
	char err[256];
	char *path = write_tmp("; comment\n[spool]\npath = /tmp/x\n[port]\nrx_desc = 512\n"
			       "ttl = 5d\nsize = 10M\nflag = yes\n[spool]\npath = /tmp/y\n");
	struct dmta_conf *c = dmta_conf_load(path, err, sizeof(err));
	uint64_t v;
	bool b;

	assert_non_null(c);
	/* repeated key: last one wins */
	assert_string_equal(dmta_conf_str(c, "spool", "path", "def"), "/tmp/y");
	assert_string_equal(dmta_conf_str(c, "spool", "nope", "def"), "def");
	assert_int_equal(dmta_conf_u64(c, "port", "rx_desc", 1, 64, 4096, &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(dmta_conf_u64(c, "port", "rx_desc", 1, 1024, 4096, &v), -EINVAL);
	assert_int_equal(dmta_conf_duration_ms(c, "port", "ttl", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 5ULL * 86400 * 1000);
	assert_int_equal(dmta_conf_size(c, "port", "size", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 10ULL << 20);
	assert_int_equal(dmta_conf_bool(c, "port", "flag", false, &b), 0);
	assert_true(b);
	assert_int_equal(dmta_conf_u64(c, "port", "missing", 77, 0, 100, &v), 0);
	assert_int_equal(v, 77);
	assert_int_equal(dmta_conf_warn_unused(c, NULL), 0);
	dmta_conf_free(c);
	unlink(path);
	free(path);
}

static void test_bad_values(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	uint64_t v;
	bool b;

	assert_non_null(c);
	assert_int_equal(dmta_conf_set(c, "a", "n", "12x"), 0);
	assert_int_equal(dmta_conf_set(c, "a", "neg", "-1"), 0);
	assert_int_equal(dmta_conf_set(c, "a", "big", "99999999999999999999999"), 0);
	assert_int_equal(dmta_conf_set(c, "a", "d", "5 fortnights"), 0);
	assert_int_equal(dmta_conf_set(c, "a", "b", "maybe"), 0);
	assert_int_equal(dmta_conf_set(c, "a", "ovf", "99999999999999w"), 0);
	assert_int_equal(dmta_conf_u64(c, "a", "n", 0, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(dmta_conf_u64(c, "a", "neg", 0, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(dmta_conf_u64(c, "a", "big", 0, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(dmta_conf_duration_ms(c, "a", "d", 0, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(dmta_conf_duration_ms(c, "a", "ovf", 0, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(dmta_conf_bool(c, "a", "b", false, &b), -EINVAL);
	dmta_conf_free(c);
}

static void test_unknown_keys_reported(void **state)
{
	struct dmta_conf *c = dmta_conf_new();

	assert_int_equal(dmta_conf_set(c, "spool", "paht", "/x"), 0);
	assert_int_equal(dmta_conf_set(c, "spool", "path", "/y"), 0);
	assert_int_equal(dmta_conf_set(c, "other", "x", "1"), 0);
	(void)dmta_conf_get(c, "spool", "path");
	assert_int_equal(dmta_conf_warn_unused(c, NULL), 2);
	assert_int_equal(dmta_conf_warn_unused(c, (const char *const[]){"spool", NULL}), 1);
	assert_int_equal(dmta_conf_warn_unused(c, (const char *const[]){"nothing", NULL}), 0);
	dmta_conf_free(c);
}

static void test_missing_files(void **state)
{
	char err[256];
	struct dmta_conf *c;

	/* An explicitly named file must exist ... */
	c = dmta_conf_load("/nonexistent/dmta.conf", err, sizeof(err));
	assert_null(c);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dmta.conf"));
	/* ... a syntax error names the line ... */
	char *path = write_tmp("[a]\nx = 1\nthis is not ini\n");
	c = dmta_conf_load(path, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, ":3:"));
	unlink(path);
	free(path);
}

static void test_path_order(void **state)
{
	unsetenv("DMTA_CONFIG");
	assert_string_equal(dmta_conf_path(NULL), DMTA_CONF_DEFAULT_PATH);
	setenv("DMTA_CONFIG", "/env/dmta.conf", 1);
	assert_string_equal(dmta_conf_path(NULL), "/env/dmta.conf");
	assert_string_equal(dmta_conf_path("/cli.conf"), "/cli.conf");
	unsetenv("DMTA_CONFIG");
}

/* A module's struct and its table, with a field of every kind. */
enum colour { RED = 7, GREEN = 8, BLUE = 9 };

struct sub {
	uint32_t limit;
};

struct mod {
	const char *name, *unset;
	uint16_t port;
	uint32_t count;
	uint64_t big;
	bool flag;
	uint64_t wait_ms;
	uint32_t ttl_s;
	uint64_t bytes;
	enum colour colour;
	struct sub sub;
};

static const struct dmta_conf_enum colours[] = {
    {"red", RED}, {"green", GREEN}, {"blue", BLUE}, {NULL, 0}};

static const struct dmta_conf_key sub_keys[] = {
    {.name = "limit",
     .type = DMTA_CONF_U64,
     .def = "10",
     .example = "2",
     .min = 1,
     .max = 100,
     DMTA_CONF_AT(struct sub, limit),
     .help = "per thing"},
};

static const struct dmta_conf_section sub_section = {
    .name = "thing example.org",
    .help = "One thing's own limits.",
    .keys = sub_keys,
    .nkeys = DMTA_CONF_NKEYS(sub_keys),
    .family = true,
};

#define MOD(m) DMTA_CONF_AT(struct mod, m)
static const struct dmta_conf_key mod_keys[] = {
    {.name = "name", .type = DMTA_CONF_STR, .def = "dmta", MOD(name), .help = "a name\n\nand more"},
    {.name = "unset", .type = DMTA_CONF_STR, .example = "/x", MOD(unset)},
    {.name = "port", .type = DMTA_CONF_U64, .def = "25", .min = 1, .max = 65535, MOD(port)},
    {.name = "count", .type = DMTA_CONF_U64, .def = "3", .min = 1, .max = 10, MOD(count)},
    {.name = "big", .type = DMTA_CONF_U64, .def = "5000000000", MOD(big)},
    {.name = "flag", .type = DMTA_CONF_BOOL, .def = "no", MOD(flag)},
    {.name = "wait",
     .type = DMTA_CONF_DURATION,
     .def = "5m",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_HOUR(1),
     MOD(wait_ms)},
    {.name = "ttl",
     .type = DMTA_CONF_DURATION,
     .def = "1d",
     .max = DMTA_CONF_DAY(7),
     .unit = 1000,
     MOD(ttl_s)},
    {.name = "bytes",
     .type = DMTA_CONF_SIZE,
     .def = "64k",
     .min = 1024,
     .max = 1ULL << 30,
     MOD(bytes)},
    {.name = "colour", .type = DMTA_CONF_ENUM, .def = "green", .values = colours, MOD(colour)},
    {.name = "thing_",
     .type = DMTA_CONF_GROUP,
     .group = &sub_section,
     MOD(sub),
     .help = "Limits of every thing."},
};

static const struct dmta_conf_section mod_section = {
    .name = "mod",
    .help = "A module.",
    .keys = mod_keys,
    .nkeys = DMTA_CONF_NKEYS(mod_keys),
};

/* Run @p fn with error lines logged into @p out (as dmtad would print them). */
static int capture_errors(int (*fn)(void *), void *arg, char *out, size_t len)
{
	char path[] = "/tmp/dmta-test-conf-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2), rc;
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 2);
	dmta_log_set_level(DMTA_LOG_ERR);
	rc = fn(arg);
	dmta_log_set_level(DMTA_LOG_QUIET);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return rc;
}

struct read_args {
	struct dmta_conf *conf;
	struct mod *m;
};

static int read_mod(void *arg)
{
	struct read_args *a = arg;

	return dmta_conf_read(a->conf, &mod_section, a->m);
}

static void test_table_defaults(void **state)
{
	struct mod m = {.unset = "kept"};

	assert_int_equal(dmta_conf_read(NULL, &mod_section, &m), 0);
	assert_string_equal(m.name, "dmta");
	assert_string_equal(m.unset, "kept"); /* no default: left as the caller set it */
	assert_int_equal(m.port, 25);
	assert_int_equal(m.count, 3);
	assert_int_equal(m.big, 5000000000ULL);
	assert_false(m.flag);
	assert_int_equal(m.wait_ms, 5 * 60 * 1000);
	assert_int_equal(m.ttl_s, 86400);
	assert_int_equal(m.bytes, 64 << 10);
	assert_int_equal(m.colour, GREEN);
	assert_int_equal(m.sub.limit, 10);
}

static void test_table_values(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct mod m = {0};
	static const char *const kv[][2] = {
	    {"name", "x"},   {"unset", "/y"},	 {"port", "65535"},	 {"count", "10"},
	    {"big", "1"},    {"flag", "on"},	 {"wait", "1h"},	 {"ttl", "90s"},
	    {"bytes", "1G"}, {"colour", "blue"}, {"thing_limit", "100"},
	};

	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		assert_int_equal(dmta_conf_set(c, "mod", kv[i][0], kv[i][1]), 0);
	assert_int_equal(dmta_conf_read(c, &mod_section, &m), 0);
	assert_string_equal(m.name, "x");
	assert_string_equal(m.unset, "/y");
	assert_int_equal(m.port, 65535);
	assert_int_equal(m.count, 10);
	assert_int_equal(m.big, 1);
	assert_true(m.flag);
	assert_int_equal(m.wait_ms, 3600 * 1000);
	assert_int_equal(m.ttl_s, 90);
	assert_int_equal(m.bytes, 1ULL << 30);
	assert_int_equal(m.colour, BLUE);
	assert_int_equal(m.sub.limit, 100);
	/* Every key read counts as used. */
	assert_int_equal(dmta_conf_warn_unused(c, NULL), 0);
	dmta_conf_free(c);
}

static void test_table_errors(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct mod m = {0};
	struct read_args a = {c, &m};
	char log[4096];

	assert_int_equal(dmta_conf_set(c, "mod", "count", "11"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "port", "0x19"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "wait", "500ms"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "ttl", "soon"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "bytes", "2G"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "flag", "maybe"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "colour", "Red"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "thing_limit", "0"), 0);
	assert_int_equal(dmta_conf_set(c, "mod", "name", "fine"), 0);
	assert_int_equal(capture_errors(read_mod, &a, log, sizeof(log)), -EINVAL);
	/* One line per bad key, all of them, in table order ... */
	assert_string_equal(
	    log,
	    "test_conf: error: (defaults): [mod] port: '0x19': not a valid number\n"
	    "test_conf: error: (defaults): [mod] count: '11': out of range (from 1 to 10)\n"
	    "test_conf: error: (defaults): [mod] flag: 'maybe': expected yes or no\n"
	    "test_conf: error: (defaults): [mod] wait: '500ms': out of range (from 1s to 1h)\n"
	    "test_conf: error: (defaults): [mod] ttl: 'soon': not a valid duration (e.g. 250ms, "
	    "30s, 5m, 5d)\n"
	    "test_conf: error: (defaults): [mod] bytes: '2G': out of range (from 1k to 1G)\n"
	    "test_conf: error: (defaults): [mod] colour: 'Red': expected red, green or blue\n"
	    "test_conf: error: (defaults): [mod] thing_limit: '0': out of range (from 1 to "
	    "100)\n");
	/* ... and the good ones are still read. */
	assert_string_equal(m.name, "fine");
	dmta_conf_free(c);
}

static void test_table_overlay(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct sub s = {.limit = 42};

	/* A family member changes only what it sets. */
	assert_int_equal(dmta_conf_read_over(c, "thing a.example", &sub_section, &s), 0);
	assert_int_equal(s.limit, 42);
	assert_int_equal(dmta_conf_set(c, "thing a.example", "limit", "7"), 0);
	assert_int_equal(dmta_conf_read_over(c, "thing a.example", &sub_section, &s), 0);
	assert_int_equal(s.limit, 7);
	assert_int_equal(dmta_conf_set(c, "thing a.example", "limit", "1000"), 0);
	assert_int_equal(dmta_conf_read_over(c, "thing a.example", &sub_section, &s), -EINVAL);
	assert_int_equal(s.limit, 7);
	dmta_conf_free(c);
}

static char *sample_of(const struct dmta_conf_section *const *secs, size_t n, int *rc, char *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	*rc = dmta_conf_sample(fp, secs, n, err, 256);
	fclose(fp);
	return buf;
}

static void test_sample_text(void **state)
{
	static const struct dmta_conf_key more_keys[] = {
	    {.name = "extra", .type = DMTA_CONF_BOOL, .def = "yes", .size = sizeof(bool)},
	};
	static const struct dmta_conf_section more = {
	    .name = "mod", .keys = more_keys, .nkeys = 1, .example = "free = form\nlines"};
	const struct dmta_conf_section *secs[] = {&mod_section, &more, &sub_section};
	char err[256];
	int rc;
	char *text = sample_of(secs, 3, &rc, err);

	assert_int_equal(rc, 0);
	assert_string_equal(text, "\n[mod]\n"
				  "# A module.\n"
				  "# a name\n"
				  "#\n"
				  "# and more\n"
				  "name = dmta\n"
				  "#unset = /x\n"
				  "port = 25\n"
				  "count = 3\n"
				  "big = 5000000000\n"
				  "flag = no\n"
				  "wait = 5m\n"
				  "ttl = 1d\n"
				  "bytes = 64k\n"
				  "colour = green\n"
				  "# Limits of every thing.\n"
				  "# per thing\n"
				  "thing_limit = 10\n"
				  "extra = yes\n"
				  "#free = form\n"
				  "#lines\n"
				  "\n#[thing example.org]\n"
				  "# One thing's own limits.\n"
				  "#limit = 2\n");
	free(text);
}

static void test_sample_rejects_broken_tables(void **state)
{
	static const struct dmta_conf_key bad_default[] = {
	    {.name = "n",
	     .type = DMTA_CONF_U64,
	     .def = "0",
	     .min = 1,
	     .max = 5,
	     .size = sizeof(uint32_t)},
	};
	static const struct dmta_conf_key narrow[] = {
	    {.name = "n",
	     .type = DMTA_CONF_U64,
	     .def = "1",
	     .max = 70000,
	     .size = sizeof(uint16_t)},
	};
	static const struct dmta_conf_key bad_enum[] = {
	    {.name = "c",
	     .type = DMTA_CONF_ENUM,
	     .def = "purple",
	     .values = colours,
	     .size = sizeof(int)},
	};
	const struct dmta_conf_section s1 = {.name = "a", .keys = bad_default, .nkeys = 1};
	const struct dmta_conf_section s2 = {.name = "b", .keys = narrow, .nkeys = 1};
	const struct dmta_conf_section s3 = {.name = "c", .keys = bad_enum, .nkeys = 1};
	const struct dmta_conf_section *secs[] = {&s1, &s2, &s3};
	char err[256];
	int rc;

	for (size_t i = 0; i < 3; i++) {
		char *text = sample_of(&secs[i], 1, &rc, err);

		assert_int_equal(rc, -EINVAL);
		assert_string_equal(text, ""); /* nothing written */
		free(text);
	}
	free(sample_of(&secs[0], 1, &rc, err));
	assert_string_equal(err, "[a] n: default '0': out of range (from 1 to 5)");
	free(sample_of(&secs[1], 1, &rc, err));
	assert_string_equal(err, "[b] n: its field cannot hold its values");
	free(sample_of(&secs[2], 1, &rc, err));
	assert_string_equal(err, "[c] c: default 'purple': expected red, green or blue");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_get),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_unknown_keys_reported),
	    cmocka_unit_test(test_missing_files),
	    cmocka_unit_test(test_path_order),
	    cmocka_unit_test(test_table_defaults),
	    cmocka_unit_test(test_table_values),
	    cmocka_unit_test(test_table_errors),
	    cmocka_unit_test(test_table_overlay),
	    cmocka_unit_test(test_sample_text),
	    cmocka_unit_test(test_sample_rejects_broken_tables),
	};

	dmta_log_init("test_conf", DMTA_LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
