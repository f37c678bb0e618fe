/*
 * tcp_arp.c - ARP (RFC 826) for a netif: answering, learning, resolving.
 *
 * SYNOPSIS
 *	Private to tcp/; see tcp_netif_int.h and the ARP paragraph of
 *	tcp_netif.h for the behaviour seen from outside.
 *
 * DESCRIPTION
 *	The cache is a fixed array of 64 sets x 4 ways, hashed by address, so
 *	a lookup touches at most four entries (one or two cache lines) and
 *	nothing is ever allocated. When a set is full, the victim is the
 *	least valuable entry: a failed one, then a resolved one nobody used,
 *	then any resolved one, an unresolved one last; among equals the one
 *	whose deadline comes first.
 *
 *	Timers: each entry has one deadline whose meaning depends on its state
 *	(expiry, next retry, end of the failed hold). The netif keeps the
 *	earliest of them so that tcp_arp_tick() returns at once when nothing is
 *	due, which is almost always.
 */
#include <errno.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "core/base/dmta_log.h"
#include "tcp/tcp_netif_int.h"

#define ARP_FRAME_LEN (RTE_ETHER_HDR_LEN + sizeof(struct rte_arp_hdr))

static unsigned arp_set(uint32_t ip)
{
	/* Fibonacci hashing: the top 6 bits of the product mix every address bit. */
	return (rte_be_to_cpu_32(ip) * 2654435761u) >> 26;
}

struct tcp_arp_entry *tcp_arp_find(const struct tcp_netif *nif, uint32_t ip)
{
	const struct tcp_arp_entry *e = &nif->arp[arp_set(ip) * TCP_ARP_WAYS];

	for (unsigned i = 0; i < TCP_ARP_WAYS; i++)
		if (e[i].state != TCP_ARP_FREE && e[i].ip == ip)
			return (struct tcp_arp_entry *)&e[i];
	return NULL;
}

void tcp_arp_init(struct tcp_netif *nif)
{
	for (unsigned i = 0; i < TCP_ARP_SETS * TCP_ARP_WAYS; i++)
		nif->arp[i].pending = nif->arp_pending + (size_t)i * nif->conf.arp_pending_max;
	nif->arp_next_tsc = UINT64_MAX;
	nif->arp_active = 0;
}

static void arp_arm(struct tcp_netif *nif, struct tcp_arp_entry *e, uint64_t deadline)
{
	e->deadline = deadline;
	if (deadline < nif->arp_next_tsc)
		nif->arp_next_tsc = deadline;
}

/* Drop the packets waiting on @e; they are counted as unresolved. */
static void arp_drop_pending(struct tcp_netif *nif, struct tcp_arp_entry *e)
{
	for (unsigned i = 0; i < e->npending; i++) {
		rte_pktmbuf_free(e->pending[i]);
		e->pending[i] = NULL;
	}
	nif->stats.arp_unresolved_drop += e->npending;
	e->npending = 0;
}

static void arp_release(struct tcp_netif *nif, struct tcp_arp_entry *e)
{
	arp_drop_pending(nif, e);
	e->state = TCP_ARP_FREE;
	e->ip = 0;
	nif->arp_active--;
}

void tcp_arp_flush_all(struct tcp_netif *nif)
{
	for (unsigned i = 0; i < TCP_ARP_SETS * TCP_ARP_WAYS; i++)
		if (nif->arp[i].state != TCP_ARP_FREE)
			arp_release(nif, &nif->arp[i]);
}

static int arp_victim_rank(const struct tcp_arp_entry *e)
{
	switch (e->state) {
	case TCP_ARP_FAILED:
		return 0;
	case TCP_ARP_REACHABLE:
		return e->used ? 2 : 1;
	case TCP_ARP_PROBE:
		return 2;
	case TCP_ARP_INCOMPLETE:
		return 3;
	default:
		dmta_panic("tcp_arp: bad entry state %d", e->state);
	}
}

/* A slot for @ip in its set, evicting if needed; the caller sets the state. */
static struct tcp_arp_entry *arp_insert(struct tcp_netif *nif, uint32_t ip)
{
	struct tcp_arp_entry *set = &nif->arp[arp_set(ip) * TCP_ARP_WAYS];
	struct tcp_arp_entry *v = NULL;

	for (unsigned i = 0; i < TCP_ARP_WAYS; i++) {
		if (set[i].state == TCP_ARP_FREE) {
			v = &set[i];
			nif->arp_active++;
			goto found;
		}
	}
	v = &set[0];
	for (unsigned i = 1; i < TCP_ARP_WAYS; i++) {
		int r = arp_victim_rank(&set[i]), rv = arp_victim_rank(v);

		if (r < rv || (r == rv && set[i].deadline < v->deadline))
			v = &set[i];
	}
	arp_drop_pending(nif, v);
	nif->stats.arp_evictions++;
found:
	v->ip = ip;
	v->used = 0;
	v->retries = 0;
	v->npending = 0;
	memset(&v->mac, 0, sizeof(v->mac));
	return v;
}

/* Queue an ARP request for @e's address; unicast to @e's MAC when probing. */
static void arp_send_request(struct tcp_netif *nif, const struct tcp_arp_entry *e, bool unicast)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(nif->pool);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	if (m == NULL) {
		nif->stats.tx_no_mbuf++;
		return;
	}
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, ARP_FRAME_LEN);
	if (eth == NULL) {
		/* A pool whose buffers cannot hold 42 bytes: count it as no mbuf. */
		rte_pktmbuf_free(m);
		nif->stats.tx_no_mbuf++;
		return;
	}
	if (unicast)
		rte_ether_addr_copy(&e->mac, &eth->dst_addr);
	else
		memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	rte_ether_addr_copy(&nif->conf.mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp = (struct rte_arp_hdr *)(eth + 1);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&nif->conf.mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = nif->conf.ip;
	memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
	arp->arp_data.arp_tip = e->ip;
	nif->stats.arp_requests_tx++;
	tcp_netif_txq_put(nif, m);
}

/* @e now maps to @mac: make it reachable and release its waiting packets. */
static void arp_confirm(struct tcp_netif *nif, struct tcp_arp_entry *e,
			const struct rte_ether_addr *mac, uint64_t now)
{
	if (e->state == TCP_ARP_INCOMPLETE || e->state == TCP_ARP_PROBE)
		nif->stats.arp_resolved++;
	rte_ether_addr_copy(mac, &e->mac);
	e->state = TCP_ARP_REACHABLE;
	e->retries = 0;
	e->used = e->npending > 0;
	arp_arm(nif, e, now + nif->arp_timeout_tsc);
	for (unsigned i = 0; i < e->npending; i++) {
		struct rte_mbuf *m = e->pending[i];

		rte_ether_addr_copy(mac, &rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->dst_addr);
		e->pending[i] = NULL;
		tcp_netif_txq_put(nif, m);
	}
	e->npending = 0;
}

/* A neighbour's address we may learn: a unicast host of our subnet, not us. */
static bool arp_learnable(const struct tcp_netif *nif, uint32_t ip)
{
	uint32_t host = rte_be_to_cpu_32(ip);

	if (ip == 0 || tcp_netif_is_ours(nif, ip) || !tcp_netif_on_link(nif, ip))
		return false;
	if ((host >> 24) == 127 || (host >> 28) >= 0xe)
		return false;
	/* Subnet broadcast (host part all ones), on subnets that have one. */
	if (nif->conf.prefix_len <= 30 && (ip | nif->netmask) == UINT32_MAX)
		return false;
	return true;
}

/* A copy (!answer) is counted only by the worker that received the original. */
bool tcp_arp_input(struct tcp_netif *nif, struct rte_mbuf *m, uint64_t now, bool answer)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_arp_hdr *arp;
	struct tcp_arp_entry *e;
	struct rte_ether_addr sha;
	uint32_t sip, tip;
	uint16_t op;
	bool learn;

	if (rte_pktmbuf_data_len(m) < ARP_FRAME_LEN) {
		nif->stats.arp_malformed += answer;
		goto drop;
	}
	arp = (struct rte_arp_hdr *)(eth + 1);
	op = rte_be_to_cpu_16(arp->arp_opcode);
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4 ||
	    (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)) {
		nif->stats.arp_malformed += answer;
		goto drop;
	}
	rte_ether_addr_copy(&arp->arp_data.arp_sha, &sha);
	sip = arp->arp_data.arp_sip;
	tip = arp->arp_data.arp_tip;
	if (!rte_is_unicast_ether_addr(&sha) || rte_is_zero_ether_addr(&sha)) {
		nif->stats.arp_bad_src += answer;
		goto drop;
	}
	learn = arp_learnable(nif, sip);
	/* An RFC 5227 probe (sender 0.0.0.0) for our address still gets an answer. */
	if (!learn && !(sip == 0 && op == RTE_ARP_OP_REQUEST && tcp_netif_is_ours(nif, tip))) {
		nif->stats.arp_bad_src += answer;
		goto drop;
	}

	/* RFC 826: merge the sender into the cache if it is there... */
	e = learn ? tcp_arp_find(nif, sip) : NULL;
	if (e != NULL)
		arp_confirm(nif, e, &sha, now);
	if (!tcp_netif_is_ours(nif, tip)) {
		nif->stats.arp_not_for_us += answer;
		goto drop;
	}
	/* ...and add it if the packet was for us. */
	if (e == NULL && learn) {
		e = arp_insert(nif, sip);
		e->state = TCP_ARP_REACHABLE;
		rte_ether_addr_copy(&sha, &e->mac);
		arp_arm(nif, e, now + nif->arp_timeout_tsc);
	}
	if (op == RTE_ARP_OP_REPLY || !answer) {
		if (answer)
			nif->stats.arp_replies_rx++;
		rte_pktmbuf_free(m);
		return true;
	}

	/* Answer in place: the request's mbuf becomes the reply. */
	nif->stats.arp_requests_rx++;
	m->ol_flags = 0; /* receive flags mean nothing on the way out */
	if (rte_pktmbuf_data_len(m) > ARP_FRAME_LEN)
		rte_pktmbuf_trim(m, rte_pktmbuf_data_len(m) - ARP_FRAME_LEN);
	rte_ether_addr_copy(&sha, &eth->dst_addr);
	rte_ether_addr_copy(&nif->conf.mac, &eth->src_addr);
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	rte_ether_addr_copy(&sha, &arp->arp_data.arp_tha);
	arp->arp_data.arp_tip = sip;
	rte_ether_addr_copy(&nif->conf.mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = tip; /* the address asked for, whichever of ours */
	nif->stats.arp_replies_tx++;
	tcp_netif_txq_put(nif, m);
	return true;
drop:
	rte_pktmbuf_free(m);
	return false;
}

int tcp_arp_output(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t nh, uint64_t now)
{
	struct tcp_arp_entry *e = tcp_arp_find(nif, nh);

	if (e == NULL) {
		e = arp_insert(nif, nh);
		e->state = TCP_ARP_INCOMPLETE;
		arp_arm(nif, e, now + nif->arp_retry_tsc);
		arp_send_request(nif, e, false);
	}
	switch (e->state) {
	case TCP_ARP_REACHABLE:
	case TCP_ARP_PROBE:
		rte_ether_addr_copy(&e->mac,
				    &rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->dst_addr);
		e->used = 1;
		return tcp_netif_txq_put(nif, m);
	case TCP_ARP_INCOMPLETE:
		if (e->npending >= nif->conf.arp_pending_max) {
			nif->stats.arp_unresolved_drop++;
			rte_pktmbuf_free(m);
			return -ENOBUFS;
		}
		e->pending[e->npending++] = m;
		return 0;
	case TCP_ARP_FAILED:
		nif->stats.arp_unresolved_drop++;
		rte_pktmbuf_free(m);
		return -EHOSTUNREACH;
	default:
		dmta_panic("tcp_arp: bad entry state %d", e->state);
	}
}

/* One entry's deadline has come. */
static void arp_expire(struct tcp_netif *nif, struct tcp_arp_entry *e, uint64_t now)
{
	switch (e->state) {
	case TCP_ARP_INCOMPLETE:
		if (e->retries >= nif->conf.arp_max_retries) {
			nif->stats.arp_timeouts++;
			arp_drop_pending(nif, e);
			e->state = TCP_ARP_FAILED;
			arp_arm(nif, e, now + nif->arp_retry_tsc);
			return;
		}
		e->retries++;
		arp_arm(nif, e, now + nif->arp_retry_tsc);
		arp_send_request(nif, e, false);
		return;
	case TCP_ARP_PROBE:
		if (e->retries >= nif->conf.arp_max_retries) {
			nif->stats.arp_timeouts++;
			arp_release(nif, e);
			return;
		}
		e->retries++;
		arp_arm(nif, e, now + nif->arp_retry_tsc);
		arp_send_request(nif, e, true);
		return;
	case TCP_ARP_REACHABLE:
		if (!e->used) {
			arp_release(nif, e);
			return;
		}
		/* In use: keep sending to the old MAC while asking it to confirm. */
		e->state = TCP_ARP_PROBE;
		e->retries = 0;
		e->used = 0;
		arp_arm(nif, e, now + nif->arp_retry_tsc);
		arp_send_request(nif, e, true);
		return;
	case TCP_ARP_FAILED:
		arp_release(nif, e);
		return;
	default:
		dmta_panic("tcp_arp: bad entry state %d", e->state);
	}
}

void tcp_arp_tick(struct tcp_netif *nif, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (nif->arp_active == 0 || !tcp_tsc_reached(now, nif->arp_next_tsc))
		return;
	/* arp_arm() below may lower arp_next_tsc; recompute it from scratch. */
	nif->arp_next_tsc = UINT64_MAX;
	for (unsigned i = 0; i < TCP_ARP_SETS * TCP_ARP_WAYS; i++) {
		struct tcp_arp_entry *e = &nif->arp[i];

		if (e->state == TCP_ARP_FREE)
			continue;
		if (tcp_tsc_reached(now, e->deadline))
			arp_expire(nif, e, now);
		if (e->state != TCP_ARP_FREE && e->deadline < next)
			next = e->deadline;
	}
	nif->arp_next_tsc = next;
}

int tcp_netif_arp_lookup(const struct tcp_netif *nif, uint32_t ip, struct rte_ether_addr *mac)
{
	const struct tcp_arp_entry *e = tcp_arp_find(nif, ip);

	if (e == NULL)
		return -ENOENT;
	if (e->state != TCP_ARP_REACHABLE && e->state != TCP_ARP_PROBE)
		return 0;
	if (mac != NULL)
		rte_ether_addr_copy(&e->mac, mac);
	return 1;
}
