/*
 * test_ctl.c - spool, scheduler and bounces together, as the daemon's
 * control thread drives them.
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

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_ctl.h"

#define T0 (1700000000ULL * DMTA_NS_PER_S)

static uint64_t put(struct spool *sp, const char *sender, const char *rcpt)
{
	struct spool_txn *t;
	struct queue_env e = {0};
	const char *msg = "Subject: t\r\n\r\nbody\r\n";
	uint64_t qid;

	assert_int_equal(queue_env_set_sender(&e, sender), 0);
	assert_int_equal(queue_env_add_rcpt(&e, rcpt, NULL, 0), 0);
	e.arrival_ns = T0;
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_put(t, &e, msg, strlen(msg)), 0);
	assert_int_equal(spool_commit(t), 0);
	qid = e.qid;
	queue_env_free(&e);
	return qid;
}

static void answer_all(struct queue_ctl *qc, uint64_t now)
{
	struct queue_job jobs[16];
	int n;

	queue_ctl_tick(qc, now);
	while ((n = queue_ctl_jobs(qc, now, jobs, 16)) > 0)
		for (int i = 0; i < n; i++) {
			int code[QUEUE_JOB_MAX_RCPT];
			const char *text[QUEUE_JOB_MAX_RCPT];
			struct queue_result res = {.connected = true, .code = code, .text = text};

			for (uint32_t k = 0; k < jobs[i].nrcpt; k++) {
				if (strcmp(jobs[i].domain, "bad.example") == 0) {
					code[k] = 550;
					text[k] = "550 5.1.1 no such user";
				} else if (strcmp(jobs[i].domain, "slow.example") == 0) {
					code[k] = 451;
					text[k] = "451 4.3.0 try later";
				} else {
					code[k] = 250;
					text[k] = "250 2.0.0 ok";
				}
			}
			assert_int_equal(queue_ctl_result(qc, &jobs[i], &res, now), 0);
		}
	assert_int_equal(queue_ctl_commit(qc, now), 0);
}

static void test_ctl_flow(void **state)
{
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX", err[256], cmd[128];
	struct dmta_conf *conf = dmta_conf_new();
	struct queue_ctl *qc;
	struct spool *sp;
	struct spool_txn *t;
	struct queue_env e;
	uint64_t a, b, c, d, dsn = 0;
	uint64_t ids[16];
	int n;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(dmta_conf_set(conf, "spool", "path", dir), 0);
	assert_int_equal(dmta_conf_set(conf, "queue", "myhostname", "mx.test"), 0);
	qc = queue_ctl_open(conf, T0, err, sizeof(err));
	if (qc == NULL)
		fail_msg("queue_ctl_open: %s", err);
	sp = queue_ctl_spool(qc);
	a = put(sp, "s@x.example", "u@ok.example");
	b = put(sp, "s@x.example", "u@bad.example");
	c = put(sp, "s@x.example", "u@slow.example");
	/* an injector's wake-up brings them in */
	assert_int_equal(spool_wake(dir, "wake"), 0);
	assert_int_equal(queue_ctl_on_wake(qc, T0), 1);
	assert_non_null(queue_sched_env(queue_ctl_sched(qc), c));

	answer_all(qc, T0);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	/* delivered and bounced messages are gone from the spool */
	assert_int_equal(spool_env_get(t, a, &e), -ENOENT);
	assert_int_equal(spool_env_get(t, b, &e), -ENOENT);
	/* the deferred one is stored with its reply and next attempt */
	assert_int_equal(spool_env_get(t, c, &e), 0);
	assert_int_equal(e.rcpt[0].state, QUEUE_RCPT_DEFERRED);
	assert_string_equal(e.rcpt[0].reply, "451 4.3.0 try later");
	assert_int_equal(e.attempts, 1);
	assert_true(e.next_attempt_ns >= T0 + 4 * 60 * DMTA_NS_PER_S);
	queue_env_release(&e);
	/* the DSN for b is a new spooled message, from <> to the sender */
	n = spool_due(t, UINT64_MAX, ids, 16);
	for (int i = 0; i < n; i++)
		if (ids[i] != c)
			dsn = ids[i];
	assert_true(dsn > c);
	assert_int_equal(spool_env_get(t, dsn, &e), 0);
	assert_string_equal(e.sender, "");
	assert_string_equal(e.rcpt[0].addr, "s@x.example");
	assert_true(e.flags & QUEUE_F_DSN);
	queue_env_release(&e);
	{
		const void *p;
		size_t len;
		char *text;

		assert_int_equal(spool_msg_get(t, dsn, &p, &len), 0);
		text = strndup(p, len);
		assert_non_null(strstr(text, "Final-Recipient: rfc822; u@bad.example"));
		assert_non_null(strstr(text, "Status: 5.1.1"));
		free(text);
	}
	spool_abort(t);
	/* ... and is scheduled itself */
	assert_non_null(queue_sched_env(queue_ctl_sched(qc), dsn));

	/* dmta-queue holds c and deletes the DSN behind the scheduler's back */
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_env_get(t, c, &e), 0);
	{
		struct queue_env cp;

		assert_int_equal(queue_env_dup(&cp, &e), 0);
		queue_env_release(&e);
		cp.flags |= QUEUE_F_HOLD;
		assert_int_equal(spool_env_store(t, &cp), 0);
		queue_env_free(&cp);
	}
	assert_int_equal(spool_delete(t, dsn), 0);
	assert_int_equal(spool_commit(t), 0);
	assert_int_equal(spool_wake(dir, "sync"), 0);
	assert_int_equal(queue_ctl_on_wake(qc, T0), 1);
	assert_null(queue_sched_env(queue_ctl_sched(qc), dsn));
	assert_true(queue_sched_env(queue_ctl_sched(qc), c)->flags & QUEUE_F_HOLD);

	/* a new message after a flush request is delivered at once */
	d = put(sp, "s@x.example", "v@ok.example");
	assert_int_equal(spool_wake(dir, "flush"), 0);
	assert_int_equal(queue_ctl_on_wake(qc, T0 + 1), 1);
	answer_all(qc, T0 + 1);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	assert_int_equal(spool_env_get(t, d, &e), -ENOENT);
	assert_int_equal(spool_env_get(t, c, &e), 0); /* held: untouched */
	assert_int_equal(e.attempts, 1);
	queue_env_release(&e);
	spool_abort(t);
	queue_ctl_close(qc);

	/* a restart loads what is left */
	qc = queue_ctl_open(conf, T0 + 2, err, sizeof(err));
	assert_non_null(qc);
	assert_non_null(queue_sched_env(queue_ctl_sched(qc), c));
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ctl_flow),
	};

	dmta_log_init("test_ctl", DMTA_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
