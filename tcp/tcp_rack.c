/*
 * tcp_rack.c - loss detection by time (RACK-TLP, RFC 8985), D-SACK (RFC
 *	2883) and the undoing of spurious retransmissions.
 *
 * SYNOPSIS
 *	Private to tcp/; see tcp_stack_int.h. Only with SACK.
 *
 * DESCRIPTION
 *	Every transmission of a send-queue segment notes its time
 *	(tcp_rack_sent()). When the peer acknowledges or SACKs a segment
 *	(tcp_rack_delivered()), RACK remembers the latest-sent segment known
 *	delivered and the round trip it took; tcp_rack_detect() then marks
 *	lost every segment still out that was sent earlier and should have
 *	arrived by now, allowing a reordering window: min_rtt / 4 (or, if
 *	more, how much later than RACK's RTT segments overtaken by later ones
 *	have come, or originals given up for lost), or none until reordering
 *	has been seen and while DupThresh segments are SACKed or in recovery.
 *	Once reordering has been seen, RACK alone finds losses (no DupThresh
 *	count: tcp_output.c's sack_send_holes()). Unlike counting duplicate
 *	ACKs, this finds a loss among the last segments of a flight, with a
 *	small window, and
 *	a retransmission that was lost again, all of which otherwise cost a
 *	retransmission timeout and a restart from one segment. What is not
 *	yet due arms the reorder timer (t_retry with CF_ER_WAIT).
 *
 *	Tail loss probes (RFC 8985 7): with data in flight and no loss
 *	detected, the retransmission timer first fires after a probe timeout
 *	(2 SRTT, plus the peer's delayed-ACK allowance when one segment is
 *	out): one segment is sent (new data, else the last segment again),
 *	so that its ACK (with SACK) lets RACK see a lost tail at once. Then
 *	the real RTO is armed.
 *
 *	D-SACK and undo (RFC 2883, RFC 3708 in spirit, as Linux's
 *	tcp_try_undo_*): entering recovery or a timeout records cwnd and
 *	ssthresh. If the peer reports (D-SACK) every retransmission of the
 *	episode as a duplicate, or the first ACK past the episode echoes a
 *	timestamp older than its first retransmission (Eifel, RFC 3522), the
 *	retransmissions were spurious: cwnd and ssthresh are restored and
 *	reordering is taken as seen.
 */
#include <string.h>

#include <rte_mbuf.h>

#include "tcp/tcp_stack_int.h"

/* The worst case of a peer's delayed ACK (RFC 8985 7.2's WCDelAckT). */
#define TLP_DELACK_MS 200

uint32_t tcp_xmit_now(const struct tcp_stack *stk, uint64_t now)
{
	return (uint32_t)(now >> stk->xmit_shift);
}

static uint64_t xmit_to_tsc(const struct tcp_stack *stk, uint32_t t)
{
	return (uint64_t)t << stk->xmit_shift;
}

void tcp_rack_sent(struct tcp_conn *c, uint32_t slot, uint64_t now, bool rtx)
{
	if (c->bbr != NULL)
		tcp_bbr_sent(c, slot, now);
	c->sq_xmit[slot] = tcp_xmit_now(c->stk, now);
	if (rtx) {
		sq_bit_set(c->sq_retx, slot);
		c->undo_retrans++;
		if (!c->undo_ts && c->ts_on) {
			c->undo_ts = true;
			c->undo_tsval = tcp_ts_now(c, now);
		}
	}
	sq_bit_clear(c->sq_lost, slot);
}

/*
 * A segment overtaken by a later one arrived @rtt after it was sent. RACK
 * would have waited for it only RACK.rtt (the overtaking segment's round
 * trip) plus the reordering window; what it came later than RACK.rtt is
 * the window this path needs (RFC 8985 6.2 lets the window follow the
 * reordering observed). On the lab's path a reordered frame skips a 20 ms
 * delay line: it arrives 10 to 30 ms ahead of frames sent before it,
 * while min_rtt / 4 (its min RTT read from such frames too) is a few ms,
 * widened by a quarter of that per D-SACK round and narrowed again every
 * 16 recoveries: each reordered frame marked the last round trip's
 * segments lost, and sent them again. Seeing reordering again keeps the
 * window as D-SACKs do.
 */
static void reo_observe(struct tcp_conn *c, uint32_t rtt)
{
	if (!c->rack_valid || (int32_t)(rtt - c->rack_rtt) <= 0)
		return;
	if (rtt - c->rack_rtt > c->reo_extent)
		c->reo_extent = rtt - c->rack_rtt;
	c->reo_persist = TCP_REO_PERSIST;
}

/* RFC 8985 6.2 step 4. */
static uint32_t reo_wnd(const struct tcp_conn *c, uint32_t sacked)
{
	uint32_t w = (c->reo_mult + 1) * (c->min_rtt / 4), srtt = tcp_xmit_now(c->stk, c->srtt);

	if (!c->reord_seen && (c->in_recovery || sacked >= TCP_DUPACK_THRESH))
		return 0;
	if (c->reo_extent > w)
		w = c->reo_extent;
	return w < srtt || srtt == 0 ? w : srtt;
}

/*
 * A segment resent in recovery was delivered @since after its resend,
 * sooner than any round trip: the ACK is the original's, which RACK (or
 * DupThresh) had given up on. It came @since after the window that RACK
 * allowed it (none before reordering was seen, in recovery); the window
 * this path needs is at least that much wider. reo_observe() learns only
 * from overtaken segments never sent again, and a reordered frame that
 * overtook a flight sent at once all of it again: the window then grew by
 * min_rtt / 4 a round trip, a burst of needless resends each time.
 */
static void reo_late_original(struct tcp_conn *c, uint32_t since)
{
	uint32_t wnd = reo_wnd(c, 0) + since;

	c->reord_seen = true;
	if (wnd > c->reo_extent)
		c->reo_extent = wnd;
	c->reo_persist = TCP_REO_PERSIST;
}

/* RFC 8985 6.2 step 2: the segment at @slot, ending at @end, was delivered. */
void tcp_rack_delivered(struct tcp_conn *c, uint32_t slot, uint32_t end, uint64_t now)
{
	uint32_t t = c->sq_xmit[slot], rtt = tcp_xmit_now(c->stk, now) - t;

	/* Delivered below a segment SACKed before, never sent again: the
	 * network reorders (RFC 8985 6.2 step 3). */
	if (SEQ_LT(end, c->rack_fack) && !sq_bit(c->sq_retx, slot)) {
		c->reord_seen = true;
		reo_observe(c, rtt);
	}
	if (SEQ_GT(end, c->rack_fack))
		c->rack_fack = end;
	/* A retransmitted segment acknowledged sooner than a round trip after
	 * its retransmission: the original's ACK, ambiguous. (After a
	 * recovery probe, the ACK of the resend before it, which was late,
	 * not overtaken: the reordering window stays.) */
	if (sq_bit(c->sq_retx, slot) && c->min_rtt != 0 && rtt < c->min_rtt) {
		if (c->in_recovery && !(slot == c->sq_head && (c->flags & CF_RPROBE)))
			reo_late_original(c, rtt);
		return;
	}
	if (c->min_rtt == 0 || rtt < c->min_rtt)
		c->min_rtt = rtt == 0 ? 1 : rtt;
	if (!c->rack_valid || (int32_t)(t - c->rack_xmit) > 0 ||
	    (t == c->rack_xmit && SEQ_GT(end, c->rack_end))) {
		c->rack_valid = true;
		c->rack_xmit = t;
		c->rack_end = end;
		c->rack_rtt = rtt;
	}
}

/*
 * RFC 8985 6.2 step 5: mark lost what was sent before the latest delivered
 * segment and is overdue. Returns how many were newly marked; arms the
 * reorder timer for the earliest that is not due yet.
 */
uint32_t tcp_rack_detect(struct tcp_conn *c, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	uint32_t seq = c->snd_una, sacked = 0, marked = 0, nowx = tcp_xmit_now(stk, now), wnd;
	int32_t wait = -1;

	if (!c->sack_on || !c->rack_valid)
		return 0;
	for (uint32_t i = 0; i < c->sq_count && SEQ_LT(seq, c->snd_max); i++) {
		uint32_t slot = (c->sq_head + i) % TCP_SQ_SLOTS;

		sacked += sq_bit(c->sq_sacked, slot);
		seq += rte_pktmbuf_data_len(c->sq[slot]);
	}
	wnd = reo_wnd(c, sacked);
	seq = c->snd_una;
	for (uint32_t i = 0; i < c->sq_count && SEQ_LT(seq, c->snd_max); i++) {
		uint32_t slot = (c->sq_head + i) % TCP_SQ_SLOTS, t = c->sq_xmit[slot];
		uint32_t end = seq + rte_pktmbuf_data_len(c->sq[slot]);
		int32_t left;

		seq = end;
		if (sq_bit(c->sq_sacked, slot) || sq_bit(c->sq_lost, slot))
			continue;
		/* Only segments sent before the latest one delivered. */
		if (!((int32_t)(c->rack_xmit - t) > 0 ||
		      (t == c->rack_xmit && SEQ_LT(end, c->rack_end))))
			continue;
		left = (int32_t)(t + c->rack_rtt + wnd - nowx);
		if (left <= 0) {
			sq_bit_set(c->sq_lost, slot);
			sq_bit_clear(c->sq_rtx, slot); /* (again, if a retransmission was lost) */
			stk->stats.rack_lost++;
			marked++;
		} else if (wait < 0 || left < wait) {
			wait = left;
		}
	}
	if (wait >= 0) {
		c->flags |= CF_ER_WAIT;
		tcp_timer_arm(&stk->wheel, &c->t_retry, now + xmit_to_tsc(stk, (uint32_t)wait + 1));
	}
	if (marked > 0 && !c->in_recovery && SEQ_GEQ(c->snd_una, c->recover))
		tcp_enter_recovery(c, now);
	else if (marked > 0)
		tcp_output(c, now);
	return marked;
}

/* Before cwnd goes down (recovery, timeout): what an undo restores. */
void tcp_undo_mark(struct tcp_conn *c)
{
	c->prior_cwnd = c->cwnd;
	c->prior_ssthresh = c->ssthresh;
	c->undo_marker = c->snd_una;
	c->undo_retrans = 0;
	c->undo_ts = false;
	c->undo_on = true;
}

static void undo(struct tcp_conn *c)
{
	if (c->cwnd < c->prior_cwnd)
		c->cwnd = c->prior_cwnd;
	if (c->ssthresh < c->prior_ssthresh)
		c->ssthresh = c->prior_ssthresh;
	c->undo_on = false;
	c->reord_seen = true;
	tcp_cc_undo(c);
	c->stk->stats.undos++;
}

/* A D-SACK block [@l, @r) (RFC 2883): the peer got those bytes twice. */
void tcp_rack_dsack(struct tcp_conn *c, uint32_t l, uint32_t r)
{
	c->stk->stats.dsacks_rx++;
	c->reord_seen = true;
	/* RFC 8985 6.2 step 4: a round trip with D-SACKs widens the
	 * reordering window by min_rtt / 4 (up to SRTT); it narrows again
	 * after 16 recoveries without one. */
	if (!c->dsack_round_on || SEQ_GEQ(c->snd_una, c->dsack_round)) {
		c->dsack_round_on = true;
		c->dsack_round = c->snd_max;
		if (c->reo_mult < 63)
			c->reo_mult++;
		c->reo_persist = TCP_REO_PERSIST;
	}
	if (!c->undo_on || SEQ_LT(l, c->undo_marker) || SEQ_GT(r, c->snd_max))
		return;
	/* One D-SACK per retransmitted segment of the episode. */
	if (c->undo_retrans > 0 && --c->undo_retrans == 0)
		undo(c);
}

/* An ACK moved snd_una past the episode: was the first retransmission's
 * ACK in fact the original's (its echoed timestamp older)? */
void tcp_undo_eifel(struct tcp_conn *c, uint32_t tsecr)
{
	if (c->undo_on && c->undo_ts && tsecr != 0 && SEQ_LT(tsecr, c->undo_tsval) &&
	    SEQ_GT(c->snd_una, c->undo_marker))
		undo(c);
}

/*
 * RFC 8985 7.2: arm the retransmission timer as a probe timeout when a
 * probe may help: SACK on, established, not in recovery, no probe out,
 * an SRTT known. Returns true if armed.
 */
bool tcp_tlp_arm(struct tcp_conn *c, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	uint64_t pto;

	if (!c->sack_on || c->in_recovery || (c->flags & (CF_TLP_OUT | CF_PERSIST)) ||
	    c->srtt == 0 || c->nrtx > 0 ||
	    (c->state != TCP_ESTABLISHED && c->state != TCP_CLOSE_WAIT))
		return false;
	pto = 2 * c->srtt;
	if (c->snd_max - c->snd_una <= c->mss)
		pto += stk->hz * TLP_DELACK_MS / 1000;
	if (pto > c->rto)
		pto = c->rto; /* the probe goes instead of the first timeout */
	c->flags |= CF_TLP;
	tcp_timer_arm(&stk->wheel, &c->t_rtx, now + pto);
	return true;
}

/*
 * A probe in recovery. The first unacknowledged segment went again, and
 * nothing else is left to send: the send queue is all out (full of
 * SACKed segments at sndbuf, or the application has no more) and no
 * segment found lost waits for room. If that resend is lost too, RACK
 * cannot tell: no segment sent after it will be delivered to judge by,
 * and the retransmission timeout restarts from one segment. RFC 8985
 * sends no probe in recovery and Linux waits for its RTO (its sndbuf,
 * grown by autotuning, rarely runs out). Here the resend goes once more
 * 2 SRTT after it last left, as a tail loss probe would, window kept;
 * the real RTO follows. Over 30 seeds of the lab path's model
 * (test_lab_path_bbr) the sender's timeouts fell from 36 to 12; most had
 * found the queue so, 177 of its 182 segments SACKed.
 * Called at the end of tcp_output() in recovery, with @held true when a
 * lost segment is waiting for the window or the pacing timer.
 */
void tcp_rack_probe_arm(struct tcp_conn *c, uint64_t now, bool held)
{
	struct tcp_stack *stk = c->stk;
	uint32_t head = c->sq_head;
	uint64_t at, ago;

	if (held || !c->in_recovery || c->srtt == 0 || c->nrtx > 0 || c->sq_count == 0 ||
	    c->sq_next != c->sq_count || (c->flags & (CF_TLP | CF_TLP_OUT | CF_PERSIST)) ||
	    !sq_bit(c->sq_rtx, head) || sq_bit(c->sq_sacked, head) || sq_bits_any(c->sq_lost) ||
	    !tcp_timer_pending(&c->t_rtx))
		return;
	ago = xmit_to_tsc(stk, tcp_xmit_now(stk, now) - c->sq_xmit[head]);
	at = now - (ago < now ? ago : now) + 2 * c->srtt;
	if (at <= now)
		at = now + 1;
	if (at >= c->t_rtx.expire_tick * stk->wheel.tsc_per_tick)
		return;
	c->flags |= CF_TLP;
	tcp_timer_arm(&stk->wheel, &c->t_rtx, at);
}

/*
 * The probe timeout fired (RFC 8985 7.3): send new data if the windows
 * allow one segment, else the last segment sent again; then the real RTO.
 * In recovery (tcp_rack_probe_arm()), the first unacknowledged segment.
 */
void tcp_tlp_fire(struct tcp_conn *c, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	uint32_t before = c->snd_max;

	c->flags &= ~CF_TLP;
	c->flags |= CF_TLP_OUT;
	if (c->in_recovery) {
		stk->stats.recovery_probes++;
		c->flags |= CF_RPROBE;
		tcp_retransmit_head(c, now);
		tcp_arm_rtx(c, now);
		return;
	}
	stk->stats.tlp_probes++;
	if (c->sq_next < c->sq_count && c->snd_nxt == c->snd_max) {
		uint32_t cwnd = c->cwnd;

		/* One new segment whatever cwnd says (RFC 8985 7.3). */
		c->cwnd = c->snd_max - c->snd_una + c->mss;
		tcp_output(c, now);
		c->cwnd = cwnd;
	}
	if (c->snd_max == before && c->sq_next > 0 && c->snd_nxt == c->snd_max)
		tcp_retransmit_last(c, now);
	tcp_arm_rtx(c, now);
}
