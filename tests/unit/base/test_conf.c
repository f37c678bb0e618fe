/*
 * test_conf.c - dmta.conf parsing and typed getters.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_get),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_unknown_keys_reported),
	    cmocka_unit_test(test_missing_files),
	    cmocka_unit_test(test_path_order),
	};

	dmta_log_init("test_conf", DMTA_LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
