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
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_ctl.h"
#include "tests/unit/queue/spool_v1.h"

#define T0 (1700000000ULL * DMTA_NS_PER_S)

static uint64_t put_at(struct spool *sp, const char *sender, const char *rcpt, uint64_t arrival)
{
	struct spool_txn *t;
	struct queue_env e = {0};
	const char *msg = "Subject: t\r\n\r\nbody\r\n";
	uint64_t qid;

	assert_int_equal(queue_env_set_sender(&e, sender), 0);
	assert_int_equal(queue_env_add_rcpt(&e, rcpt, NULL, 0), 0);
	e.arrival_ns = arrival;
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_put(t, &e, msg, strlen(msg)), 0);
	assert_int_equal(spool_commit(t), 0);
	qid = e.qid;
	queue_env_free(&e);
	return qid;
}

static uint64_t put(struct spool *sp, const char *sender, const char *rcpt)
{
	return put_at(sp, sender, rcpt, T0);
}

static struct queue_ctl *open_ctl(const struct dmta_conf *conf, uint64_t now)
{
	char err[256];
	struct queue_ctl *qc = queue_ctl_open(conf, 0, NULL, now, err, sizeof(err));

	if (qc == NULL)
		fail_msg("queue_ctl_open: %s", err);
	if (queue_ctl_start(qc, now, err, sizeof(err)) != 0)
		fail_msg("queue_ctl_start: %s", err);
	return qc;
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
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX", cmd[128];
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
	qc = open_ctl(conf, T0);
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
	/* ... and is scheduled itself, from the next turn on */
	assert_true(queue_ctl_pending(qc));
	queue_ctl_tick(qc, T0);
	assert_false(queue_ctl_pending(qc));
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
	qc = open_ctl(conf, T0 + 2);
	assert_non_null(queue_sched_env(queue_ctl_sched(qc), c));
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* The DSNs in the spool addressed to @p to; their texts in @p texts (freed by the caller). */
static int dsns_to(struct spool *sp, const char *to, char **texts, int max)
{
	struct spool_txn *t;
	uint64_t ids[64];
	int n, k = 0;

	assert_int_equal(spool_begin(sp, false, &t), 0);
	n = spool_due(t, UINT64_MAX, ids, 64);
	for (int i = 0; i < n; i++) {
		struct queue_env e;
		const void *p;
		size_t len;

		assert_int_equal(spool_env_get(t, ids[i], &e), 0);
		if ((e.flags & QUEUE_F_DSN) && strcmp(e.rcpt[0].addr, to) == 0 && k < max) {
			assert_int_equal(spool_msg_get(t, ids[i], &p, &len), 0);
			texts[k++] = strndup(p, len);
		}
		queue_env_release(&e);
	}
	spool_abort(t);
	return k;
}

static struct dmta_conf *conf_in(char *dir)
{
	struct dmta_conf *conf = dmta_conf_new();

	assert_non_null(mkdtemp(dir));
	assert_int_equal(dmta_conf_set(conf, "spool", "path", dir), 0);
	assert_int_equal(dmta_conf_set(conf, "queue", "myhostname", "mx.test"), 0);
	return conf;
}

static void rm_rf(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Fill the spool's map with held messages; their queue ids in @p ids. Count. */
static int fill_map(struct spool *sp, uint64_t *ids, int max)
{
	static char big[64 * 1024];
	size_t size = sizeof(big);
	int k = 0;

	memset(big, 'f', sizeof(big));
	for (int i = 0; i < 1000; i++) {
		struct spool_txn *t;
		struct queue_env e = {0};
		uint64_t qid;
		int rc;

		assert_int_equal(queue_env_set_sender(&e, "fill@x.example"), 0);
		assert_int_equal(queue_env_add_rcpt(&e, "fill@held.example", NULL, 0), 0);
		e.flags |= QUEUE_F_HOLD;
		e.arrival_ns = T0;
		assert_int_equal(spool_begin(sp, true, &t), 0);
		rc = spool_put(t, &e, big, size);
		if (rc == 0)
			rc = spool_commit(t);
		else
			spool_abort(t);
		qid = e.qid;
		queue_env_free(&e);
		/* Smaller and smaller, until not even a few bytes fit. */
		if (rc == -ENOSPC && size > 16) {
			size /= 2;
			continue;
		}
		if (rc == -ENOSPC)
			return k;
		assert_int_equal(rc, 0);
		assert_true(k < max);
		ids[k++] = qid;
	}
	fail_msg("the spool's map never filled");
	return 0;
}

/*
 * A commit that fails (map full) drops nothing: the bounce and its DSN are
 * written once there is room, no delivery starts while they wait, and the
 * delivered message leaves the spool instead of going again after a
 * restart.
 */
/* A result for a job: 250, or 550 at bad.example. */
static void answer(struct queue_ctl *qc, struct queue_job *job, uint64_t now)
{
	int code = strcmp(job->domain, "bad.example") == 0 ? 550 : 250;
	const char *text = code == 550 ? "550 5.1.1 no such user" : "250 2.0.0 ok";
	struct queue_result res = {.connected = true, .code = &code, .text = &text};

	assert_int_equal(queue_ctl_result(qc, job, &res, now), 0);
}

/*
 * A spool left by format 1 (indexes by time and by domain) is opened by the
 * control thread, converted, and its mail delivered, bounced and deferred
 * as from a spool of today's format; nothing is left over afterwards.
 */
static void test_ctl_v1_spool(void **state)
{
	static const char *const msgs[3] = {"Subject: a\r\n\r\na\r\n", "Subject: b\r\n\r\nb\r\n",
					    "Subject: c\r\n\r\nc\r\n"};
	static const char *const rcpts[3] = {"u@ok.example", "u@bad.example", "u@slow.example"};
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX";
	struct dmta_conf *conf = conf_in(dir);
	struct spool_check_report rep;
	struct queue_env envs[3], e;
	struct queue_ctl *qc;
	struct spool_txn *t;
	struct spool *sp;
	uint64_t ids[8];
	int n;

	(void)state;
	for (int i = 0; i < 3; i++) {
		memset(&envs[i], 0, sizeof(envs[i]));
		assert_int_equal(queue_env_set_sender(&envs[i], "s@x.example"), 0);
		assert_int_equal(queue_env_add_rcpt(&envs[i], rcpts[i], NULL, 0), 0);
		envs[i].arrival_ns = T0;
	}
	spool_v1_write(dir, envs, msgs, 3);
	for (int i = 0; i < 3; i++)
		queue_env_free(&envs[i]);
	qc = open_ctl(conf, T0);
	sp = queue_ctl_spool(qc);
	for (uint64_t q = 1; q <= 3; q++)
		assert_non_null(queue_sched_env(queue_ctl_sched(qc), q));

	answer_all(qc, T0);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	assert_int_equal(spool_env_get(t, 1, &e), -ENOENT);
	assert_int_equal(spool_env_get(t, 2, &e), -ENOENT);
	assert_int_equal(spool_env_get(t, 3, &e), 0);
	assert_int_equal(e.rcpt[0].state, QUEUE_RCPT_DEFERRED);
	assert_string_equal(e.rcpt[0].reply, "451 4.3.0 try later");
	queue_env_release(&e);
	/* the deferred one and the failure DSN for the second, queue id 4 */
	n = spool_due(t, UINT64_MAX, ids, 8);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0] + ids[1], 3 + 4);
	assert_int_equal(spool_env_get(t, 4, &e), 0);
	assert_true(e.flags & QUEUE_F_DSN);
	queue_env_release(&e);
	spool_abort(t);
	assert_int_equal(spool_check(sp, false, &rep), 0);
	assert_int_equal(rep.messages, 2);
	assert_int_equal(rep.bad_env + rep.orphan_msg + rep.missing_msg + rep.size_mismatch, 0);
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	rm_rf(dir);
}

static void test_commit_failure_kept(void **state)
{
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX";
	struct dmta_conf *conf = conf_in(dir);
	struct queue_ctl *qc;
	struct spool *sp;
	struct spool_txn *t;
	struct queue_env e;
	struct queue_job jobs[8];
	uint64_t bad, ok, later, now = T0;
	char *texts[4];
	int n, rc, nfill;
	uint64_t ids[64];

	(void)state;
	assert_int_equal(dmta_conf_set(conf, "spool", "map_size", "1m"), 0);
	qc = open_ctl(conf, now);
	sp = queue_ctl_spool(qc);
	bad = put(sp, "s@x.example", "u@bad.example");
	ok = put(sp, "s@x.example", "u@ok.example");
	assert_int_equal(queue_ctl_load_new(qc, now), 2);
	queue_ctl_tick(qc, now);
	n = queue_ctl_jobs(qc, now, jobs, 8);
	assert_int_equal(n, 2);
	/* Another message comes in, then the map fills up. */
	later = put(sp, "s@x.example", "w@ok.example");
	nfill = fill_map(sp, ids, 64);
	for (int i = 0; i < n; i++)
		answer(qc, &jobs[i], now);
	rc = queue_ctl_commit(qc, now);
	if (rc != -ENOSPC)
		fail_msg("commit with the map full: got %d, want %d", rc, -ENOSPC);
	/* Nothing new goes out while outcomes cannot be written. */
	assert_true(queue_ctl_load_new(qc, now) >= 1);
	queue_ctl_tick(qc, now);
	n = queue_ctl_jobs(qc, now, jobs, 8);
	if (n != 0)
		fail_msg("got %d jobs while the spool cannot be written, want 0", n);
	if (queue_ctl_next_due(qc) > now + 10 * DMTA_NS_PER_S)
		fail_msg("next due in %llu ms, want the commit's retry within 10 s",
			 (unsigned long long)((queue_ctl_next_due(qc) - now) / DMTA_NS_PER_MS));

	/* Room again (an administrator removed the held filler). */
	assert_int_equal(spool_begin(sp, true, &t), 0);
	for (int i = 0; i < nfill; i++)
		assert_int_equal(spool_delete(t, ids[i]), 0);
	assert_int_equal(spool_commit(t), 0);
	now += 60 * DMTA_NS_PER_S;
	rc = queue_ctl_commit(qc, now);
	if (rc != 0)
		fail_msg("commit once there is room: got %d, want 0", rc);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	if (spool_env_get(t, ok, &e) != -ENOENT)
		fail_msg("the delivered message is still spooled, want it removed");
	if (spool_env_get(t, bad, &e) != -ENOENT)
		fail_msg("the bounced message is still spooled, want it removed");
	spool_abort(t);
	n = dsns_to(sp, "s@x.example", texts, 4);
	if (n != 1)
		fail_msg("got %d DSNs to the sender, want 1", n);
	assert_non_null(strstr(texts[0], "Final-Recipient: rfc822; u@bad.example"));
	free(texts[0]);
	/* ... and deliveries go on. */
	queue_ctl_tick(qc, now);
	n = queue_ctl_jobs(qc, now, jobs, 8);
	if (n != 1 || jobs[0].qid != later)
		fail_msg("got %d jobs after the spool recovered, want the waiting message's", n);
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	rm_rf(dir);
}

/* One "delayed" DSN, once, after delay_warning; the message is still delivered. */
static void test_delay_warning(void **state)
{
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX", *texts[4];
	struct dmta_conf *conf = conf_in(dir);
	struct queue_ctl *qc;
	struct queue_ctl_stats st;
	struct spool_txn *t;
	struct queue_env e;
	/* DSNs arrive at the wall clock's time: the test's clock starts there. */
	uint64_t now = dmta_wall_ns(), h = 3600 * DMTA_NS_PER_S, c;
	int n;

	assert_int_equal(dmta_conf_set(conf, "queue", "delay_warning", "1h"), 0);
	qc = open_ctl(conf, now);
	c = put_at(queue_ctl_spool(qc), "s@x.example", "u@slow.example", now);
	assert_int_equal(queue_ctl_load_new(qc, now), 1);

	answer_all(qc, now); /* deferred, 0 h: no warning yet */
	assert_int_equal(dsns_to(queue_ctl_spool(qc), "s@x.example", texts, 4), 0);
	answer_all(qc, now + 2 * h); /* deferred, past 1 h: a warning */
	n = dsns_to(queue_ctl_spool(qc), "s@x.example", texts, 4);
	assert_int_equal(n, 1);
	assert_non_null(strstr(texts[0], "Action: delayed\r\n"));
	assert_non_null(strstr(texts[0], "Status: 4.3.0\r\n"));
	assert_non_null(strstr(texts[0], "Will-Retry-Until: "));
	assert_non_null(strstr(texts[0], "Subject: Your message has not been delivered yet\r\n"));
	assert_non_null(strstr(texts[0], "The receiving server said: 451 4.3.0 try later\r\n"));
	assert_non_null(strstr(texts[0], "Content-Type: text/rfc822-headers"));
	free(texts[0]);
	queue_ctl_tick(qc, now + 2 * h); /* the DSN joins the schedule */
	answer_all(qc, now + 4 * h);	 /* it is delivered (to x.example) */
	answer_all(qc, now + 8 * h);	 /* deferred again: no second one */
	assert_int_equal(dsns_to(queue_ctl_spool(qc), "s@x.example", texts, 4), 0);
	queue_ctl_get_stats(qc, &st);
	assert_int_equal(st.delays, 1);
	assert_int_equal(st.dsns, 0);
	/* The flag that says so survives a restart. */
	assert_int_equal(spool_begin(queue_ctl_spool(qc), false, &t), 0);
	assert_int_equal(spool_env_get(t, c, &e), 0);
	assert_true(e.flags & QUEUE_F_WARNED);
	queue_env_release(&e);
	spool_abort(t);
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	rm_rf(dir);
}

static void test_delay_warning_off(void **state)
{
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX", *texts[4];
	struct dmta_conf *conf = conf_in(dir);
	struct queue_ctl *qc;

	assert_int_equal(dmta_conf_set(conf, "queue", "delay_warning", "0"), 0);
	qc = open_ctl(conf, T0);
	put(queue_ctl_spool(qc), "s@x.example", "u@slow.example");
	assert_int_equal(queue_ctl_load_new(qc, T0), 1);
	answer_all(qc, T0);
	answer_all(qc, T0 + 30 * 3600 * DMTA_NS_PER_S);
	assert_int_equal(dsns_to(queue_ctl_spool(qc), "s@x.example", texts, 4), 0);
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	rm_rf(dir);
}

/* dmta's own words by default; an operator's template replaces only them. */
static void test_bounce_text(void **state)
{
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX", *texts[4], path[128], err[256];
	struct dmta_conf *conf = conf_in(dir);
	struct queue_ctl *qc;
	FILE *f;

	qc = open_ctl(conf, T0);
	put(queue_ctl_spool(qc), "s@x.example", "u@bad.example");
	assert_int_equal(queue_ctl_load_new(qc, T0), 1);
	answer_all(qc, T0);
	assert_int_equal(dsns_to(queue_ctl_spool(qc), "s@x.example", texts, 4), 1);
	assert_non_null(strstr(texts[0], "Subject: Your message could not be delivered\r\n"));
	assert_non_null(strstr(texts[0], "  <u@bad.example>\r\n"
					 "    The receiving mail server refused the message.\r\n"
					 "    The receiving server said: 550 5.1.1 no such user\r\n"
					 "    Reason class: bad-mailbox\r\n"
					 "\r\n"));
	assert_non_null(strstr(texts[0], "The mail server mx.test has stopped trying"));
	assert_non_null(strstr(texts[0], "Action: failed\r\nStatus: 5.1.1\r\n"
					 "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
	/* The class is for people: the RFC 3464 part has no field for it. */
	assert_null(strstr(strstr(texts[0], "Reason class: ") + 1, "Reason class"));
	assert_null(strstr(texts[0], "\r\nReason-Class"));
	assert_non_null(strstr(texts[0], "Reporting-MTA: dns; mx.test\r\n"));
	free(texts[0]);
	queue_ctl_close(qc);
	rm_rf(dir);

	/* The operator's template. */
	strcpy(dir, "/tmp/dmta-test-ctl-XXXXXX");
	dmta_conf_free(conf);
	conf = conf_in(dir);
	snprintf(path, sizeof(path), "%s.tmpl", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("Subject: Non remis\n\nBonjour ${sender},\n${recipients}-- ${hostname} ${queue_id}\n",
	      f);
	fclose(f);
	assert_int_equal(dmta_conf_set(conf, "queue", "bounce_template", path), 0);
	qc = open_ctl(conf, T0);
	put(queue_ctl_spool(qc), "s@x.example", "u@bad.example");
	assert_int_equal(queue_ctl_load_new(qc, T0), 1);
	answer_all(qc, T0);
	assert_int_equal(dsns_to(queue_ctl_spool(qc), "s@x.example", texts, 4), 1);
	assert_non_null(strstr(texts[0], "\r\nSubject: Non remis\r\n"));
	assert_non_null(strstr(texts[0], "\r\n\r\nBonjour s@x.example,\r\n  <u@bad.example>\r\n"));
	assert_non_null(strstr(texts[0], "-- mx.test "));
	/* The RFC 3464 part does not change. */
	assert_non_null(strstr(texts[0], "Action: failed\r\nStatus: 5.1.1\r\n"));
	assert_null(strstr(texts[0], "could not be delivered"));
	free(texts[0]);
	queue_ctl_close(qc);

	/* A template that names an unknown variable is refused at start. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("Subject: x\n\nHello ${recipient}\n", f);
	fclose(f);
	qc = queue_ctl_open(conf, 0, NULL, T0, err, sizeof(err));
	assert_null(qc);
	if (strstr(err, "line 3: unknown variable \"${recipient}\"") == NULL)
		fail_msg("got \"%s\", want the line and the variable named", err);
	unlink(path);
	dmta_conf_free(conf);
	rm_rf(dir);
}

static bool spooled(struct spool *sp, uint64_t qid)
{
	struct spool_txn *t;
	const void *p;
	size_t len;
	int rc;

	assert_int_equal(spool_begin(sp, false, &t), 0);
	rc = spool_msg_get(t, qid, &p, &len);
	spool_abort(t);
	return rc == 0;
}

/*
 * The committer thread: the loop hands a batch over and goes on; results
 * that come meanwhile wait for the next batch without making the loop
 * spin; the committer's "committed" on the wake socket brings the batch
 * back (counters, the DSN to load); a synchronous commit writes the rest.
 */
static void test_commit_async(void **state)
{
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX";
	struct dmta_conf *conf = conf_in(dir);
	struct queue_job jobs[8], *later = NULL;
	struct queue_ctl_stats st;
	struct queue_ctl *qc;
	struct spool *sp;
	uint64_t a, b, c, now = T0;
	struct pollfd pfd;
	int n;

	(void)state;
	qc = open_ctl(conf, now);
	sp = queue_ctl_spool(qc);
	a = put(sp, "s@x.example", "u@ok.example");
	b = put(sp, "s@x.example", "u@bad.example");
	c = put(sp, "s@x.example", "u@other.example");
	assert_int_equal(queue_ctl_load_new(qc, now), 3);
	queue_ctl_tick(qc, now);
	n = queue_ctl_jobs(qc, now, jobs, 8);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++) {
		if (jobs[i].qid == c)
			later = &jobs[i];
		else
			answer(qc, &jobs[i], now);
	}
	assert_non_null(later);
	assert_true(queue_ctl_pending(qc));
	assert_int_equal(queue_ctl_commit_async(qc, now), 0);
	/* Out: no spinning for it, and what comes meanwhile waits for it. */
	if (queue_ctl_pending(qc))
		fail_msg("pending while the only changes are being committed, want not");
	answer(qc, later, now);
	assert_false(queue_ctl_pending(qc));
	assert_int_equal(queue_ctl_commit_async(qc, now), 0);

	/* "committed" comes on the wake socket (within 10 s). */
	pfd = (struct pollfd){.fd = queue_ctl_wake_fd(qc), .events = POLLIN};
	if (poll(&pfd, 1, 10000) != 1)
		fail_msg("no wake-up from the committer within 10 s");
	assert_true(queue_ctl_on_wake(qc, now) >= 1);
	queue_ctl_get_stats(qc, &st);
	if (st.commits < 1 || st.dsns != 1)
		fail_msg("got %llu commits and %llu DSNs taken in, want at least 1 and 1",
			 (unsigned long long)st.commits, (unsigned long long)st.dsns);
	assert_false(spooled(sp, a));
	assert_false(spooled(sp, b));
	/* The DSN is new mail to load. */
	assert_true(queue_ctl_pending(qc));
	/* What came after the handover is written by the next commit. */
	assert_int_equal(queue_ctl_commit(qc, now), 0);
	assert_false(spooled(sp, c));
	queue_ctl_tick(qc, now);
	queue_ctl_get_stats(qc, &st);
	if (st.loaded != 4)
		fail_msg("got %llu messages loaded, want 4 (3 and the DSN)",
			 (unsigned long long)st.loaded);
	assert_false(queue_ctl_pending(qc));
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	rm_rf(dir);
}

/* Wait for the committer's "committed" and take the batch back. */
static void await_commit(struct queue_ctl *qc, uint64_t now)
{
	struct pollfd pfd = {.fd = queue_ctl_wake_fd(qc), .events = POLLIN};

	if (poll(&pfd, 1, 10000) != 1)
		fail_msg("no wake-up from the committer within 10 s");
	assert_true(queue_ctl_on_wake(qc, now) >= 1);
}

/*
 * Group commit: a result that comes soon after a batch was handed over
 * waits (the loop does not spin for it, next_due says when) and goes
 * with the next batch once 5 ms have passed since that handover.
 */
static void test_commit_gap(void **state)
{
	char dir[] = "/tmp/dmta-test-ctl-XXXXXX";
	struct dmta_conf *conf = conf_in(dir);
	struct queue_job jobs[8];
	struct queue_ctl_stats st;
	struct queue_ctl *qc;
	struct spool *sp;
	uint64_t a, b, t0, now = T0;
	int n, checked = 0;

	(void)state;
	qc = open_ctl(conf, now);
	sp = queue_ctl_spool(qc);
	/* A few tries: the check needs the first commit back within 4 ms. */
	for (int round = 0; round < 20 && !checked; round++) {
		a = put(sp, "s@x.example", "u@ok.example");
		b = put(sp, "s@x.example", "v@other.example");
		assert_int_equal(queue_ctl_load_new(qc, now), 2);
		queue_ctl_tick(qc, now);
		n = queue_ctl_jobs(qc, now, jobs, 8);
		assert_int_equal(n, 2);
		/* Long after any earlier handover: a's result goes at once. */
		usleep(6000);
		answer(qc, &jobs[0], now);
		assert_true(queue_ctl_pending(qc));
		t0 = dmta_now_ns();
		assert_int_equal(queue_ctl_commit_async(qc, now), 0);
		await_commit(qc, now);
		answer(qc, &jobs[1], now);
		assert_int_equal(queue_ctl_commit_async(qc, now), 0);
		if (dmta_now_ns() - t0 < 4 * DMTA_NS_PER_MS) {
			uint64_t due = queue_ctl_next_due(qc), wall = dmta_wall_ns();
			struct pollfd pfd = {.fd = queue_ctl_wake_fd(qc), .events = POLLIN};

			if (queue_ctl_pending(qc))
				fail_msg("pending within 5 ms of the last handover, want held");
			if (due > wall + 6 * DMTA_NS_PER_MS)
				fail_msg("next due in %lld ms, want the held commit within 5 ms",
					 (long long)(due - wall) / (long long)DMTA_NS_PER_MS);
			/* Held, not handed over: no "committed" comes. */
			if (poll(&pfd, 1, 50) != 0)
				fail_msg("a batch was handed over within 5 ms of the last one");
			assert_true(spooled(sp, b));
			checked = 1;
		}
		/* After the gap it goes. */
		usleep(6000);
		(void)queue_ctl_commit_async(qc, now);
		await_commit(qc, now);
		assert_false(spooled(sp, a));
		assert_false(spooled(sp, b));
	}
	if (!checked)
		fail_msg("no commit came back within 4 ms in 20 tries: the hold was not seen");
	queue_ctl_get_stats(qc, &st);
	assert_true(st.commits >= 2);
	queue_ctl_close(qc);
	dmta_conf_free(conf);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ctl_flow),	  cmocka_unit_test(test_ctl_v1_spool),
	    cmocka_unit_test(test_delay_warning), cmocka_unit_test(test_delay_warning_off),
	    cmocka_unit_test(test_bounce_text),	  cmocka_unit_test(test_commit_failure_kept),
	    cmocka_unit_test(test_commit_async),  cmocka_unit_test(test_commit_gap),
	};

	dmta_log_init("test_ctl", DMTA_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
