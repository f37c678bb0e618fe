/*
 * tcp_bbr.c - BBR congestion control (v1) and delivery-rate sampling.
 *
 * SYNOPSIS
 *	Private to tcp/; see tcp_stack_int.h. Only connections of a stack
 *	configured with TCP_CC_BBR have a struct tcp_bbr (c->bbr).
 *
 *	tcp_bbr_init(c)			a new connection: STARTUP
 *	tcp_bbr_sent(c, slot, now)	a segment (re)transmitted, before snd_max moves
 *	tcp_bbr_delivered(c, slot, len, cum, now)  acknowledged or SACKed, first time
 *	tcp_bbr_dsack(c, len, now)	the peer got @len bytes twice (D-SACK)
 *	tcp_bbr_ack(c, now)		after each ACK: sample, model, cwnd, pacing
 *	tcp_bbr_app_limited(c, rwnd)	output found nothing more to send, or
 *					the peer's window held it back
 *	tcp_bbr_congestion(c)		a loss episode begins (recovery, timeout)
 *	tcp_bbr_undo(c)			it was spurious
 *	tcp_bbr_info(c, i)		the model, for diagnostics
 *
 * DESCRIPTION
 *	A loss-based controller reads every loss as congestion: on a path
 *	that drops a few percent at random (a radio link, a policer, the
 *	lab's WAN emulator) its window never grows. BBR instead keeps a model
 *	of the path, the bottleneck bandwidth (the largest delivery rate seen
 *	over the last ten round trips) and the round-trip propagation time
 *	(the least RTT seen over ten seconds), sends at a pacing rate of gain
 *	x bandwidth and keeps at most gain x BDP in flight. Losses change
 *	neither the model nor, in fast recovery, the window (unlike BBR v1,
 *	no packet conservation: see tcp_bbr_congestion()); after a timeout
 *	the window before it comes back once the resend has caught up. After
 *	draft-cardwell-iccrg-bbr-congestion-control-00 (BBR v1):
 *
 *	STARTUP	  pacing and window gain 2/ln 2 until the bandwidth stops
 *		  growing by a quarter for three rounds (samples taken while
 *		  the sender had nothing to send do not count);
 *	DRAIN	  pacing gain ln 2 / 2 until the flight is down to one BDP;
 *	PROBE_BW  a cycle of eight phases of one min RTT each, pacing gain
 *		  5/4 (probe for more), 3/4 (drain what that queued), then
 *		  1; window gain 2;
 *	PROBE_RTT when the min RTT is ten seconds old: four segments for
 *		  200 ms and a round trip, so that the queue empties and the
 *		  propagation time can be measured again.
 *
 *	Delivery rates after draft-cheng-iccrg-delivery-rate-estimation:
 *	each transmission records the connection's delivered count, when it
 *	last grew and when the flight's first segment was sent; an ACK's
 *	sample is bytes delivered since the most recently sent segment it
 *	covers was sent, over the longer of its send and ACK intervals
 *	(never shorter than the min RTT: ACK compression would inflate it).
 *	Samples taken while the application (or the send buffer) left the
 *	window unused are marked app-limited: they may raise the bandwidth
 *	estimate but never lower it.
 *
 *	Pacing itself is in tcp_output.c (c->pace_cpb, pace_next); this file
 *	sets the rate. Fixed point throughout: bandwidth in bytes per
 *	sq_xmit unit << TCP_BW_SHIFT, gains in BBR_UNIT; one division per
 *	ACK for the sample and one when the pacing rate changes, none per
 *	segment.
 */
#include <string.h>

#include "tcp/tcp_stack_int.h"

#define BBR_UNIT	 256
#define BBR_HIGH_GAIN	 (BBR_UNIT * 2885 / 1000 + 1) /* 2 / ln 2 */
#define BBR_DRAIN_GAIN	 (BBR_UNIT * 1000 / 2885)     /* its inverse */
#define BBR_CWND_GAIN	 (BBR_UNIT * 2)
#define BBR_CYCLE	 8
#define BBR_MIN_SEGS	 4   /* the least window, and PROBE_RTT's */
#define BBR_RTPROP_S	 10  /* the min RTT filter's window */
#define BBR_PROBE_RTT_MS 200 /* time spent at BBR_MIN_SEGS */
#define BBR_FULL_BW_PCT	 125 /* growth that says STARTUP has not filled the pipe */
#define BBR_FULL_BW_RNDS 3
#define BBR_PACE_PCT	 99 /* pace a little below the estimate, as Linux does */
#define BBR_QUANTUM_MAX	 65536
#define BBR_CWND_MAX	 (UINT32_MAX / 2)
#define BBR_RTPROP_UNSET UINT32_MAX

/* Bandwidth samples stop at 64 KiB per sq_xmit unit (tens of GB/s), so
 * that gain x bandwidth and the pacing arithmetic stay within 64 bits
 * whatever a peer's ACKs make of the samples. */
#define BBR_BW_MAX (1ULL << (16 + TCP_BW_SHIFT))
/* The slowest pacing: cycles per byte << 16 at most 2^40, so length x
 * pace_cpb fits 64 bits for any segment. */
#define BBR_CPB_MAX (1ULL << 40)

enum bbr_mode { BBR_STARTUP, BBR_DRAIN, BBR_PROBE_BW, BBR_PROBE_RTT };

static const uint32_t cycle_gain[BBR_CYCLE] = {
    BBR_UNIT * 5 / 4, BBR_UNIT * 3 / 4, BBR_UNIT, BBR_UNIT, BBR_UNIT, BBR_UNIT, BBR_UNIT, BBR_UNIT,
};

/* sq_xmit units in a millisecond (about 1000). */
static uint64_t units_per_ms(const struct tcp_stack *stk)
{
	uint64_t u = (stk->hz >> stk->xmit_shift) / 1000;

	return u > 0 ? u : 1;
}

/*
 * The least RTT the model goes by: BBR's own min RTT (from cumulatively
 * acknowledged segments), else, until one has come, the connection's
 * (RACK's, from SACKed segments too), else the handshake's, as Linux's
 * BBR starts from tcp_min_rtt(). Without one a lossy start, whose
 * cumulative ACKs all cover resends or segments already SACKed, took
 * rate samples over any interval: spurious resends answered a
 * millisecond later by their originals' SACKs read as 100 MB/s.
 */
static uint32_t bbr_min_rtt(const struct tcp_conn *c)
{
	const struct tcp_bbr *b = c->bbr;
	uint32_t rtt = b->hs_rtt != 0 ? b->hs_rtt : BBR_RTPROP_UNSET;

	if (b->rtprop != BBR_RTPROP_UNSET)
		return b->rtprop;
	return c->min_rtt != 0 && c->min_rtt < rtt ? c->min_rtt : rtt;
}

/*
 * The pacing rate, in TCP_BW_SHIFT units; 0 stops pacing. Output may send
 * a quantum at once after a pause: a millisecond's worth at the rate (the
 * timer wheel's tick, so a timer that fires a tick late loses nothing),
 * at least two segments and at most 64 KiB.
 */
static uint64_t bw_bytes(uint64_t bw, uint64_t t);

static void pace_set(struct tcp_conn *c, uint64_t rate)
{
	const struct tcp_stack *stk = c->stk;
	unsigned __int128 cpb;
	uint64_t quantum;

	c->bbr->pacing_rate = rate;
	if (rate == 0) {
		c->pace_cpb = 0;
		return;
	}
	cpb = ((unsigned __int128)1 << (stk->xmit_shift + 16 + TCP_BW_SHIFT)) / rate;
	c->pace_cpb = cpb > BBR_CPB_MAX ? BBR_CPB_MAX : cpb == 0 ? 1 : (uint64_t)cpb;
	quantum = bw_bytes(rate, units_per_ms(stk));
	if (quantum > BBR_QUANTUM_MAX)
		quantum = BBR_QUANTUM_MAX;
	if (quantum < 2 * (uint64_t)c->mss)
		quantum = 2 * (uint64_t)c->mss;
	c->pace_credit = ((quantum - c->mss) * c->pace_cpb) >> 16;
}

void tcp_bbr_init(struct tcp_conn *c)
{
	struct tcp_bbr *b = c->bbr;

	memset(b, 0, sizeof(*b));
	b->mode = BBR_STARTUP;
	b->pacing_gain = b->cwnd_gain = BBR_HIGH_GAIN;
	b->rtprop = BBR_RTPROP_UNSET;
	b->rs_rtt = UINT32_MAX;
	c->pace_cpb = 0;
}

void tcp_bbr_sent(struct tcp_conn *c, uint32_t slot, uint64_t now)
{
	struct tcp_bbr *b = c->bbr;
	struct tcp_rs_ent *rs = tcp_rs_ent(c->stk, c->sq[slot]);
	uint32_t x = tcp_xmit_now(c->stk, now);

	/* Nothing in flight: intervals start now, not at the last ACK. */
	if (c->snd_una == c->snd_max)
		b->first_sent_time = b->delivered_time = x;
	rs->delivered = b->delivered;
	rs->dlv_time = b->delivered_time;
	rs->first_sent = b->first_sent_time;
	rs->app_limited = b->app_limited_on;
	/* Before any bandwidth sample: STARTUP's gain over the handshake's
	 * RTT, so that the first flight is paced too. */
	if (b->pacing_rate == 0 && c->srtt != 0) {
		uint64_t srtt = c->srtt >> c->stk->xmit_shift;

		uint64_t bw = ((uint64_t)c->cwnd << TCP_BW_SHIFT) / (srtt > 0 ? srtt : 1);

		/* The handshake's RTT, the only sample yet: bbr_min_rtt(). */
		if (b->hs_rtt == 0)
			b->hs_rtt = srtt == 0		      ? 1
				    : srtt < BBR_RTPROP_UNSET ? (uint32_t)srtt
							      : BBR_RTPROP_UNSET - 1;

		pace_set(c, (bw < BBR_BW_MAX ? bw : BBR_BW_MAX) * BBR_HIGH_GAIN / BBR_UNIT);
	}
}

void tcp_bbr_delivered(struct tcp_conn *c, uint32_t slot, uint32_t len, bool cum, uint64_t now)
{
	struct tcp_bbr *b = c->bbr;
	const struct tcp_rs_ent *rs = tcp_rs_ent(c->stk, c->sq[slot]);
	uint32_t x = tcp_xmit_now(c->stk, now), sent = c->sq_xmit[slot];

	b->delivered += len;
	b->delivered_time = x;
	/* Delivered sooner after its resend than any round trip could be:
	 * the ACK is the original's (it was late, not lost), and the slot's
	 * stamps are the resend's. As the sample's reference it would start
	 * a new round of the bandwidth filter on every such ACK, with no
	 * sample (the interval is below the min RTT): a burst of them, after
	 * a spurious timeout or reordering taken for loss, emptied the
	 * filter's ten rounds in a few milliseconds. */
	if (sq_bit(c->sq_retx, slot)) {
		uint32_t min_rtt = bbr_min_rtt(c);

		if (min_rtt != BBR_RTPROP_UNSET && x - sent < min_rtt)
			return;
	}
	/* The sample follows the most recently sent segment delivered. */
	if (!b->rs_on || (int32_t)(rs->delivered - b->rs_prior_delivered) >= 0) {
		b->rs_on = true;
		b->rs_prior_delivered = rs->delivered;
		b->rs_prior_time = rs->dlv_time;
		b->rs_app_limited = rs->app_limited;
		b->rs_send_elapsed = sent - rs->first_sent;
		b->first_sent_time = sent;
	}
	/* A retransmission's ACK may be the original's: no RTT from it. Nor
	 * from a SACKed segment (@cum false): one that overtook others on a
	 * reordering path (the lab's emulator lets it skip the delay line)
	 * measures the reordering, and a min RTT far below the path's
	 * would shrink the window to a few segments. */
	if (cum && !sq_bit(c->sq_retx, slot) && x - sent < b->rs_rtt)
		b->rs_rtt = x - sent;
}

/*
 * The peer reports @len bytes received twice (D-SACK): a resend that was
 * not needed, or a frame the network duplicated, went over the path and
 * was delivered, and counts in the delivery rate as Linux counts it. Not
 * counting it, every spurious resend (at 5% loss and 1% reordering, a
 * third of them on the lab's path) was sending time with nothing
 * delivered for it: rate samples came in below the pacing rate, and the
 * estimate, which on a path without a bottleneck is what it measures,
 * fell round after round. At most one segment per segment resent, as
 * Linux's tcp_dsack_seen(): a peer cannot make up deliveries.
 */
void tcp_bbr_dsack(struct tcp_conn *c, uint32_t len, uint64_t now)
{
	struct tcp_bbr *b = c->bbr;
	uint32_t segs = len / c->mss + (len % c->mss != 0);

	if (len > c->max_snd_wnd || (uint64_t)b->dsack_segs + segs > c->retransmits)
		return;
	b->dsack_segs += segs;
	b->delivered += len;
	b->delivered_time = tcp_xmit_now(c->stk, now);
}

/*
 * Output stopped with room in the window: nothing more to send, or
 * (@rwnd) the peer's window held back what there was. Either way the
 * path was not what limited the delivery rate until what is in flight
 * now is delivered: its samples may raise the estimate but not lower
 * it, and STARTUP does not take their rounds for a full pipe. A Linux
 * receiver opens its window as its application reads, from some 55
 * segments: dmta's STARTUP through the lab's loss took the first
 * rounds' plateau at that window (0.6-1.4 MB/s) for the path's rate and
 * kept it, the window at 900 segments a second later.
 */
void tcp_bbr_app_limited(struct tcp_conn *c, bool rwnd)
{
	struct tcp_bbr *b = c->bbr;
	uint32_t flight = c->snd_max - c->snd_una;

	if (!rwnd && (c->sq_next < c->sq_count || c->in_recovery || flight >= c->cwnd))
		return;
	b->app_limited = b->delivered + flight;
	b->app_limited_on = true;
}

/* Bytes in flight; SACKed bytes are counted (cheap, and errs high). */
static uint32_t bbr_flight(const struct tcp_conn *c)
{
	return c->snd_max - c->snd_una;
}

/* Bytes at @bw (TCP_BW_SHIFT units) over @t sq_xmit units, saturating. */
static uint64_t bw_bytes(uint64_t bw, uint64_t t)
{
	unsigned __int128 b = ((unsigned __int128)bw * t) >> TCP_BW_SHIFT;

	return b > UINT32_MAX ? UINT32_MAX : (uint64_t)b;
}

/* @gain x the estimated BDP, bytes; ten segments before any estimate. */
static uint64_t bbr_bdp(const struct tcp_conn *c, uint32_t gain)
{
	const struct tcp_bbr *b = c->bbr;

	if (b->btl_bw == 0 || b->rtprop == BBR_RTPROP_UNSET)
		return (uint64_t)10 * c->mss * gain / BBR_UNIT;
	return bw_bytes(b->btl_bw, b->rtprop) * gain / BBR_UNIT;
}

static void bbr_enter_probe_bw(struct tcp_conn *c, uint32_t x)
{
	struct tcp_bbr *b = c->bbr;
	/* A random phase, never the draining one: connections that start
	 * together do not probe together. */
	uint8_t idx = (uint8_t)((c->ts_off ^ x) % (BBR_CYCLE - 1));

	b->mode = BBR_PROBE_BW;
	b->cwnd_gain = BBR_CWND_GAIN;
	b->cycle_idx = idx == 1 ? BBR_CYCLE - 1 : idx;
	b->pacing_gain = cycle_gain[b->cycle_idx];
	b->cycle_stamp = x;
}

static void bbr_enter_startup(struct tcp_bbr *b)
{
	b->mode = BBR_STARTUP;
	b->pacing_gain = b->cwnd_gain = BBR_HIGH_GAIN;
}

/* The window before a loss episode or PROBE_RTT, for when it ends. */
static void bbr_save_cwnd(struct tcp_conn *c)
{
	struct tcp_bbr *b = c->bbr;

	if (b->loss || b->mode == BBR_PROBE_RTT)
		b->prior_cwnd = b->prior_cwnd > c->cwnd ? b->prior_cwnd : c->cwnd;
	else
		b->prior_cwnd = c->cwnd;
}

/* The sample of this ACK, the round count and the two filters. */
static void bbr_update_model(struct tcp_conn *c, uint32_t x, bool *rtprop_expired)
{
	struct tcp_bbr *b = c->bbr;
	uint64_t bw = 0;

	*rtprop_expired = b->rtprop != BBR_RTPROP_UNSET &&
			  x - b->rtprop_stamp > BBR_RTPROP_S * 1000 * units_per_ms(c->stk);
	if (b->rs_rtt != UINT32_MAX &&
	    (b->rs_rtt <= b->rtprop || b->rtprop == BBR_RTPROP_UNSET || *rtprop_expired)) {
		b->rtprop = b->rs_rtt > 0 ? b->rs_rtt : 1;
		b->rtprop_stamp = x;
	}
	b->round_start = false;
	if (!b->rs_on)
		return;
	if (b->app_limited_on && (int32_t)(b->delivered - b->app_limited) > 0)
		b->app_limited_on = false;
	if ((int32_t)(b->rs_prior_delivered - b->next_round_delivered) >= 0) {
		b->next_round_delivered = b->delivered;
		b->round_count++;
		b->round_start = true;
		b->bw_round[b->round_count % TCP_BBR_BW_ROUNDS] = 0;
	}
	{
		uint32_t ack_elapsed = b->delivered_time - b->rs_prior_time;
		uint32_t interval =
		    b->rs_send_elapsed > ack_elapsed ? b->rs_send_elapsed : ack_elapsed;
		uint32_t dlv = b->delivered - b->rs_prior_delivered;

		uint32_t min_rtt = bbr_min_rtt(c);

		if (interval > 0 && dlv > 0 && (min_rtt == BBR_RTPROP_UNSET || interval >= min_rtt))
			bw = ((uint64_t)dlv << TCP_BW_SHIFT) / interval;
		if (bw > BBR_BW_MAX)
			bw = BBR_BW_MAX;
	}
	if (bw > 0 && (bw >= b->btl_bw || !b->rs_app_limited)) {
		uint64_t *r = &b->bw_round[b->round_count % TCP_BBR_BW_ROUNDS];

		if (bw > *r)
			*r = bw;
	}
	b->btl_bw = 0;
	for (int i = 0; i < TCP_BBR_BW_ROUNDS; i++)
		if (b->bw_round[i] > b->btl_bw)
			b->btl_bw = b->bw_round[i];
	/* STARTUP is over once three rounds in a row failed to grow it by a
	 * quarter (rounds where the sender held back tell nothing). */
	if (!b->filled_pipe && b->round_start && !b->rs_app_limited) {
		if (b->btl_bw * 100 >= b->full_bw * BBR_FULL_BW_PCT) {
			b->full_bw = b->btl_bw;
			b->full_bw_count = 0;
		} else if (++b->full_bw_count >= BBR_FULL_BW_RNDS) {
			b->filled_pipe = true;
		}
	}
}

static void bbr_update_mode(struct tcp_conn *c, uint32_t x, bool rtprop_expired)
{
	struct tcp_bbr *b = c->bbr;
	uint32_t flight = bbr_flight(c);

	if (b->mode == BBR_STARTUP && b->filled_pipe) {
		b->mode = BBR_DRAIN;
		b->pacing_gain = BBR_DRAIN_GAIN;
		b->cwnd_gain = BBR_HIGH_GAIN;
	}
	if (b->mode == BBR_DRAIN && flight <= bbr_bdp(c, BBR_UNIT))
		bbr_enter_probe_bw(c, x);
	if (b->mode == BBR_PROBE_BW) {
		bool full = x - b->cycle_stamp > b->rtprop;
		bool next = b->pacing_gain == BBR_UNIT ? full
			    : b->pacing_gain > BBR_UNIT
				? full && flight >= bbr_bdp(c, b->pacing_gain)
				: full || flight <= bbr_bdp(c, BBR_UNIT);

		if (next) {
			b->cycle_idx = (uint8_t)((b->cycle_idx + 1) % BBR_CYCLE);
			b->pacing_gain = cycle_gain[b->cycle_idx];
			b->cycle_stamp = x;
		}
	}
	if (b->mode != BBR_PROBE_RTT && rtprop_expired) {
		bbr_save_cwnd(c);
		b->mode = BBR_PROBE_RTT;
		b->pacing_gain = b->cwnd_gain = BBR_UNIT;
		b->probe_rtt_done = 0;
	}
	if (b->mode == BBR_PROBE_RTT) {
		if (b->probe_rtt_done == 0) {
			if (flight <= BBR_MIN_SEGS * c->mss) {
				b->probe_rtt_done =
				    (x + (uint32_t)(BBR_PROBE_RTT_MS * units_per_ms(c->stk))) | 1;
				b->probe_rtt_round_done = false;
				b->next_round_delivered = b->delivered;
			}
		} else {
			if (b->round_start)
				b->probe_rtt_round_done = true;
			if (b->probe_rtt_round_done && (int32_t)(x - b->probe_rtt_done) >= 0) {
				b->rtprop_stamp = x;
				if (c->cwnd < b->prior_cwnd)
					c->cwnd = b->prior_cwnd;
				if (b->filled_pipe)
					bbr_enter_probe_bw(c, x);
				else
					bbr_enter_startup(b);
			}
		}
	}
}

/*
 * ACK aggregation (Linux's BBR since 4.20, and the later drafts): on a
 * path whose delays come in clumps (jitter that never reorders, delayed
 * and stretched ACKs, a Wi-Fi hop) bytes are acknowledged in bursts, and
 * a window of gain x BDP, with the min RTT far below the usual one, stalls
 * the sender between bursts. The excess delivered since an epoch began
 * over what the bandwidth explains is how much more must be in flight to
 * keep sending through a clump; its largest over five to ten rounds is
 * added to the window once STARTUP is over (at most 100 ms of bandwidth).
 */
#define BBR_EXTRA_ROUNDS 5
#define BBR_EXTRA_MAX_MS 100
#define BBR_EPOCH_RESET	 (1u << 20) /* bytes: start a new epoch past this */

static void bbr_update_ack_aggregation(struct tcp_conn *c, uint32_t x, uint32_t acked)
{
	struct tcp_bbr *b = c->bbr;
	uint64_t expected;
	uint32_t extra;

	if (acked == 0 || b->btl_bw == 0)
		return;
	if (b->round_start && ++b->extra_rounds >= BBR_EXTRA_ROUNDS) {
		b->extra_rounds = 0;
		b->extra_idx ^= 1;
		b->extra_acked[b->extra_idx] = 0;
	}
	expected = bw_bytes(b->btl_bw, x - b->ack_epoch);
	if (b->ack_epoch_acked <= expected || b->ack_epoch_acked + acked >= BBR_EPOCH_RESET) {
		b->ack_epoch_acked = 0;
		b->ack_epoch = x;
		expected = 0;
	}
	b->ack_epoch_acked += acked;
	extra = b->ack_epoch_acked -
		(uint32_t)(expected < b->ack_epoch_acked ? expected : b->ack_epoch_acked);
	if (extra > c->cwnd)
		extra = c->cwnd;
	if (extra > b->extra_acked[b->extra_idx])
		b->extra_acked[b->extra_idx] = extra;
}

static uint64_t bbr_aggregation_cwnd(const struct tcp_conn *c)
{
	const struct tcp_bbr *b = c->bbr;
	uint64_t extra =
	    b->extra_acked[0] > b->extra_acked[1] ? b->extra_acked[0] : b->extra_acked[1];
	uint64_t max = bw_bytes(b->btl_bw, BBR_EXTRA_MAX_MS * units_per_ms(c->stk));

	if (!b->filled_pipe)
		return 0;
	return extra < max ? extra : max;
}

static void bbr_set_cwnd(struct tcp_conn *c, uint32_t acked)
{
	struct tcp_bbr *b = c->bbr;
	uint64_t target = bbr_bdp(c, b->cwnd_gain) + bbr_aggregation_cwnd(c) + 3 * (uint64_t)c->mss;
	uint64_t cwnd = c->cwnd;

	/* The loss episode is over (recovery or the timeout's resend
	 * reached what was outstanding): the window before it comes back. */
	if (b->loss && !c->in_recovery && SEQ_GEQ(c->snd_una, c->recover)) {
		b->loss = false;
		if (cwnd < b->prior_cwnd)
			cwnd = b->prior_cwnd;
	}
	if (b->filled_pipe) {
		cwnd = cwnd + acked < target ? cwnd + acked : target;
	} else if (cwnd < target) {
		cwnd += acked;
	}
	if (cwnd < BBR_MIN_SEGS * (uint64_t)c->mss)
		cwnd = BBR_MIN_SEGS * (uint64_t)c->mss;
	if (b->mode == BBR_PROBE_RTT && cwnd > BBR_MIN_SEGS * (uint64_t)c->mss)
		cwnd = BBR_MIN_SEGS * (uint64_t)c->mss;
	c->cwnd = cwnd < BBR_CWND_MAX ? (uint32_t)cwnd : BBR_CWND_MAX;
}

void tcp_bbr_ack(struct tcp_conn *c, uint64_t now)
{
	struct tcp_bbr *b = c->bbr;
	uint32_t x = tcp_xmit_now(c->stk, now), acked = b->delivered - b->ack_delivered;
	bool expired;

	bbr_update_model(c, x, &expired);
	bbr_update_ack_aggregation(c, x, acked);
	bbr_update_mode(c, x, expired);
	bbr_set_cwnd(c, acked);
	if (b->btl_bw > 0) {
		uint64_t rate = b->btl_bw * b->pacing_gain / BBR_UNIT * BBR_PACE_PCT / 100;

		/* In STARTUP the rate only goes up: early samples are low. */
		if (rate != b->pacing_rate && (b->filled_pipe || rate > b->pacing_rate))
			pace_set(c, rate);
	}
	b->rs_on = false;
	b->rs_rtt = UINT32_MAX;
	b->ack_delivered = b->delivered;
}

/*
 * A loss episode begins: fast recovery (the caller then sets cwnd to
 * ssthresh) or a timeout (cwnd to one segment). The model stays, and in
 * recovery so does the window: pacing at the estimate is what holds the
 * flight to the path's rate, and the window (gain x BDP) bounds it. BBR
 * v1's packet conservation, the window held at what was still in the
 * network for the recovery's first round trip, read every loss as a
 * queue overflowing: on the lab's path, which loses 5% at random and
 * whose RTT runs at three times its min RTT, a recovery began every
 * other round trip, each cut the window below what pacing at the
 * estimate needs in flight, and PROBE_BW's probes, cut short, never
 * raised the estimate (1.1 MB/s for a whole 5 s transfer). A queue that
 * does overflow still shows in the delivery rate, which the estimate
 * follows within ten round trips. The window is saved for a timeout,
 * which restarts from one segment.
 */
void tcp_bbr_congestion(struct tcp_conn *c)
{
	struct tcp_bbr *b = c->bbr;

	bbr_save_cwnd(c);
	b->loss = true;
	c->ssthresh = c->cwnd > BBR_MIN_SEGS * c->mss ? c->cwnd : BBR_MIN_SEGS * c->mss;
}

/* The loss episode was spurious (tcp_rack.c's undo): it ends, and the
 * window before it comes back. */
void tcp_bbr_undo(struct tcp_conn *c)
{
	struct tcp_bbr *b = c->bbr;

	b->loss = false;
	if (c->cwnd < b->prior_cwnd)
		c->cwnd = b->prior_cwnd;
}

/* Bytes per second from TCP_BW_SHIFT units (bytes per sq_xmit unit). */
static uint64_t bw_per_s(const struct tcp_stack *stk, uint64_t bw)
{
	return (uint64_t)(((unsigned __int128)bw * (stk->hz >> stk->xmit_shift)) >> TCP_BW_SHIFT);
}

void tcp_bbr_info(const struct tcp_conn *c, struct tcp_conn_info *i)
{
	const struct tcp_bbr *b = c->bbr;
	const struct tcp_stack *stk = c->stk;

	i->bbr = true;
	i->bbr_mode = b->mode;
	i->pacing_gain = (uint16_t)b->pacing_gain;
	i->bw = bw_per_s(stk, b->btl_bw);
	i->pacing = bw_per_s(stk, b->pacing_rate);
	i->min_rtt_us =
	    b->rtprop == BBR_RTPROP_UNSET
		? UINT32_MAX
		: (uint32_t)((uint64_t)b->rtprop * 1000000 / (stk->hz >> stk->xmit_shift));
	i->extra_acked =
	    b->extra_acked[0] > b->extra_acked[1] ? b->extra_acked[0] : b->extra_acked[1];
}
