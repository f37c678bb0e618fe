/*
 * tcp_input.c - segment arrival: validation, demultiplexing and the
 *	RFC 9293 state machine.
 *
 * SYNOPSIS
 *	Private to tcp/; registered as the netif's TCP handler by
 *	tcp_stack_create().
 *
 * DESCRIPTION
 *	The order of checks follows RFC 9293 3.10.7 ("SEGMENT ARRIVES"):
 *	PAWS (RFC 7323 5.3), sequence acceptability, RST (with RFC 5961's
 *	exact-match rule and challenge ACKs), SYN in a synchronized state
 *	(challenge ACK), ACK processing (RTT, congestion control, window
 *	update, FIN acknowledgement), data, FIN. Each step that drops a
 *	segment counts why.
 *
 *	In-order data is queued as the received mbuf itself, trimmed to the
 *	payload. Out-of-order data waits, trimmed against its neighbours, in
 *	a sorted queue inside the offered window, and every segment that
 *	leaves or fills a hole is ACKed at once (RFC 5681 4.2).
 */
#include <errno.h>
#include <string.h>

#include <netinet/in.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "core/base/dmta_log.h"
#include "tcp/tcp_cksum.h"
#include "tcp/tcp_stack_int.h"

static void rtt_sample(struct tcp_conn *c, uint64_t r)
{
	struct tcp_stack *stk = c->stk;
	uint64_t k;

	if (r == 0)
		r = 1;
	if (c->srtt == 0) {
		c->srtt = r;
		c->rttvar = r / 2;
	} else {
		uint64_t delta = c->srtt > r ? c->srtt - r : r - c->srtt;

		c->rttvar = (3 * c->rttvar + delta) / 4;
		c->srtt = (7 * c->srtt + r) / 8;
	}
	k = 4 * c->rttvar;
	if (k < stk->tsc_per_ts)
		k = stk->tsc_per_ts; /* G: the clock granularity */
	c->rto = c->srtt + k;
	if (c->rto < stk->rto_min)
		c->rto = stk->rto_min;
	if (c->rto > stk->rto_max)
		c->rto = stk->rto_max;
}

/* A peer MSS too small to carry our options and data (an MSS of 8 with
 * timestamps left nothing, and wrapped) is raised to TCP_MIN_MSS. */
static uint32_t mss_clamp(struct tcp_stack *stk, uint32_t peer)
{
	if (peer < TCP_MIN_MSS) {
		stk->stats.rx_mss_clamped++;
		peer = TCP_MIN_MSS;
	}
	return peer < stk->our_mss ? peer : stk->our_mss;
}

/* RFC 7323 3.2 and 4.3: only an echo of a timestamp we sent on this
 * connection is an RTT sample; one bogus echo would otherwise pin the RTO
 * at rto_max. */
static bool tsecr_valid(struct tcp_conn *c, const struct tcp_seg *s, uint64_t now)
{
	uint32_t tsecr = s->opts.tsecr;

	if (!s->opts.has_ts || tsecr == 0)
		return false;
	if (SEQ_GT(tsecr, tcp_ts_now(c, now)) || SEQ_LT(tsecr, c->ts_start)) {
		c->stk->stats.rx_bad_tsecr++;
		return false;
	}
	return true;
}

/* Effective MSS and initial congestion state, once the peer's SYN is known. */
static void conn_negotiated(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct tcp_stack *stk = c->stk;
	uint32_t peer = s->opts.has_mss ? s->opts.mss : TCP_DEFAULT_MSS;

	if (s->opts.has_wscale) {
		c->snd_ws = s->opts.wscale > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : s->opts.wscale;
		c->rcv_ws = stk->rcv_ws;
	} else {
		c->snd_ws = 0;
		c->rcv_ws = 0;
	}
	if (s->opts.has_ts) {
		c->ts_on = 1;
		c->ts_recent = s->opts.tsval;
	}
	c->sack_on = s->opts.has_sack_perm && !stk->conf.no_sack;
	c->mss = mss_clamp(stk, peer);
	if (c->ts_on)
		c->mss -= 12;
	/* RFC 6928 initial window; ssthresh starts "arbitrarily high". */
	c->cwnd = 10 * c->mss < 14600 ? 10 * c->mss : 14600;
	if (c->cwnd < 2 * c->mss)
		c->cwnd = 2 * c->mss;
	c->ssthresh = UINT32_MAX / 2;
	c->irs = s->seq;
	c->rcv_nxt = s->seq + 1;
	c->rcv_adv = c->rcv_nxt;
}

static void no_conn_reply(struct tcp_stack *stk, uint32_t laddr, uint32_t raddr,
			  const struct rte_tcp_hdr *th, const struct tcp_seg *s, uint64_t now)
{
	stk->stats.rx_no_conn++;
	if (s->flags & TH_RST)
		return;
	if (s->flags & TH_ACK)
		tcp_send_rst_for(stk, laddr, raddr, th->dst_port, th->src_port, s->ack, 0, TH_RST,
				 now);
	else
		tcp_send_rst_for(stk, laddr, raddr, th->dst_port, th->src_port, 0,
				 s->seq + s->len + !!(s->flags & TH_SYN) + !!(s->flags & TH_FIN),
				 TH_RST | TH_ACK, now);
}

static void listen_input(struct tcp_stack *stk, struct tcp_listener *l, uint32_t laddr,
			 uint32_t raddr, const struct rte_tcp_hdr *th, const struct tcp_seg *s,
			 uint64_t now)
{
	struct tcp_conn *c;

	if (s->flags & TH_RST)
		return;
	if (s->flags & TH_ACK) {
		no_conn_reply(stk, laddr, raddr, th, s, now);
		return;
	}
	if (!(s->flags & TH_SYN))
		return;
	c = tcp_conn_new(stk, laddr, raddr, th->dst_port, th->src_port, now);
	if (c == NULL) {
		stk->stats.syn_dropped++;
		return;
	}
	/* Nobody holds a handle until TCP_EV_ACCEPTED. */
	c->flags |= CF_PASSIVE | CF_USER_CLOSED;
	c->user = l->user;
	conn_negotiated(c, s);
	c->iss = tcp_isn(stk, c, now);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
	c->snd_max = c->snd_nxt;
	c->recover = c->iss;
	c->snd_wnd = s->wnd; /* never scaled on a SYN */
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = c->iss;
	c->state = TCP_SYN_RECEIVED;
	tcp_send_ctl(c, c->iss, TH_SYN, now);
	tcp_arm_rtx(c, now);
}

static void syn_sent_input(struct tcp_conn *c, struct tcp_seg *s, uint64_t now)
{
	struct tcp_stack *stk = c->stk;

	if ((s->flags & TH_ACK) && (SEQ_LEQ(s->ack, c->iss) || SEQ_GT(s->ack, c->snd_max))) {
		if (!(s->flags & TH_RST))
			tcp_send_rst_for(stk, c->laddr, c->raddr, c->lport, c->rport, s->ack, 0,
					 TH_RST, now);
		return;
	}
	if (s->flags & TH_RST) {
		if (s->flags & TH_ACK) {
			stk->stats.conn_refused++;
			tcp_conn_fail(c, ECONNREFUSED);
		}
		return;
	}
	if (!(s->flags & TH_SYN))
		return;
	conn_negotiated(c, s);
	c->recover = c->iss;
	if (c->ts_on && tsecr_valid(c, s, now))
		rtt_sample(c, (uint64_t)(tcp_ts_now(c, now) - s->opts.tsecr) * stk->tsc_per_ts);
	else if (c->nrtx > 0) /* RFC 6298 5.7: no sample after a lost SYN: 3 s */
		c->rto = stk->rto_init > 3 * stk->hz ? stk->rto_init : 3 * stk->hz;
	if (s->flags & TH_ACK) {
		c->snd_una = s->ack;
		c->snd_wnd = s->wnd;
		c->max_snd_wnd = c->snd_wnd;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		c->nrtx = 0;
		tcp_timer_cancel(&stk->wheel, &c->t_rtx);
		tcp_timer_cancel(&stk->wheel, &c->t_misc);
		c->state = TCP_ESTABLISHED;
		tcp_conn_event(c, TCP_EV_CONNECTED, 0);
		/* Data on a SYN-ACK is not queued: the peer sends it again. */
		c->flags |= CF_ACK_NOW;
		tcp_output(c, now);
		return;
	}
	/* Simultaneous open (RFC 9293 3.5, figure 7). */
	c->state = TCP_SYN_RECEIVED;
	c->snd_wnd = s->wnd;
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	tcp_send_ctl(c, c->iss, TH_SYN, now);
}

/*
 * RFC 2883: the next ACK reports [@l, @r), bytes received twice, as its
 * first SACK block, so that the sender can tell a spurious retransmission
 * (and undo what it cost: Linux, FreeBSD and tcp_rack.c do) and widen its
 * reordering window. Only the latest duplicate is reported.
 */
static void dsack_note(struct tcp_conn *c, uint32_t l, uint32_t r)
{
	if (!c->sack_on)
		return;
	c->dsack_l = l;
	c->dsack_r = r;
}

static bool seq_acceptable(const struct tcp_conn *c, const struct tcp_seg *s, uint32_t seglen)
{
	uint32_t wnd = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;

	if (wnd < tcp_rcv_window(c))
		wnd = tcp_rcv_window(c);
	if (seglen == 0)
		return wnd == 0 ? s->seq == c->rcv_nxt
				: SEQ_GEQ(s->seq, c->rcv_nxt) && SEQ_LT(s->seq, c->rcv_nxt + wnd);
	if (wnd == 0)
		return false;
	return (SEQ_GEQ(s->seq, c->rcv_nxt) && SEQ_LT(s->seq, c->rcv_nxt + wnd)) ||
	       (SEQ_GEQ(s->seq + seglen - 1, c->rcv_nxt) &&
		SEQ_LT(s->seq + seglen - 1, c->rcv_nxt + wnd));
}

/*
 * RFC 5961 7: ACKs sent for segments we refuse (challenges, out of window,
 * PAWS) are rate-limited, per connection (one per TCP_OOW_ACK_MS, as
 * Linux's tcp_oow_rate_limited) and, for challenge ACKs, per stack
 * (challenge_ack_limit a second): forged segments must not turn the
 * stack into an ACK generator, nor tell the forger by the rate what it
 * hit.
 */
bool tcp_oow_ack_allowed(struct tcp_conn *c, uint64_t now, bool challenge)
{
	struct tcp_stack *stk = c->stk;

	if (c->oow_ack_at != 0 && now - c->oow_ack_at < stk->hz * TCP_OOW_ACK_MS / 1000) {
		stk->stats.ack_rate_limited++;
		return false;
	}
	if (challenge) {
		if (now - stk->chal_second >= stk->hz) {
			stk->chal_second = now;
			stk->chal_count = 0;
		}
		if (stk->chal_count >= stk->chal_limit) {
			stk->stats.ack_rate_limited++;
			return false;
		}
		stk->chal_count++;
	}
	c->oow_ack_at = now;
	return true;
}

static void challenge_ack(struct tcp_conn *c, uint64_t now)
{
	if (!tcp_oow_ack_allowed(c, now, true))
		return;
	c->stk->stats.challenge_acks++;
	tcp_send_ctl(c, c->snd_nxt, TH_ACK, now);
}

/* RFC 7323 3.2: once timestamps are on, a segment without one (but a RST)
 * is dropped: it cannot be checked against PAWS, and a blind attacker need
 * not guess a timestamp then. */
static bool ts_missing(struct tcp_conn *c, const struct tcp_seg *s)
{
	if (!c->ts_on || s->opts.has_ts || (s->flags & TH_RST))
		return false;
	c->stk->stats.rx_no_ts++;
	return true;
}

/* RFC 5961 5.2: an ACK below SND.UNA - MAX.SND.WND acknowledges nothing we
 * could have sent lately; with data on it, it is most likely injected
 * blindly (an old ACK is what a blind attacker does not know). Refused
 * with a (rate-limited) challenge ACK. */
static bool ack_too_old(struct tcp_conn *c, const struct tcp_seg *s, uint64_t now)
{
	if (!SEQ_LT(s->ack, c->snd_una - c->max_snd_wnd))
		return false;
	c->stk->stats.rx_old_ack++;
	challenge_ack(c, now);
	return true;
}

/* Data after tcp_close() has nowhere to go: tell the peer with a RST (RFC
 * 9293 3.10.7.4, RFC 2525 2.17; Linux's TCPAbortOnData), rather than
 * buffer it for nobody. */
static bool data_after_close(struct tcp_conn *c, const struct tcp_seg *s, uint64_t now)
{
	if (!(c->flags & CF_USER_CLOSED) || s->len == 0 || SEQ_LEQ(s->seq + s->len, c->rcv_nxt) ||
	    (c->state != TCP_FIN_WAIT_1 && c->state != TCP_FIN_WAIT_2))
		return false;
	c->stk->stats.rst_data_after_close++;
	c->stk->stats.rst_tx++;
	tcp_send_ctl(c, c->snd_nxt, TH_RST | TH_ACK, now);
	c->error = ECONNABORTED;
	tcp_conn_set_closed(c);
	return true;
}

/*
 * The worker's budget for received data (rx_mbufs_max, all connections):
 * beyond it, out-of-order queues are pruned, oldest holder first (as
 * Linux's tcp_prune_queue gives up its ofo queue first), and in-order data
 * is taken only if that made room; out-of-order data never prunes. A few
 * hostile connections filling their reassembly queues can then no longer
 * drain the pool and stop every other connection's receive path.
 */
static bool rx_mem_ok(struct tcp_conn *c, bool in_order)
{
	struct tcp_stack *stk = c->stk;

	while (in_order && stk->stats.rx_mbufs >= stk->rx_mbufs_max &&
	       !TAILQ_EMPTY(&stk->ooo_conns))
		stk->stats.rx_pruned += tcp_ooo_purge(TAILQ_FIRST(&stk->ooo_conns));
	if (stk->stats.rx_mbufs < stk->rx_mbufs_max)
		return true;
	stk->stats.rx_mem_drop++;
	return false;
}

static void sq_drop_acked(struct tcp_conn *c, uint32_t bytes, uint64_t now)
{
	uint32_t seq = c->snd_una;

	while (bytes > 0 && c->sq_count > 0) {
		struct rte_mbuf *m = c->sq[c->sq_head];
		uint32_t len = rte_pktmbuf_data_len(m);

		if (len <= bytes) {
			seq += len;
			if (c->bbr != NULL && !sq_bit(c->sq_sacked, c->sq_head))
				tcp_bbr_delivered(c, c->sq_head, len, true, now);
			if (c->sack_on && !sq_bit(c->sq_sacked, c->sq_head))
				tcp_rack_delivered(c, c->sq_head, seq, now);
			sq_bit_clear(c->sq_sacked, c->sq_head);
			sq_bit_clear(c->sq_rtx, c->sq_head);
			sq_bit_clear(c->sq_lost, c->sq_head);
			sq_bit_clear(c->sq_retx, c->sq_head);
			rte_pktmbuf_free(m);
			c->sq_head = (c->sq_head + 1) % TCP_SQ_SLOTS;
			c->sq_count--;
			c->stk->stats.sq_mbufs--;
			if (c->sq_next > 0)
				c->sq_next--;
			c->sq_bytes -= len;
			bytes -= len;
		} else {
			rte_pktmbuf_adj(m, (uint16_t)bytes);
			c->sq_bytes -= bytes;
			bytes = 0;
		}
	}
}

static void new_ack(struct tcp_conn *c, const struct tcp_seg *s, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	uint32_t acked = s->ack - c->snd_una;
	bool fin_acked = (c->flags & CF_FIN_SENT) && SEQ_GT(s->ack, c->fin_seq);
	uint32_t data_acked = acked - (fin_acked ? 1 : 0);

	if (c->ts_on && tsecr_valid(c, s, now))
		rtt_sample(c, (uint64_t)(tcp_ts_now(c, now) - s->opts.tsecr) * stk->tsc_per_ts);
	else if (c->rtt_timing && SEQ_GT(s->ack, c->rtt_seq)) {
		c->rtt_timing = false;
		rtt_sample(c, now - c->rtt_start);
	}
	sq_drop_acked(c, data_acked, now);
	c->snd_una = s->ack;
	c->flags &= ~(CF_TLP_OUT | CF_RPROBE);
	if (c->ts_on && s->opts.has_ts)
		tcp_undo_eifel(c, s->opts.tsecr);
	if (SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	/* The cumulative ACK stops at data the peer SACKed: it has dropped it
	 * (reneged). Forget the blocks and send everything from here again. */
	if (c->sack_on && c->sq_count > 0 && sq_bit(c->sq_sacked, c->sq_head)) {
		tcp_sack_forget(c);
		c->snd_nxt = c->snd_una;
		c->sq_next = 0;
		/* As after a timeout (Linux treats reneging as one): a flight
		 * sent again whole is not sent at the old rate. */
		tcp_cc_congestion(c, now);
		c->cwnd = c->mss;
		c->in_recovery = false;
		c->recover = c->snd_max;
	}
	c->nrtx = 0;
	if (c->in_recovery) {
		if (SEQ_GEQ(s->ack, c->recover)) {
			/* Full ACK: leave recovery (RFC 6582 3.2 step 3). BBR
			 * sets its own window on this ACK (the one before the
			 * loss comes back, or stays if an undo brought it
			 * back already); flight + 1 MSS, meant to stop a
			 * loss-based sender's burst, would leave it at a few
			 * segments with nothing to restore it but its slow
			 * growth towards the target (Linux too leaves the
			 * window to a controller that sets it itself). */
			uint32_t flight = c->snd_max - c->snd_una;

			c->in_recovery = false;
			if (c->bbr == NULL)
				c->cwnd =
				    c->ssthresh < flight + c->mss ? c->ssthresh : flight + c->mss;
			if (c->reo_persist > 0 && --c->reo_persist == 0) {
				c->reo_mult = 0;
				c->reo_extent = 0;
			}
			c->dupacks = 0;
			memset(c->sq_rtx, 0, sizeof(c->sq_rtx));
		} else if (c->sack_on) {
			/* Partial ACK: the new first segment is lost too unless SACKed
			 * (RFC 6582's rule, which RFC 6675's count misses near the end
			 * of a flight, leaving it to a timeout); tcp_output() sends
			 * the other holes as pipe allows. */
			if (c->sq_count > 0 && !sq_bit(c->sq_sacked, c->sq_head) &&
			    !sq_bit(c->sq_rtx, c->sq_head))
				tcp_retransmit_head(c, now);
		} else {
			/* Partial ACK: the next hole is lost too; deflate (step 4). */
			tcp_retransmit_head(c, now);
			c->cwnd = c->cwnd > data_acked ? c->cwnd - data_acked : 0;
			c->cwnd += c->mss;
		}
	} else {
		c->dupacks = 0;
		tcp_cc_ack(c, data_acked, now);
	}
	if (c->snd_una == c->snd_max) {
		tcp_timer_cancel(&stk->wheel, &c->t_rtx);
		c->flags &= ~CF_PERSIST;
	} else {
		tcp_arm_rtx(c, now);
	}
	if ((c->flags & CF_WANT_WRITE) && c->sq_bytes < stk->conf.sndbuf) {
		c->flags &= ~CF_WANT_WRITE;
		tcp_conn_event(c, TCP_EV_WRITABLE, 0);
	}
}

/* Fast retransmit and into fast recovery (RFC 5681 3.2, RFC 6582, RFC 6675). */
void tcp_enter_recovery(struct tcp_conn *c, uint64_t now)
{
	bool head = !c->sack_on || sq_bit(c->sq_lost, c->sq_head) || tcp_sack_head_lost(c) > 0;

	tcp_undo_mark(c);
	tcp_cc_congestion(c, now);
	c->recover = c->snd_max;
	c->in_recovery = true;
	c->stk->stats.fast_retransmits++;
	memset(c->sq_rtx, 0, sizeof(c->sq_rtx));
	if (head)
		tcp_retransmit_head(c, now);
	/* With SACK, pipe (not an inflated window) says what may go. */
	c->cwnd = c->sack_on ? c->ssthresh : c->ssthresh + 3 * c->mss;
	c->flags &= ~CF_TLP;
	tcp_arm_rtx(c, now);
	if (!head)
		tcp_output(c, now); /* RACK found later segments lost */
}

/*
 * With SACK, the first segment is lost once DupThresh segments above it are
 * SACKed (RFC 6675 5 (2)), whether or not the ACKs counted as duplicates (a
 * peer whose window grows with every ACK, as Linux's does, sends none that
 * count): returns 2. With fewer than 4 segments out and all the others
 * SACKed, it may be (RFC 5827 early retransmit), or merely overtaken:
 * returns 1, and the caller waits a quarter of a round trip first.
 */
int tcp_sack_head_lost(const struct tcp_conn *c)
{
	uint32_t sent = 0, sacked = 0, seq = c->snd_una;

	if (c->sq_count == 0 || sq_bit(c->sq_sacked, c->sq_head))
		return 0;
	while (sent < c->sq_count && SEQ_LT(seq, c->snd_max)) {
		uint32_t slot = (c->sq_head + sent) % TCP_SQ_SLOTS;

		sacked += sq_bit(c->sq_sacked, slot);
		seq += rte_pktmbuf_data_len(c->sq[slot]);
		sent++;
	}
	if (sacked >= TCP_DUPACK_THRESH)
		return 2;
	return sent <= TCP_DUPACK_THRESH && sacked > 0 && sacked + 1 == sent ? 1 : 0;
}

static void dup_ack(struct tcp_conn *c, uint64_t now)
{
	c->dupacks++;
	if (c->dupacks == TCP_DUPACK_THRESH && !c->in_recovery && SEQ_GEQ(c->snd_una, c->recover)) {
		tcp_enter_recovery(c, now);
	} else if (c->in_recovery && !c->sack_on) {
		c->cwnd += c->mss; /* a segment left the network */
	}
}

static bool our_fin_acked(const struct tcp_conn *c)
{
	return (c->flags & CF_FIN_SENT) && SEQ_GT(c->snd_una, c->fin_seq);
}

/* What ooo_insert() did with a segment. */
enum ooo_result {
	OOO_KEPT,
	OOO_DUP,  /* held already: nothing new */
	OOO_FULL, /* no memory left for this connection's reassembly */
};

/* Hold an out-of-order segment (payload mbuf @m at @seq), trimmed against its neighbours. */
static enum ooo_result ooo_insert(struct tcp_conn *c, struct rte_mbuf *m, uint32_t seq)
{
	struct tcp_stack *stk = c->stk;
	uint32_t len = rte_pktmbuf_data_len(m);
	struct rte_mbuf *prev = NULL, *next = c->ooo_head;
	struct tcp_ooo_ent *e;

	/* Most often a segment goes after the last one held (after a loss,
	 * the rest of the flight arrives in order): no walk. */
	if (c->ooo_tail != NULL && SEQ_LT(tcp_ooo_ent(stk, c->ooo_tail)->seq, seq)) {
		prev = c->ooo_tail;
		next = NULL;
	}
	while (next != NULL && SEQ_LT(tcp_ooo_ent(stk, next)->seq, seq)) {
		prev = next;
		next = tcp_ooo_ent(stk, next)->next;
	}
	/* Trim what the neighbours already hold: the front against the one before... */
	if (prev != NULL) {
		uint32_t pend = tcp_ooo_ent(stk, prev)->seq + rte_pktmbuf_data_len(prev);

		if (SEQ_GEQ(pend, seq + len))
			return OOO_DUP;
		if (SEQ_GT(pend, seq)) {
			rte_pktmbuf_adj(m, (uint16_t)(pend - seq));
			len -= pend - seq;
			seq = pend;
		}
	}
	/* ...and the tail against the one after. */
	if (next != NULL && SEQ_GT(seq + len, tcp_ooo_ent(stk, next)->seq)) {
		uint32_t nseq = tcp_ooo_ent(stk, next)->seq;

		if (nseq == seq)
			return OOO_DUP;
		rte_pktmbuf_trim(m, (uint16_t)(seq + len - nseq));
		len = nseq - seq;
	}
	/* The bytes are inside the offered window (the caller trimmed them);
	 * the memory that holds them is bounded too. */
	if ((uint64_t)c->ooo_mem + m->buf_len > (uint64_t)TCP_OOO_MEM_FACTOR * stk->conf.rcvbuf)
		return OOO_FULL;
	e = tcp_ooo_ent(stk, m);
	e->seq = seq;
	e->next = next;
	if (prev != NULL)
		tcp_ooo_ent(stk, prev)->next = m;
	else
		c->ooo_head = m;
	if (next == NULL)
		c->ooo_tail = m;
	c->ooo_count++;
	c->ooo_bytes += len;
	c->ooo_mem += m->buf_len;
	c->ooo_last = seq;
	stk->stats.rx_mbufs++;
	tcp_ooo_list_update(c);
	return OOO_KEPT;
}

/* Move the segments now in order from the out-of-order queue to the read
 * queue (as many as it has slots for: tcp_recv() calls again for the rest). */
void tcp_ooo_drain(struct tcp_conn *c)
{
	struct tcp_stack *stk = c->stk;

	while (c->ooo_head != NULL && c->rq_count < TCP_RQ_SLOTS) {
		struct rte_mbuf *m = c->ooo_head;
		const struct tcp_ooo_ent *e = tcp_ooo_ent(stk, m);
		uint32_t seq = e->seq, len = rte_pktmbuf_data_len(m);

		if (SEQ_GT(seq, c->rcv_nxt))
			break;
		c->ooo_head = e->next;
		if (c->ooo_head == NULL)
			c->ooo_tail = NULL;
		c->ooo_count--;
		c->ooo_bytes -= len;
		c->ooo_mem -= m->buf_len;
		if (SEQ_LEQ(seq + len, c->rcv_nxt)) {
			rte_pktmbuf_free(m);
			stk->stats.rx_mbufs--;
			continue;
		}
		rte_pktmbuf_adj(m, (uint16_t)(c->rcv_nxt - seq));
		len -= c->rcv_nxt - seq;
		c->rq[(c->rq_head + c->rq_count) % TCP_RQ_SLOTS] = m;
		c->rq_count++;
		c->rq_bytes += len;
		c->rcv_nxt += len;
		stk->stats.bytes_rx += len;
	}
	tcp_ooo_list_update(c);
}

/* The peer's FIN is in: it takes a sequence number, and the state moves
 * on. Data held beyond it was a lie: it goes (as Linux's tcp_fin()). */
static void fin_in(struct tcp_conn *c, uint64_t now)
{
	c->flags &= ~CF_OOO_FIN;
	if (c->ooo_head != NULL)
		tcp_ooo_purge(c);
	c->rcv_nxt++;
	c->flags |= CF_RCVD_FIN | CF_ACK_NOW;
	tcp_conn_event(c, TCP_EV_PEER_CLOSED | TCP_EV_READABLE, 0);
	switch (c->state) {
	case TCP_ESTABLISHED:
		c->state = TCP_CLOSE_WAIT;
		break;
	case TCP_FIN_WAIT_1:
		c->state = TCP_CLOSING;
		break;
	case TCP_FIN_WAIT_2:
		tcp_send_ctl(c, c->snd_nxt, TH_ACK, now);
		tcp_enter_time_wait(c, now);
		break;
	default:
		break;
	}
}

/* Whether a held segment has data past @seq. */
static bool ooo_past(struct tcp_conn *c, uint32_t seq)
{
	for (struct rte_mbuf *m = c->ooo_head; m != NULL; m = tcp_ooo_ent(c->stk, m)->next)
		if (SEQ_GT(tcp_ooo_ent(c->stk, m)->seq + rte_pktmbuf_data_len(m), seq))
			return true;
	return false;
}

/*
 * A FIN that came ahead of a hole (RFC 9293 3.10.7.4 lets a receiver
 * keep it, as Linux does with its out-of-order queue) takes effect once
 * the data before it is in: dropping it leaves the sender nothing to
 * find it lost by, and it waits for a retransmission timeout. Data past
 * the FIN, taken or still held (the read queue may be out of slots),
 * makes it a lie, and it is forgotten.
 */
void tcp_fin_check(struct tcp_conn *c, uint64_t now)
{
	if (!(c->flags & CF_OOO_FIN) || SEQ_LT(c->rcv_nxt, c->ooo_fin))
		return;
	if (c->rcv_nxt == c->ooo_fin && !(c->flags & CF_RCVD_FIN) && !ooo_past(c, c->ooo_fin))
		fin_in(c, now);
	else
		c->flags &= ~CF_OOO_FIN;
}

/* Returns true if the mbuf was kept (queued for reading). */
static bool conn_input(struct tcp_conn *c, struct rte_mbuf *m, struct tcp_seg *s, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	uint32_t seglen = s->len + !!(s->flags & TH_SYN) + !!(s->flags & TH_FIN);
	bool kept = false, ooo_fin = false;

	if (ts_missing(c, s))
		return false;
	/* PAWS: an old duplicate from an earlier incarnation or wrap. A pure ACK
	 * at rcv_nxt is let through as Linux does: reordered ACKs are harmless
	 * and dropping them would hide duplicate ACKs from fast retransmit. */
	if (c->ts_on && s->opts.has_ts && !(s->flags & TH_RST) &&
	    SEQ_LT(s->opts.tsval, c->ts_recent) &&
	    !(s->len == 0 && !(s->flags & (TH_SYN | TH_FIN)) && s->seq == c->rcv_nxt)) {
		stk->stats.rx_paws++;
		/* Data is answered (a duplicate the peer sent again); bare
		 * ACKs and SYNs are rate-limited, as out of window below. */
		if (s->len > 0 || tcp_oow_ack_allowed(c, now, false)) {
			c->flags |= CF_ACK_NOW;
			tcp_output(c, now);
		}
		return false;
	}
	/* The peer sent its SYN again: our SYN-ACK was lost; send it again. */
	if (c->state == TCP_SYN_RECEIVED && (s->flags & (TH_SYN | TH_ACK | TH_RST)) == TH_SYN &&
	    s->seq == c->irs) {
		stk->stats.retransmits++;
		c->retransmits++;
		tcp_send_ctl(c, c->iss, TH_SYN, now);
		return false;
	}
	if (!seq_acceptable(c, s, seglen)) {
		stk->stats.rx_out_of_window++;
		if (!(s->flags & TH_RST)) {
			if (c->state == TCP_TIME_WAIT && (s->flags & TH_FIN))
				tcp_timer_arm(&stk->wheel, &c->t_misc, now + stk->time_wait);
			/* Data (a retransmission of what we hold) is always
			 * answered; bare ACKs and SYNs are rate-limited. */
			if (s->len > 0 && SEQ_LEQ(s->seq + s->len, c->rcv_nxt))
				dsack_note(c, s->seq, s->seq + s->len);
			if ((seglen > 0 && !(s->flags & TH_SYN)) ||
			    tcp_oow_ack_allowed(c, now, false))
				tcp_send_ctl(c, c->snd_nxt, TH_ACK, now);
		}
		return false;
	}
	if (s->flags & TH_RST) {
		if (s->seq != c->rcv_nxt) {
			challenge_ack(c, now);
			return false;
		}
		if (c->state == TCP_SYN_RECEIVED && (c->flags & CF_PASSIVE)) {
			tcp_conn_set_closed(c);
		} else if (c->state == TCP_TIME_WAIT) {
			tcp_conn_set_closed(c); /* TCP_EV_CLOSED was reported already */
		} else {
			stk->stats.conn_resets++;
			tcp_conn_fail(c, ECONNRESET);
		}
		return false;
	}
	if (s->flags & TH_SYN) {
		challenge_ack(c, now);
		return false;
	}
	if (!(s->flags & TH_ACK))
		return false;
	if (ack_too_old(c, s, now))
		return false;
	/* RFC 7323 4.3: the timestamp to echo is that of the segment which
	 * covers Last.ACK.sent, the left edge the peer knows of. */
	if (s->opts.has_ts && c->ts_on && SEQ_LEQ(s->seq, c->last_ack_sent) &&
	    SEQ_GEQ(s->opts.tsval, c->ts_recent))
		c->ts_recent = s->opts.tsval;

	if (c->state == TCP_SYN_RECEIVED) {
		if (SEQ_LEQ(s->ack, c->snd_una) || SEQ_GT(s->ack, c->snd_max)) {
			tcp_send_rst_for(stk, c->laddr, c->raddr, c->lport, c->rport, s->ack, 0,
					 TH_RST, now);
			return false;
		}
		c->state = TCP_ESTABLISHED;
		c->snd_wnd = s->wnd << c->snd_ws;
		if (c->snd_wnd > c->max_snd_wnd)
			c->max_snd_wnd = c->snd_wnd;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		tcp_timer_cancel(&stk->wheel, &c->t_misc); /* a simultaneous open's deadline */
		if (c->flags & CF_PASSIVE) {
			c->flags &= ~CF_USER_CLOSED;
			stk->stats.passive_opens++;
			tcp_conn_event(c, TCP_EV_ACCEPTED, 0);
		} else {
			tcp_conn_event(c, TCP_EV_CONNECTED, 0);
		}
	}

	/* ACK */
	if (SEQ_GT(s->ack, c->snd_max)) {
		tcp_send_ctl(c, c->snd_nxt, TH_ACK, now);
		return false;
	}
	if (c->sack_on && s->opts.nsack > 0)
		tcp_sack_update(c, &s->opts, s->ack, now);
	if (SEQ_GT(s->ack, c->snd_una)) {
		new_ack(c, s, now);
	} else if (s->ack == c->snd_una && s->len == 0 && !(s->flags & TH_FIN) &&
		   c->snd_una != c->snd_max && (s->wnd << c->snd_ws) == c->snd_wnd) {
		dup_ack(c, now);
	}
	if (c->sack_on && s->opts.nsack > 0 && !c->in_recovery && SEQ_GEQ(c->snd_una, c->recover)) {
		int lost = tcp_sack_head_lost(c);

		if (lost == 2) {
			tcp_enter_recovery(c, now);
		} else if (lost == 1 && !(c->flags & CF_ER_WAIT)) {
			/* Early retransmit after srtt / 4, unless the first
			 * segment shows up meanwhile (RFC 5827 6.1's delay). */
			uint64_t d = c->srtt / 4 > stk->tsc_per_ts ? c->srtt / 4 : stk->tsc_per_ts;

			c->flags |= CF_ER_WAIT;
			if (!tcp_timer_pending(&c->t_retry))
				tcp_timer_arm(&stk->wheel, &c->t_retry, now + d);
		}
	}
	/* RACK (RFC 8985): losses by time, lost retransmissions included. */
	if (c->sack_on && SEQ_LT(c->snd_una, c->snd_max))
		tcp_rack_detect(c, now);
	if (c->bbr != NULL)
		tcp_bbr_ack(c, now);
	if (SEQ_LT(c->snd_wl1, s->seq) || (c->snd_wl1 == s->seq && SEQ_LEQ(c->snd_wl2, s->ack))) {
		c->snd_wnd = s->wnd << c->snd_ws;
		if (c->snd_wnd > c->max_snd_wnd)
			c->max_snd_wnd = c->snd_wnd;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		/* tcp_output() below probes again if the window is still too small. */
		if (c->flags & CF_PERSIST) {
			c->flags &= ~CF_PERSIST;
			tcp_timer_cancel(&stk->wheel, &c->t_rtx);
		}
	}
	/* The peer is there. Window probes count toward the retry limits while
	 * it answers with a closed window only if we are closed (orphaned): a
	 * peer must not hold a closed connection forever (tcp_orphan_retries). */
	if (c->snd_wnd > 0 || !(c->flags & CF_USER_CLOSED))
		c->probes = 0;
	switch (c->state) {
	case TCP_FIN_WAIT_1:
		if (our_fin_acked(c)) {
			c->state = TCP_FIN_WAIT_2;
			if (c->flags & CF_USER_CLOSED)
				tcp_timer_arm(&stk->wheel, &c->t_misc, now + stk->time_wait);
		}
		break;
	case TCP_CLOSING:
		if (our_fin_acked(c))
			tcp_enter_time_wait(c, now);
		break;
	case TCP_LAST_ACK:
		if (our_fin_acked(c)) {
			tcp_conn_event(c, TCP_EV_CLOSED, 0);
			tcp_conn_set_closed(c);
			return false;
		}
		break;
	default:
		break;
	}

	if (data_after_close(c, s, now))
		return false;
	/* Data */
	if (s->len > 0 && (c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
			   c->state == TCP_FIN_WAIT_2)) {
		uint32_t room = tcp_rcv_window(c), edge;

		if (SEQ_LT(s->seq, c->rcv_nxt)) {
			uint32_t off = c->rcv_nxt - s->seq;

			dsack_note(c, s->seq, c->rcv_nxt);
			rte_pktmbuf_adj(m, (uint16_t)off);
			s->seq += off;
			s->len -= off;
		}
		/* Keep no more than the window: beyond it the peer must send again. */
		edge = SEQ_GT(c->rcv_adv, c->rcv_nxt + room) ? c->rcv_adv : c->rcv_nxt + room;
		if (SEQ_GT(s->seq + s->len, edge)) {
			uint32_t cut = s->seq + s->len - edge;

			cut = cut > s->len ? s->len : cut;
			rte_pktmbuf_trim(m, (uint16_t)cut);
			s->len -= cut;
			s->flags &= ~TH_FIN;
		}
		if (s->len == 0) {
			c->flags |= CF_ACK_NOW;
		} else if (s->seq != c->rcv_nxt) {
			/* A hole: hold the segment, and ACK at once (RFC 5681 4.2). */
			c->flags |= CF_ACK_NOW;
			if (rx_mem_ok(c, false)) {
				switch (ooo_insert(c, m, s->seq)) {
				case OOO_KEPT:
					kept = true;
					ooo_fin = s->flags & TH_FIN;
					break;
				case OOO_DUP:
					dsack_note(c, s->seq, s->seq + s->len);
					ooo_fin = s->flags & TH_FIN;
					break;
				case OOO_FULL:
					stk->stats.rx_ooo_drop++;
					break;
				default:
					dmta_panic("tcp_input: bad ooo_insert result");
				}
			}
			s->flags &= ~TH_FIN;
		} else if (c->rq_count == TCP_RQ_SLOTS || c->rq_bytes + s->len > stk->conf.rcvbuf) {
			stk->stats.rx_rcvbuf_drop++;
			c->flags |= CF_ACK_NOW;
			s->flags &= ~TH_FIN;
		} else if (!rx_mem_ok(c, true)) {
			c->flags |= CF_ACK_NOW;
			s->flags &= ~TH_FIN;
		} else {
			bool filled = c->ooo_head != NULL;

			c->rq[(c->rq_head + c->rq_count) % TCP_RQ_SLOTS] = m;
			c->rq_count++;
			c->rq_bytes += s->len;
			c->rcv_nxt += s->len;
			stk->stats.bytes_rx += s->len;
			stk->stats.rx_mbufs++;
			kept = true;
			tcp_ooo_drain(c);
			tcp_conn_event(c, TCP_EV_READABLE, 0);
			if (filled || ++c->segs_unacked >= 2)
				c->flags |= CF_ACK_NOW;
			else if (!tcp_timer_pending(&c->t_delack))
				tcp_timer_arm(&stk->wheel, &c->t_delack, now + stk->delack);
		}
	}

	/* A FIN alone, ahead of a hole */
	if (s->len == 0 && (s->flags & TH_FIN) && SEQ_GT(s->seq, c->rcv_nxt) &&
	    (c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
	     c->state == TCP_FIN_WAIT_2)) {
		c->flags |= CF_ACK_NOW;
		ooo_fin = true;
	}
	/* The FIN, in order, or held until the data before it came */
	if (ooo_fin && !(c->flags & CF_RCVD_FIN)) {
		c->flags |= CF_OOO_FIN;
		c->ooo_fin = s->seq + s->len;
	}
	if ((s->flags & TH_FIN) && s->seq + s->len == c->rcv_nxt && !(c->flags & CF_RCVD_FIN))
		fin_in(c, now);
	else
		tcp_fin_check(c, now);
	if (c->state != TCP_TIME_WAIT && c->state != TCP_CLOSED)
		tcp_output(c, now);
	return kept;
}

/* The TCP checksum over pseudo-header and segment (contiguous here) must fold to all ones. */
static bool l4_csum_ok(const struct rte_ipv4_hdr *ip, const void *th, uint32_t len)
{
	struct {
		uint32_t src, dst;
		uint8_t zero, proto;
		uint16_t len;
	} __attribute__((packed))
	ph = {ip->src_addr, ip->dst_addr, 0, IPPROTO_TCP, rte_cpu_to_be_16((uint16_t)len)};
	return tcp_cksum_fold(tcp_cksum_add(th, len, tcp_cksum_add(&ph, sizeof(ph), 0))) == 0xffff;
}

void tcp_input(void *arg, struct rte_mbuf *m, uint32_t hlen, uint64_t now)
{
	struct tcp_stack *stk = arg;
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod(m, const struct rte_ipv4_hdr *);
	uint32_t len = rte_pktmbuf_data_len(m) - hlen, doff, raddr = ip->src_addr;
	uint32_t laddr = ip->dst_addr; /* one of ours: the netif checked */
	const struct rte_tcp_hdr *th;
	struct rte_tcp_hdr thc;
	struct tcp_conn *c;
	struct tcp_seg s;

	stk->stats.segs_rx++;
	if (len < sizeof(*th)) {
		stk->stats.rx_malformed++;
		goto drop;
	}
	th = (const struct rte_tcp_hdr *)((const uint8_t *)ip + hlen);
	doff = (uint32_t)(th->data_off >> 4) * 4;
	if (doff < sizeof(*th) || doff > len) {
		stk->stats.rx_malformed++;
		goto drop;
	}
	if (!l4_csum_ok(ip, th, len)) {
		stk->stats.rx_bad_csum++;
		goto drop;
	}
	if (tcp_opts_parse((const uint8_t *)(th + 1), doff - sizeof(*th), &s.opts) < 0 ||
	    th->src_port == 0 || th->dst_port == 0 ||
	    (th->tcp_flags & (TH_SYN | TH_FIN)) == (TH_SYN | TH_FIN) ||
	    (th->tcp_flags & (TH_SYN | TH_RST)) == (TH_SYN | TH_RST)) {
		stk->stats.rx_malformed++;
		goto drop;
	}
	s.seq = rte_be_to_cpu_32(th->sent_seq);
	s.ack = rte_be_to_cpu_32(th->recv_ack);
	s.wnd = rte_be_to_cpu_16(th->rx_win);
	s.flags = th->tcp_flags & (TH_FIN | TH_SYN | TH_RST | TH_PSH | TH_ACK);
	s.len = len - doff;
	thc = *th; /* the header is about to be trimmed off */
	rte_pktmbuf_adj(m, (uint16_t)(hlen + doff));

	c = tcp_conn_lookup(stk, laddr, thc.dst_port, raddr, thc.src_port);
	if (c == NULL) {
		for (unsigned i = 0; i < TCP_LISTEN_MAX; i++) {
			if (stk->listeners[i].port == thc.dst_port) {
				listen_input(stk, &stk->listeners[i], laddr, raddr, &thc, &s, now);
				goto drop;
			}
		}
		no_conn_reply(stk, laddr, raddr, &thc, &s, now);
		goto drop;
	}
	if (c->state == TCP_SYN_SENT) {
		syn_sent_input(c, &s, now);
		goto drop;
	}
	if (conn_input(c, m, &s, now))
		return;
drop:
	rte_pktmbuf_free(m);
}

/* RFC 5927 4.1: an ICMP error must quote a sequence number we have sent
 * and not yet seen acknowledged, or it is forged (or very late). */
static bool icmp_seq_ok(const struct tcp_conn *c, uint32_t seq)
{
	if (c->state == TCP_SYN_SENT)
		return seq == c->iss;
	return SEQ_GEQ(seq, c->snd_una) && SEQ_LT(seq, c->snd_max);
}

/*
 * RFC 1191: the path takes frames of @mtu at most. Lower the MSS (never
 * below what TCP_MIN_PMTU allows), and send what is in flight again at
 * once, cut to the new size, without a congestion response (the segments
 * were dropped for their size, not for congestion; as Linux's
 * tcp_simple_retransmit).
 */
static void pmtu_update(struct tcp_conn *c, uint32_t mtu, uint64_t now)
{
	uint32_t mss;

	if (mtu == 0)
		mtu = 576; /* a pre-RFC 1191 router: a size every path carries */
	if (mtu < TCP_MIN_PMTU)
		mtu = TCP_MIN_PMTU;
	mss = mtu - 40 - (c->ts_on ? 12 : 0);
	if (mss >= c->mss)
		return;
	c->mss = mss;
	c->stk->stats.pmtu_reductions++;
	if (c->in_recovery || c->snd_una == c->snd_max || c->state == TCP_SYN_SENT ||
	    c->state == TCP_SYN_RECEIVED)
		return; /* recovery resends the holes at the new size anyway */
	c->snd_nxt = c->snd_una;
	c->sq_next = 0;
	memset(c->sq_rtx, 0, sizeof(c->sq_rtx));
	tcp_output(c, now);
}

/* ICMP destination unreachable quoting one of our segments (tcp_netif_err_fn). */
void tcp_icmp_err(void *arg, uint8_t code, uint16_t mtu, const struct rte_ipv4_hdr *in,
		  const uint8_t *l4, uint32_t l4len, uint64_t now)
{
	struct tcp_stack *stk = arg;
	uint16_t lport, rport;
	uint32_t seq;
	struct tcp_conn *c;

	(void)l4len; /* the netif guarantees 8 bytes: ports and sequence number */
	memcpy(&lport, l4, 2);
	memcpy(&rport, l4 + 2, 2);
	memcpy(&seq, l4 + 4, 4);
	seq = rte_be_to_cpu_32(seq);
	c = tcp_conn_lookup(stk, in->src_addr, lport, in->dst_addr, rport);
	if (c == NULL || c->state == TCP_TIME_WAIT || !icmp_seq_ok(c, seq)) {
		stk->stats.icmp_invalid++;
		return;
	}
	switch (code) {
	case 4: /* fragmentation needed and DF set */
		pmtu_update(c, mtu, now);
		return;
	case 0:	 /* net unreachable */
	case 1:	 /* host unreachable */
	case 2:	 /* protocol unreachable */
	case 3:	 /* port unreachable */
	case 9:	 /* net administratively prohibited */
	case 10: /* host administratively prohibited */
	case 13: /* communication administratively prohibited */
		/* A connect fails at once, so that the next MX is tried (as
		 * Linux does); an established connection treats them as soft
		 * errors (RFC 1122 4.2.3.9, RFC 5461). */
		if (c->state == TCP_SYN_SENT) {
			stk->stats.icmp_conn_aborts++;
			tcp_conn_fail(c, code == 3   ? ECONNREFUSED
					 : code == 0 ? ENETUNREACH
						     : EHOSTUNREACH);
			return;
		}
		break;
	default:
		break;
	}
	stk->stats.icmp_soft++;
}
