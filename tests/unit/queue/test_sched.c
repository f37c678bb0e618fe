/*
 * test_sched.c - the scheduler on a fake clock, and DSN generation.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_bounce.h"
#include "queue/queue_egress.h"
#include "queue/queue_sched.h"
#include "queue/spool.h"

#define MIN_NS (60 * DMTA_NS_PER_S)
#define H_NS   (60 * MIN_NS)
#define D_NS   (24 * H_NS)
#define T0     (1700000000ULL * DMTA_NS_PER_S)

struct dsn_rec {
	uint64_t qid;
	uint64_t when;
	char text[8192]; /* the built DSN */
	char rcpts[512]; /* "addr status|" per reported recipient */
};

struct rec {
	int stores, dones;
	uint64_t done_qid[64];
	int ndsn;
	struct dsn_rec dsn[16];
	int ndelay;
	uint64_t delay_qid[8], delay_when[8];
	uint32_t delay_n[8];
	uint64_t now;
};

static void rec_store(void *ctx, const struct queue_env *env)
{
	((struct rec *)ctx)->stores++;
}

static void rec_dsn(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	struct rec *r = ctx;
	struct dsn_rec *d = &r->dsn[r->ndsn++];
	struct queue_bounce_opts bo = {.hostname = "mx.test", .now_ns = r->now};
	struct queue_buf out = {0};
	struct queue_env benv;
	const char *msg = "Subject: orig\r\n\r\nbody\r\n";
	char st[16];

	assert_true(r->ndsn <= 16);
	d->qid = env->qid;
	d->when = r->now;
	for (uint32_t i = 0; i < n; i++) {
		const struct queue_rcpt *x = &env->rcpt[rcpt[i]];

		assert_int_equal(x->state, QUEUE_RCPT_BOUNCED);
		snprintf(d->rcpts + strlen(d->rcpts), sizeof(d->rcpts) - strlen(d->rcpts), "%s %s|",
			 x->addr, queue_bounce_status(x->reply, st));
	}
	assert_int_equal(queue_bounce_build(env, msg, strlen(msg), rcpt, n, &bo, &out, &benv), 0);
	assert_true(benv.flags & QUEUE_F_DSN);
	assert_string_equal(benv.sender, "");
	assert_string_equal(benv.rcpt[0].addr, env->sender);
	snprintf(d->text, sizeof(d->text), "%s", out.p);
	queue_buf_free(&out);
	queue_env_free(&benv);
}

static void rec_delay(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	struct rec *r = ctx;
	struct queue_bounce_opts bo = {.hostname = "mx.test", .now_ns = r->now, .delayed = true};
	struct queue_buf out = {0};
	struct queue_env benv;
	const char *msg = "Subject: orig\r\n\r\nbody\r\n";

	assert_true(r->ndelay < 8);
	r->delay_qid[r->ndelay] = env->qid;
	r->delay_when[r->ndelay] = r->now;
	r->delay_n[r->ndelay++] = n;
	assert_int_equal(queue_bounce_build(env, msg, strlen(msg), rcpt, n, &bo, &out, &benv), 0);
	assert_non_null(strstr(out.p, "Action: delayed\r\n"));
	assert_null(strstr(out.p, "Action: failed"));
	assert_null(strstr(out.p, "Reason class")); /* only failures are classified */
	assert_null(strstr(out.p, "\r\nbody\r\n")); /* header only */
	queue_buf_free(&out);
	queue_env_free(&benv);
}

static void rec_done(void *ctx, const struct queue_env *env)
{
	struct rec *r = ctx;

	r->done_qid[r->dones++] = env->qid;
}

static struct queue_sched *new_sched(struct queue_sched_conf *c, struct rec *r, uint64_t seed)
{
	struct queue_sched_ops ops = {
	    .store = rec_store, .dsn = rec_dsn, .delay = rec_delay, .done = rec_done, .ctx = r};
	struct queue_sched *s = queue_sched_new(c, &ops, seed);

	assert_non_null(s);
	return s;
}

static void env_make(struct queue_env *e, uint64_t qid, const char *sender, const char **rcpts,
		     int n, uint64_t arrival)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(queue_env_set_sender(e, sender), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(queue_env_add_rcpt(e, rcpts[i], NULL, QUEUE_NOTIFY_DEFAULT), 0);
	e->qid = qid;
	e->arrival_ns = arrival;
	e->next_attempt_ns = arrival;
}

static void add_msg(struct queue_sched *s, uint64_t qid, const char *sender, const char **rcpts,
		    int n, uint64_t arrival)
{
	struct queue_env e;

	env_make(&e, qid, sender, rcpts, n, arrival);
	assert_int_equal(queue_sched_add(s, &e, arrival), 0);
	queue_env_free(&e);
}

/* Answer every job: by domain, as a small Internet would. */
static int answer(struct queue_sched *s, struct queue_job *jobs, int n, uint64_t now)
{
	for (int i = 0; i < n; i++) {
		struct queue_job *j = &jobs[i];
		int codes[QUEUE_JOB_MAX_RCPT];
		const char *texts[QUEUE_JOB_MAX_RCPT];
		struct queue_result res = {.connected = true, .code = codes, .text = texts};

		for (uint32_t k = 0; k < j->nrcpt; k++) {
			if (strcmp(j->domain, "ok.example") == 0) {
				codes[k] = 250;
				texts[k] = "250 2.0.0 ok";
			} else if (strcmp(j->domain, "bad.example") == 0) {
				codes[k] = 550;
				texts[k] = "550 5.1.1 no such user";
			} else {
				codes[k] = 451;
				texts[k] = "451 4.7.1 greylisted, try later";
			}
		}
		if (strcmp(j->domain, "dead.example") == 0) {
			res.connected = false;
			res.reply = "4.4.1 connect to dead.example: Connection refused";
		}
		assert_int_equal(queue_sched_result(s, j, &res, now), 0);
	}
	return n;
}

static void test_backoff_schedule(void **state)
{
	struct queue_sched_conf c;
	static const uint64_t want_min[] = {5, 10, 20, 40, 80, 160, 240, 240, 240};

	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	assert_int_equal(c.lifetime_ms, 5ULL * 86400 * 1000);
	assert_int_equal(c.delay_warning_ms, 4ULL * 3600 * 1000);
	for (uint32_t a = 1; a <= 9; a++)
		assert_int_equal(queue_sched_backoff_ms(&c, a), want_min[a - 1] * 60 * 1000);
	assert_int_equal(queue_sched_backoff_ms(&c, 1000), 240ULL * 60 * 1000);
}

/* Each retry is due within [1 - j, 1 + j] of the schedule, and the jitter spreads. */
static void test_retry_and_jitter(void **state)
{
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[64];
	const char *to[] = {"u@slow.example"};
	double lo = 2, hi = 0;
	uint64_t now = T0;

	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	c.dest.max_connections = 1000;
	c.delay_warning_ms = 0; /* retries only: no delay notices in the count */
	s = new_sched(&c, &r, 42);
	for (uint64_t q = 1; q <= 500; q++)
		add_msg(s, q, "s@x.example", to, 1, T0);
	for (uint32_t attempt = 1; attempt <= 8; attempt++) {
		int n;

		r.now = now;
		assert_int_equal(queue_sched_tick(s, now), 0);
		n = 0;
		for (int k; (k = queue_sched_jobs(s, now, jobs, 64)) > 0;)
			n += answer(s, jobs, k, now);
		assert_int_equal(n, 500);
		for (uint64_t q = 1; q <= 500; q++) {
			const struct queue_env *e = queue_sched_env(s, q);
			double want = (double)queue_sched_backoff_ms(&c, attempt) * DMTA_NS_PER_MS;
			double f = (double)(e->next_attempt_ns - now) / want;

			assert_int_equal(e->attempts, attempt);
			assert_int_equal(e->rcpt[0].attempts, attempt);
			assert_int_equal(e->rcpt[0].state, QUEUE_RCPT_DEFERRED);
			assert_string_equal(e->rcpt[0].reply, "451 4.7.1 greylisted, try later");
			if (f < 0.8 - 1e-9 || f > 1.2 + 1e-9)
				fail_msg("attempt %u: got factor %f, want within [0.8, 1.2]",
					 attempt, f);
			lo = f < lo ? f : lo;
			hi = f > hi ? f : hi;
		}
		/* nothing is due a moment before the earliest retry */
		assert_int_equal(queue_sched_tick(s, now + 1), 0);
		assert_int_equal(queue_sched_jobs(s, now + 1, jobs, 64), 0);
		now =
		    now +
		    (uint64_t)(1.2 * (double)queue_sched_backoff_ms(&c, attempt) * DMTA_NS_PER_MS) +
		    1;
	}
	if (lo > 0.82 || hi < 1.18)
		fail_msg("jitter does not spread: got [%f, %f]", lo, hi);
	queue_sched_free(s);
}

static void test_limits_and_shards(void **state)
{
	struct dmta_conf *conf = dmta_conf_new();
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[64];
	const char *to[7] = {"a@big.example", "b@BIG.example", "c@big.example",	 "d@big.example",
			     "e@big.example", "f@big.example", "g@other.example"};
	unsigned used[4] = {0};
	int n;

	assert_int_equal(dmta_conf_set(conf, "queue", "workers", "4"), 0);
	assert_int_equal(dmta_conf_set(conf, "dest big.example", "max_connections", "2"), 0);
	assert_int_equal(dmta_conf_set(conf, "dest big.example", "max_recipients", "4"), 0);
	assert_int_equal(
	    dmta_conf_set(conf, "dest big.example", "max_messages_per_connection", "7"), 0);
	assert_int_equal(dmta_conf_set(conf, "dest rated.example", "rate", "2"), 0);
	assert_int_equal(queue_sched_conf_load(conf, &c), 0);
	s = new_sched(&c, &r, 1);
	assert_int_equal(queue_sched_limits(s, "big.example").max_connections, 2);
	assert_int_equal(queue_sched_limits(s, "other.example").max_connections, 10);

	/* 7 recipients: 6 at big (items of 4 and 2), 1 at other; big runs 2 jobs at most */
	add_msg(s, 1, "s@x.example", to, 7, T0);
	add_msg(s, 2, "s@x.example", to, 6, T0);
	r.now = T0;
	queue_sched_tick(s, T0);
	n = queue_sched_jobs(s, T0, jobs, 64);
	{
		int big = 0, other = 0;

		for (int i = 0; i < n; i++) {
			assert_int_equal(jobs[i].shard, queue_sched_shard(s, jobs[i].domain));
			if (strcmp(jobs[i].domain, "big.example") == 0) {
				big++;
				assert_true(jobs[i].nrcpt <= 4);
				assert_int_equal(jobs[i].max_messages_per_connection, 7);
			} else {
				other++;
			}
		}
		assert_int_equal(big, 2);
		assert_int_equal(other, 1);
		answer(s, jobs, n, T0);
		/* a slot freed: the next big.example jobs go out */
		n = queue_sched_jobs(s, T0, jobs, 64);
		assert_int_equal(n, 2);
		answer(s, jobs, n, T0);
	}

	/* rate 2/s: a burst of 2, then one per half second */
	for (uint64_t q = 10; q < 20; q++) {
		const char *t1[] = {"u@rated.example"};

		add_msg(s, q, "s@x.example", t1, 1, T0);
	}
	queue_sched_tick(s, T0);
	n = queue_sched_jobs(s, T0, jobs, 64);
	assert_int_equal(n, 2);
	answer(s, jobs, n, T0);
	assert_int_equal(queue_sched_jobs(s, T0 + DMTA_NS_PER_S / 10, jobs, 64), 0);
	n = queue_sched_jobs(s, T0 + DMTA_NS_PER_S / 2, jobs, 64);
	assert_int_equal(n, 1);
	answer(s, jobs, n, T0 + DMTA_NS_PER_S / 2);

	/* shards: case-insensitive, all four used */
	assert_int_equal(queue_sched_shard(s, "Example.ORG"), queue_sched_shard(s, "example.org"));
	for (int i = 0; i < 200; i++) {
		char d[32];

		snprintf(d, sizeof(d), "d%d.example", i);
		used[queue_sched_shard(s, d)]++;
	}
	for (int i = 0; i < 4; i++)
		assert_true(used[i] > 20);
	queue_sched_free(s);
	dmta_conf_free(conf);
}

static void test_suspend_resume(void **state)
{
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[64];
	const char *dead[] = {"u@dead.example"}, *ok[] = {"u@ok.example"};
	uint64_t now = T0;
	int n, tried = 0;

	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	c.suspend_after = 3;
	c.dest.max_connections = 1; /* one job at a time, so failures come one by one */
	s = new_sched(&c, &r, 7);
	for (uint64_t q = 1; q <= 20; q++)
		add_msg(s, q, "s@x.example", dead, 1, T0);
	for (uint64_t q = 100; q < 110; q++)
		add_msg(s, q, "s@x.example", ok, 1, T0);
	r.now = now;
	queue_sched_tick(s, now);
	/* three connection failures suspend dead.example; ok.example keeps going */
	while ((n = queue_sched_jobs(s, now, jobs, 64)) > 0) {
		for (int i = 0; i < n; i++)
			tried += strcmp(jobs[i].domain, "dead.example") == 0;
		answer(s, jobs, n, now);
	}
	assert_int_equal(tried, 3);
	assert_true(queue_sched_suspended(s, "dead.example", now));
	assert_false(queue_sched_suspended(s, "ok.example", now));
	assert_int_equal(r.dones, 10); /* every ok.example message delivered */
	/* the 17 untried messages spent no attempt */
	{
		int untried = 0, once = 0;

		for (uint64_t q = 1; q <= 20; q++) {
			uint32_t at = queue_sched_env(s, q)->rcpt[0].attempts;

			untried += at == 0;
			once += at == 1;
		}
		assert_int_equal(untried, 17);
		assert_int_equal(once, 3);
	}

	/* still suspended after 9 minutes */
	now += 9 * MIN_NS;
	queue_sched_tick(s, now);
	assert_int_equal(queue_sched_jobs(s, now, jobs, 64), 0);
	/* after 10 minutes: exactly one probe; it fails: suspended for 20 minutes */
	now += 2 * MIN_NS;
	queue_sched_tick(s, now);
	c.dest.max_connections = 1;
	n = queue_sched_jobs(s, now, jobs, 64);
	assert_int_equal(n, 1);
	answer(s, jobs, n, now);
	assert_true(queue_sched_suspended(s, "dead.example", now + 19 * MIN_NS));
	assert_false(queue_sched_suspended(s, "dead.example", now + 21 * MIN_NS));
	queue_sched_free(s);

	/* resume: a successful probe opens the destination fully */
	memset(&r, 0, sizeof(r));
	c.dest.max_connections = 5;
	c.suspend_after = 1;
	s = new_sched(&c, &r, 7);
	{
		const char *flaky[] = {"u@flaky.example"};

		for (uint64_t q = 1; q <= 40; q++)
			add_msg(s, q, "s@x.example", flaky, 1, T0);
	}
	now = T0;
	queue_sched_tick(s, now);
	n = queue_sched_jobs(s, now, jobs, 64);
	assert_int_equal(n, 5);
	for (int i = 0; i < n; i++) {
		struct queue_result res = {.connected = false, .reply = "4.4.1 refused"};

		assert_int_equal(queue_sched_result(s, &jobs[i], &res, now), 0);
	}
	assert_true(queue_sched_suspended(s, "flaky.example", now));
	now += 10 * MIN_NS + 1;
	queue_sched_tick(s, now);
	n = queue_sched_jobs(s, now, jobs, 64);
	assert_int_equal(n, 1); /* the probe */
	{
		int code = 250;
		const char *text = "250 ok";
		struct queue_result res = {.connected = true, .code = &code, .text = &text};

		assert_int_equal(queue_sched_result(s, &jobs[0], &res, now), 0);
	}
	n = queue_sched_jobs(s, now, jobs, 64);
	/* resumed, and proven: max_connections again, a job waiting behind each */
	assert_int_equal(n, 5 * QUEUE_JOBS_PER_CONNECTION);
	queue_sched_free(s);
}

/*
 * Local failures (our SMTP engine refused an address, the spool or DNS
 * failed here) say nothing about the destination: however many, it is
 * not suspended, and its other mail keeps going.
 */
static void test_local_failure_not_counted(void **state)
{
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[64];
	const char *big[] = {"u@big.example"};
	uint64_t now = T0;
	int n;

	(void)state;
	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	c.suspend_after = 1;
	s = new_sched(&c, &r, 11);
	for (uint64_t q = 1; q <= 8; q++)
		add_msg(s, q, "s@x.example", big, 1, T0);
	queue_sched_tick(s, now);
	n = queue_sched_jobs(s, now, jobs, 64);
	if (n != 8)
		fail_msg("got %d jobs, want 8", n);
	for (int i = 0; i < n; i++) {
		int code = 553;
		const char *text = "553 5.1.3 recipient address not usable in SMTP";
		struct queue_result res = {.connected = true, .local = true};

		if (i % 2 == 0) {
			res = (struct queue_result){.connected = false,
						    .local = true,
						    .reply = "451 4.3.0 cannot read the message"};
		} else {
			res.code = &code;
			res.text = &text;
		}
		assert_int_equal(queue_sched_result(s, &jobs[i], &res, now), 0);
		if (queue_sched_suspended(s, "big.example", now))
			fail_msg("after %d local failures: big.example suspended, want not", i + 1);
	}
	/* The 553 bounced its recipient; the others wait for their retry. */
	if (r.ndsn != 4)
		fail_msg("got %d DSNs, want 4 (one per refused address)", r.ndsn);
	queue_sched_free(s);
}

/*
 * A message with a great many recipients at a great many domains is
 * queued in one pass: every recipient in exactly one job, jobs of at most
 * max_recipients, one destination each. Going through 50,000 domains
 * took quadratic time (over 10^9 comparisons); it must take well under
 * a second of CPU now, five being the bound here.
 */
static void test_many_recipients(void **state)
{
	enum { NDOM = 50000, NSAME = 2000 };
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_env e = {0};
	struct queue_job *jobs = calloc(4096, sizeof(*jobs));
	uint8_t *seen = calloc(NDOM + NSAME, 1);
	uint64_t now = T0;
	uint32_t total = 0;
	clock_t t0;
	double cpu;
	int n;

	(void)state;
	assert_non_null(jobs);
	assert_non_null(seen);
	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	c.dest.max_connections = 100000;
	s = new_sched(&c, &r, 5);
	assert_int_equal(queue_env_set_sender(&e, "s@x.example"), 0);
	for (unsigned i = 0; i < NDOM + NSAME; i++) {
		char a[64];

		if (i < NDOM)
			snprintf(a, sizeof(a), "u@D%u.example", i);
		else
			snprintf(a, sizeof(a), "u%u@Same.example", i); /* mixed case, one domain */
		assert_int_equal(queue_env_add_rcpt(&e, a, NULL, QUEUE_NOTIFY_DEFAULT), 0);
	}
	e.qid = 1;
	e.arrival_ns = e.next_attempt_ns = now;
	assert_int_equal(queue_sched_add(s, &e, now), 0);
	t0 = clock();
	queue_sched_tick(s, now);
	cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
	if (cpu > 5.0)
		fail_msg("queueing %d recipients took %.1f s of CPU, want well under 5",
			 NDOM + NSAME, cpu);
	while ((n = queue_sched_jobs(s, now, jobs, 4096)) > 0)
		for (int i = 0; i < n; i++) {
			const char *dom = jobs[i].domain;

			if (jobs[i].nrcpt > c.dest.max_recipients)
				fail_msg("job of %u recipients, want at most %u", jobs[i].nrcpt,
					 c.dest.max_recipients);
			for (uint32_t k = 0; k < jobs[i].nrcpt; k++) {
				uint32_t x = jobs[i].rcpt[k];

				if (seen[x]++)
					fail_msg("recipient %u in two jobs", x);
				if (strcasecmp(strchr(e.rcpt[x].addr, '@') + 1, dom) != 0)
					fail_msg("job for %s holds %s", dom, e.rcpt[x].addr);
				total++;
			}
		}
	if (total != NDOM + NSAME)
		fail_msg("got %u recipients in jobs, want %d", total, NDOM + NSAME);
	queue_env_free(&e);
	queue_sched_free(s);
	free(jobs);
	free(seen);
}

static void test_hold_release(void **state)
{
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[8];
	const char *ok[] = {"u@ok.example"};

	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	s = new_sched(&c, &r, 3);
	add_msg(s, 1, "s@x.example", ok, 1, T0);
	assert_int_equal(queue_sched_hold(s, 1), 0);
	queue_sched_tick(s, T0);
	assert_int_equal(queue_sched_jobs(s, T0, jobs, 8), 0);
	/* held past its lifetime: no expiry while held */
	queue_sched_tick(s, T0 + 6 * D_NS);
	assert_int_equal(r.ndsn, 0);
	assert_non_null(queue_sched_env(s, 1));
	assert_int_equal(queue_sched_release(s, 1, T0 + 6 * D_NS), 0);
	assert_int_equal(queue_sched_hold(s, 99), -ENOENT);
	r.now = T0 + 6 * D_NS;
	/* released when overdue: expires at once, one DSN */
	assert_int_equal(queue_sched_tick(s, T0 + 6 * D_NS), 1);
	assert_int_equal(r.ndsn, 1);
	assert_int_equal(r.dones, 1);
	queue_sched_free(s);
}

/*
 * Five days of a small Internet on a fake clock: every message ends
 * delivered or in exactly one DSN per failure event, with the right
 * recipients and status codes.
 */
static void test_expiry_dsn(void **state)
{
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[64];
	struct queue_env e;
	const char *a[] = {"r1@ok.example", "r2@slow.example", "r3@dead.example",
			   "r4@slow.example"};
	const char *b[] = {"b1@bad.example", "b2@slow.example"};
	const char *one[] = {"c1@slow.example"};
	uint64_t now = T0, end = T0 + 5 * D_NS + 2 * H_NS;
	int rounds = 0, na = 0, nb = 0, nb_bad = 0, ne = 0;

	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	s = new_sched(&c, &r, 99);
	/* A: delivered, deferred, dead, deferred with NOTIFY=NEVER */
	env_make(&e, 1, "alice@x.example", a, 4, T0);
	e.rcpt[3].notify = QUEUE_NOTIFY_NEVER;
	assert_int_equal(queue_sched_add(s, &e, T0), 0);
	queue_env_free(&e);
	/* B: a hard failure at once, and a deferral that expires */
	add_msg(s, 2, "bob@x.example", b, 2, T0);
	/* C: a bounce itself (null sender); D: a DSN; E: arrives a day later */
	add_msg(s, 3, "", one, 1, T0);
	env_make(&e, 4, "daemon@x.example", one, 1, T0);
	e.flags |= QUEUE_F_DSN;
	assert_int_equal(queue_sched_add(s, &e, T0), 0);
	queue_env_free(&e);
	add_msg(s, 5, "eve@x.example", one, 1, T0 + D_NS);

	while (now <= end) {
		uint64_t next;

		r.now = now;
		queue_sched_tick(s, now);
		for (int n; (n = queue_sched_jobs(s, now, jobs, 64)) > 0;)
			answer(s, jobs, n, now);
		next = queue_sched_next_due(s);
		if (next == UINT64_MAX)
			break;
		now = next > now ? next : now + 1;
		rounds++;
		assert_true(rounds < 10000);
	}
	/* everything but E ended */
	assert_int_equal(r.dones, 4);
	assert_non_null(queue_sched_env(s, 5));
	for (now = end; now <= T0 + 6 * D_NS + H_NS; now += 10 * MIN_NS) {
		r.now = now;
		queue_sched_tick(s, now);
		for (int n; (n = queue_sched_jobs(s, now, jobs, 64)) > 0;)
			answer(s, jobs, n, now);
	}
	assert_int_equal(r.dones, 5);
	assert_null(queue_sched_env(s, 5));
	for (int i = 0; i < r.ndsn; i++) {
		struct dsn_rec *d = &r.dsn[i];

		if (d->qid == 1) {
			na++;
			/* r1 delivered and r4 NOTIFY=NEVER are not reported */
			assert_string_equal(d->rcpts,
					    "r2@slow.example 4.7.1|r3@dead.example 4.4.1|");
			assert_true(d->when >= T0 + 5 * D_NS);
			assert_true(d->when < T0 + 5 * D_NS + H_NS);
			assert_non_null(strstr(d->text, "Content-Type: multipart/report; "
							"report-type=delivery-status;"));
			assert_non_null(strstr(d->text,
					       "Final-Recipient: rfc822; r2@slow.example\r\n"
					       "Action: failed\r\nStatus: 4.7.1\r\n"));
			assert_non_null(strstr(d->text,
					       "Final-Recipient: rfc822; r3@dead.example\r\n"
					       "Action: failed\r\nStatus: 4.4.1\r\n"));
			assert_non_null(strstr(d->text, "To: <alice@x.example>"));
			assert_null(strstr(d->text, "r1@ok.example"));
			assert_null(strstr(d->text, "Final-Recipient: rfc822; r4@"));
		} else if (d->qid == 2) {
			nb++;
			if (strcmp(d->rcpts, "b1@bad.example 5.1.1|") == 0) {
				nb_bad++;
				assert_true(d->when == T0); /* at once, not at expiry */
				assert_non_null(
				    strstr(d->text, "Diagnostic-Code: smtp; 550 5.1.1"));
			} else {
				assert_string_equal(d->rcpts, "b2@slow.example 4.7.1|");
				assert_true(d->when >= T0 + 5 * D_NS);
			}
		} else if (d->qid == 5) {
			ne++;
			assert_true(d->when >= T0 + 6 * D_NS);
			assert_string_equal(d->rcpts, "c1@slow.example 4.7.1|");
		} else {
			fail_msg("got a DSN for message %llu (null sender or a DSN itself)",
				 (unsigned long long)d->qid);
		}
	}
	assert_int_equal(na, 1);
	assert_int_equal(nb, 2);
	assert_int_equal(nb_bad, 1);
	assert_int_equal(ne, 1);
	assert_int_equal(r.ndsn, 4);
	queue_sched_free(s);
	(void)end;
}

/* One delay warning per message, after delay_warning, for deferred recipients only. */
static void test_delay_warning(void **state)
{
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[16];
	const char *to[] = {"a@slow.example", "b@ok.example", "c@slow.example"};
	uint64_t now = T0;

	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	c.delay_warning_ms = 4 * 3600 * 1000ULL;
	s = new_sched(&c, &r, 5);
	add_msg(s, 1, "s@x.example", to, 3, T0);
	add_msg(s, 2, "", to, 1, T0); /* null sender: never warned */
	while (now < T0 + 2 * D_NS) {
		uint64_t next;

		r.now = now;
		queue_sched_tick(s, now);
		for (int n; (n = queue_sched_jobs(s, now, jobs, 16)) > 0;)
			answer(s, jobs, n, now);
		next = queue_sched_next_due(s);
		now = next > now ? next : now + 1;
	}
	assert_int_equal(r.ndelay, 1);
	assert_int_equal(r.delay_qid[0], 1);
	assert_int_equal(r.delay_n[0], 2); /* a and c; b was delivered */
	assert_true(r.delay_when[0] >= T0 + 4 * H_NS);
	assert_true(r.delay_when[0] < T0 + 9 * H_NS);
	assert_true(queue_sched_env(s, 1)->flags & QUEUE_F_WARNED);
	assert_int_equal(r.ndsn, 0);
	queue_sched_free(s);
}

static void test_bounce_status_and_spool(void **state)
{
	char st[16];
	char dir[] = "/tmp/dmta-test-bounce-XXXXXX";
	char err[256];
	struct spool *sp;
	struct spool_txn *t;
	struct queue_env e, got;
	const char *to[] = {"x@y.example"};
	const char *msg = "Subject: big\r\n\r\nsecret body\r\n";
	struct queue_bounce_opts bo = {.hostname = "mx.test", .now_ns = T0};
	uint32_t idx = 0;
	uint64_t qid;
	const void *p;
	size_t len;

	assert_string_equal(queue_bounce_status("550 5.1.1 no such user", st), "5.1.1");
	assert_string_equal(queue_bounce_status("451 4.7.1 later", st), "4.7.1");
	assert_string_equal(queue_bounce_status("550 user unknown", st), "5.0.0");
	assert_string_equal(queue_bounce_status("550 4.1.1 wrong class", st), "5.0.0");
	assert_string_equal(queue_bounce_status(NULL, st), "4.4.7");
	assert_string_equal(queue_bounce_status("4.4.1 connect failed", st), "4.4.1");
	assert_string_equal(queue_bounce_status("554 5.7.1 see 1.2.3.4", st), "5.7.1");
	assert_string_equal(queue_bounce_status("451 try later", st), "4.4.7");
	assert_string_equal(queue_bounce_status("250 2.0.0 but a success", st), "4.4.7");
	assert_string_equal(queue_bounce_status("mx.test[198.18.1.10]: 454 4.7.0 TLS failed", st),
			    "4.7.0");
	assert_string_equal(queue_bounce_status("mx.test[198.18.1.10]: connect: refused", st),
			    "4.4.7");

	assert_non_null(mkdtemp(dir));
	sp = spool_open(&(struct spool_opts){.path = dir, .create = true}, err, sizeof(err));
	assert_non_null(sp);
	env_make(&e, 77, "alice@x.example", to, 1, T0);
	e.ret = QUEUE_RET_HDRS;
	e.envid = strdup("ENV77");
	e.rcpt[0].state = QUEUE_RCPT_BOUNCED;
	queue_env_set_reply(&e, 0, "550 5.1.1 no such user");
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(queue_bounce_queue(t, &e, msg, strlen(msg), &idx, 1, &bo, &qid), 0);
	assert_int_equal(spool_commit(t), 0);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	assert_int_equal(spool_env_get(t, qid, &got), 0);
	assert_string_equal(got.sender, "");
	assert_int_equal(got.nrcpt, 1);
	assert_string_equal(got.rcpt[0].addr, "alice@x.example");
	assert_true(got.flags & QUEUE_F_DSN);
	queue_env_release(&got);
	assert_int_equal(spool_msg_get(t, qid, &p, &len), 0);
	{
		char *text = strndup(p, len);

		assert_non_null(strstr(text, "Original-Envelope-Id: ENV77\r\n"));
		assert_non_null(strstr(text,
				       "    The receiving server said: 550 5.1.1 no such user\r\n"
				       "    Reason class: bad-mailbox\r\n"));
		assert_non_null(strstr(text, "Content-Type: text/rfc822-headers"));
		assert_null(strstr(text, "secret body")); /* RET=HDRS */
		free(text);
	}
	spool_abort(t);
	/* an internationalised recipient: the RFC 6533 types */
	{
		struct queue_env u = {0};
		struct queue_buf out = {0};
		struct queue_env benv;
		char longreply[2000];

		env_make(&u, 78, "alice@x.example", to, 1, T0);
		queue_env_free(&u);
		memset(&u, 0, sizeof(u));
		queue_env_set_sender(&u, "alice@x.example");
		queue_env_add_rcpt(&u,
				   "\xc3\xbc"
				   "ser@b\xc3\xbc"
				   "cher.example",
				   NULL, 0);
		u.qid = 78;
		u.flags = QUEUE_F_SMTPUTF8;
		u.rcpt[0].state = QUEUE_RCPT_BOUNCED;
		memset(longreply, 'r', sizeof(longreply) - 1);
		longreply[sizeof(longreply) - 1] = 0;
		memcpy(longreply, "550 5.1.1 ", 10);
		queue_env_set_reply(&u, 0, longreply);
		assert_int_equal(
		    queue_bounce_build(&u, msg, strlen(msg), &idx, 1, &bo, &out, &benv), 0);
		assert_non_null(strstr(out.p, "Content-Type: message/global-delivery-status"));
		assert_non_null(strstr(out.p, "Final-Recipient: utf-8; \xc3\xbc"
					      "ser@"));
		assert_non_null(strstr(out.p, "Content-Type: message/global\r\n"));
		assert_non_null(strstr(out.p, "Status: 5.1.1"));
		/* no line over 998 octets even with a huge reply */
		for (char *lp = out.p, *nl; (nl = strstr(lp, "\r\n")) != NULL; lp = nl + 2)
			assert_true(nl - lp <= 998);
		queue_buf_free(&out);
		queue_env_free(&benv);
		queue_env_free(&u);
	}
	/* dmta's own reason, and none at all: each still gets its class */
	{
		struct queue_buf out = {0};
		struct queue_env benv;

		queue_env_set_reply(&e, 0, "mx.test[198.18.1.10]: connect: Connection refused");
		assert_int_equal(
		    queue_bounce_build(&e, msg, strlen(msg), &idx, 1, &bo, &out, &benv), 0);
		assert_non_null(strstr(out.p,
				       "    Reason: mx.test[198.18.1.10]: connect: Connection "
				       "refused\r\n    Reason class: routing\r\n"));
		assert_non_null(strstr(out.p, "Status: 4.4.7\r\nDiagnostic-Code: x-dmta; mx.test"));
		queue_buf_free(&out);
		queue_env_free(&benv);
		queue_env_set_reply(&e, 0, NULL);
		assert_int_equal(
		    queue_bounce_build(&e, msg, strlen(msg), &idx, 1, &bo, &out, &benv), 0);
		assert_non_null(strstr(out.p, "    No reason was recorded.\r\n"
					      "    Reason class: other\r\n"));
		assert_null(strstr(out.p, "Diagnostic-Code:"));
		queue_buf_free(&out);
		queue_env_free(&benv);
	}
	/* never to <>, never for a DSN */
	{
		struct queue_buf out = {0};
		struct queue_env benv;

		e.flags |= QUEUE_F_DSN;
		assert_int_equal(
		    queue_bounce_build(&e, msg, strlen(msg), &idx, 1, &bo, &out, &benv), -EINVAL);
		e.flags = 0;
		queue_env_set_sender(&e, "");
		assert_int_equal(
		    queue_bounce_build(&e, msg, strlen(msg), &idx, 1, &bo, &out, &benv), -EINVAL);
		queue_buf_free(&out);
	}
	queue_env_free(&e);
	spool_close(sp);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

/* Answer jobs with 250 for everything. */
static void answer_ok(struct queue_sched *s, struct queue_job *jobs, int n, uint64_t now)
{
	for (int i = 0; i < n; i++) {
		int codes[QUEUE_JOB_MAX_RCPT];
		const char *texts[QUEUE_JOB_MAX_RCPT];
		struct queue_result res = {.connected = true, .code = codes, .text = texts};

		for (uint32_t k = 0; k < jobs[i].nrcpt; k++) {
			codes[k] = 250;
			texts[k] = "250 2.0.0 ok";
		}
		assert_int_equal(queue_sched_result(s, &jobs[i], &res, now), 0);
	}
}

static void add_one(struct queue_sched *s, uint64_t qid, const char *to, uint8_t prio,
		    const char *tenant, const char *pool, uint64_t now)
{
	struct queue_env e;

	env_make(&e, qid, "s@x.example", &to, 1, now);
	e.priority = prio;
	e.tenant = tenant;
	e.pool = pool;
	assert_int_equal(queue_sched_add(s, &e, now), 0);
	e.tenant = e.pool = NULL; /* not ours */
	queue_env_free(&e);
}

/* Two domains on one site: the site's limits bind both; without them, each domain its own. */
static void test_sites(void **state)
{
	static const char *const mx[] = {"mx1.provider.example", "mx2.provider.example"};
	const char *sites[] = {"yes", "no"};

	for (int round = 0; round < 2; round++) {
		struct dmta_conf *conf = dmta_conf_new();
		struct queue_sched_conf c;
		struct rec r = {0};
		struct queue_sched *s;
		struct queue_job jobs[64];
		int n, total = 0;

		assert_int_equal(dmta_conf_set(conf, "queue", "dest_max_connections", "2"), 0);
		if (strcmp(sites[round], "yes") == 0) {
			assert_int_equal(dmta_conf_set(conf, "site mx*.provider.example",
						       "max_connections", "3"),
					 0);
			assert_int_equal(dmta_conf_set(conf, "site mx*.provider.example",
						       "max_messages_per_connection", "5"),
					 0);
		}
		assert_int_equal(queue_sched_conf_load(conf, &c), 0);
		s = new_sched(&c, &r, 1);
		for (uint64_t q = 1; q <= 20; q++)
			add_one(s, q, q % 2 ? "a@one.example" : "b@two.example", 0, NULL, NULL, T0);
		queue_sched_tick(s, T0);
		/* The first jobs go before DNS: with site limits, one per domain
		 * until the site is known; without, each domain's own limit. */
		n = queue_sched_jobs(s, T0, jobs, 64);
		assert_int_equal(n, round == 0 ? 2 : 4);
		if (round == 0) {
			struct queue_job more[4];

			assert_int_equal(queue_sched_jobs(s, T0, more, 4), 0);
		}
		for (int i = 0; i < n; i++) {
			unsigned shard = queue_sched_job_site(s, &jobs[i], 0xabc, mx, 2, true);

			assert_int_equal(shard, jobs[i].shard);
			assert_string_equal(queue_sched_job_site_name(s, &jobs[i]), mx[0]);
		}
		answer_ok(s, jobs, n, T0);
		total += n;
		/* Now the site is known and has answered: 3 connections at once
		 * with it, 4 without, each with a job waiting behind it. */
		while (total < 20) {
			int want = (round == 0 ? 3 : 4) * QUEUE_JOBS_PER_CONNECTION;

			n = queue_sched_jobs(s, T0, jobs, 64);
			assert_int_equal(n, 20 - total < want ? 20 - total : want);
			for (int i = 0; i < n; i++) {
				queue_sched_job_site(s, &jobs[i], 0xabc, mx, 2, true);
				assert_int_equal(jobs[i].max_messages_per_connection,
						 round == 0 ? 5 : 100);
				assert_int_equal(jobs[i].shard,
						 jobs[0].shard); /* one site, one shard */
			}
			answer_ok(s, jobs, n, T0);
			total += n;
		}
		{
			struct queue_sched_stats st;

			queue_sched_get_stats(s, &st);
			assert_int_equal(st.sites, 1);
			assert_int_equal(st.dests, 2);
		}
		queue_sched_free(s);
		dmta_conf_free(conf);
	}
}

/* Rates per hour and per minute: a burst of one, then evenly. */
static void test_rate_units(void **state)
{
	struct dmta_conf *conf = dmta_conf_new();
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[8];
	uint64_t per_day;
	char buf[32];

	assert_int_equal(dmta_parse_rate("3600/h", &per_day), 0);
	assert_int_equal(per_day, 86400);
	assert_int_equal(dmta_parse_rate("20", &per_day), 0);
	assert_int_equal(per_day, 20 * 86400);
	assert_int_equal(dmta_parse_rate("7/day", &per_day), 0);
	assert_int_equal(per_day, 7);
	assert_int_equal(dmta_parse_rate("600/min", &per_day), 0);
	dmta_rate_format(per_day, buf, sizeof(buf));
	assert_string_equal(buf, "10/s");
	dmta_rate_format(48, buf, sizeof(buf));
	assert_string_equal(buf, "2/h");
	assert_int_not_equal(dmta_parse_rate("5/week", &per_day), 0);
	assert_int_not_equal(dmta_parse_rate("/h", &per_day), 0);

	assert_int_equal(dmta_conf_set(conf, "dest hourly.example", "rate", "3600/h"), 0);
	assert_int_equal(dmta_conf_set(conf, "dest minute.example", "rate", "2/min"), 0);
	assert_int_equal(dmta_conf_set(conf, "dest bad.example", "rate", "3/fortnight"), 0);
	assert_int_equal(queue_sched_conf_load(conf, &c), 0);
	s = new_sched(&c, &r, 1);
	for (uint64_t q = 1; q <= 8; q++) {
		add_one(s, q, "a@hourly.example", 0, NULL, NULL, T0);
		add_one(s, 100 + q, "a@minute.example", 0, NULL, NULL, T0);
	}
	queue_sched_tick(s, T0);
	/* one each at once, then hourly one a second, minute one per 30 s */
	assert_int_equal(queue_sched_jobs(s, T0, jobs, 8), 2);
	answer_ok(s, jobs, 2, T0);
	for (int sec = 1; sec <= 7; sec++) {
		uint64_t now = T0 + (uint64_t)sec * DMTA_NS_PER_S;
		int n = queue_sched_jobs(s, now - DMTA_NS_PER_S / 10, jobs, 8);

		assert_int_equal(n, 0); /* not yet */
		n = queue_sched_jobs(s, now, jobs, 8);
		assert_int_equal(n, 1);
		assert_string_equal(jobs[0].domain, "hourly.example");
		answer_ok(s, jobs, n, now);
	}
	assert_int_equal(queue_sched_jobs(s, T0 + 30 * DMTA_NS_PER_S, jobs, 8), 1);
	assert_string_equal(jobs[0].domain, "minute.example");
	answer_ok(s, jobs, 1, T0 + 30 * DMTA_NS_PER_S);
	/* a bad rate in [dest] keeps the default (unlimited) */
	assert_int_equal(queue_sched_limits(s, "bad.example").rate, 0);
	queue_sched_free(s);
	dmta_conf_free(conf);
}

/* High before normal before bulk; tenants in a lane take turns. */
static void test_priority_tenants(void **state)
{
	struct dmta_conf *conf = dmta_conf_new();
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[1];
	uint64_t q = 1;
	char order[64] = "";

	assert_int_equal(dmta_conf_set(conf, "dest p.example", "rate", "1/s"), 0);
	assert_int_equal(queue_sched_conf_load(conf, &c), 0);
	s = new_sched(&c, &r, 1);
	/* bulk from tenant a (many) and b (few), then normal, then high */
	for (int i = 0; i < 6; i++)
		add_one(s, q++, "x@p.example", QUEUE_PRIO_BULK, "a", NULL, T0);
	for (int i = 0; i < 2; i++)
		add_one(s, q++, "x@p.example", QUEUE_PRIO_BULK, "b", NULL, T0);
	add_one(s, q++, "x@p.example", QUEUE_PRIO_NORMAL, NULL, NULL, T0);
	add_one(s, q++, "x@p.example", QUEUE_PRIO_HIGH, "a", NULL, T0);
	add_one(s, q++, "x@p.example", QUEUE_PRIO_HIGH, "c", NULL, T0);
	queue_sched_tick(s, T0);
	for (int sec = 0; sec < 11; sec++) {
		uint64_t now = T0 + (uint64_t)sec * DMTA_NS_PER_S;
		const struct queue_env *e;

		assert_int_equal(queue_sched_jobs(s, now, jobs, 1), 1);
		e = queue_sched_env(s, jobs[0].qid);
		snprintf(order + strlen(order), sizeof(order) - strlen(order), "%c%s ",
			 "nhb"[e->priority], e -> tenant ? e -> tenant : "-");
		answer_ok(s, jobs, 1, now);
	}
	/* Messages due at the same time become ready in any order: the tenants' first turn may be
	 * either's. */
	assert_true(strncmp(order, "ha hc n- ", 9) == 0 || strncmp(order, "hc ha n- ", 9) == 0);
	assert_true(strncmp(order + 9, "ba bb ba bb ", 12) == 0 ||
		    strncmp(order + 9, "bb ba bb ba ", 12) == 0);
	assert_string_equal(order + 21, "ba ba ba ba ");
	queue_sched_free(s);
	dmta_conf_free(conf);
}

/* A rule's suspension stops the site for its duration; a throttle lowers its limits. */
static void test_throttle(void **state)
{
	static const char *const mx[] = {"mx.t.example"};
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[16];
	struct queue_suspension v[4];
	struct queue_throttle susp = {.suspend = true, .duration_ms = 60000, .why = "rate-rule"};
	struct queue_throttle slow = {.duration_ms = 600000, .max_connections = 1, .why = "busy"};
	int n;

	assert_int_equal(queue_sched_conf_load(NULL, &c), 0);
	c.min_backoff_ms = 1000;
	c.jitter_pct = 0;
	s = new_sched(&c, &r, 1);
	for (uint64_t q = 1; q <= 10; q++)
		add_one(s, q, q % 2 ? "a@t1.example" : "a@t2.example", 0, NULL, NULL, T0);
	queue_sched_tick(s, T0);
	n = queue_sched_jobs(s, T0, jobs, 16);
	assert_int_equal(n, 10);
	for (int i = 0; i < n; i++)
		queue_sched_job_site(s, &jobs[i], 77, mx, 1, true);
	queue_sched_throttle(s, &jobs[0], &susp, T0);
	/* the rest are deferred: they come back at once (a 1 s backoff) */
	for (int i = 1; i < n; i++) {
		int code = 421;
		const char *text = "421 4.7.28 slow down";
		struct queue_result res = {.connected = true, .code = &code, .text = &text};

		assert_int_equal(queue_sched_result(s, &jobs[i], &res, T0), 0);
	}
	n = 1;
	answer_ok(s, jobs, n, T0);
	/* both domains share the site: nothing for a minute */
	queue_sched_tick(s, T0 + 59 * DMTA_NS_PER_S);
	assert_int_equal(queue_sched_jobs(s, T0 + 59 * DMTA_NS_PER_S, jobs, 16), 0);
	assert_int_equal(queue_sched_suspensions(s, T0 + 59 * DMTA_NS_PER_S, v, 4), 1);
	assert_string_equal(v[0].kind, "site");
	assert_string_equal(v[0].name, "mx.t.example");
	assert_string_equal(v[0].why, "rate-rule");
	assert_false(v[0].throttled);
	n = queue_sched_jobs(s, T0 + 60 * DMTA_NS_PER_S, jobs, 2);
	assert_int_equal(n, 2);
	queue_sched_throttle(s, &jobs[0], &slow, T0 + 60 * DMTA_NS_PER_S);
	answer_ok(s, jobs, n, T0 + 60 * DMTA_NS_PER_S);
	/* one connection at a time while throttled (and a job waiting for it) */
	n = queue_sched_jobs(s, T0 + 61 * DMTA_NS_PER_S, jobs, 16);
	assert_int_equal(n, QUEUE_JOBS_PER_CONNECTION);
	for (int i = 0; i < n; i++) {
		queue_sched_job_site(s, &jobs[i], 77, mx, 1, true);
		assert_int_equal(jobs[i].max_connections, 1);
	}
	assert_int_equal(queue_sched_jobs(s, T0 + 61 * DMTA_NS_PER_S, jobs + n, 16 - n), 0);
	assert_int_equal(queue_sched_suspensions(s, T0 + 61 * DMTA_NS_PER_S, v, 4), 1);
	assert_true(v[0].throttled);
	answer_ok(s, jobs, n, T0 + 61 * DMTA_NS_PER_S);
	/* after it: as many as the domains allow */
	n = queue_sched_jobs(s, T0 + 700 * DMTA_NS_PER_S, jobs, 16);
	assert_true(n >= 2);
	answer_ok(s, jobs, n, T0 + 700 * DMTA_NS_PER_S);
	queue_sched_free(s);
}

/* dmta-queue suspend/resume: domains, sites, sources; also for what comes later. */
static void test_manual_suspend(void **state)
{
	static const char *const mx[] = {"mx.m.example"};
	struct dmta_conf *conf = dmta_conf_new();
	struct queue_egress *eg;
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[16];
	struct queue_suspension v[8];
	char err[256];
	int n;

	assert_int_equal(dmta_conf_set(conf, "source a", "address", "198.18.0.10"), 0);
	assert_int_equal(dmta_conf_set(conf, "source b", "address", "198.18.0.11"), 0);
	assert_int_equal(queue_egress_load(conf, &eg, err, sizeof(err)), 0);
	assert_int_equal(queue_sched_conf_load(conf, &c), 0);
	c.egress = eg;
	s = new_sched(&c, &r, 1);
	assert_int_equal(queue_sched_suspend(s, "later.example", 0, T0), 0);
	assert_int_equal(queue_sched_suspend(s, "source:nosuch", 0, T0), -EINVAL);
	add_one(s, 1, "x@later.example", 0, NULL, NULL, T0);
	queue_sched_tick(s, T0);
	assert_int_equal(queue_sched_jobs(s, T0, jobs, 16), 0);
	assert_true(queue_sched_suspended(s, "later.example", T0));
	assert_int_equal(queue_sched_suspensions(s, T0, v, 8), 1);
	assert_string_equal(v[0].why, "manual");
	assert_true(v[0].until_ns == UINT64_MAX);
	assert_int_equal(queue_sched_resume(s, "later.example", T0), 0);
	assert_int_equal(queue_sched_resume(s, "later.example", T0), -ENOENT);
	n = queue_sched_jobs(s, T0, jobs, 16);
	assert_int_equal(n, 1);
	queue_sched_job_site(s, &jobs[0], 5, mx, 1, true);
	answer_ok(s, jobs, n, T0);

	/* a site for 10 s */
	for (uint64_t q = 2; q <= 5; q++)
		add_one(s, q, "x@later.example", 0, NULL, NULL, T0);
	queue_sched_tick(s, T0);
	assert_int_equal(queue_sched_suspend(s, "site:*.m.example", 10000, T0), 0);
	n = queue_sched_jobs(s, T0, jobs, 16);
	/* the site is known only for the source that sent the first job */
	for (int i = 0; i < n; i++)
		assert_int_not_equal(jobs[i].source, 0);
	for (int i = 0; i < n; i++)
		queue_sched_job_site(s, &jobs[i], 5, mx, 1, true);
	answer_ok(s, jobs, n, T0);
	assert_int_equal(queue_sched_jobs(s, T0 + 9 * DMTA_NS_PER_S, jobs, 16), 0);
	n = queue_sched_jobs(s, T0 + 10 * DMTA_NS_PER_S, jobs, 16);
	answer_ok(s, jobs, n, T0 + 10 * DMTA_NS_PER_S);

	/* a source: the other one goes on */
	for (uint64_t q = 10; q < 20; q++)
		add_one(s, q, "x@other.example", 0, NULL, NULL, T0);
	queue_sched_tick(s, T0 + 11 * DMTA_NS_PER_S);
	assert_int_equal(queue_sched_suspend(s, "source:a", 0, T0), 0);
	for (int k = 0; k < 10; k++) {
		n = queue_sched_jobs(s, T0 + 11 * DMTA_NS_PER_S, jobs, 16);
		for (int i = 0; i < n; i++)
			assert_string_equal(queue_egress_source_name(eg, jobs[i].source), "b");
		answer_ok(s, jobs, n, T0 + 11 * DMTA_NS_PER_S);
	}
	assert_int_equal(queue_sched_resume(s, "source:a", T0), 0);
	queue_sched_free(s);
	queue_egress_free(eg);
	dmta_conf_free(conf);
}

/* Pools: weights 3:1 give a a b a ...; an unknown pool falls back to the default. */
static void test_egress(void **state)
{
	struct dmta_conf *conf = dmta_conf_new();
	struct queue_egress *eg;
	char err[256], seq[32] = "";
	int p;

	assert_int_equal(queue_egress_load(NULL, &eg, err, sizeof(err)), 0);
	assert_int_equal(queue_egress_nsources(eg), 1);
	assert_string_equal(queue_egress_source_name(eg, 0), "default");
	assert_int_equal(queue_egress_source_addr(eg, 0).s_addr, 0);
	queue_egress_free(eg);

	assert_int_equal(dmta_conf_set(conf, "source a", "address", "198.18.0.10"), 0);
	assert_int_equal(dmta_conf_set(conf, "source b", "address", "198.18.0.11"), 0);
	assert_int_equal(dmta_conf_set(conf, "pool p", "sources", "a:3, b"), 0);
	assert_int_equal(dmta_conf_set(conf, "queue", "default_pool", "p"), 0);
	assert_int_equal(queue_egress_load(conf, &eg, err, sizeof(err)), 0);
	p = queue_egress_pool(eg, "p");
	assert_int_equal(queue_egress_pool(eg, NULL), p);
	assert_int_equal(queue_egress_pool(eg, "nosuch"), -1);
	for (int i = 0; i < 8; i++)
		strcat(seq, queue_egress_source_name(eg, queue_egress_pick(eg, p)));
	assert_string_equal(seq, "aabaaaba");
	queue_egress_free(eg);

	assert_int_equal(dmta_conf_set(conf, "pool q", "sources", "a:3, c:1"), 0);
	assert_int_equal(queue_egress_load(conf, &eg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no [source c]"));
	assert_int_equal(dmta_conf_set(conf, "pool q", "sources", "a:0"), 0);
	assert_int_equal(queue_egress_load(conf, &eg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "weight"));
	assert_int_equal(dmta_conf_set(conf, "pool q", "sources", "a"), 0);
	assert_int_equal(dmta_conf_set(conf, "source c", "address", "198.18.0.10"), 0);
	assert_int_equal(queue_egress_load(conf, &eg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "also source a"));
	assert_int_equal(dmta_conf_set(conf, "source c", "address", "not-an-address"), 0);
	assert_int_equal(queue_egress_load(conf, &eg, err, sizeof(err)), -EINVAL);
	dmta_conf_free(conf);
}

/* Messages queued with pools whose sections were removed since, the two
 * names interleaved: sent from the default pool, and each name said once,
 * not once a message. */
static void test_pool_gone(void **state)
{
	struct dmta_conf *conf = dmta_conf_new();
	struct queue_egress *eg;
	struct queue_sched_conf c;
	struct rec r = {0};
	struct queue_sched *s;
	struct queue_job jobs[64];
	char err[256], line[512];
	FILE *log = tmpfile();
	int saved = dup(2), n, total = 0, said = 0, said2 = 0;

	(void)state;
	assert_non_null(log);
	assert_true(saved >= 0);
	assert_int_equal(dmta_conf_set(conf, "source a", "address", "198.18.0.10"), 0);
	assert_int_equal(dmta_conf_set(conf, "source b", "address", "198.18.0.11"), 0);
	assert_int_equal(dmta_conf_set(conf, "pool p", "sources", "b"), 0);
	assert_int_equal(dmta_conf_set(conf, "queue", "default_pool", "p"), 0);
	assert_int_equal(queue_egress_load(conf, &eg, err, sizeof(err)), 0);
	assert_int_equal(queue_sched_conf_load(conf, &c), 0);
	c.egress = eg;
	s = new_sched(&c, &r, 1);
	for (uint64_t q = 1; q <= 40; q++)
		add_one(s, q, "x@gone.example", 0, NULL, q % 2 ? "gone" : "gone2", T0);
	fflush(stderr);
	assert_true(dup2(fileno(log), 2) == 2);
	dmta_log_set_level(DMTA_LOG_WARN);
	queue_sched_tick(s, T0);
	for (int k = 0; k < 20 && total < 40; k++) {
		n = queue_sched_jobs(s, T0, jobs, 64);
		for (int i = 0; i < n; i++)
			assert_string_equal(queue_egress_source_name(eg, jobs[i].source), "b");
		answer_ok(s, jobs, n, T0);
		total += n;
	}
	dmta_log_set_level(DMTA_LOG_ERR);
	fflush(stderr);
	assert_true(dup2(saved, 2) == 2);
	close(saved);
	assert_int_equal(total, 40);
	rewind(log);
	while (fgets(line, sizeof(line), log) != NULL) {
		said += strstr(line, "no [pool gone]") != NULL;
		said2 += strstr(line, "no [pool gone2]") != NULL;
	}
	fclose(log);
	if (said != 1 || said2 != 1)
		fail_msg("the missing pools were named %d and %d times for 20 messages each, want "
			 "once each",
			 said, said2);
	queue_sched_free(s);
	queue_egress_free(eg);
	dmta_conf_free(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_schedule),
	    cmocka_unit_test(test_retry_and_jitter),
	    cmocka_unit_test(test_limits_and_shards),
	    cmocka_unit_test(test_suspend_resume),
	    cmocka_unit_test(test_local_failure_not_counted),
	    cmocka_unit_test(test_many_recipients),
	    cmocka_unit_test(test_hold_release),
	    cmocka_unit_test(test_expiry_dsn),
	    cmocka_unit_test(test_delay_warning),
	    cmocka_unit_test(test_bounce_status_and_spool),
	    cmocka_unit_test(test_sites),
	    cmocka_unit_test(test_rate_units),
	    cmocka_unit_test(test_priority_tenants),
	    cmocka_unit_test(test_throttle),
	    cmocka_unit_test(test_manual_suspend),
	    cmocka_unit_test(test_egress),
	    cmocka_unit_test(test_pool_gone),
	};

	dmta_log_init("test_sched", DMTA_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
