/*
 * test_timer.c - the hashed timing wheel: never early, at most a tick late,
 *	cancel and re-arm from callbacks, long delays and long stalls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tcp/tcp_timer.h"

#define TPT 1000 /* TSC cycles per tick */
#define N   2000

struct probe {
	struct tcp_timer t;
	uint64_t deadline;
	uint64_t fired_at;
	int fired;
};

static struct tcp_wheel w;
static struct probe probes[N];
static uint64_t last_run; /* the TSC of the previous tcp_wheel_run() */

static void probe_fired(struct tcp_timer *t, uint64_t now)
{
	struct probe *p = (struct probe *)((char *)t - offsetof(struct probe, t));

	p->fired++;
	p->fired_at = now;
}

/* xorshift: deterministic, seeded. */
static uint64_t rnd_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void run_to(uint64_t now)
{
	tcp_wheel_run(&w, now);
	last_run = now;
}

/* Random deadlines over several turns, random steps: each fires once, in time. */
static void test_random_deadlines(void **state)
{
	uint64_t now = 123456789, end;
	(void)state;

	tcp_wheel_init(&w, now, TPT);
	for (int i = 0; i < N; i++) {
		tcp_timer_init(&probes[i].t, probe_fired);
		probes[i].deadline = now + rnd() % (3ULL * TCP_WHEEL_SLOTS * TPT);
		probes[i].fired = 0;
		tcp_timer_arm(&w, &probes[i].t, probes[i].deadline);
	}
	assert_int_equal(w.pending, N);
	end = now + 3ULL * TCP_WHEEL_SLOTS * TPT + 2 * TPT;
	last_run = now;
	while (now < end) {
		now += rnd() % (5 * TPT);
		run_to(now);
		for (int i = 0; i < N; i++) {
			struct probe *p = &probes[i];

			if (p->fired) {
				assert_true(p->fired_at >= p->deadline);
				continue;
			}
			/* Not fired: its deadline's tick must not have been run yet
			 * (one tick of slack: deadlines round up to a tick). */
			if (now >= p->deadline + TPT)
				fail_msg("timer %d: deadline %llu, not fired at %llu", i,
					 (unsigned long long)p->deadline, (unsigned long long)now);
		}
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(probes[i].fired, 1);
	assert_int_equal(w.pending, 0);
}

static void test_cancel_and_rearm(void **state)
{
	uint64_t now = 0;
	(void)state;

	tcp_wheel_init(&w, now, TPT);
	for (int i = 0; i < 3; i++) {
		tcp_timer_init(&probes[i].t, probe_fired);
		probes[i].fired = 0;
	}
	tcp_timer_arm(&w, &probes[0].t, 10 * TPT);
	tcp_timer_arm(&w, &probes[1].t, 10 * TPT);
	tcp_timer_arm(&w, &probes[2].t, 10 * TPT);
	tcp_timer_cancel(&w, &probes[1].t);
	tcp_timer_cancel(&w, &probes[1].t);	   /* twice is harmless */
	tcp_timer_arm(&w, &probes[2].t, 20 * TPT); /* moved later */
	assert_int_equal(w.pending, 2);
	assert_int_equal(tcp_wheel_run(&w, 10 * TPT - 1), 0);
	assert_int_equal(tcp_wheel_run(&w, 10 * TPT), 1);
	assert_int_equal(probes[0].fired, 1);
	assert_false(tcp_timer_pending(&probes[0].t));
	assert_int_equal(probes[1].fired, 0);
	assert_int_equal(tcp_wheel_run(&w, 19 * TPT + 1), 0);
	assert_int_equal(tcp_wheel_run(&w, 20 * TPT), 1);
	assert_int_equal(probes[2].fired, 1);
	assert_int_equal(w.pending, 0);
	/* A deadline in the past fires on the next tick. */
	tcp_timer_arm(&w, &probes[0].t, 0);
	assert_int_equal(tcp_wheel_run(&w, 20 * TPT + TPT - 1), 0);
	assert_int_equal(tcp_wheel_run(&w, 21 * TPT), 1);
	assert_int_equal(probes[0].fired, 2);
}

/* Callbacks that cancel the next timer of their slot and re-arm themselves. */
static struct probe *victim;
static int rearms;

static void nasty_fired(struct tcp_timer *t, uint64_t now)
{
	probe_fired(t, now);
	if (victim != NULL) {
		tcp_timer_cancel(&w, &victim->t);
		victim = NULL;
	}
	if (rearms-- > 0)
		tcp_timer_arm(&w, t, now); /* "now": must wait for the next tick */
}

static void test_callbacks_modify_wheel(void **state)
{
	(void)state;

	tcp_wheel_init(&w, 0, TPT);
	for (int i = 0; i < 4; i++) {
		tcp_timer_init(&probes[i].t, nasty_fired);
		probes[i].fired = 0;
		tcp_timer_arm(&w, &probes[i].t, 5 * TPT);
	}
	/* Same slot, one turn later: set aside, not fired. */
	tcp_timer_init(&probes[4].t, probe_fired);
	probes[4].fired = 0;
	tcp_timer_arm(&w, &probes[4].t, (5 + TCP_WHEEL_SLOTS) * TPT);
	victim = &probes[0]; /* head insertion: probes[3] fires first, cancels probes[0]... */
	rearms = 2;
	assert_int_equal(tcp_wheel_run(&w, 5 * TPT), 3);
	assert_int_equal(probes[0].fired, 0);
	assert_int_equal(probes[4].fired, 0);
	/* Two re-armed themselves for the next tick. */
	assert_int_equal(tcp_wheel_run(&w, 6 * TPT), 2);
	assert_int_equal(w.pending, 1);
	/* A stall of several turns: the far timer fires once. */
	assert_int_equal(tcp_wheel_run(&w, (10 + 5 * TCP_WHEEL_SLOTS) * TPT), 1);
	assert_int_equal(probes[4].fired, 1);
	assert_int_equal(w.pending, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_deadlines),
	    cmocka_unit_test(test_cancel_and_rearm),
	    cmocka_unit_test(test_callbacks_modify_wheel),
	};

	return cmocka_run_group_tests_name("tcp_timer", tests, NULL, NULL);
}
