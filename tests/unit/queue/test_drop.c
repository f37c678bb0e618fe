/*
 * test_drop.c - the maildrop: a written file parses back to the same
 * envelope and bytes; what a user may not choose (states, hold, DSN flag,
 * attempts) is dropped on the way in; bad files, symbolic links and
 * files with other links are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue/spool_drop.h"

static char dir[64];

static int setup(void **state)
{
	char p[128];

	snprintf(dir, sizeof(dir), "/tmp/dmta-drop-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/%s", dir, SPOOL_DROP_DIR);
	assert_int_equal(mkdir(p, 0700), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static char *slurp(const char *name, size_t *len)
{
	struct stat st;
	int fd = spool_drop_open(dir, name, &st);
	char *buf;

	assert_true(fd >= 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void test_round_trip(void **state)
{
	static const char msg[] = "Subject: t\r\n\r\nbody\r\n";
	struct queue_env env = {0}, got;
	char name[64], path[256];
	const void *m;
	const char *why;
	size_t len, mlen;
	struct stat st;
	char *buf;

	assert_int_equal(queue_env_set_sender(&env, "a@x.test"), 0);
	assert_int_equal(queue_env_add_rcpt(&env, "b@y.test", "rfc822;b@y.test",
					    QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE),
			 0);
	assert_int_equal(queue_env_add_rcpt(&env, "c@y.test", NULL, 0), 0);
	/* What no user may set: it must not survive the maildrop. */
	env.flags = QUEUE_F_8BITMIME | QUEUE_F_HOLD | QUEUE_F_DSN;
	env.rcpt[1].state = QUEUE_RCPT_DELIVERED;
	env.rcpt[1].attempts = 7;
	env.attempts = 9;
	env.ret = QUEUE_RET_HDRS;
	assert_int_equal(spool_drop_write(dir, &env, msg, sizeof(msg) - 1, name, sizeof(name)), 0);
	assert_true(name[0] != '.');
	snprintf(path, sizeof(path), "%s/%s/%s", dir, SPOOL_DROP_DIR, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	buf = slurp(name, &len);
	assert_int_equal(spool_drop_parse(buf, len, &got, &m, &mlen, &why), 0);
	assert_int_equal(mlen, sizeof(msg) - 1);
	assert_memory_equal(m, msg, mlen);
	assert_string_equal(got.sender, "a@x.test");
	assert_int_equal(got.nrcpt, 2);
	assert_string_equal(got.rcpt[0].addr, "b@y.test");
	assert_string_equal(got.rcpt[0].orcpt, "rfc822;b@y.test");
	assert_int_equal(got.rcpt[0].notify, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE);
	assert_int_equal(got.rcpt[1].state, QUEUE_RCPT_PENDING);
	assert_int_equal(got.rcpt[1].attempts, 0);
	assert_int_equal(got.flags, QUEUE_F_8BITMIME);
	assert_int_equal(got.attempts, 0);
	assert_int_equal(got.ret, QUEUE_RET_HDRS);
	queue_env_free(&got);

	/* Cut anywhere, or one byte changed in the envelope: refused. */
	for (size_t cut = 0; cut < len - mlen; cut++) {
		assert_int_equal(spool_drop_parse(buf, cut, &got, &m, &mlen, &why), -EBADMSG);
		assert_non_null(why);
	}
	buf[SPOOL_DROP_HDR + 10] ^= 1;
	assert_int_equal(spool_drop_parse(buf, len, &got, &m, &mlen, &why), -EBADMSG);
	free(buf);
	queue_env_free(&env);
}

static void test_bad_addresses(void **state)
{
	struct queue_env env = {0}, got;
	char name[64];
	const void *m;
	const char *why = NULL;
	size_t len, mlen;
	char *buf;

	assert_int_equal(queue_env_set_sender(&env, "a@x.test"), 0);
	assert_int_equal(queue_env_add_rcpt(&env, "no at sign", NULL, 0), 0);
	assert_int_equal(spool_drop_write(dir, &env, "x", 1, name, sizeof(name)), 0);
	buf = slurp(name, &len);
	assert_int_equal(spool_drop_parse(buf, len, &got, &m, &mlen, &why), -EBADMSG);
	assert_string_equal(why, "bad recipient address");
	free(buf);
	queue_env_free(&env);
}

static void test_links_refused(void **state)
{
	char target[128], sym[128], hard[128];
	struct stat st;
	int fd;

	snprintf(target, sizeof(target), "%s/secret", dir);
	fd = open(target, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(sym, sizeof(sym), "%s/%s/sym", dir, SPOOL_DROP_DIR);
	assert_int_equal(symlink(target, sym), 0);
	assert_int_equal(spool_drop_open(dir, "sym", &st), -ELOOP);
	snprintf(hard, sizeof(hard), "%s/%s/hard", dir, SPOOL_DROP_DIR);
	assert_int_equal(link(target, hard), 0);
	assert_int_equal(spool_drop_open(dir, "hard", &st), -EINVAL);
	assert_int_equal(spool_drop_open(dir, "absent", &st), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_bad_addresses),
	    cmocka_unit_test(test_links_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
