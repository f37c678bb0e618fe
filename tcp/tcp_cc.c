/*
 * tcp_cc.c - congestion control: slow start and CUBIC (RFC 9438), or BBR.
 *
 * SYNOPSIS
 *	Private to tcp/; see tcp_stack_int.h.
 *
 *	tcp_cc_ack(c, acked, now)	new data acknowledged outside recovery
 *	tcp_cc_congestion(c, now)	a loss: ssthresh (and CUBIC's origin)
 *	tcp_cc_undo(c)			a reduction proved spurious
 *
 *	A connection with c->bbr runs BBR instead (tcp_bbr.c): these calls
 *	hand it the loss, and tcp_bbr_ack() sets its window on every ACK.
 *
 * DESCRIPTION
 *	Slow start counts bytes acknowledged (RFC 3465, L = 2 SMSS): a peer
 *	that ACKs every other segment, and ACKs lost on the way, would
 *	otherwise halve the growth.
 *
 *	Above ssthresh the window follows CUBIC's curve, W(t) = C (t - K)^3
 *	+ W_max, from the window before the last reduction (W_max), so that
 *	it comes back quickly to where the loss was and probes slowly near
 *	it; and never grows more slowly than Reno would with the same
 *	reduction (the "Reno-friendly" estimate, which is what governs at
 *	small windows and round trips: most mail paths). A loss takes the
 *	window to 0.7 of the flight instead of Reno's half: on a path with
 *	random loss (a few percent) Reno's halving holds the window at a few
 *	segments, where every further loss costs a round trip of its own.
 *	As Linux's tcp_cubic.c (fast convergence on) and FreeBSD's
 *	cc_cubic.c, in floating point: it runs once per ACK, in user space.
 *
 *	Times are TSC cycles; windows bytes, converted to segments for the
 *	curve (C is in segments per second cubed).
 */
#include <math.h>

#include "tcp/tcp_stack_int.h"

#define CUBIC_C	       0.4 /* RFC 9438 4.1: segments / s^3 */
#define CUBIC_BETA_PCT 70  /* RFC 9438 4.6: the window kept at a loss, percent */
#define CUBIC_BETA     (CUBIC_BETA_PCT / 100.0)
/* RFC 9438 4.3: Reno-friendly growth per round trip, in segments, while
 * below the window of the last loss: same average rate as Reno's 1 and 0.5. */
#define CUBIC_ALPHA (3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA))
/* Growth stops here (the initial ssthresh): a connection that keeps its
 * window full for hours must not wrap it. */
#define CWND_MAX (UINT32_MAX / 2)

/* W_cubic(@t) in segments (RFC 9438 eq. 1), @t seconds into the epoch. */
static double cubic_w(const struct tcp_conn *c, double t)
{
	double d = t - c->cc_k;

	return CUBIC_C * d * d * d + (double)c->cc_wmax / c->mss;
}

/* RFC 9438 4.2: the first ACK in congestion avoidance after a reduction
 * starts the epoch; K is when the curve is back at W_max. */
static void cubic_epoch(struct tcp_conn *c, uint64_t now)
{
	c->cc_epoch = now;
	if (c->cc_wmax < c->cwnd)
		c->cc_wmax = c->cwnd;
	c->cc_k = cbrt((double)(c->cc_wmax - c->cwnd) / c->mss / CUBIC_C);
	c->cc_west = (double)c->cwnd / c->mss;
}

static void cubic_ack(struct tcp_conn *c, uint32_t acked, uint64_t now)
{
	double hz = (double)c->stk->hz, cwnd = (double)c->cwnd / c->mss, t, target, seg;

	if (c->cc_epoch == 0)
		cubic_epoch(c, now);
	t = (double)(now - c->cc_epoch) / hz;
	seg = (double)acked / c->mss;
	/* RFC 9438 4.3: alpha until W_est reaches the window before the loss, then 1. */
	c->cc_west += (c->cc_west < (double)c->cc_prior / c->mss ? CUBIC_ALPHA : 1.0) * seg / cwnd;
	if (cubic_w(c, t) < c->cc_west) {
		target = c->cc_west; /* Reno-friendly region */
	} else {
		/* RFC 9438 4.4 and 4.5: toward W_cubic one round trip ahead,
		 * by at most half the window per round trip. */
		target = cubic_w(c, t + (double)c->srtt / hz);
		if (target > 1.5 * cwnd)
			target = 1.5 * cwnd;
		target = cwnd + (target - cwnd) * seg / cwnd;
	}
	if (target > cwnd)
		c->cwnd = target * c->mss < CWND_MAX ? (uint32_t)(target * c->mss) : CWND_MAX;
}

void tcp_cc_ack(struct tcp_conn *c, uint32_t acked, uint64_t now)
{
	if (c->bbr != NULL)
		return; /* tcp_bbr_ack() sets the window on every ACK */
	if (c->cwnd < c->ssthresh) {
		uint32_t inc = acked < 2 * c->mss ? acked : 2 * c->mss;

		c->cwnd = c->cwnd < CWND_MAX - inc ? c->cwnd + inc : CWND_MAX;
		return;
	}
	cubic_ack(c, acked, now);
}

/*
 * A loss (fast recovery, a timeout, the peer reneging): ssthresh to 0.7 of
 * the flight or of cwnd, whichever is larger (RFC 9438 4.6 names the
 * flight, Linux cwnd; at least 2 segments). The flight counts what the
 * peer SACKed and a window raised by limited transmit or a probe; cwnd
 * what a recovery that ended with few segments out left. Over the lab's
 * lossy path (test_lab_path_rate, 60 seeds) the larger of the two is 8%
 * faster than either alone. W_max is the window before the loss, less
 * when the last loss came at a larger one (fast convergence: a newcomer
 * is leaving room). The caller sets cwnd.
 */
void tcp_cc_congestion(struct tcp_conn *c, uint64_t now)
{
	uint64_t flight = c->snd_max - c->snd_una;
	uint32_t ss = (uint32_t)((flight > c->cwnd ? flight : c->cwnd) * CUBIC_BETA_PCT / 100);

	(void)now;
	if (c->bbr != NULL) {
		tcp_bbr_congestion(c);
		return;
	}
	c->cc_prior = c->cwnd;
	if (c->cwnd < c->cc_wmax)
		c->cc_wmax = (uint32_t)((uint64_t)c->cwnd * (100 + CUBIC_BETA_PCT) / 200);
	else
		c->cc_wmax = c->cwnd;
	c->cc_epoch = 0;
	c->ssthresh = ss > 2 * c->mss ? ss : 2 * c->mss;
}

/* The reduction was spurious (tcp_rack.c restored cwnd and ssthresh):
 * the curve starts again from the restored window. */
void tcp_cc_undo(struct tcp_conn *c)
{
	if (c->bbr != NULL) {
		tcp_bbr_undo(c);
		return;
	}
	if (c->cc_wmax < c->cc_prior)
		c->cc_wmax = c->cc_prior;
	c->cc_epoch = 0;
}
