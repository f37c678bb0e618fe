/*
 * tcp_timer.c - a hashed timing wheel driven by the TSC.
 *
 * SYNOPSIS
 *	See tcp_timer.h.
 *
 * DESCRIPTION
 *	A slot is a doubly linked list (next, pprev) so that cancel is O(1)
 *	without knowing the slot. tcp_wheel_run() pops a slot's timers one at a
 *	time rather than walking the list, because a callback may cancel or
 *	re-arm any other timer, including the one a walk would visit next;
 *	timers not yet due (a later turn) are set aside on a local list and
 *	put back at the end.
 */
#include "tcp/tcp_timer.h"

#define SLOT_MASK (TCP_WHEEL_SLOTS - 1)

_Static_assert((TCP_WHEEL_SLOTS & SLOT_MASK) == 0, "TCP_WHEEL_SLOTS must be a power of two");

void tcp_wheel_init(struct tcp_wheel *w, uint64_t now_tsc, uint64_t tsc_per_tick)
{
	w->tsc_per_tick = tsc_per_tick;
	w->cur_tick = now_tsc / tsc_per_tick;
	w->pending = 0;
	for (unsigned i = 0; i < TCP_WHEEL_SLOTS; i++)
		w->slot[i] = NULL;
}

static void timer_link(struct tcp_timer **head, struct tcp_timer *t)
{
	t->next = *head;
	if (t->next != NULL)
		t->next->pprev = &t->next;
	*head = t;
	t->pprev = head;
}

static void timer_unlink(struct tcp_timer *t)
{
	*t->pprev = t->next;
	if (t->next != NULL)
		t->next->pprev = t->pprev;
	t->next = NULL;
	t->pprev = NULL;
}

void tcp_timer_arm(struct tcp_wheel *w, struct tcp_timer *t, uint64_t expire_tsc)
{
	/* Round up: a timer must never fire before its deadline. */
	uint64_t tick = expire_tsc / w->tsc_per_tick + (expire_tsc % w->tsc_per_tick != 0);

	if (tcp_timer_pending(t))
		timer_unlink(t);
	else
		w->pending++;
	if (tick <= w->cur_tick)
		tick = w->cur_tick + 1;
	t->expire_tick = tick;
	timer_link(&w->slot[tick & SLOT_MASK], t);
}

void tcp_timer_cancel(struct tcp_wheel *w, struct tcp_timer *t)
{
	if (!tcp_timer_pending(t))
		return;
	timer_unlink(t);
	w->pending--;
}

unsigned tcp_wheel_run(struct tcp_wheel *w, uint64_t now_tsc)
{
	uint64_t now_tick = now_tsc / w->tsc_per_tick, tick;
	unsigned fired = 0;

	if (now_tick <= w->cur_tick)
		return 0;
	/* After a long stall, one pass over every slot is enough. */
	tick = w->cur_tick + 1;
	if (now_tick - w->cur_tick > TCP_WHEEL_SLOTS)
		tick = now_tick - TCP_WHEEL_SLOTS + 1;
	for (; tick <= now_tick; tick++) {
		struct tcp_timer **head = &w->slot[tick & SLOT_MASK];
		struct tcp_timer *keep = NULL, *t;

		/* Arms from callbacks below must land in a later tick. */
		w->cur_tick = tick;
		if (*head == NULL)
			continue;
		while ((t = *head) != NULL) {
			timer_unlink(t);
			if (t->expire_tick <= tick) {
				w->pending--;
				fired++;
				t->fn(t, now_tsc);
			} else {
				timer_link(&keep, t);
			}
		}
		if (keep != NULL) {
			*head = keep;
			keep->pprev = head;
		}
	}
	w->cur_tick = now_tick;
	return fired;
}
