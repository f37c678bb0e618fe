/*
 * tcp_stack.c - a worker's TCP: connection table, ports, events and the
 *	application interface.
 *
 * SYNOPSIS
 *	See tcp_stack.h.
 *
 * DESCRIPTION
 *	Connections come from an array allocated at creation (a free list
 *	threads the unused ones) and sit in a chained hash table keyed by the
 *	4-tuple while the protocol needs them. A connection leaves the table
 *	when it reaches CLOSED; its memory is recycled once the application
 *	has released the handle too (and it is off the ready list), so a
 *	handle stays valid until tcp_close()/tcp_abort() whatever the peer
 *	does.
 *
 *	Segment arrival is in tcp_input.c, sending and the retransmission
 *	timer in tcp_output.c.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <netinet/in.h>

#include <rte_byteorder.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "core/base/dmta_log.h"
#include "tcp/tcp_stack_int.h"

#define STAT(f)                                                                                    \
	{                                                                                          \
#f, offsetof(struct tcp_stack_stats, f)                                            \
	}

static const struct tcp_stat_name stack_stat_names[] = {
    STAT(conns),	  STAT(conns_alloc),	  STAT(active_opens), STAT(passive_opens),
    STAT(conn_refused),	  STAT(conn_timeouts),	  STAT(conn_resets),  STAT(segs_rx),
    STAT(segs_tx),	  STAT(bytes_rx),	  STAT(bytes_tx),     STAT(retransmits),
    STAT(rto_fired),	  STAT(fast_retransmits), STAT(rx_malformed), STAT(rx_bad_csum),
    STAT(rx_no_conn),	  STAT(rx_out_of_window), STAT(rx_paws),      STAT(rx_ooo_drop),
    STAT(rx_rcvbuf_drop), STAT(challenge_acks),	  STAT(rst_tx),	      STAT(syn_dropped),
    STAT(tx_no_mbuf),	  STAT(delayed_acks),	  STAT(tw_recycled),  STAT(zero_window_probes),
    STAT(sq_mbufs),	  STAT(tx_sq_capped),	  STAT(tx_txq_full),  STAT(sack_blocks_rx),
    STAT(sack_blocks_tx), STAT(rx_old_ack),	  STAT(rx_no_ts),     STAT(rx_bad_tsecr),
    STAT(rx_mss_clamped), STAT(ack_rate_limited), STAT(orphan_drops), STAT(rst_data_after_close),
    STAT(rx_mbufs),	  STAT(rx_pruned),	  STAT(rx_mem_drop),  STAT(tx_split),
    STAT(icmp_invalid),	  STAT(icmp_conn_aborts), STAT(icmp_soft),    STAT(pmtu_reductions),
    STAT(pmtu_blackhole), STAT(rack_lost),	  STAT(tlp_probes),   STAT(dsacks_rx),
    STAT(undos),	  STAT(dsacks_tx),	  STAT(paced),	      STAT(recovery_probes),
};

_Static_assert(sizeof(stack_stat_names) / sizeof(stack_stat_names[0]) ==
		   sizeof(struct tcp_stack_stats) / sizeof(uint64_t),
	       "tcp_stack_stats and stack_stat_names disagree");

const struct tcp_stat_name *tcp_stack_stat_names(size_t *n)
{
	*n = sizeof(stack_stat_names) / sizeof(stack_stat_names[0]);
	return stack_stat_names;
}

const struct tcp_stack_stats *tcp_stack_stats(const struct tcp_stack *stk)
{
	return &stk->stats;
}

const char *tcp_state_name(enum tcp_state s)
{
	static const char *const names[] = {
	    "CLOSED",	  "LISTEN",	"SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
	    "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",  "LAST_ACK",	    "TIME_WAIT",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

enum tcp_state tcp_conn_state(const struct tcp_conn *c)
{
	return (enum tcp_state)c->state;
}

uint64_t tcp_conn_retransmits(const struct tcp_conn *c)
{
	return c->retransmits;
}

void tcp_conn_info(const struct tcp_conn *c, struct tcp_conn_info *i)
{
	uint64_t hz = c->stk->hz;

	memset(i, 0, sizeof(*i));
	i->mss = c->mss;
	i->cwnd = c->cwnd;
	i->ssthresh = c->ssthresh;
	i->flight = c->snd_max - c->snd_una;
	i->pipe = tcp_sack_flight(c);
	i->sq_sent = c->sq_next;
	i->sq_len = c->sq_count;
	i->snd_wnd = c->snd_wnd;
	i->srtt_us = (uint32_t)(c->srtt * 1000000 / hz);
	i->rto_us = (uint32_t)(c->rto * 1000000 / hz);
	i->in_recovery = c->in_recovery;
	i->retransmits = c->retransmits;
	if (c->bbr != NULL)
		tcp_bbr_info(c, i);
}

void tcp_conn_set_user(struct tcp_conn *c, void *user)
{
	c->user = user;
}

uint32_t tcp_readable(const struct tcp_conn *c)
{
	return c->rq_bytes;
}

static uint64_t ms_tsc(const struct tcp_stack *stk, uint32_t ms)
{
	return (uint64_t)((unsigned __int128)stk->hz * ms / 1000);
}

/* ------------------------------------------------------------------ */
/* Keyed hashes */

/*
 * SipHash-2-4 (Aumasson and Bernstein, 2012) of @len bytes under a 128-bit
 * key: a keyed hash an observer cannot invert or predict without the key.
 */
#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_rounds(uint64_t v[4], int n)
{
	for (int i = 0; i < n; i++) {
		v[0] += v[1];
		v[1] = SIP_ROTL(v[1], 13) ^ v[0];
		v[0] = SIP_ROTL(v[0], 32);
		v[2] += v[3];
		v[3] = SIP_ROTL(v[3], 16) ^ v[2];
		v[0] += v[3];
		v[3] = SIP_ROTL(v[3], 21) ^ v[0];
		v[2] += v[1];
		v[1] = SIP_ROTL(v[1], 17) ^ v[2];
		v[2] = SIP_ROTL(v[2], 32);
	}
}

uint64_t tcp_siphash(const uint64_t key[2], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v[4] = {key[0] ^ 0x736f6d6570736575ULL, key[1] ^ 0x646f72616e646f6dULL,
			 key[0] ^ 0x6c7967656e657261ULL, key[1] ^ 0x7465646279746573ULL};
	uint64_t m;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		m = 0;
		for (int b = 7; b >= 0; b--)
			m = m << 8 | p[i + (size_t)b];
		v[3] ^= m;
		sip_rounds(v, 2);
		v[0] ^= m;
	}
	m = (uint64_t)(len & 0xff) << 56;
	for (size_t b = 0; i + b < len; b++)
		m |= (uint64_t)p[i + b] << (8 * b);
	v[3] ^= m;
	sip_rounds(v, 2);
	v[0] ^= m;
	v[2] ^= 0xff;
	sip_rounds(v, 4);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The keyed hash of a 4-tuple (with @lport 0: of the source and destination), for @what. */
static uint64_t tuple_hash(const struct tcp_stack *stk, uint32_t laddr, uint32_t raddr,
			   uint16_t lport, uint16_t rport, uint8_t what)
{
	struct {
		uint32_t laddr, raddr;
		uint16_t lport, rport;
		uint8_t what;
	} __attribute__((packed)) t = {laddr, raddr, lport, rport, what};

	return tcp_siphash(stk->key, &t, sizeof(t));
}

enum { HASH_ISN, HASH_TS, HASH_PORT };

/* ------------------------------------------------------------------ */
/* Table */

static uint32_t conn_hash(const struct tcp_stack *stk, uint32_t laddr, uint32_t raddr,
			  uint16_t lport, uint16_t rport)
{
	return rte_jhash_3words(raddr, (uint32_t)lport << 16 | rport, laddr,
				(uint32_t)stk->key[1]) &
	       stk->hmask;
}

struct tcp_conn *tcp_conn_lookup(struct tcp_stack *stk, uint32_t laddr, uint16_t lport,
				 uint32_t raddr, uint16_t rport)
{
	struct tcp_conn *c;

	for (c = stk->htab[conn_hash(stk, laddr, raddr, lport, rport)]; c != NULL; c = c->hnext)
		if (c->raddr == raddr && c->lport == lport && c->rport == rport &&
		    c->laddr == laddr)
			return c;
	return NULL;
}

static void table_remove(struct tcp_conn *c)
{
	struct tcp_stack *stk = c->stk;
	struct tcp_conn **pp = &stk->htab[conn_hash(stk, c->laddr, c->raddr, c->lport, c->rport)];

	if (!(c->flags & CF_IN_TABLE))
		return;
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	c->hnext = NULL;
	c->flags &= ~CF_IN_TABLE;
	stk->stats.conns--;
}

static void conn_timer_init(struct tcp_conn *c);

static void tw_unlink(struct tcp_conn *c)
{
	struct tcp_stack *stk = c->stk;

	if (!(c->flags & CF_IN_TW))
		return;
	if (c->tw_prev != NULL)
		c->tw_prev->tw_next = c->tw_next;
	else
		stk->tw_head = c->tw_next;
	if (c->tw_next != NULL)
		c->tw_next->tw_prev = c->tw_prev;
	else
		stk->tw_tail = c->tw_prev;
	c->tw_next = c->tw_prev = NULL;
	c->flags &= ~CF_IN_TW;
}

/*
 * No free slot: end the oldest TIME_WAIT whose handle is released, as
 * Linux does when its TIME_WAIT buckets overflow. TIME_WAIT only guards
 * its own 4-tuple, and timestamps (PAWS) guard the next incarnation of it.
 */
static struct tcp_conn *tw_recycle(struct tcp_stack *stk)
{
	for (struct tcp_conn *c = stk->tw_head; c != NULL; c = c->tw_next) {
		if (c->flags & CF_USER_CLOSED) {
			stk->stats.tw_recycled++;
			tcp_conn_set_closed(c);
			return stk->free_conns;
		}
	}
	return NULL;
}

/* A fresh connection in the table (state CLOSED, the caller sets it). */
struct tcp_conn *tcp_conn_new(struct tcp_stack *stk, uint32_t laddr, uint32_t raddr, uint16_t lport,
			      uint16_t rport, uint64_t now)
{
	struct tcp_conn *c = stk->free_conns;
	uint32_t h;

	if (c == NULL)
		c = tw_recycle(stk);
	if (c == NULL)
		return NULL;
	stk->free_conns = c->hnext;
	memset(c, 0, sizeof(*c));
	stk->stats.conns_alloc++;
	c->stk = stk;
	c->laddr = laddr;
	c->raddr = raddr;
	c->lport = lport;
	c->rport = rport;
	c->rto = stk->rto_init;
	c->mss = TCP_DEFAULT_MSS;
	c->rcv_ws = 0;
	/* Timestamps that tell nothing of the clock or of other connections. */
	c->ts_off = (uint32_t)tuple_hash(stk, laddr, raddr, lport, rport, HASH_TS);
	c->ts_start = tcp_ts_now(c, now);
	conn_timer_init(c);
	if (stk->bbr != NULL) {
		c->bbr = &stk->bbr[c - stk->conns];
		tcp_bbr_init(c);
	}
	h = conn_hash(stk, laddr, raddr, lport, rport);
	c->hnext = stk->htab[h];
	stk->htab[h] = c;
	c->flags |= CF_IN_TABLE;
	stk->stats.conns++;
	return c;
}

static void conn_release_buffers(struct tcp_conn *c)
{
	while (c->sq_count > 0) {
		rte_pktmbuf_free(c->sq[c->sq_head]);
		c->sq_head = (c->sq_head + 1) % TCP_SQ_SLOTS;
		c->sq_count--;
		c->stk->stats.sq_mbufs--;
	}
	c->sq_next = 0;
	c->sq_bytes = 0;
	while (c->rq_count > 0) {
		rte_pktmbuf_free(c->rq[c->rq_head]);
		c->rq_head = (c->rq_head + 1) % TCP_RQ_SLOTS;
		c->rq_count--;
		c->stk->stats.rx_mbufs--;
	}
	c->rq_bytes = 0;
	tcp_ooo_purge(c);
}

/* Drop every out-of-order segment @c holds; returns how many mbufs. */
uint32_t tcp_ooo_purge(struct tcp_conn *c)
{
	uint32_t n = 0;

	while (c->ooo_head != NULL) {
		struct rte_mbuf *m = c->ooo_head;

		c->ooo_head = tcp_ooo_ent(c->stk, m)->next;
		rte_pktmbuf_free(m);
		c->stk->stats.rx_mbufs--;
		n++;
	}
	c->ooo_tail = NULL;
	c->ooo_count = 0;
	c->ooo_bytes = 0;
	c->ooo_mem = 0;
	tcp_ooo_list_update(c);
	return n;
}

/* Keep @c on the stack's list of connections holding out-of-order data
 * (oldest first: what tcp_input.c prunes under pressure) iff it holds some. */
void tcp_ooo_list_update(struct tcp_conn *c)
{
	struct tcp_stack *stk = c->stk;
	bool holds = c->ooo_head != NULL;

	if (holds == !!(c->flags & CF_ON_OOO))
		return;
	c->flags ^= CF_ON_OOO;
	if (holds)
		TAILQ_INSERT_TAIL(&stk->ooo_conns, c, ooo_link);
	else
		TAILQ_REMOVE(&stk->ooo_conns, c, ooo_link);
}

static void conn_maybe_free(struct tcp_conn *c)
{
	struct tcp_stack *stk = c->stk;

	if (c->state != TCP_CLOSED || !(c->flags & CF_USER_CLOSED) || (c->flags & CF_EV_QUEUED))
		return;
	if (c->stk == NULL)
		dmta_panic("tcp_stack: connection freed twice");
	c->stk = NULL;
	c->hnext = stk->free_conns;
	stk->free_conns = c;
	stk->stats.conns_alloc--;
}

/* The protocol is done with @c: out of the table, timers off, buffers freed. */
void tcp_conn_set_closed(struct tcp_conn *c)
{
	struct tcp_stack *stk = c->stk;

	c->state = TCP_CLOSED;
	tw_unlink(c);
	tcp_timer_cancel(&stk->wheel, &c->t_rtx);
	tcp_timer_cancel(&stk->wheel, &c->t_delack);
	tcp_timer_cancel(&stk->wheel, &c->t_misc);
	tcp_timer_cancel(&stk->wheel, &c->t_retry);
	tcp_timer_cancel(&stk->wheel, &c->t_pace);
	table_remove(c);
	/* Unread data stays readable after a clean close; not after a failure. */
	if (c->error != 0 || (c->flags & CF_USER_CLOSED))
		conn_release_buffers(c);
	else
		while (c->sq_count > 0) {
			rte_pktmbuf_free(c->sq[c->sq_head]);
			c->sq_head = (c->sq_head + 1) % TCP_SQ_SLOTS;
			c->sq_count--;
			stk->stats.sq_mbufs--;
		}
	conn_maybe_free(c);
}

void tcp_conn_fail(struct tcp_conn *c, int error)
{
	c->error = error;
	tcp_conn_event(c, TCP_EV_ERROR, error);
	tcp_conn_set_closed(c);
}

void tcp_conn_event(struct tcp_conn *c, uint32_t ev, int error)
{
	struct tcp_stack *stk = c->stk;

	if (c->flags & CF_USER_CLOSED)
		return;
	c->ev |= ev;
	if (error != 0)
		c->error = error;
	if (c->flags & CF_EV_QUEUED)
		return;
	c->flags |= CF_EV_QUEUED;
	c->ev_next = NULL;
	if (stk->ev_tail != NULL)
		stk->ev_tail->ev_next = c;
	else
		stk->ev_head = c;
	stk->ev_tail = c;
}

uint16_t tcp_stack_poll(struct tcp_stack *stk, struct tcp_event *ev, uint16_t max)
{
	uint16_t n = 0;

	while (n < max && stk->ev_head != NULL) {
		struct tcp_conn *c = stk->ev_head;

		stk->ev_head = c->ev_next;
		if (stk->ev_head == NULL)
			stk->ev_tail = NULL;
		c->flags &= ~CF_EV_QUEUED;
		if (c->flags & CF_USER_CLOSED) {
			/* Released while queued: nothing to tell, maybe free now. */
			c->ev = 0;
			conn_maybe_free(c);
			continue;
		}
		ev[n].conn = c;
		ev[n].user = c->user;
		ev[n].events = c->ev;
		ev[n].error = c->error;
		c->ev = 0;
		n++;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Timers that are not about retransmission */

static void misc_timeout(struct tcp_timer *t, uint64_t now)
{
	struct tcp_conn *c = CONN_OF(t, t_misc);

	switch (c->state) {
	case TCP_SYN_SENT:
	case TCP_SYN_RECEIVED: /* a simultaneous open keeps the connect deadline */
		c->stk->stats.conn_timeouts++;
		tcp_conn_fail(c, ETIMEDOUT);
		break;
	case TCP_TIME_WAIT:
	case TCP_FIN_WAIT_2:
		tcp_conn_set_closed(c);
		break;
	case TCP_FIN_WAIT_1:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
		/* An orphan the peer keeps alive (a zero window it answers
		 * probes for, an ACK that never comes): orphan_timeout. */
		if (c->flags & CF_USER_CLOSED)
			tcp_orphan_drop(c, now);
		break;
	default:
		break;
	}
}

/* A closed connection the peer will not let finish: RST, and gone. */
void tcp_orphan_drop(struct tcp_conn *c, uint64_t now)
{
	c->stk->stats.orphan_drops++;
	c->stk->stats.rst_tx++;
	tcp_send_ctl(c, c->snd_nxt, TH_RST | TH_ACK, now);
	c->error = ECONNABORTED;
	tcp_conn_set_closed(c);
}

static void conn_timer_init(struct tcp_conn *c)
{
	tcp_timer_init(&c->t_rtx, tcp_rtx_timeout);
	tcp_timer_init(&c->t_delack, tcp_delack_timeout);
	tcp_timer_init(&c->t_misc, misc_timeout);
	tcp_timer_init(&c->t_retry, tcp_retry_timeout);
	tcp_timer_init(&c->t_pace, tcp_pace_timeout);
}

void tcp_enter_time_wait(struct tcp_conn *c, uint64_t now)
{
	struct tcp_stack *stk = c->stk;

	c->state = TCP_TIME_WAIT;
	if (!(c->flags & CF_IN_TW)) {
		c->flags |= CF_IN_TW;
		c->tw_next = NULL;
		c->tw_prev = stk->tw_tail;
		if (stk->tw_tail != NULL)
			stk->tw_tail->tw_next = c;
		else
			stk->tw_head = c;
		stk->tw_tail = c;
	}
	tcp_timer_cancel(&stk->wheel, &c->t_rtx);
	tcp_timer_arm(&stk->wheel, &c->t_misc, now + stk->time_wait);
	tcp_conn_event(c, TCP_EV_CLOSED, 0);
}

void tcp_stack_tick(struct tcp_stack *stk, uint64_t now_tsc)
{
	tcp_wheel_run(&stk->wheel, now_tsc);
}

/* ------------------------------------------------------------------ */
/* Create / free */

static void stack_mem_free(struct tcp_stack *stk)
{
	rte_free(stk->conns);
	rte_free(stk->htab);
	rte_free(stk->bbr);
	rte_free(stk);
}

struct tcp_stack *tcp_stack_create(const struct tcp_stack_conf *conf, struct tcp_netif *nif,
				   struct rte_mempool *pool, int socket_id, uint64_t now_tsc)
{
	struct tcp_stack *stk;
	uint32_t nb = 1;

	if (conf == NULL || nif == NULL || pool == NULL || conf->port_lo == 0 ||
	    conf->port_hi < conf->port_lo || conf->max_conns == 0 || conf->max_conns > (1u << 24) ||
	    conf->sndbuf == 0 || conf->rcvbuf < 1024 || conf->rcvbuf > (1u << 30) ||
	    conf->rto_min_ms == 0 || conf->rto_max_ms < conf->rto_min_ms ||
	    conf->rto_init_ms == 0 || conf->time_wait_ms == 0 ||
	    (conf->congestion_control != TCP_CC_CUBIC && conf->congestion_control != TCP_CC_BBR)) {
		errno = EINVAL;
		return NULL;
	}
	stk = rte_zmalloc_socket("tcp_stack", sizeof(*stk), RTE_CACHE_LINE_SIZE, socket_id);
	if (stk == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	while (nb < conf->max_conns)
		nb <<= 1;
	stk->conf = *conf;
	stk->nif = nif;
	stk->pool = pool;
	stk->conns = rte_zmalloc_socket("tcp_conns", sizeof(struct tcp_conn) * conf->max_conns,
					RTE_CACHE_LINE_SIZE, socket_id);
	stk->htab = rte_zmalloc_socket("tcp_htab", sizeof(struct tcp_conn *) * nb,
				       RTE_CACHE_LINE_SIZE, socket_id);
	if (conf->congestion_control == TCP_CC_BBR)
		stk->bbr = rte_zmalloc_socket("tcp_bbr", sizeof(struct tcp_bbr) * conf->max_conns,
					      RTE_CACHE_LINE_SIZE, socket_id);
	if (stk->conns == NULL || stk->htab == NULL ||
	    (conf->congestion_control == TCP_CC_BBR && stk->bbr == NULL)) {
		stack_mem_free(stk);
		errno = ENOMEM;
		return NULL;
	}
	stk->hmask = nb - 1;
	TAILQ_INIT(&stk->ooo_conns);
	for (uint32_t i = conf->max_conns; i-- > 0;) {
		stk->conns[i].hnext = stk->free_conns;
		stk->free_conns = &stk->conns[i];
	}
	stk->sq_mbufs_max = (uint32_t)((uint64_t)pool->size * TCP_SQ_POOL_SHARE / 4);
	stk->rx_mbufs_max = conf->rx_mbufs_max != 0 ? conf->rx_mbufs_max : pool->size / 4;
	stk->orphan_retries = conf->orphan_retries != 0 ? conf->orphan_retries : 8;
	stk->chal_limit = conf->challenge_ack_limit != 0 ? conf->challenge_ack_limit : 1000;
	stk->key[0] = conf->secret[0];
	stk->key[1] = conf->secret[1];
	if ((stk->key[0] | stk->key[1]) == 0 &&
	    getrandom(stk->key, sizeof(stk->key), 0) != (ssize_t)sizeof(stk->key)) {
		stack_mem_free(stk);
		errno = EIO;
		return NULL;
	}
	/* Out-of-order segments are linked through a field of their mbufs;
	 * send-queue segments keep BBR's stamps in the same field. */
	{
		static const struct rte_mbuf_dynfield ooo_field = {
		    .name = "dmta_tcp_seg",
		    .size = sizeof(struct tcp_ooo_ent) > sizeof(struct tcp_rs_ent)
				? sizeof(struct tcp_ooo_ent)
				: sizeof(struct tcp_rs_ent),
		    .align = __alignof__(struct tcp_ooo_ent),
		};

		stk->ooo_off = rte_mbuf_dynfield_register(&ooo_field);
	}
	if (stk->ooo_off < 0) {
		stack_mem_free(stk);
		errno = ENOMEM;
		return NULL;
	}
	stk->laddr = tcp_netif_ip(nif);
	stk->hz = tcp_netif_tsc_hz(nif);
	stk->our_mss = tcp_netif_mtu(nif) - 40;
	while (stk->rcv_ws < TCP_MAX_WSCALE && (conf->rcvbuf >> stk->rcv_ws) > 65535)
		stk->rcv_ws++;
	while ((stk->hz >> (stk->xmit_shift + 1)) >= 1000000)
		stk->xmit_shift++;
	stk->tsc_per_ts = stk->hz / TCP_TS_HZ;
	if (stk->tsc_per_ts == 0)
		stk->tsc_per_ts = 1;
	stk->rto_init = ms_tsc(stk, conf->rto_init_ms);
	stk->rto_min = ms_tsc(stk, conf->rto_min_ms);
	stk->rto_max = ms_tsc(stk, conf->rto_max_ms);
	stk->delack = ms_tsc(stk, conf->delack_ms);
	stk->time_wait = ms_tsc(stk, conf->time_wait_ms);
	stk->connect_timeout = ms_tsc(stk, conf->connect_timeout_ms);
	stk->orphan_timeout =
	    ms_tsc(stk, conf->orphan_timeout_ms != 0 ? conf->orphan_timeout_ms : 60000);
	/* RFC 6056 algorithm 3's counter starts at a secret place too: a
	 * restarted stack does not reuse, first thing, the 4-tuples that
	 * its predecessor may have left open at the peers. */
	stk->port_ctr = (uint32_t)(stk->key[0] >> 32);
	/* One tick per millisecond (at least one TSC cycle). */
	tcp_wheel_init(&stk->wheel, now_tsc, stk->tsc_per_ts);
	if (tcp_netif_set_l4(nif, IPPROTO_TCP, tcp_input, stk) != 0 ||
	    tcp_netif_set_l4_err(nif, IPPROTO_TCP, tcp_icmp_err, stk) != 0) {
		stack_mem_free(stk);
		errno = EINVAL;
		return NULL;
	}
	return stk;
}

void tcp_stack_free(struct tcp_stack *stk)
{
	if (stk == NULL)
		return;
	tcp_netif_set_l4(stk->nif, IPPROTO_TCP, NULL, NULL);
	for (uint32_t i = 0; i < stk->conf.max_conns; i++)
		conn_release_buffers(&stk->conns[i]);
	stack_mem_free(stk);
}

/* ------------------------------------------------------------------ */
/* Application interface */

uint32_t tcp_isn(struct tcp_stack *stk, const struct tcp_conn *c, uint64_t now)
{
	/* RFC 6528: a 4 us clock plus a keyed hash of the 4-tuple. */
	uint64_t us4 = (uint64_t)((unsigned __int128)now * 250000 / stk->hz);

	return (uint32_t)us4 +
	       (uint32_t)tuple_hash(stk, c->laddr, c->raddr, c->lport, c->rport, HASH_ISN);
}

int tcp_connect(struct tcp_stack *stk, uint32_t dst, uint16_t port, void *user, uint64_t now_tsc,
		struct tcp_conn **out)
{
	return tcp_connect_from(stk, 0, dst, port, user, now_tsc, out);
}

int tcp_connect_from(struct tcp_stack *stk, uint32_t src, uint32_t dst, uint16_t port, void *user,
		     uint64_t now_tsc, struct tcp_conn **out)
{
	uint32_t range = (uint32_t)stk->conf.port_hi - stk->conf.port_lo + 1;
	uint16_t rport = rte_cpu_to_be_16(port);
	uint32_t host = rte_be_to_cpu_32(dst);
	struct tcp_conn *c = NULL;
	uint32_t offset;

	if (src == 0)
		src = stk->laddr;
	else if (!tcp_netif_has_ip(stk->nif, src))
		return -EADDRNOTAVAIL;
	if (dst == 0 || tcp_netif_has_ip(stk->nif, dst) || port == 0 || (host >> 28) >= 0xe ||
	    (host >> 24) == 127)
		return -EINVAL;
	if (stk->free_conns == NULL && tw_recycle(stk) == NULL)
		return -ENOBUFS;
	/* RFC 6056 algorithm 3: a keyed offset per destination plus a
	 * counter, so ports say nothing across destinations. */
	offset = (uint32_t)tuple_hash(stk, src, dst, 0, rport, HASH_PORT);
	for (uint32_t i = 0; i < range; i++) {
		uint16_t lp = (uint16_t)(stk->conf.port_lo + (offset + stk->port_ctr++) % range);

		if (stk->conf.port_ok != NULL &&
		    !stk->conf.port_ok(stk->conf.port_ok_arg, src, rte_cpu_to_be_16(lp), dst,
				       rport))
			continue;
		if (tcp_conn_lookup(stk, src, rte_cpu_to_be_16(lp), dst, rport) == NULL) {
			c = tcp_conn_new(stk, src, dst, rte_cpu_to_be_16(lp), rport, now_tsc);
			break;
		}
	}
	if (c == NULL)
		return -EADDRNOTAVAIL;
	c->user = user;
	c->state = TCP_SYN_SENT;
	c->iss = tcp_isn(stk, c, now_tsc);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
	c->snd_max = c->snd_nxt;
	c->rcv_ws = stk->rcv_ws;
	stk->stats.active_opens++;
	tcp_send_ctl(c, c->iss, TH_SYN, now_tsc);
	tcp_arm_rtx(c, now_tsc);
	if (stk->connect_timeout != 0)
		tcp_timer_arm(&stk->wheel, &c->t_misc, now_tsc + stk->connect_timeout);
	*out = c;
	return 0;
}

int tcp_listen(struct tcp_stack *stk, uint16_t port, void *user)
{
	struct tcp_listener *free_l = NULL;
	uint16_t p = rte_cpu_to_be_16(port);

	if (port == 0)
		return -EINVAL;
	for (unsigned i = 0; i < TCP_LISTEN_MAX; i++) {
		if (stk->listeners[i].port == p)
			return -EADDRINUSE;
		if (stk->listeners[i].port == 0 && free_l == NULL)
			free_l = &stk->listeners[i];
	}
	if (free_l == NULL)
		return -ENOBUFS;
	free_l->port = p;
	free_l->user = user;
	return 0;
}

void tcp_unlisten(struct tcp_stack *stk, uint16_t port)
{
	for (unsigned i = 0; i < TCP_LISTEN_MAX; i++)
		if (stk->listeners[i].port == rte_cpu_to_be_16(port))
			stk->listeners[i].port = 0;
}

ssize_t tcp_send(struct tcp_conn *c, const void *buf, size_t len, uint64_t now_tsc)
{
	struct tcp_stack *stk = c->stk;
	const uint8_t *p = buf;
	size_t done = 0;

	if (c->error != 0)
		return -EPIPE;
	if ((c->state != TCP_ESTABLISHED && c->state != TCP_CLOSE_WAIT) ||
	    (c->flags & CF_FIN_PENDING))
		return -ENOTCONN;
	while (done < len && c->sq_bytes < stk->conf.sndbuf) {
		size_t room = stk->conf.sndbuf - c->sq_bytes;
		struct rte_mbuf *tail = NULL;
		size_t n;
		char *dst;

		/* Top up the last segment if it has not been sent yet. */
		if (c->sq_count > c->sq_next) {
			tail = c->sq[(c->sq_head + c->sq_count - 1) % TCP_SQ_SLOTS];
			/* (A full mbuf is a full segment too: never append nothing.) */
			if (rte_pktmbuf_data_len(tail) >= c->mss || rte_pktmbuf_tailroom(tail) == 0)
				tail = NULL;
		}
		if (tail == NULL) {
			if (c->sq_count == TCP_SQ_SLOTS)
				break;
			if (stk->stats.sq_mbufs >= stk->sq_mbufs_max) {
				stk->stats.tx_sq_capped++;
				tcp_arm_retry(c, now_tsc);
				break;
			}
			tail = rte_pktmbuf_alloc(stk->pool);
			if (tail == NULL) {
				/* The retry timer reports TCP_EV_WRITABLE: nothing
				 * else would when no data is in flight. */
				stk->stats.tx_no_mbuf++;
				tcp_arm_retry(c, now_tsc);
				break;
			}
			c->sq[(c->sq_head + c->sq_count) % TCP_SQ_SLOTS] = tail;
			c->sq_count++;
			stk->stats.sq_mbufs++;
		}
		n = c->mss - rte_pktmbuf_data_len(tail);
		if (n > rte_pktmbuf_tailroom(tail))
			n = rte_pktmbuf_tailroom(tail);
		if (n > len - done)
			n = len - done;
		if (n > room)
			n = room;
		dst = rte_pktmbuf_append(tail, (uint16_t)n);
		memcpy(dst, p + done, n);
		done += n;
		c->sq_bytes += (uint32_t)n;
	}
	if (done < len)
		c->flags |= CF_WANT_WRITE;
	if (done == 0 && len > 0 && c->sq_bytes < stk->conf.sndbuf)
		return -ENOBUFS;
	tcp_output(c, now_tsc);
	return (ssize_t)done;
}

ssize_t tcp_recv(struct tcp_conn *c, void *buf, size_t len, uint64_t now_tsc)
{
	uint32_t before = tcp_rcv_window(c);
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len && c->rq_count > 0) {
		struct rte_mbuf *m = c->rq[c->rq_head];
		size_t n = rte_pktmbuf_data_len(m);

		if (n > len - done)
			n = len - done;
		memcpy(p + done, rte_pktmbuf_mtod(m, void *), n);
		done += n;
		c->rq_bytes -= (uint32_t)n;
		rte_pktmbuf_adj(m, (uint16_t)n);
		if (rte_pktmbuf_data_len(m) == 0) {
			rte_pktmbuf_free(m);
			c->rq_head = (c->rq_head + 1) % TCP_RQ_SLOTS;
			c->rq_count--;
			c->stk->stats.rx_mbufs--;
		}
	}
	if (done == 0 && len > 0) {
		if (c->flags & CF_RCVD_FIN)
			return 0;
		if (c->error != 0 || c->state == TCP_SYN_SENT || c->state == TCP_CLOSED)
			return -ENOTCONN;
		return -EAGAIN;
	}
	/* Window update: tell the peer when the window opened by two segments or from zero. */
	if (c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
	    c->state == TCP_FIN_WAIT_2) {
		uint32_t after, nxt = c->rcv_nxt;

		/* Held segments that waited for read-queue slots move on now. */
		if (c->ooo_head != NULL) {
			tcp_ooo_drain(c);
			if (c->rcv_nxt != nxt) {
				c->flags |= CF_ACK_NOW;
				tcp_conn_event(c, TCP_EV_READABLE, 0);
				tcp_fin_check(c, now_tsc);
				if (c->state == TCP_TIME_WAIT)
					return (ssize_t)done; /* the FIN's ACK went */
			}
		}
		after = tcp_rcv_window(c);
		if ((c->flags & CF_ACK_NOW) ||
		    (before < tcp_rcv_sws_min(c) && after >= tcp_rcv_sws_min(c)) ||
		    after - before >= 2 * c->mss) {
			c->flags |= CF_ACK_NOW;
			tcp_output(c, now_tsc);
		}
	}
	return (ssize_t)done;
}

int tcp_shutdown(struct tcp_conn *c, uint64_t now_tsc)
{
	switch (c->state) {
	case TCP_ESTABLISHED:
		c->state = TCP_FIN_WAIT_1;
		break;
	case TCP_CLOSE_WAIT:
		c->state = TCP_LAST_ACK;
		break;
	default:
		return -ENOTCONN;
	}
	c->flags |= CF_FIN_PENDING;
	tcp_output(c, now_tsc);
	return 0;
}

void tcp_abort(struct tcp_conn *c, uint64_t now_tsc)
{
	c->flags |= CF_USER_CLOSED;
	switch (c->state) {
	case TCP_SYN_RECEIVED:
	case TCP_ESTABLISHED:
	case TCP_FIN_WAIT_1:
	case TCP_FIN_WAIT_2:
	case TCP_CLOSE_WAIT:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
		tcp_send_ctl(c, c->snd_nxt, TH_RST | TH_ACK, now_tsc);
		c->stk->stats.rst_tx++;
		break;
	default:
		break;
	}
	if (c->state != TCP_CLOSED) {
		c->error = ECONNABORTED;
		tcp_conn_set_closed(c);
	} else {
		conn_release_buffers(c);
		conn_maybe_free(c);
	}
}

void tcp_close(struct tcp_conn *c, uint64_t now_tsc)
{
	if (c->rq_bytes > 0) {
		tcp_abort(c, now_tsc);
		return;
	}
	c->flags |= CF_USER_CLOSED;
	switch (c->state) {
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
		tcp_shutdown(c, now_tsc);
		break;
	case TCP_SYN_SENT:
	case TCP_SYN_RECEIVED:
		tcp_conn_set_closed(c);
		break;
	case TCP_FIN_WAIT_2:
		/* The peer may never close: do not wait for it forever. */
		tcp_timer_arm(&c->stk->wheel, &c->t_misc, now_tsc + c->stk->time_wait);
		break;
	case TCP_CLOSED:
		conn_release_buffers(c);
		conn_maybe_free(c);
		break;
	default:
		break; /* FIN_WAIT_1, CLOSING, LAST_ACK, TIME_WAIT: finishing */
	}
	/* An orphan finishing its close does so within orphan_timeout. */
	if (c->state == TCP_FIN_WAIT_1 || c->state == TCP_CLOSING || c->state == TCP_LAST_ACK)
		tcp_timer_arm(&c->stk->wheel, &c->t_misc, now_tsc + c->stk->orphan_timeout);
}

void tcp_stack_dump(const struct tcp_stack *stk, FILE *f)
{
	for (uint32_t i = 0; i < stk->conf.max_conns; i++) {
		const struct tcp_conn *c = &stk->conns[i];

		if (c->stk == NULL)
			continue;
		fprintf(f,
			"conn %u: %s lport %u flags %#x ev %#x err %d una %u nxt %u max %u "
			"sq %u/%u rq %u ooo %u\n",
			i, tcp_state_name((enum tcp_state)c->state), rte_be_to_cpu_16(c->lport),
			c->flags, c->ev, c->error, c->snd_una - c->iss, c->snd_nxt - c->iss,
			c->snd_max - c->iss, c->sq_next, c->sq_count, c->rq_count, c->ooo_count);
	}
}
