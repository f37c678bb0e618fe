/*
 * tcp_stack_int.h - private to tcp_stack.c, tcp_input.c and tcp_output.c.
 *
 * DESCRIPTION
 *	struct tcp_conn and struct tcp_stack, sequence arithmetic, and the
 *	functions the three files share. Send and receive queues are rings
 *	of mbuf pointers inside the connection: each send-queue mbuf is one
 *	segment's payload, cut once at tcp_send() time; snd_una is always the
 *	sequence number of the first byte of the first mbuf (acknowledged
 *	bytes are trimmed off its front).
 */
#ifndef TCP_STACK_INT_H
#define TCP_STACK_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "tcp/tcp_netif.h"
#include "tcp/tcp_seg.h"
#include "tcp/tcp_stack.h"
#include "tcp/tcp_timer.h"

/* Send-queue segments per connection: what the default sndbuf (256 KiB)
 * holds in full-size segments. At 128, a hole whose resend was lost again
 * left the whole queue SACKed behind it on the lab's impaired path, and
 * nothing more could be sent until it was filled. */
#define TCP_SQ_SLOTS 256
/* Receive-queue segments per connection: as many. With fewer than a full
 * window of segments, a filled hole moved only what the read queue held
 * and the cumulative ACK stopped at data already SACKed, which the sender
 * must take for reneging. */
#define TCP_RQ_SLOTS 256
/* Out-of-order data is held up to the offered window; the mbufs holding
 * it (buffer sizes, headers included) up to this many times rcvbuf, which
 * a window of segments of 536 bytes or more never reaches, and which
 * bounds what a peer sending tiny segments into holes can pin. */
#define TCP_OOO_MEM_FACTOR 4
#define TCP_LISTEN_MAX	   16
#define TCP_DEFAULT_MSS	   536 /* RFC 9293 3.7.1, when the peer sends no MSS option */
/* Black-hole detection's first step down (Linux's tcp_base_mss). */
#define TCP_BASE_MSS 1024
/* The smallest path MTU an ICMP message may set (Linux's min_pmtu). */
#define TCP_MIN_PMTU 552
/* A peer MSS below this is raised to it (Linux's TCP_MIN_MSS): 88 bytes
 * leave room for 40 bytes of options and some data, never a wrap. */
#define TCP_MIN_MSS 88
/* Out-of-window, PAWS and challenge ACKs: one per connection per this many
 * ms (Linux's tcp_invalid_ratelimit). */
#define TCP_OOW_ACK_MS	  500
#define TCP_MAX_WSCALE	  14
#define TCP_TS_HZ	  1000 /* our timestamp clock: 1 ms */
#define TCP_DUPACK_THRESH 3
/* Recoveries without a D-SACK or reordering seen before the reordering
 * window narrows again (RFC 8985 6.2 step 4). */
#define TCP_REO_PERSIST 16
/* After a send failed for want of an mbuf: try again in 1 ms, doubling up
 * to 64 ms while the pool stays dry (see tcp_arm_retry()). */
#define TCP_RETRY_MAX_SHIFT 6
/* Send queues may hold at most this share of the pool (numerator / 4): the
 * rest stays for headers, clones and received frames, without which no
 * ACK could come in to free the send queues again. */
#define TCP_SQ_POOL_SHARE 3

#define SEQ_LT(a, b)  ((int32_t)((a) - (b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((a) - (b)) <= 0)
#define SEQ_GT(a, b)  ((int32_t)((a) - (b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((a) - (b)) >= 0)

/* TCP header flags */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

/* struct tcp_conn.flags */
enum {
	CF_USER_CLOSED = 1 << 0, /* no application handle: free when CLOSED */
	CF_FIN_PENDING = 1 << 1, /* application shut down: FIN goes after the data */
	CF_FIN_SENT = 1 << 2,	 /* FIN is at fin_seq (sent at least once) */
	CF_ACK_NOW = 1 << 3,	 /* an ACK must go out at the next output */
	CF_WANT_WRITE = 1 << 4,	 /* a tcp_send() was short: TCP_EV_WRITABLE on room */
	CF_PASSIVE = 1 << 5,	 /* opened by a listener */
	CF_RCVD_FIN = 1 << 6,	 /* the peer's FIN is in (rcv_nxt counts it) */
	CF_EV_QUEUED = 1 << 7,	 /* on the stack's ready list */
	CF_IN_TABLE = 1 << 8,	 /* in the 4-tuple table */
	CF_PERSIST = 1 << 9,	 /* t_rtx is the zero-window probe timer */
	CF_IN_TW = 1 << 10,	 /* on the stack's TIME_WAIT list */
	CF_ER_WAIT = 1 << 11,	 /* t_retry also checks for an early retransmit */
	CF_ON_OOO = 1 << 12,	 /* on the stack's list of connections holding out-of-order data */
	CF_TLP = 1 << 13,	 /* t_rtx is a tail loss probe timeout (tcp_rack.c) */
	CF_TLP_OUT = 1 << 14,	 /* a probe is out: no other until an ACK moves snd_una */
	CF_OOO_FIN = 1 << 15,	 /* the peer's FIN came ahead of a hole: it is at ooo_fin */
	CF_RPROBE = 1 << 16,	 /* the first segment's last send was a recovery probe */
};

/* Units of BBR's bandwidth: bytes per sq_xmit unit (about 1 us), << 24. */
#define TCP_BW_SHIFT	  24
#define TCP_BBR_BW_ROUNDS 10 /* the max filter's window, round trips */

/*
 * BBR (tcp_bbr.c), one per connection, allocated with the stack only when
 * it is the configured controller (a connection without one runs CUBIC).
 * Delivery-rate sampling keeps, with each send-queue segment (struct
 * tcp_rs_ent, in its mbuf), the connection's delivered count and times at
 * the segment's last transmission. Delivered counts are bytes modulo 2^32
 * (they are only ever subtracted); times are sq_xmit units.
 */
struct tcp_bbr {
	uint32_t delivered, delivered_time, first_sent_time;
	uint32_t app_limited; /* delivered at which the app-limited spell ends; 0: none */
	uint32_t dsack_segs;  /* segments reported received twice, counted in delivered */
	bool app_limited_on;
	/* This ACK's sample: the most recently sent segment it delivered. */
	bool rs_on, rs_app_limited;
	uint32_t rs_prior_delivered, rs_prior_time, rs_send_elapsed, rs_ack_elapsed;
	uint32_t rs_rtt;	/* UINT32_MAX: none (only retransmissions delivered) */
	uint32_t hs_rtt;	/* the handshake's RTT (sq_xmit units), 0: none */
	uint32_t ack_delivered; /* delivered when this ACK's processing began */
	/* The model. */
	uint8_t mode, cycle_idx, full_bw_count;
	bool filled_pipe, round_start, loss, probe_rtt_round_done;
	uint32_t round_count, next_round_delivered;
	uint64_t bw_round[TCP_BBR_BW_ROUNDS], btl_bw, full_bw; /* TCP_BW_SHIFT units */
	uint32_t rtprop, rtprop_stamp, probe_rtt_done, cycle_stamp;
	uint32_t pacing_gain, cwnd_gain; /* BBR_UNIT = 1.0 */
	uint32_t prior_cwnd;
	uint64_t pacing_rate; /* TCP_BW_SHIFT units */
	/* ACK aggregation: bytes delivered beyond bw x time since the epoch
	 * began, its largest in each of the last two windows of rounds. */
	uint32_t ack_epoch, ack_epoch_acked, extra_acked[2];
	uint8_t extra_idx, extra_rounds;
};

struct tcp_conn {
	struct tcp_conn *hnext; /* hash chain, or free list */
	struct tcp_conn *ev_next;
	struct tcp_conn *tw_next, *tw_prev; /* TIME_WAIT list, oldest first */
	struct tcp_stack *stk;
	void *user;
	uint32_t laddr, raddr; /* network order */
	uint16_t lport, rport; /* network order */
	uint8_t state;	       /* enum tcp_state */
	uint8_t snd_ws, rcv_ws;
	uint8_t ts_on;
	uint8_t sack_on; /* both ends offered SACK */
	uint32_t flags;
	uint32_t ev;
	int error;

	/* send side (RFC 9293 names) */
	uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2, fin_seq;
	uint32_t mss; /* payload bytes per segment (options excluded) */
	uint32_t cwnd, ssthresh, recover;
	/* CUBIC (tcp_cc.c): the window before the last loss (W_max) and at it
	 * (cwnd_prior), bytes; the epoch's start (TSC, 0 = not started), K
	 * (seconds) and the Reno-friendly estimate W_est (segments). */
	uint32_t cc_wmax, cc_prior;
	uint64_t cc_epoch;
	double cc_k, cc_west;
	uint32_t dupacks;
	bool in_recovery;
	uint32_t nrtx;	     /* consecutive retransmissions (timer) */
	uint8_t retry_shift; /* t_retry backoff: 1 ms << retry_shift */
	uint64_t retransmits;
	uint64_t srtt, rttvar, rto; /* TSC cycles; srtt 0 = no sample yet */
	bool rtt_timing;	    /* timing rtt_seq (no timestamps) */
	uint32_t rtt_seq;
	uint64_t rtt_start;
	uint32_t ts_recent;
	uint32_t ts_off;	/* added to our timestamp clock (per connection, keyed) */
	uint32_t ts_start;	/* our first timestamp: echoes below it were never sent */
	uint32_t last_ack_sent; /* RFC 7323 4.3 Last.ACK.sent */
	uint32_t max_snd_wnd;	/* largest window the peer offered (RFC 5961 MAX.SND.WND) */
	uint32_t probes;	/* window probes sent since the window was last open */
	uint64_t oow_ack_at;	/* when the last rate-limited ACK went (TSC) */
	/* Pacing (BBR): TSC cycles per byte << 16 (0: no pacing), when the
	 * next segment may leave, and how far behind now that may lag (the
	 * burst allowed after a pause: a quantum less one segment). */
	uint64_t pace_cpb, pace_next, pace_credit;
	struct tcp_bbr *bbr; /* NULL: CUBIC */

	struct rte_mbuf *sq[TCP_SQ_SLOTS];
	uint32_t sq_head, sq_count, sq_next; /* sq_next: segments already sent */
	uint32_t sq_bytes;
	/* SACK scoreboard, one bit per send-queue slot (by slot, not position):
	 * SACKed by the peer; retransmitted in this recovery. */
	uint64_t sq_sacked[TCP_SQ_SLOTS / 64], sq_rtx[TCP_SQ_SLOTS / 64];
	/* RACK (tcp_rack.c): marked lost; ever sent again; when last sent
	 * (TSC >> xmit_shift). */
	uint64_t sq_lost[TCP_SQ_SLOTS / 64], sq_retx[TCP_SQ_SLOTS / 64];
	uint32_t sq_xmit[TCP_SQ_SLOTS];
	uint32_t rack_xmit, rack_end, rack_rtt, rack_fack, min_rtt; /* xmit units */
	bool rack_valid, reord_seen, dsack_round_on;
	uint8_t reo_mult, reo_persist; /* reordering window: (reo_mult + 1) * min_rtt / 4 */
	uint32_t reo_extent;  /* or how late an overtaken segment came, if more (xmit units) */
	uint32_t dsack_round; /* D-SACKs before snd_una passes it: same round */
	uint32_t dsack_rx_l, dsack_rx_r; /* the last D-SACK block taken */
	/* Undo of a spurious recovery or timeout (tcp_rack.c). */
	bool undo_on, undo_ts; /* undo_ts: undo_tsval is the first retransmission's */
	uint32_t undo_marker, undo_retrans, undo_tsval, prior_cwnd, prior_ssthresh;

	/* receive side */
	uint32_t irs, rcv_nxt, rcv_adv; /* rcv_adv: right edge advertised */
	uint32_t dsack_l,
	    dsack_r; /* a duplicate for the next ACK to report (RFC 2883); l == r: none */
	uint32_t segs_unacked;
	struct rte_mbuf *rq[TCP_RQ_SLOTS];
	uint32_t rq_head, rq_count, rq_bytes;
	/* Out-of-order segments, sorted by sequence, not overlapping: a list
	 * threaded through the mbufs themselves (struct tcp_ooo_ent). */
	struct rte_mbuf *ooo_head, *ooo_tail;
	uint32_t ooo_count, ooo_bytes, ooo_mem; /* ooo_mem: buf_len summed */
	uint32_t ooo_last;			/* latest held: its block is SACKed first */
	uint32_t ooo_fin;			/* CF_OOO_FIN: the FIN's sequence number */
	TAILQ_ENTRY(tcp_conn) ooo_link;		/* the stack's list of holders, oldest first */

	struct tcp_timer t_rtx;	   /* retransmission, SYN retries, persist */
	struct tcp_timer t_delack; /* delayed ACK */
	struct tcp_timer t_misc;   /* connect deadline, TIME_WAIT, FIN_WAIT_2 */
	struct tcp_timer t_retry;  /* output again: a send failed for want of an mbuf */
	struct tcp_timer t_pace;   /* output again: the pacing rate allows the next segment */
};

/* Per-mbuf fields, in one mbuf dynamic field (an mbuf is either held out
 * of order by a receiver or in a sender's send queue, never both): a
 * segment held out of order, and BBR's stamps of a send-queue segment's
 * last transmission (tcp_bbr.c), kept with the segment so that they cost
 * nothing per empty send-queue slot. */
struct tcp_ooo_ent {
	struct rte_mbuf *next;
	uint32_t seq;
};

struct tcp_rs_ent {
	uint32_t delivered, dlv_time, first_sent;
	bool app_limited;
};

struct tcp_listener {
	uint16_t port; /* network order; 0 = free */
	void *user;
};

struct tcp_stack {
	struct tcp_stack_conf conf;
	struct tcp_netif *nif;
	struct rte_mempool *pool;
	uint32_t laddr;		 /* the netif's primary address: tcp_connect()'s source */
	uint32_t our_mss;	 /* MSS option we send: MTU - 40 */
	uint8_t rcv_ws;		 /* window shift we offer */
	uint64_t hz, tsc_per_ts; /* TSC cycles per timestamp tick */
	uint64_t rto_init, rto_min, rto_max, delack, time_wait, connect_timeout;
	uint64_t key[2];       /* SipHash-2-4 key (conf.secret, or random) */
	uint32_t port_ctr;     /* RFC 6056 algorithm 3: next_ephemeral */
	uint8_t xmit_shift;    /* sq_xmit units: TSC >> xmit_shift, about 1 us */
	uint32_t rx_mbufs_max; /* receive + out-of-order mbufs of all connections */
	uint32_t orphan_retries;
	uint64_t orphan_timeout;
	uint32_t chal_limit, chal_count;  /* challenge ACKs per second, sent this second */
	uint64_t chal_second;		  /* start of the current second (TSC) */
	TAILQ_HEAD(, tcp_conn) ooo_conns; /* connections holding out-of-order data */
	uint32_t sq_mbufs_max;		  /* TCP_SQ_POOL_SHARE of the pool */
	int ooo_off;			  /* offset of struct tcp_ooo_ent / tcp_rs_ent in an mbuf */
	struct tcp_stack_stats stats;
	struct tcp_listener listeners[TCP_LISTEN_MAX];
	struct tcp_conn *ev_head, *ev_tail;
	struct tcp_conn *free_conns;
	struct tcp_conn *tw_head, *tw_tail;
	struct tcp_conn *conns; /* max_conns of them */
	struct tcp_bbr *bbr;	/* max_conns of them, or NULL (CUBIC) */
	uint32_t hmask;
	struct tcp_conn **htab;
	struct tcp_wheel wheel;
};

/* The segment being processed. */
struct tcp_seg {
	uint32_t seq, ack, len; /* len: payload bytes (SYN/FIN not counted) */
	uint32_t wnd;		/* raw window field */
	uint8_t flags;
	struct tcp_opts opts;
};

/* tcp_stack.c */
void tcp_conn_event(struct tcp_conn *c, uint32_t ev, int error);
void tcp_conn_set_closed(struct tcp_conn *c);
void tcp_conn_fail(struct tcp_conn *c, int error);
struct tcp_conn *tcp_conn_lookup(struct tcp_stack *stk, uint32_t laddr, uint16_t lport,
				 uint32_t raddr, uint16_t rport);
struct tcp_conn *tcp_conn_new(struct tcp_stack *stk, uint32_t laddr, uint32_t raddr, uint16_t lport,
			      uint16_t rport, uint64_t now);
uint32_t tcp_isn(struct tcp_stack *stk, const struct tcp_conn *c, uint64_t now);
uint64_t tcp_siphash(const uint64_t key[2], const void *data, size_t len);
void tcp_ooo_list_update(struct tcp_conn *c);
uint32_t tcp_ooo_purge(struct tcp_conn *c);
void tcp_orphan_drop(struct tcp_conn *c, uint64_t now);
void tcp_enter_time_wait(struct tcp_conn *c, uint64_t now);

/* tcp_input.c */
void tcp_input(void *arg, struct rte_mbuf *m, uint32_t hlen, uint64_t now);
void tcp_enter_recovery(struct tcp_conn *c, uint64_t now);
int tcp_sack_head_lost(const struct tcp_conn *c);
void tcp_ooo_drain(struct tcp_conn *c);
void tcp_fin_check(struct tcp_conn *c, uint64_t now);
bool tcp_oow_ack_allowed(struct tcp_conn *c, uint64_t now, bool challenge);

void tcp_icmp_err(void *arg, uint8_t code, uint16_t mtu, const struct rte_ipv4_hdr *in,
		  const uint8_t *l4, uint32_t l4len, uint64_t now);

/* tcp_cc.c */
void tcp_cc_ack(struct tcp_conn *c, uint32_t acked, uint64_t now);
void tcp_cc_congestion(struct tcp_conn *c, uint64_t now);
void tcp_cc_undo(struct tcp_conn *c);

/* tcp_bbr.c */
void tcp_bbr_init(struct tcp_conn *c);
void tcp_bbr_sent(struct tcp_conn *c, uint32_t slot, uint64_t now);
void tcp_bbr_delivered(struct tcp_conn *c, uint32_t slot, uint32_t len, bool cum, uint64_t now);
void tcp_bbr_ack(struct tcp_conn *c, uint64_t now);
void tcp_bbr_dsack(struct tcp_conn *c, uint32_t len, uint64_t now);
void tcp_bbr_app_limited(struct tcp_conn *c, bool rwnd);
void tcp_bbr_congestion(struct tcp_conn *c);
void tcp_bbr_undo(struct tcp_conn *c);

/* tcp_rack.c */
uint32_t tcp_xmit_now(const struct tcp_stack *stk, uint64_t now);
void tcp_rack_sent(struct tcp_conn *c, uint32_t slot, uint64_t now, bool rtx);
void tcp_rack_delivered(struct tcp_conn *c, uint32_t slot, uint32_t end, uint64_t now);
uint32_t tcp_rack_detect(struct tcp_conn *c, uint64_t now);
void tcp_rack_dsack(struct tcp_conn *c, uint32_t l, uint32_t r);
void tcp_undo_mark(struct tcp_conn *c);
void tcp_undo_eifel(struct tcp_conn *c, uint32_t tsecr);
bool tcp_tlp_arm(struct tcp_conn *c, uint64_t now);
void tcp_tlp_fire(struct tcp_conn *c, uint64_t now);
void tcp_rack_probe_arm(struct tcp_conn *c, uint64_t now, bool held);

/* tcp_output.c */
int tcp_send_ctl(struct tcp_conn *c, uint32_t seq, uint8_t flags, uint64_t now);
void tcp_output(struct tcp_conn *c, uint64_t now);
void tcp_send_rst_for(struct tcp_stack *stk, uint32_t laddr, uint32_t raddr, uint16_t lport,
		      uint16_t rport, uint32_t seq, uint32_t ack, uint8_t flags, uint64_t now);
void tcp_rtx_timeout(struct tcp_timer *t, uint64_t now);
void tcp_delack_timeout(struct tcp_timer *t, uint64_t now);
void tcp_retransmit_head(struct tcp_conn *c, uint64_t now);
void tcp_arm_rtx(struct tcp_conn *c, uint64_t now);
void tcp_arm_retry(struct tcp_conn *c, uint64_t now);
void tcp_retry_timeout(struct tcp_timer *t, uint64_t now);
void tcp_pace_timeout(struct tcp_timer *t, uint64_t now);
uint32_t tcp_rcv_window(const struct tcp_conn *c);
uint32_t tcp_rcv_sws_min(const struct tcp_conn *c);
void tcp_sack_update(struct tcp_conn *c, const struct tcp_opts *o, uint32_t ack, uint64_t now);
void tcp_retransmit_last(struct tcp_conn *c, uint64_t now);
void tcp_sack_forget(struct tcp_conn *c);
uint32_t tcp_sack_flight(const struct tcp_conn *c);
void tcp_bbr_info(const struct tcp_conn *c, struct tcp_conn_info *i);
uint32_t tcp_ts_now(const struct tcp_conn *c, uint64_t now);

static inline struct tcp_ooo_ent *tcp_ooo_ent(const struct tcp_stack *stk, struct rte_mbuf *m)
{
	return RTE_MBUF_DYNFIELD(m, stk->ooo_off, struct tcp_ooo_ent *);
}

static inline struct tcp_rs_ent *tcp_rs_ent(const struct tcp_stack *stk, struct rte_mbuf *m)
{
	return RTE_MBUF_DYNFIELD(m, stk->ooo_off, struct tcp_rs_ent *);
}

static inline bool sq_bit(const uint64_t *b, uint32_t slot)
{
	return (b[slot / 64] >> (slot % 64)) & 1;
}

static inline void sq_bit_set(uint64_t *b, uint32_t slot)
{
	b[slot / 64] |= 1ULL << (slot % 64);
}

static inline void sq_bit_clear(uint64_t *b, uint32_t slot)
{
	b[slot / 64] &= ~(1ULL << (slot % 64));
}

/* Any bit set in a send-queue bitmap. */
static inline bool sq_bits_any(const uint64_t *b)
{
	uint64_t any = 0;

	for (uint32_t i = 0; i < TCP_SQ_SLOTS / 64; i++)
		any |= b[i];
	return any != 0;
}

#define CONN_OF(t, field) ((struct tcp_conn *)((char *)(t)-offsetof(struct tcp_conn, field)))

#endif
