/*
 * tcp_output.c - sending segments, the retransmission timer, delayed ACKs.
 *
 * SYNOPSIS
 *	Private to tcp/; see tcp_stack_int.h.
 *
 * DESCRIPTION
 *	Every segment is a fresh header mbuf (Ethernet and IPv4 are prepended
 *	by the netif) chained, for data, to a clone of the send-queue mbuf:
 *	the data bytes are never copied after tcp_send(). The TCP checksum is
 *	computed in software over the chain.
 *
 *	tcp_output() sends what the congestion and peer windows allow, then
 *	the FIN once all data is out, then a bare ACK if one is owed and
 *	nothing else carried it. The retransmission timer (RFC 6298) backs
 *	off exponentially and goes back to snd_una with a one-segment
 *	congestion window (RFC 5681 3.1); with a zero peer window it becomes
 *	the persist timer and sends window probes instead.
 *
 *	With BBR every data segment is paced (pace_wait(), below).
 *
 *	A segment that cannot be built because the mempool is empty, or that
 *	the netif's TX FIFO has no room for, is not sent and not counted as
 *	sent; the retry timer (t_retry, 1 ms backing
 *	off to 64 ms) runs the output again. Without it a connection with
 *	nothing in flight would wait forever: no ACK is coming and no
 *	retransmission timer is armed for data that never left.
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

/* Our timestamp clock for @c: 1 ms ticks plus the connection's offset. */
uint32_t tcp_ts_now(const struct tcp_conn *c, uint64_t now)
{
	return (uint32_t)(now / c->stk->tsc_per_ts) + c->ts_off;
}

/* Receive window we can offer: buffer room, never moving the right edge back. */
uint32_t tcp_rcv_window(const struct tcp_conn *c)
{
	uint32_t rcvbuf = c->stk->conf.rcvbuf;
	/* Out-of-order data lies inside the window already offered: not counted,
	 * so the right edge stays put and duplicate ACKs carry the same window. */
	uint32_t room = c->rq_bytes >= rcvbuf ? 0 : rcvbuf - c->rq_bytes;

	if (c->rq_count >= TCP_RQ_SLOTS)
		room = 0;
	return room;
}

/* The least a receive window may open by (RFC 9293 3.8.6.2.2). */
uint32_t tcp_rcv_sws_min(const struct tcp_conn *c)
{
	uint32_t half = c->stk->conf.rcvbuf / 2;

	return half < c->mss ? half : c->mss;
}

void tcp_arm_rtx(struct tcp_conn *c, uint64_t now)
{
	if (tcp_tlp_arm(c, now))
		return;
	c->flags &= ~CF_TLP;
	tcp_timer_arm(&c->stk->wheel, &c->t_rtx, now + c->rto);
}

/* A send failed for want of an mbuf: run the output again soon. */
void tcp_arm_retry(struct tcp_conn *c, uint64_t now)
{
	struct tcp_stack *stk = c->stk;

	/* The throwaway connection of tcp_send_rst_for() has no timers. */
	if (c->state == TCP_CLOSED || tcp_timer_pending(&c->t_retry))
		return;
	tcp_timer_arm(&stk->wheel, &c->t_retry, now + (stk->tsc_per_ts << c->retry_shift));
	if (c->retry_shift < TCP_RETRY_MAX_SHIFT)
		c->retry_shift++;
}

/* Whatever failed for want of an mbuf, try it again; and a delayed early
 * retransmit (CF_ER_WAIT, tcp_input.c). */
void tcp_retry_timeout(struct tcp_timer *t, uint64_t now)
{
	struct tcp_conn *c = CONN_OF(t, t_retry);
	struct tcp_stack *stk = c->stk;

	if (c->flags & CF_ER_WAIT) {
		c->flags &= ~CF_ER_WAIT;
		if (c->sack_on && !c->in_recovery && tcp_rack_detect(c, now) > 0)
			return; /* (recovery sent what it could) */
		if (c->sack_on && !c->in_recovery && SEQ_GEQ(c->snd_una, c->recover) &&
		    SEQ_LT(c->snd_una, c->snd_max) && tcp_sack_head_lost(c) > 0 &&
		    (c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT ||
		     c->state == TCP_FIN_WAIT_1 || c->state == TCP_CLOSING ||
		     c->state == TCP_LAST_ACK))
			tcp_enter_recovery(c, now);
	}
	switch (c->state) {
	case TCP_SYN_SENT:
	case TCP_SYN_RECEIVED:
		/* The SYN (or SYN-ACK) did not leave; t_rtx still counts real tries. */
		tcp_send_ctl(c, c->iss, TH_SYN, now);
		return;
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
		/* A tcp_send() cut short by the empty pool is owed TCP_EV_WRITABLE. */
		if ((c->flags & CF_WANT_WRITE) && !(c->flags & CF_FIN_PENDING) &&
		    c->sq_bytes < stk->conf.sndbuf && c->sq_count < TCP_SQ_SLOTS) {
			c->flags &= ~CF_WANT_WRITE;
			tcp_conn_event(c, TCP_EV_WRITABLE, 0);
		}
		break;
	case TCP_CLOSED:
	case TCP_LISTEN:
	case TCP_TIME_WAIT:
		return;
	default:
		break;
	}
	tcp_output(c, now);
}

static int send_segment(struct tcp_conn *c, uint32_t seq, uint8_t flags, struct rte_mbuf *payload,
			uint64_t now);

/*
 * Pacing (BBR sets the rate, tcp_bbr.c): a data segment may leave once
 * now has reached pace_next, which each one moves on by its length at the
 * rate (a multiplication: pace_cpb is cycles per byte). pace_next lags
 * now by at most pace_credit, so a pause earns at most a quantum. Until
 * then output stops and t_pace runs it again; ACK-clocked sending goes on
 * as before within what the rate allows. Without a rate (CUBIC), nothing
 * but one test of pace_cpb.
 */
static bool pace_wait(struct tcp_conn *c, uint64_t now)
{
	if (c->pace_cpb == 0 || c->pace_next <= now)
		return false;
	c->stk->stats.paced++;
	if (!tcp_timer_pending(&c->t_pace))
		tcp_timer_arm(&c->stk->wheel, &c->t_pace, c->pace_next);
	return true;
}

static void pace_sent(struct tcp_conn *c, uint32_t len, uint64_t now)
{
	if (c->pace_cpb == 0)
		return;
	if (c->pace_next + c->pace_credit < now)
		c->pace_next = now - c->pace_credit;
	c->pace_next += (len * c->pace_cpb) >> 16;
}

static bool can_send_data(const struct tcp_conn *c);

void tcp_pace_timeout(struct tcp_timer *t, uint64_t now)
{
	struct tcp_conn *c = CONN_OF(t, t_pace);

	if (can_send_data(c))
		tcp_output(c, now);
}

/*
 * SACK blocks (RFC 2018 4) from the reassembly queue: first the block holding
 * the latest segment received, then the others from the lowest up, at most
 * @max (and as many as fit beside the timestamps). A duplicate to report
 * goes first (RFC 2883 4), and the block it lies in, if any, second.
 */
static void sack_blocks(struct tcp_conn *c, struct tcp_opts *o, uint32_t max)
{
	struct tcp_stack *stk = c->stk;
	uint32_t first = 1;
	struct rte_mbuf *m = c->ooo_head;

	if (max > (c->ts_on ? 3u : 4u))
		max = c->ts_on ? 3 : 4;

	o->nsack = 1;
	o->sack[0][0] = o->sack[0][1] = c->ooo_last;
	while (m != NULL) {
		uint32_t l = tcp_ooo_ent(stk, m)->seq;
		uint32_t r = l + rte_pktmbuf_data_len(m);

		/* Contiguous segments make one block. */
		for (m = tcp_ooo_ent(stk, m)->next; m != NULL && tcp_ooo_ent(stk, m)->seq == r;
		     m = tcp_ooo_ent(stk, m)->next)
			r += rte_pktmbuf_data_len(m);
		if (SEQ_GEQ(c->ooo_last, l) && SEQ_LT(c->ooo_last, r)) {
			o->sack[0][0] = l;
			o->sack[0][1] = r;
		} else if (first < max) {
			o->sack[first][0] = l;
			o->sack[first][1] = r;
			first++;
		}
	}
	if (o->sack[0][0] == o->sack[0][1]) {
		/* The latest segment was merged away: the others move up. */
		memmove(&o->sack[0], &o->sack[1], sizeof(o->sack[0]) * (first - 1));
		first--;
	}
	if (c->dsack_l != c->dsack_r) {
		for (uint32_t i = 1; i < first; i++) {
			if (SEQ_GEQ(c->dsack_l, o->sack[i][0]) &&
			    SEQ_LEQ(c->dsack_r, o->sack[i][1])) {
				uint32_t l = o->sack[i][0], r = o->sack[i][1];

				o->sack[i][0] = o->sack[0][0];
				o->sack[i][1] = o->sack[0][1];
				o->sack[0][0] = l;
				o->sack[0][1] = r;
			}
		}
		if (first == max)
			first--;
		memmove(&o->sack[1], &o->sack[0], sizeof(o->sack[0]) * first);
		o->sack[0][0] = c->dsack_l;
		o->sack[0][1] = c->dsack_r;
		first++;
		c->dsack_l = c->dsack_r; /* reported once */
		stk->stats.dsacks_tx++;
	}
	o->nsack = (uint8_t)first;
	stk->stats.sack_blocks_tx += first;
}

/* Mark what the peer's SACK blocks cover (RFC 2018 5: whole segments
 * only); @ack is the segment's cumulative ACK, not yet applied. */
void tcp_sack_update(struct tcp_conn *c, const struct tcp_opts *o, uint32_t ack, uint64_t now)
{
	c->stk->stats.sack_blocks_rx += o->nsack;
	/* RFC 2883: a first block below the segment's cumulative ACK (which
	 * the duplicate may have moved), or inside the second, reports bytes
	 * received twice. The peer reports each duplicate once: the same
	 * block again is the same ACK duplicated by the network, and counts
	 * once (for undo as for BBR's delivered bytes). */
	if (o->nsack > 0 && SEQ_LT(o->sack[0][0], o->sack[0][1]) &&
	    (SEQ_LEQ(o->sack[0][1], ack) ||
	     (o->nsack > 1 && SEQ_GEQ(o->sack[0][0], o->sack[1][0]) &&
	      SEQ_LEQ(o->sack[0][1], o->sack[1][1]))) &&
	    (o->sack[0][0] != c->dsack_rx_l || o->sack[0][1] != c->dsack_rx_r)) {
		c->dsack_rx_l = o->sack[0][0];
		c->dsack_rx_r = o->sack[0][1];
		tcp_rack_dsack(c, o->sack[0][0], o->sack[0][1]);
		if (c->bbr != NULL)
			tcp_bbr_dsack(c, o->sack[0][1] - o->sack[0][0], now);
	}
	for (uint32_t b = 0; b < o->nsack; b++) {
		uint32_t l = o->sack[b][0], r = o->sack[b][1], seq = c->snd_una;

		/* D-SACKs (below snd_una) and blocks outside what was sent: ignored. */
		if (!SEQ_LT(l, r) || !SEQ_GT(r, c->snd_una) || SEQ_GT(r, c->snd_max))
			continue;
		for (uint32_t i = 0; i < c->sq_count && SEQ_LT(seq, r); i++) {
			uint32_t slot = (c->sq_head + i) % TCP_SQ_SLOTS;
			uint32_t end = seq + rte_pktmbuf_data_len(c->sq[slot]);

			if (SEQ_GEQ(seq, l) && SEQ_LEQ(end, r) && !sq_bit(c->sq_sacked, slot)) {
				sq_bit_set(c->sq_sacked, slot);
				if (c->bbr != NULL)
					tcp_bbr_delivered(c, slot, end - seq, false, now);
				tcp_rack_delivered(c, slot, end, now);
			}
			seq = end;
		}
	}
}

/* The peer dropped data it had SACKed (reneged): forget every block. */
void tcp_sack_forget(struct tcp_conn *c)
{
	memset(c->sq_sacked, 0, sizeof(c->sq_sacked));
	memset(c->sq_rtx, 0, sizeof(c->sq_rtx));
	memset(c->sq_lost, 0, sizeof(c->sq_lost));
}

/* Bytes sent (again, after a timeout) and not SACKed: what is in flight. */
uint32_t tcp_sack_flight(const struct tcp_conn *c)
{
	uint32_t flight = 0;

	for (uint32_t i = 0; i < c->sq_next; i++) {
		uint32_t slot = (c->sq_head + i) % TCP_SQ_SLOTS;

		if (!sq_bit(c->sq_sacked, slot))
			flight += rte_pktmbuf_data_len(c->sq[slot]);
	}
	return flight;
}

/*
 * Loss recovery with SACK (RFC 6675, simplified): a segment not SACKed is
 * lost once RACK marked it so (tcp_rack.c) or, until the connection has
 * seen reordering, once DupThresh segments, or more than (DupThresh - 1) *
 * MSS bytes, above it are SACKed. On a path that reorders, a count says
 * nothing (on the lab's, 1% of frames overtake 10 to 30 ms of others, a
 * few a flight at 2 MB/s): after, RACK's time-based window alone decides,
 * as Linux's RACK does (its DupThresh grows to the reordering degree, 116
 * segments on that path). pipe counts what is still in the network (neither
 * SACKed nor lost, plus lost segments sent again). Lost segments go again,
 * once each per recovery, lowest first, while pipe leaves room in cwnd.
 * Returns pipe; *@held says a lost segment is waiting for room.
 */
static uint32_t sack_send_holes(struct tcp_conn *c, uint64_t now, bool *held)
{
	struct tcp_stack *stk = c->stk;
	uint32_t n = 0, seq = c->snd_una, pipe = 0, sacked_segs = 0, sacked_bytes = 0;

	/* Segments sent so far, and the SACKed ones among them. */
	while (n < c->sq_count && SEQ_LT(seq, c->snd_max)) {
		uint32_t slot = (c->sq_head + n) % TCP_SQ_SLOTS;
		uint32_t len = rte_pktmbuf_data_len(c->sq[slot]);

		if (sq_bit(c->sq_sacked, slot)) {
			sacked_segs++;
			sacked_bytes += len;
		}
		seq += len;
		n++;
	}
	/* Pipe, and the lost segments retransmitted as it allows. */
	seq = c->snd_una;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t slot = (c->sq_head + i) % TCP_SQ_SLOTS;
		struct rte_mbuf *m = c->sq[slot];
		uint32_t len = rte_pktmbuf_data_len(m);
		bool lost;

		if (sq_bit(c->sq_sacked, slot)) {
			sacked_segs--;
			sacked_bytes -= len;
			seq += len;
			continue;
		}
		lost = sq_bit(c->sq_lost, slot) ||
		       (!c->reord_seen && (sacked_segs >= TCP_DUPACK_THRESH ||
					   sacked_bytes > (TCP_DUPACK_THRESH - 1) * c->mss));
		if (!lost || sq_bit(c->sq_rtx, slot)) {
			pipe += len;
		} else if (pipe + len <= c->cwnd && !pace_wait(c, now) &&
			   send_segment(c, seq, TH_ACK | TH_PSH, m, now) == 0) {
			tcp_rack_sent(c, slot, now, true);
			pace_sent(c, len, now);
			sq_bit_set(c->sq_rtx, slot);
			stk->stats.retransmits++;
			c->retransmits++;
			c->rtt_timing = false; /* Karn */
			pipe += len;
			/* The first unacknowledged segment went again: the
			 * timeout counts from now (as Linux's
			 * tcp_xmit_retransmit_queue()), not from when the
			 * cumulative ACK last moved. RACK finds a lost resend a
			 * round trip and a reordering window after it left; a
			 * timer armed before the first resend fired while the
			 * second or third was still being found lost. */
			if (seq == c->snd_una)
				tcp_arm_rtx(c, now);
		} else {
			*held = true;
		}
		seq += len;
	}
	return pipe;
}

static int send_piece(struct tcp_conn *c, uint32_t seq, uint8_t flags, struct rte_mbuf *payload,
		      uint32_t off, uint32_t plen, uint64_t now);

/*
 * Build and send one send-queue segment; @payload (may be NULL) is cloned,
 * not consumed. A segment cut before the MSS went down (path MTU, RFC 1191;
 * a black hole, RFC 4821) leaves as several of the new size.
 */
static int send_segment(struct tcp_conn *c, uint32_t seq, uint8_t flags, struct rte_mbuf *payload,
			uint64_t now)
{
	uint32_t len = payload != NULL ? rte_pktmbuf_data_len(payload) : 0;
	int rc = 0;

	if (len <= c->mss)
		return send_piece(c, seq, flags, payload, 0, len, now);
	for (uint32_t off = 0; off < len && rc == 0; off += c->mss) {
		uint32_t plen = len - off < c->mss ? len - off : c->mss;

		rc = send_piece(c, seq + off, off + plen < len ? flags & ~TH_PSH : flags, payload,
				off, plen, now);
	}
	return rc;
}

/* Build and send one segment: bytes [@off, @off + @plen) of @payload (may be NULL). */
static int send_piece(struct tcp_conn *c, uint32_t seq, uint8_t flags, struct rte_mbuf *payload,
		      uint32_t off, uint32_t plen, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	struct rte_mbuf *h;
	struct rte_tcp_hdr *th;
	struct tcp_opts o = {0};
	uint8_t opt[TCP_OPTS_MAX];
	size_t olen;
	uint32_t tcplen, wnd;
	uint16_t l4sum = 0;
	struct {
		uint32_t src, dst;
		uint8_t zero, proto;
		uint16_t len;
	} __attribute__((packed)) ph;

	/* A full TX FIFO would drop the segment after it counted as sent, and
	 * only a retransmission timeout would bring it back: hold it instead. */
	if (tcp_netif_tx_pending(stk->nif) >= TCP_NETIF_TXQ_SIZE) {
		stk->stats.tx_txq_full++;
		tcp_arm_retry(c, now);
		return -ENOBUFS;
	}
	h = rte_pktmbuf_alloc(stk->pool);
	if (h == NULL) {
		stk->stats.tx_no_mbuf++;
		tcp_arm_retry(c, now);
		return -ENOMEM;
	}
	if (flags & TH_SYN) {
		o.has_mss = true;
		o.mss = (uint16_t)stk->our_mss;
		/* Offer scaling and timestamps on our SYN; echo the peer's choice on a SYN-ACK. */
		o.has_wscale = !(c->flags & CF_PASSIVE) || c->rcv_ws != 0 || c->snd_ws != 0;
		o.wscale = c->rcv_ws;
		o.has_ts = !(c->flags & CF_PASSIVE) || c->ts_on;
		o.has_sack_perm = !stk->conf.no_sack && (!(c->flags & CF_PASSIVE) || c->sack_on);
	} else {
		o.has_ts = c->ts_on;
		if ((flags & TH_ACK) && c->sack_on &&
		    (c->ooo_head != NULL || c->dsack_l != c->dsack_r)) {
			/* Options and data together stay within the MSS (RFC
			 * 6691): a full-sized segment has no room for blocks. */
			uint32_t room = c->mss + (c->ts_on ? 12 : 0), used = c->ts_on ? 12 : 0;

			if (room >= plen + used + 12)
				sack_blocks(c, &o, (room - plen - used - 4) / 8);
		}
	}
	if (o.has_ts) {
		o.tsval = tcp_ts_now(c, now);
		o.tsecr = (flags & TH_ACK) ? c->ts_recent : 0;
	}
	olen = tcp_opts_build(opt, &o);
	th = (struct rte_tcp_hdr *)rte_pktmbuf_append(h, (uint16_t)(sizeof(*th) + olen));
	th->src_port = c->lport;
	th->dst_port = c->rport;
	th->sent_seq = rte_cpu_to_be_32(seq);
	th->recv_ack = (flags & TH_ACK) ? rte_cpu_to_be_32(c->rcv_nxt) : 0;
	th->data_off = (uint8_t)(((sizeof(*th) + olen) / 4) << 4);
	th->tcp_flags = flags;
	wnd = tcp_rcv_window(c);
	if (flags & TH_SYN) {
		wnd = wnd > 65535 ? 65535 : wnd; /* never scaled on a SYN */
	} else {
		/* Receiver silly-window avoidance (RFC 9293 3.8.6.2.2): the
		 * right edge moves by a segment or half the buffer, or not. */
		uint32_t old = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;

		if (wnd > old && wnd - old < tcp_rcv_sws_min(c))
			wnd = old;
		wnd >>= c->rcv_ws;
		if (wnd > 65535)
			wnd = 65535;
		/* Remember the right edge we advertised. */
		if (SEQ_GT(c->rcv_nxt + (wnd << c->rcv_ws), c->rcv_adv))
			c->rcv_adv = c->rcv_nxt + (wnd << c->rcv_ws);
	}
	th->rx_win = rte_cpu_to_be_16((uint16_t)wnd);
	th->cksum = 0;
	th->tcp_urp = 0;
	memcpy(th + 1, opt, olen);
	if (payload != NULL) {
		struct rte_mbuf *cl = rte_pktmbuf_clone(payload, stk->pool);

		if (cl == NULL) {
			rte_pktmbuf_free(h);
			stk->stats.tx_no_mbuf++;
			tcp_arm_retry(c, now);
			return -ENOMEM;
		}
		rte_pktmbuf_adj(cl, (uint16_t)off);
		rte_pktmbuf_trim(cl, (uint16_t)(rte_pktmbuf_data_len(cl) - plen));
		rte_pktmbuf_chain(h, cl);
	}
	tcplen = rte_pktmbuf_pkt_len(h);
	ph.src = c->laddr;
	ph.dst = c->raddr;
	ph.zero = 0;
	ph.proto = IPPROTO_TCP;
	ph.len = rte_cpu_to_be_16((uint16_t)tcplen);
	if (tcp_cksum_mbuf(h, 0, tcplen, &l4sum) != 0)
		dmta_panic("tcp_output: checksum over %u bytes of a %u-byte segment", tcplen,
			   rte_pktmbuf_pkt_len(h));
	th->cksum = (uint16_t)~tcp_cksum_fold(tcp_cksum_add(&ph, sizeof(ph), l4sum));
	if (tcp_netif_ip_prepend_from(stk->nif, h, c->laddr, c->raddr, IPPROTO_TCP) != 0) {
		rte_pktmbuf_free(h);
		return -EMSGSIZE;
	}
	stk->stats.segs_tx++;
	c->retry_shift = 0;
	if (flags & TH_ACK) {
		c->last_ack_sent = c->rcv_nxt;
		c->flags &= ~CF_ACK_NOW;
		c->segs_unacked = 0;
		tcp_timer_cancel(&stk->wheel, &c->t_delack);
	}
	/* Past this point the segment counts as sent: if the netif drops it
	 * (ARP unresolved, FIFO full) retransmission recovers. */
	tcp_netif_ip_output(stk->nif, h, c->raddr, now);
	return 0;
}

int tcp_send_ctl(struct tcp_conn *c, uint32_t seq, uint8_t flags, uint64_t now)
{
	if ((flags & TH_SYN) && c->state == TCP_SYN_RECEIVED)
		flags |= TH_ACK;
	/* A bare ACK or RST goes at the highest sequence number sent, as BSD
	 * does: after a timeout snd_nxt is back at snd_una, below what the
	 * peer has received, and the peer would find it out of window and
	 * ignore the acknowledgement in it. (When both ends were resending
	 * after a timeout, neither accepted the other's ACKs.) */
	if (!(flags & (TH_SYN | TH_FIN)) && seq == c->snd_nxt)
		seq = c->snd_max;
	return send_piece(c, seq, flags, NULL, 0, 0, now);
}

/* A RST for a segment that matched no connection (RFC 9293 3.10.7.1). */
void tcp_send_rst_for(struct tcp_stack *stk, uint32_t laddr, uint32_t raddr, uint16_t lport,
		      uint16_t rport, uint32_t seq, uint32_t ack, uint8_t flags, uint64_t now)
{
	struct tcp_conn tmp;

	memset(&tmp, 0, sizeof(tmp));
	tmp.stk = stk;
	tmp.laddr = laddr;
	tmp.raddr = raddr;
	tmp.lport = lport;
	tmp.rport = rport;
	tmp.rcv_nxt = ack;
	tmp.state = TCP_CLOSED;
	stk->stats.rst_tx++;
	/* tcp_rcv_window() of an empty connection: advertise 0 on a RST. */
	tmp.rq_count = TCP_RQ_SLOTS;
	send_piece(&tmp, seq, flags, NULL, 0, 0, now);
}

static struct rte_mbuf *sq_at(const struct tcp_conn *c, uint32_t i)
{
	return c->sq[(c->sq_head + i) % TCP_SQ_SLOTS];
}

/*
 * Cut the unsent segment at sq_next to its first @len bytes; the rest (a
 * copy, at most one segment) becomes the next segment. Only for new data
 * (snd_nxt at snd_max): the slots after it were never sent, so no SACK
 * or retransmission bit moves with them. Returns 0, or -1 (no free slot,
 * no mbuf: the segment waits whole).
 */
static int sq_split(struct tcp_conn *c, uint32_t len)
{
	struct tcp_stack *stk = c->stk;
	struct rte_mbuf *m = sq_at(c, c->sq_next), *t;
	uint32_t rest = rte_pktmbuf_data_len(m) - len;

	if (c->sq_count == TCP_SQ_SLOTS || SEQ_LT(c->snd_nxt, c->snd_max) || len == 0 || rest == 0)
		return -1;
	t = rte_pktmbuf_alloc(stk->pool);
	if (t == NULL) {
		stk->stats.tx_no_mbuf++;
		return -1;
	}
	memcpy(rte_pktmbuf_append(t, (uint16_t)rest), rte_pktmbuf_mtod_offset(m, void *, len),
	       rest);
	rte_pktmbuf_trim(m, (uint16_t)rest);
	for (uint32_t i = c->sq_count; i > c->sq_next + 1; i--)
		c->sq[(c->sq_head + i) % TCP_SQ_SLOTS] = c->sq[(c->sq_head + i - 1) % TCP_SQ_SLOTS];
	c->sq[(c->sq_head + c->sq_next + 1) % TCP_SQ_SLOTS] = t;
	c->sq_count++;
	stk->stats.sq_mbufs++;
	stk->stats.tx_split++;
	return 0;
}

/*
 * The peer's window has room, but less than the next segment: send part of
 * it (RFC 1122 4.2.3.4) when the room is at least half the largest window
 * the peer offered (sender silly-window avoidance, RFC 9293 3.8.6.2.1);
 * a smaller room waits for the persist timer, whose probe then carries
 * what fits (as Linux's tcp_write_wakeup does). Returns true if cut.
 */
static bool window_split(struct tcp_conn *c, uint32_t room, bool probing)
{
	if (room == 0 || (!probing && room < c->max_snd_wnd / 2))
		return false;
	return sq_split(c, room) == 0;
}

static bool can_send_data(const struct tcp_conn *c)
{
	return c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT ||
	       c->state == TCP_FIN_WAIT_1 || c->state == TCP_LAST_ACK || c->state == TCP_CLOSING;
}

void tcp_output(struct tcp_conn *c, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	bool sent = false, sack_rec = c->in_recovery && c->sack_on, rwnd_stop = false, held = false;
	/* Going over the flight again after a timeout, SACKed segments are skipped. */
	bool sack_resend = !c->in_recovery && c->sack_on && SEQ_LT(c->snd_nxt, c->snd_max);
	/* Before a recovery begins (fewer than DupThresh segments SACKed
	 * above a hole, or RACK's reordering window still open) the window
	 * bounds what is in the network too, not what the peer holds: as
	 * Linux's packets in flight, SACKed bytes do not count. */
	bool sack_pipe = sack_rec || sack_resend || (c->sack_on && sq_bits_any(c->sq_sacked));
	uint32_t pipe = 0;

	if (!can_send_data(c)) {
		if ((c->flags & CF_ACK_NOW) && c->state != TCP_CLOSED && c->state != TCP_SYN_SENT)
			tcp_send_ctl(c, c->snd_nxt, TH_ACK, now);
		return;
	}
	if (sack_rec)
		pipe = sack_send_holes(c, now, &held);
	else if (sack_pipe)
		pipe = tcp_sack_flight(c);
	while (c->sq_next < c->sq_count) {
		struct rte_mbuf *m = sq_at(c, c->sq_next);
		uint32_t len = rte_pktmbuf_data_len(m);
		uint32_t inflight = c->snd_nxt - c->snd_una;
		uint32_t cwnd = c->cwnd;

		if (sack_resend && SEQ_LT(c->snd_nxt, c->snd_max) &&
		    sq_bit(c->sq_sacked, (c->sq_head + c->sq_next) % TCP_SQ_SLOTS)) {
			c->snd_nxt += len;
			c->sq_next++;
			continue;
		}

		/* RFC 3042 limited transmit: a new segment for each of the first
		 * two dupacks. (With SACK blocks pipe has shrunk by as much
		 * already; both together are at most two segments more. On
		 * the lab-like wire, 20 seeds, CUBIC took 13.6 s so, 16.7 s
		 * without limited transmit.) */
		if (!c->in_recovery && c->dupacks > 0 && c->dupacks < TCP_DUPACK_THRESH)
			cwnd += c->dupacks * c->mss;
		if (inflight + len > c->snd_wnd) {
			if (!window_split(c, c->snd_wnd > inflight ? c->snd_wnd - inflight : 0,
					  false)) {
				rwnd_stop = (sack_pipe ? pipe : inflight) + len <= cwnd;
				break;
			}
			len = rte_pktmbuf_data_len(m);
		}
		/* With SACK the congestion window bounds pipe, not the flight.
		 * A segment cut before the MSS went down may be larger than
		 * the whole window: it goes when nothing else is out. */
		if ((sack_pipe ? pipe : inflight) + len > cwnd && (sack_pipe ? pipe : inflight) > 0)
			break;
		if (pace_wait(c, now))
			break; /* t_pace runs the output again */
		if (send_segment(c, c->snd_nxt, TH_ACK | TH_PSH, m, now) != 0)
			break; /* pool empty: t_retry tries again */
		/* (BBR sets the first rate as the first segment goes.) */
		tcp_rack_sent(c, (c->sq_head + c->sq_next) % TCP_SQ_SLOTS, now,
			      SEQ_LT(c->snd_nxt, c->snd_max));
		pace_sent(c, len, now);
		if (SEQ_LT(c->snd_nxt, c->snd_max)) {
			stk->stats.retransmits++;
			c->retransmits++;
		} else {
			stk->stats.bytes_tx += len;
		}
		if (!c->ts_on && !c->rtt_timing && !SEQ_LT(c->snd_nxt, c->snd_max)) {
			c->rtt_timing = true;
			c->rtt_seq = c->snd_nxt;
			c->rtt_start = now;
		}
		c->snd_nxt += len;
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		c->sq_next++;
		pipe += len;
		sent = true;
		if (!tcp_timer_pending(&c->t_rtx) || (c->flags & CF_PERSIST)) {
			c->flags &= ~CF_PERSIST;
			tcp_arm_rtx(c, now);
		}
	}
	/* The FIN: first time after the data, or again when a timeout went back to it. */
	if ((c->flags & CF_FIN_PENDING) && c->sq_next == c->sq_count &&
	    (!(c->flags & CF_FIN_SENT) || c->snd_nxt == c->fin_seq) &&
	    tcp_send_ctl(c, c->snd_nxt, TH_FIN | TH_ACK, now) == 0) {
		/* (A FIN that could not be built stays unsent; t_retry tries again.) */
		if (c->flags & CF_FIN_SENT) {
			stk->stats.retransmits++;
			c->retransmits++;
		}
		c->fin_seq = c->snd_nxt;
		c->flags |= CF_FIN_SENT;
		c->snd_nxt++;
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		sent = true;
		if (!tcp_timer_pending(&c->t_rtx))
			tcp_arm_rtx(c, now);
	}
	/* Data waiting, nothing in flight, and the peer's window too small for the
	 * next segment (segments are cut once, at tcp_send()): probe until it opens. */
	if (c->sq_next < c->sq_count && c->snd_nxt == c->snd_una &&
	    rte_pktmbuf_data_len(sq_at(c, c->sq_next)) > c->snd_wnd &&
	    !tcp_timer_pending(&c->t_rtx)) {
		c->flags |= CF_PERSIST;
		tcp_arm_rtx(c, now);
	}
	if (c->bbr != NULL)
		tcp_bbr_app_limited(c, rwnd_stop);
	if (sack_rec)
		tcp_rack_probe_arm(c, now, held);
	if (!sent && (c->flags & CF_ACK_NOW))
		tcp_send_ctl(c, c->snd_nxt, TH_ACK, now);
}

/* Send the first unacknowledged segment again (timeout or fast retransmit). */
void tcp_retransmit_head(struct tcp_conn *c, uint64_t now)
{
	struct tcp_stack *stk = c->stk;

	stk->stats.retransmits++;
	c->retransmits++;
	c->rtt_timing = false; /* Karn */
	if (c->sq_count > 0 && c->sq_next > 0) {
		if (send_segment(c, c->snd_una, TH_ACK | TH_PSH, sq_at(c, 0), now) == 0) {
			tcp_rack_sent(c, c->sq_head, now, true);
			sq_bit_set(c->sq_rtx, c->sq_head);
		}
	} else if ((c->flags & CF_FIN_SENT) && c->snd_una == c->fin_seq) {
		tcp_send_ctl(c, c->fin_seq, TH_FIN | TH_ACK, now);
	}
}

/*
 * The @n-th timeout in a row (retransmission or window probe): past the
 * limit, the connection is given up: ETIMEDOUT, or for a closed (orphaned)
 * connection in FIN_WAIT_1, CLOSING or LAST_ACK after orphan_retries, as
 * Linux's tcp_orphan_retries. Returns true if it was.
 */
static bool retries_exhausted(struct tcp_conn *c, uint32_t n, uint64_t now)
{
	struct tcp_stack *stk = c->stk;
	bool syn = c->state == TCP_SYN_SENT || c->state == TCP_SYN_RECEIVED;
	bool orphan = (c->flags & CF_USER_CLOSED) && !syn;
	uint32_t limit = syn ? stk->conf.syn_retries : stk->conf.max_retries;

	if (orphan && stk->orphan_retries < limit)
		limit = stk->orphan_retries;
	if (n <= limit)
		return false;
	if (orphan) {
		tcp_orphan_drop(c, now);
		return true;
	}
	stk->stats.conn_timeouts++;
	if (!syn) {
		tcp_send_ctl(c, c->snd_nxt, TH_RST | TH_ACK, now);
		stk->stats.rst_tx++;
	}
	tcp_conn_fail(c, ETIMEDOUT);
	return true;
}

/*
 * Packetization-layer black-hole detection (RFC 4821 and RFC 8899 in
 * spirit, as Linux's tcp_mtu_probing): when the second timeout in a row
 * finds a full-sized segment unacknowledged, the path may drop large
 * frames without a word (ICMP filtered): the MSS goes down to
 * TCP_BASE_MSS, and after the fourth to TCP_DEFAULT_MSS. Never up again.
 *
 * Unless, at the second, the peer holds (SACKed) a segment larger than
 * the new size: frames of that size got through, and the timeouts are
 * loss. On a lossy path a hole's resends, or the ACK after it, are lost
 * twice now and then (the lab's 5%: once in some thirty transfers of 4
 * MiB), and the cut cost a third of every segment for the rest of the
 * connection. A path whose MTU shrank after those were SACKed still
 * gets its cut, at the fourth timeout.
 */
static void blackhole_check(struct tcp_conn *c)
{
	uint32_t opts = c->ts_on ? 12 : 0, mss;

	if ((c->nrtx != 2 && c->nrtx != 4) || c->sq_count == 0 || c->state == TCP_SYN_SENT ||
	    c->state == TCP_SYN_RECEIVED)
		return;
	mss = (c->mss > TCP_BASE_MSS - opts ? TCP_BASE_MSS : TCP_DEFAULT_MSS) - opts;
	if (mss >= c->mss || rte_pktmbuf_data_len(sq_at(c, 0)) <= mss)
		return;
	for (uint32_t i = 1; c->nrtx == 2 && i < c->sq_next; i++) {
		uint32_t slot = (c->sq_head + i) % TCP_SQ_SLOTS;

		if (sq_bit(c->sq_sacked, slot) && rte_pktmbuf_data_len(c->sq[slot]) > mss)
			return;
	}
	c->mss = mss;
	c->stk->stats.pmtu_blackhole++;
}

/* The last segment sent, again (a tail loss probe with no new data). */
void tcp_retransmit_last(struct tcp_conn *c, uint64_t now)
{
	uint32_t i = c->sq_next - 1, slot = (c->sq_head + i) % TCP_SQ_SLOTS, seq = c->snd_una;

	for (uint32_t k = 0; k < i; k++)
		seq += rte_pktmbuf_data_len(sq_at(c, k));
	if (send_segment(c, seq, TH_ACK | TH_PSH, c->sq[slot], now) == 0) {
		tcp_rack_sent(c, slot, now, true);
		c->stk->stats.retransmits++;
		c->retransmits++;
	}
}

void tcp_rtx_timeout(struct tcp_timer *t, uint64_t now)
{
	struct tcp_conn *c = CONN_OF(t, t_rtx);
	struct tcp_stack *stk = c->stk;

	if (c->flags & CF_TLP) {
		tcp_tlp_fire(c, now);
		return;
	}
	c->flags &= ~(CF_TLP_OUT | CF_RPROBE);

	if (c->flags & CF_PERSIST) {
		/* Probes count toward the limits too: a peer that is gone, or
		 * that holds a closed connection's window shut, gives up. */
		if (retries_exhausted(c, ++c->probes, now))
			return;
		/* Some room, less than the next segment: the probe is data. */
		if (c->snd_nxt == c->snd_una && c->sq_next < c->sq_count &&
		    window_split(c, c->snd_wnd, true)) {
			c->flags &= ~CF_PERSIST;
			tcp_output(c, now);
			return;
		}
		/* Zero-window probe: an old sequence number makes the peer answer with its window.
		 */
		stk->stats.zero_window_probes++;
		tcp_send_ctl(c, c->snd_una - 1, TH_ACK, now);
		c->rto = c->rto * 2 > stk->rto_max ? stk->rto_max : c->rto * 2;
		tcp_arm_rtx(c, now);
		return;
	}
	stk->stats.rto_fired++;
	if (retries_exhausted(c, c->nrtx + 1, now))
		return;
	c->nrtx++;
	c->rto = c->rto * 2 > stk->rto_max ? stk->rto_max : c->rto * 2;
	c->rtt_timing = false;
	blackhole_check(c);
	switch (c->state) {
	case TCP_SYN_SENT:
		stk->stats.retransmits++;
		c->retransmits++;
		tcp_send_ctl(c, c->iss, TH_SYN, now);
		tcp_arm_rtx(c, now);
		return;
	case TCP_SYN_RECEIVED:
		stk->stats.retransmits++;
		c->retransmits++;
		tcp_send_ctl(c, c->iss, TH_SYN, now);
		tcp_arm_rtx(c, now);
		return;
	default:
		break;
	}
	/* RFC 5681 (4): after a timeout, one segment at a time from snd_una;
	 * ssthresh from the flight of the first timeout of a series (the
	 * later ones find the window at one segment already). */
	if (c->nrtx == 1) {
		tcp_undo_mark(c);
		tcp_cc_congestion(c, now);
	}
	memset(c->sq_lost, 0, sizeof(c->sq_lost));
	c->cwnd = c->mss;
	c->in_recovery = false;
	/* SACK information is kept (the peer's reneging is detected on ACK,
	 * tcp_input.c): the resend skips what the peer holds, as Linux does
	 * (RFC 6675 5.1 leaves this open; RFC 2018 8 would clear it). */
	memset(c->sq_rtx, 0, sizeof(c->sq_rtx));
	c->dupacks = 0;
	c->recover = c->snd_max;
	/* Go back to snd_una; the FIN keeps its place (fin_seq) and goes again
	 * when snd_nxt reaches it, so an ACK covering it is still recognised. */
	c->snd_nxt = c->snd_una;
	c->sq_next = 0;
	tcp_output(c, now);
	if (!tcp_timer_pending(&c->t_rtx) && c->snd_una != c->snd_max)
		tcp_arm_rtx(c, now);
}

void tcp_delack_timeout(struct tcp_timer *t, uint64_t now)
{
	struct tcp_conn *c = CONN_OF(t, t_delack);

	c->stk->stats.delayed_acks++;
	c->flags |= CF_ACK_NOW;
	tcp_output(c, now);
}
