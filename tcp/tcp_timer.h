/*
 * tcp_timer.h - a hashed timing wheel driven by the TSC, one per worker.
 *
 * SYNOPSIS
 *	#include "tcp/tcp_timer.h"
 *
 *	tcp_wheel_init(&w, now_tsc, tsc_per_tick);
 *	tcp_timer_init(&conn->rto_timer, rto_fired);
 *	tcp_timer_arm(&w, &conn->rto_timer, now_tsc + rto_tsc);
 *	tcp_timer_cancel(&conn->rto_timer);
 *	fired = tcp_wheel_run(&w, now_tsc);       (from the worker loop)
 *
 * DESCRIPTION
 *	Timers are embedded in the objects they time (no allocation): arming,
 *	re-arming and cancelling are O(1) list operations. The wheel has
 *	TCP_WHEEL_SLOTS slots of one tick each; a timer due further than one
 *	turn away waits in its slot and is skipped until its turn comes, so
 *	any delay is allowed (TIME_WAIT, keepalive) at the cost of a compare
 *	per turn.
 *
 *	A timer never fires before its deadline and at most one tick after it
 *	(plus however late tcp_wheel_run() is called). Callbacks may arm,
 *	re-arm or cancel any timer, themselves included; a timer armed from a
 *	callback for a deadline already past fires on the next tick, not in
 *	the same run (so a callback that re-arms itself at "now" cannot loop).
 *
 *	Deadlines are absolute TSC values; the wheel works in ticks of
 *	tsc_per_tick TSC cycles (a millisecond's worth is the usual choice).
 */
#ifndef TCP_TIMER_H
#define TCP_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Slots in a wheel (a power of two). One turn is this many ticks. */
#define TCP_WHEEL_SLOTS 4096

struct tcp_timer;

/**
 * Called when @p t is due. @p t is no longer pending when this runs.
 * @param t   the timer (embed it, and use container_of() to find its owner)
 * @param now the TSC passed to tcp_wheel_run()
 */
typedef void (*tcp_timer_fn)(struct tcp_timer *t, uint64_t now);

/** A timer; embed it in its owner. Initialise with tcp_timer_init(). */
struct tcp_timer {
	struct tcp_timer *next;	  /**< slot list */
	struct tcp_timer **pprev; /**< NULL when not pending */
	uint64_t expire_tick;	  /**< first tick at which it may fire */
	tcp_timer_fn fn;	  /**< callback */
};

/** A wheel. Plain memory, no allocation: embed it or allocate it with its owner. */
struct tcp_wheel {
	uint64_t tsc_per_tick; /**< TSC cycles per tick */
	uint64_t cur_tick;     /**< every tick up to this one has been run */
	uint64_t pending;      /**< timers armed */
	struct tcp_timer *slot[TCP_WHEEL_SLOTS];
};

/**
 * Initialise @p w empty at time @p now_tsc.
 * @param tsc_per_tick granularity; must be > 0
 */
void tcp_wheel_init(struct tcp_wheel *w, uint64_t now_tsc, uint64_t tsc_per_tick);

/** Initialise @p t, not pending, calling @p fn when it fires. */
static inline void tcp_timer_init(struct tcp_timer *t, tcp_timer_fn fn)
{
	t->next = NULL;
	t->pprev = NULL;
	t->expire_tick = 0;
	t->fn = fn;
}

/** True when @p t is armed and has not fired or been cancelled. */
static inline bool tcp_timer_pending(const struct tcp_timer *t)
{
	return t->pprev != NULL;
}

/**
 * Arm (or re-arm) @p t to fire at TSC @p expire_tsc or up to a tick later.
 * A pending timer is moved; nothing else about it changes.
 */
void tcp_timer_arm(struct tcp_wheel *w, struct tcp_timer *t, uint64_t expire_tsc);

/** Disarm @p t if pending; harmless otherwise. */
void tcp_timer_cancel(struct tcp_wheel *w, struct tcp_timer *t);

/**
 * Fire every timer due at @p now_tsc, in slot order.
 * @return how many fired
 */
unsigned tcp_wheel_run(struct tcp_wheel *w, uint64_t now_tsc);

#endif
