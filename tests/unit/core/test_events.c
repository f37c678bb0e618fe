/*
 * test_events.c - the events file without a webhook (its URL refuses):
 * the Message-ID found in the header only, events kept across a close and
 * an open (counted as backlog, receptions not recorded twice), a torn last
 * line cut at open, and max_backlog dropping and counting what would not fit.
 */
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

#include "core/control/dmta_events.h"

static char spool[] = "/tmp/dmta-test-events-XXXXXX";

static void test_message_id(void **state)
{
	static const char m1[] = "Subject: x\r\nmessage-id:  <a.1@x.test> \r\n\r\nbody\r\n";
	static const char m2[] = "Subject: x\r\n\r\nMessage-ID: <in.body@x.test>\r\n";
	char buf[64];

	assert_string_equal(dmta_events_message_id(m1, sizeof(m1) - 1, buf, sizeof(buf)),
			    "<a.1@x.test>");
	assert_null(dmta_events_message_id(m2, sizeof(m2) - 1, buf, sizeof(buf)));
}

static struct queue_env *env_of(uint64_t qid)
{
	struct queue_env *env = calloc(1, sizeof(*env));

	assert_non_null(env);
	env->qid = qid;
	assert_int_equal(queue_env_set_sender(env, "s@x.test"), 0);
	assert_int_equal(queue_env_add_rcpt(env, "r@y.test", NULL, 0), 0);
	return env;
}

static uint64_t count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	uint64_t n = 0;
	int c;

	assert_non_null(f);
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void test_durable(void **state)
{
	struct dmta_events_conf ec = {.url = "http://127.0.0.1:1/x",
				      .batch = 10,
				      .retry_min_ms = 60000,
				      .retry_max_ms = 60000,
				      .timeout_ms = 1000};
	struct dmta_dlog_rec rec = {.qid = 7,
				    .from = "s@x.test",
				    .to = "r@y.test",
				    .status = "5.1.1",
				    .attempt = 1,
				    .outcome = "bounced"};
	struct dmta_metrics_extra x = {0};
	struct queue_env *env = env_of(7);
	char err[256], seg[4096];
	struct dmta_events *ev = dmta_events_open(&ec, spool, err, sizeof(err));
	int fd;

	assert_non_null(ev);
	dmta_events_reception(ev, env, NULL, 0);
	dmta_events_attempt(ev, &rec, NULL, 0, 0.25);
	assert_int_equal(dmta_events_sync(ev), 0);
	dmta_events_counters(ev, &x);
	if (x.events_queued != 2 || x.events_backlog != 2)
		fail_msg("queued %llu backlog %llu, want 2 and 2",
			 (unsigned long long)x.events_queued, (unsigned long long)x.events_backlog);
	dmta_events_close(ev);

	/* A torn line, as a crash in a write leaves it. */
	snprintf(seg, sizeof(seg), "%s/events/0000000000000000.jsonl", spool);
	fd = open(seg, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"id\":\"torn", 11), 11);
	close(fd);

	ev = dmta_events_open(&ec, spool, err, sizeof(err));
	assert_non_null(ev);
	assert_int_equal(count_lines(seg), 2);
	memset(&x, 0, sizeof(x));
	dmta_events_counters(ev, &x);
	if (x.events_backlog != 2 || x.events_queued != 0)
		fail_msg("after reopening: backlog %llu queued %llu, want 2 and 0",
			 (unsigned long long)x.events_backlog, (unsigned long long)x.events_queued);
	/* Loaded again at a restart: no second reception. */
	dmta_events_reception(ev, env, NULL, 0);
	assert_int_equal(dmta_events_sync(ev), 0);
	assert_int_equal(count_lines(seg), 2);
	dmta_events_close(ev);

	/* A bound: what does not fit is dropped and counted. */
	ec.max_backlog = 1;
	ev = dmta_events_open(&ec, spool, err, sizeof(err));
	assert_non_null(ev);
	dmta_events_attempt(ev, &rec, NULL, 0, 0.25);
	assert_int_equal(dmta_events_sync(ev), 0);
	memset(&x, 0, sizeof(x));
	dmta_events_counters(ev, &x);
	if (x.events_dropped != 1 || x.events_queued != 0)
		fail_msg("dropped %llu queued %llu, want 1 and 0",
			 (unsigned long long)x.events_dropped, (unsigned long long)x.events_queued);
	dmta_events_close(ev);
	queue_env_free(env);
	free(env);
}

static int setup(void **state)
{
	return mkdtemp(spool) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", spool);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_id),
	    cmocka_unit_test(test_durable),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
