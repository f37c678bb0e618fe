/*
 * test_json.c - the injection record reader.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue/queue_env.h"
#include "queue/queue_json.h"

static int parse(const char *s, struct queue_inject *r, const char **why)
{
	/* at the very end of a heap block, so over-reads are caught */
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);
	int rc;

	memcpy(copy, s, n);
	rc = queue_json_inject(copy, n, r, why);
	free(copy);
	return rc;
}

static void test_json_good(void **state)
{
	struct queue_inject r;
	const char *why;

	assert_int_equal(
	    parse("{\"from\": \"a@b.c\", \"to\": [\"x@y.z\", \"q@r.s\"], "
		  "\"data\": \"Subject: \\u00e9\\ud83d\\ude00\\r\\n\\r\\nhi\\\\\\\"\"}",
		  &r, &why),
	    0);
	assert_string_equal(r.from, "a@b.c");
	assert_int_equal(r.nto, 2);
	assert_string_equal(r.to[1], "q@r.s");
	assert_string_equal(r.data, "Subject: \xc3\xa9\xf0\x9f\x98\x80\r\n\r\nhi\\\"");
	assert_int_equal(r.data_len, strlen(r.data));
	queue_json_inject_free(&r);

	assert_int_equal(parse(" { \"to\" : \"x@y.z\" , \"from\":\"\", \"path\":\"/tmp/m\", "
			       "\"notify\":[\"success\",\"FAILURE\"], \"ret\":\"hdrs\", "
			       "\"envid\":\"id1\" } ",
			       &r, &why),
			 0);
	assert_string_equal(r.from, "");
	assert_int_equal(r.nto, 1);
	assert_null(r.data);
	assert_string_equal(r.path, "/tmp/m");
	assert_int_equal(r.notify, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE);
	assert_int_equal(r.ret, QUEUE_RET_HDRS);
	assert_string_equal(r.envid, "id1");
	queue_json_inject_free(&r);
}

static void test_json_bad(void **state)
{
	static const char *bad[] = {
	    "",
	    "[]",
	    "{",
	    "{\"from\":\"a@b.c\"}",
	    "{\"from\":\"a@b.c\",\"to\":[]}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"]}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"path\":\"/p\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\"} x",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"extra\":1}",
	    "{\"from\":\"a@b.c\",\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"\\u0000\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"\\ud800\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"\\udc00x\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"\\x\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"\\u12\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"tab\there\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\",],\"data\":\"x\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"notify\":\"never,delay\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"notify\":\"often\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"ret\":\"body\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":42}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"unterminated}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\\",
	    "{\"from\" \"a@b.c\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"envid\":\"\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"envid\":\"a b\"}",
	    "{\"from\":\"a@b.c\",\"to\":[\"x@y.z\"],\"data\":\"x\",\"envid\":"
	    "\"0123456789012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890\"}",
	};
	struct queue_inject r;
	const char *why;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (parse(bad[i], &r, &why) != -EBADMSG)
			fail_msg("got accept for %s, want reject", bad[i]);
		if (why == NULL)
			fail_msg("no reason for %s", bad[i]);
	}
}

static void test_json_traffic(void **state)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
	    {"\"pool\":\"a b\"", "pool: 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"\"pool\":\"\"", "pool: 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"\"tenant\":\"t/1\"", "tenant: 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"\"priority\":\"urgent\"", "priority must be \"high\", \"normal\" or \"bulk\""},
	    {"\"priority\":\"high\",\"priority\":\"high\"", "duplicate key"},
	    {"\"pool\":\"a\",\"pool\":\"a\"", "duplicate key"},
	    {"\"priority\":1", NULL},
	};
	const char *head = "{\"from\":\"a@b.c\",\"to\":\"x@y.z\",\"data\":\"x\",";
	struct queue_inject r;
	const char *why;
	char line[512];

	(void)state;
	assert_int_equal(parse("{\"from\":\"a@b.c\",\"to\":\"x@y.z\",\"data\":\"x\"}", &r, &why),
			 0);
	assert_null(r.pool);
	assert_null(r.tenant);
	assert_int_equal(r.priority, -1);
	queue_json_inject_free(&r);
	assert_int_equal(
	    parse("{\"from\":\"a@b.c\",\"to\":\"x@y.z\",\"data\":\"x\","
		  "\"pool\":\"warm-up.1\",\"priority\":\"BULK\",\"tenant\":\"news_7\"}",
		  &r, &why),
	    0);
	assert_string_equal(r.pool, "warm-up.1");
	assert_string_equal(r.tenant, "news_7");
	assert_int_equal(r.priority, QUEUE_PRIO_BULK);
	queue_json_inject_free(&r);
	assert_int_equal(parse("{\"from\":\"a@b.c\",\"to\":\"x@y.z\",\"data\":\"x\","
			       "\"priority\":\"normal\"}",
			       &r, &why),
			 0);
	assert_int_equal(r.priority, QUEUE_PRIO_NORMAL);
	queue_json_inject_free(&r);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line), "%s%s}", head, bad[i].line);
		why = NULL;
		if (parse(line, &r, &why) != -EBADMSG)
			fail_msg("got accept for %s, want reject", line);
		if (why == NULL || (bad[i].why && strcmp(why, bad[i].why) != 0))
			fail_msg("%s: got \"%s\", want \"%s\"", line, why ? why : "(null)",
				 bad[i].why ? bad[i].why : "a reason");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_good),
	    cmocka_unit_test(test_json_bad),
	    cmocka_unit_test(test_json_traffic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
