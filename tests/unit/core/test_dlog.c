/*
 * test_dlog.c - the delivery log: one JSON line per record, whatever the
 *	peer's reply holds.
 *
 * DESCRIPTION
 *	A server's reply is the longest field and comes from the network;
 *	records that do not fit the line buffer are cut, never written past
 *	the buffer's end.
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

#include "core/control/dmta_dlog.h"

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 1 << 16);

	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	return buf;
}

static void write_with_reply(size_t reply_len)
{
	char dir[] = "/tmp/dmta-dlog-XXXXXX", path[64];
	char *reply = malloc(reply_len + 1);
	struct dmta_dlog *dl;
	size_t len;
	char *out;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/delivery.log", dir);
	assert_non_null(reply);
	memset(reply, 'x', reply_len);
	memcpy(reply, "250 ", 4);
	reply[reply_len] = '\0';
	dl = dmta_dlog_open(path, 0, 0);
	assert_non_null(dl);
	struct dmta_dlog_rec r = {
	    .qid = 1,
	    .from = "a@example.test",
	    .to = "b@example.test",
	    .domain = "example.test",
	    .mx = "mx.example.test",
	    .ip = "198.18.1.10",
	    .tls = "",
	    .reply = reply,
	    .status = "2.0.0",
	    .attempt = 1,
	    .outcome = "delivered",
	};
	assert_int_equal(dmta_dlog_write(dl, &r), 0);
	dmta_dlog_close(dl);
	out = read_all(path, &len);
	/* One line, whatever was cut. */
	assert_true(len > 0 && len <= 4096);
	assert_int_equal(out[len - 1], '\n');
	assert_null(memchr(out, '\n', len - 1));
	free(out);
	free(reply);
	unlink(path);
	rmdir(dir);
}

static void test_short_reply(void **state)
{
	(void)state;
	write_with_reply(40);
}

/* Replies around the buffer's size: each field boundary near the end. */
static void test_long_replies(void **state)
{
	(void)state;
	for (size_t n = 3900; n < 4200; n++)
		write_with_reply(n);
	write_with_reply(20000);
}

/* The delivery log is never opened through a link. */
static void test_no_follow(void **state)
{
	char dir[] = "/tmp/dmta-test-dlog-XXXXXX", path[256], victim[256];
	struct dmta_dlog *dl;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(path, sizeof(path), "%s/delivery.log", dir);
	assert_int_equal(symlink(victim, path), 0);
	dl = dmta_dlog_open(path, 1 << 20, 2);
	if (dl != NULL)
		fail_msg("delivery log opened through a link, want ELOOP");
	assert_int_equal(errno, ELOOP);
	if (access(victim, F_OK) == 0)
		fail_msg("the link's target was created, want nothing there");
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_short_reply),
	    cmocka_unit_test(test_no_follow),
	    cmocka_unit_test(test_long_replies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
