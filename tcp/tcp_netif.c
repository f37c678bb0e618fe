/*
 * tcp_netif.c - Ethernet, IPv4 and ICMP echo for a worker's netif.
 *
 * SYNOPSIS
 *	See tcp_netif.h.
 *
 * DESCRIPTION
 *	Input checks each layer in the order its fields are needed, and each
 *	check compares a length with rte_pktmbuf_data_len() of a linearized
 *	frame before any byte behind it is read. The first failed check names
 *	the counter; nothing else about a dropped frame is kept.
 *
 *	Replies are built in the received mbuf: an echo reply keeps the ICMP
 *	message where it is and gets fresh IPv4 and Ethernet headers in front
 *	of it (IP options of the request are not echoed), an ARP reply is the
 *	request with its fields swapped.
 */
#include <errno.h>
#include <string.h>

#include <netinet/in.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "core/base/dmta_log.h"
#include "tcp/tcp_netif_int.h"

#define STAT(f)                                                                                    \
	{                                                                                          \
#f, offsetof(struct tcp_netif_stats, f)                                            \
	}

static const struct tcp_stat_name netif_stat_names[] = {
    STAT(rx_frames),	     STAT(rx_bytes),	     STAT(rx_short),
    STAT(rx_multiseg),	     STAT(eth_unknown_type), STAT(eth_not_for_us),
    STAT(eth_bad_src),	     STAT(arp_malformed),    STAT(arp_not_for_us),
    STAT(arp_bad_src),	     STAT(arp_requests_rx),  STAT(arp_replies_rx),
    STAT(arp_copies_rx),     STAT(arp_replies_tx),   STAT(arp_requests_tx),
    STAT(arp_resolved),	     STAT(arp_timeouts),     STAT(arp_unresolved_drop),
    STAT(arp_evictions),     STAT(ip_short),	     STAT(ip_bad_version),
    STAT(ip_bad_hlen),	     STAT(ip_bad_len),	     STAT(ip_bad_csum),
    STAT(ip_bad_src),	     STAT(ip_fragment),	     STAT(ip_not_for_us),
    STAT(ip_unknown_proto),  STAT(ip_no_route),	     STAT(icmp_short),
    STAT(icmp_bad_csum),     STAT(icmp_unhandled),   STAT(icmp_echo_requests),
    STAT(icmp_echo_replies), STAT(icmp_errors),	     STAT(icmp_err_bad),
    STAT(tx_frames),	     STAT(tx_bytes),	     STAT(tx_no_mbuf),
    STAT(tx_full),	     STAT(tx_no_headroom),   STAT(tx_too_big),
    STAT(tx_bad_ip),
};

/* Every field must be in the table: the struct is nothing but counters. */
_Static_assert(sizeof(netif_stat_names) / sizeof(netif_stat_names[0]) ==
		   sizeof(struct tcp_netif_stats) / sizeof(uint64_t),
	       "tcp_netif_stats and netif_stat_names disagree");

const struct tcp_stat_name *tcp_netif_stat_names(size_t *n)
{
	*n = sizeof(netif_stat_names) / sizeof(netif_stat_names[0]);
	return netif_stat_names;
}

static uint64_t ms_to_tsc(uint64_t hz, uint32_t ms)
{
	return (uint64_t)((unsigned __int128)hz * ms / 1000);
}

struct tcp_netif *tcp_netif_create(const struct tcp_netif_conf *conf, struct rte_mempool *pool,
				   int socket_id)
{
	struct tcp_netif *nif;
	size_t npend;

	/* Sanity checks. */
	if (conf == NULL || pool == NULL || conf->ip == 0 || conf->prefix_len > 32 ||
	    conf->mtu < 68 || conf->mtu > 9216 || conf->tsc_hz == 0 || conf->arp_timeout_ms == 0 ||
	    conf->arp_retry_ms == 0 || conf->arp_pending_max > TCP_NETIF_ARP_PENDING_LIMIT ||
	    !rte_is_valid_assigned_ether_addr(&conf->mac) ||
	    /* Frames are single mbufs (no scatter): the MTU must fit one. */
	    conf->mtu + RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN >
		rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM) {
		errno = EINVAL;
		return NULL;
	}
	nif = rte_zmalloc_socket("tcp_netif", sizeof(*nif), RTE_CACHE_LINE_SIZE, socket_id);
	if (nif == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	nif->conf = *conf;
	nif->pool = pool;
	nif->netmask = conf->prefix_len == 0 ? 0 : rte_cpu_to_be_32(~0u << (32 - conf->prefix_len));
	if (conf->gateway != 0 &&
	    (conf->gateway == conf->ip || !tcp_netif_on_link(nif, conf->gateway))) {
		rte_free(nif);
		errno = EINVAL;
		return NULL;
	}
	npend = (size_t)TCP_ARP_SETS * TCP_ARP_WAYS * conf->arp_pending_max;
	if (npend > 0) {
		nif->arp_pending =
		    rte_zmalloc_socket("tcp_netif_arp", npend * sizeof(struct rte_mbuf *),
				       RTE_CACHE_LINE_SIZE, socket_id);
		if (nif->arp_pending == NULL) {
			rte_free(nif);
			errno = ENOMEM;
			return NULL;
		}
	}
	nif->arp_timeout_tsc = ms_to_tsc(conf->tsc_hz, conf->arp_timeout_ms);
	nif->arp_retry_tsc = ms_to_tsc(conf->tsc_hz, conf->arp_retry_ms);
	if (nif->arp_retry_tsc == 0)
		nif->arp_retry_tsc = 1;
	tcp_arp_init(nif);
	return nif;
}

void tcp_netif_free(struct tcp_netif *nif)
{
	if (nif == NULL)
		return;
	tcp_arp_flush_all(nif);
	while (nif->txq_count > 0) {
		rte_pktmbuf_free(nif->txq[nif->txq_head]);
		nif->txq_head = (nif->txq_head + 1) % TCP_NETIF_TXQ_SIZE;
		nif->txq_count--;
	}
	rte_free(nif->arp_pending);
	rte_free(nif);
}

const struct tcp_netif_stats *tcp_netif_stats(const struct tcp_netif *nif)
{
	return &nif->stats;
}

int tcp_netif_set_l4(struct tcp_netif *nif, uint8_t proto, tcp_netif_l4_fn fn, void *arg)
{
	unsigned i;

	if (proto == IPPROTO_ICMP)
		return -EINVAL;
	for (i = 0; i < nif->nl4 && nif->l4[i].proto != proto; i++)
		;
	if (fn == NULL) {
		if (i < nif->nl4)
			nif->l4[i] = nif->l4[--nif->nl4];
		return 0;
	}
	if (i == nif->nl4) {
		if (nif->nl4 == TCP_NETIF_L4_MAX)
			return -ENOSPC;
		nif->nl4++;
	}
	if (nif->l4[i].proto != proto) {
		nif->l4[i].err = NULL;
		nif->l4[i].err_arg = NULL;
	}
	nif->l4[i].proto = proto;
	nif->l4[i].fn = fn;
	nif->l4[i].arg = arg;
	return 0;
}

int tcp_netif_set_l4_err(struct tcp_netif *nif, uint8_t proto, tcp_netif_err_fn fn, void *arg)
{
	if (proto == IPPROTO_ICMP)
		return -EINVAL;
	for (unsigned i = 0; i < nif->nl4; i++) {
		if (nif->l4[i].proto == proto) {
			nif->l4[i].err = fn;
			nif->l4[i].err_arg = arg;
			return 0;
		}
	}
	return -ENOSPC; /* no handler for the protocol itself */
}

int tcp_netif_add_ip(struct tcp_netif *nif, uint32_t ip)
{
	uint32_t host = rte_be_to_cpu_32(ip);

	if (ip == 0 || ip == UINT32_MAX || (host >> 24) == 127 || (host >> 28) >= 0xe ||
	    ip == nif->conf.gateway ||
	    (nif->conf.prefix_len <= 30 && tcp_netif_on_link(nif, ip) &&
	     ((ip | nif->netmask) == UINT32_MAX || (ip & nif->netmask) == ip)))
		return -EINVAL;
	if (tcp_netif_is_ours(nif, ip))
		return 0;
	if (nif->naddrs == TCP_NETIF_ADDR_MAX)
		return -ENOSPC;
	nif->addrs[nif->naddrs++] = ip;
	return 0;
}

bool tcp_netif_has_ip(const struct tcp_netif *nif, uint32_t ip)
{
	return tcp_netif_is_ours(nif, ip);
}

uint32_t tcp_netif_ip(const struct tcp_netif *nif)
{
	return nif->conf.ip;
}

uint16_t tcp_netif_mtu(const struct tcp_netif *nif)
{
	return nif->conf.mtu;
}

uint64_t tcp_netif_tsc_hz(const struct tcp_netif *nif)
{
	return nif->conf.tsc_hz;
}

int tcp_netif_txq_put(struct tcp_netif *nif, struct rte_mbuf *m)
{
	if (nif->txq_count == TCP_NETIF_TXQ_SIZE) {
		nif->stats.tx_full++;
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	nif->txq[(nif->txq_head + nif->txq_count) % TCP_NETIF_TXQ_SIZE] = m;
	nif->txq_count++;
	return 0;
}

uint16_t tcp_netif_tx_drain(struct tcp_netif *nif, struct rte_mbuf **out, uint16_t max)
{
	uint16_t n = 0;

	while (n < max && nif->txq_count > 0) {
		struct rte_mbuf *m = nif->txq[nif->txq_head];

		nif->txq_head = (nif->txq_head + 1) % TCP_NETIF_TXQ_SIZE;
		nif->txq_count--;
		nif->stats.tx_frames++;
		nif->stats.tx_bytes += rte_pktmbuf_pkt_len(m);
		out[n++] = m;
	}
	return n;
}

uint32_t tcp_netif_tx_pending(const struct tcp_netif *nif)
{
	return nif->txq_count;
}

void tcp_netif_tick(struct tcp_netif *nif, uint64_t now_tsc)
{
	tcp_arp_tick(nif, now_tsc);
}

/* A unicast address a packet may come from or go to (not ours, not local). */
static bool ip_peer_ok(const struct tcp_netif *nif, uint32_t ip)
{
	uint32_t host = rte_be_to_cpu_32(ip);

	if (ip == 0 || tcp_netif_is_ours(nif, ip) || (host >> 24) == 127 || (host >> 28) >= 0xe)
		return false;
	if (nif->conf.prefix_len <= 30 && tcp_netif_on_link(nif, ip) &&
	    (ip | nif->netmask) == UINT32_MAX)
		return false;
	return true;
}

int tcp_netif_ip_prepend(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t dst, uint8_t proto)
{
	return tcp_netif_ip_prepend_from(nif, m, nif->conf.ip, dst, proto);
}

int tcp_netif_ip_prepend_from(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t src, uint32_t dst,
			      uint8_t proto)
{
	uint32_t len = rte_pktmbuf_pkt_len(m) + sizeof(struct rte_ipv4_hdr);
	struct rte_ipv4_hdr *ip;

	if (src == 0)
		src = nif->conf.ip;
	else if (!tcp_netif_is_ours(nif, src)) {
		nif->stats.tx_bad_ip++;
		return -EADDRNOTAVAIL;
	}
	if (len > nif->conf.mtu) {
		nif->stats.tx_too_big++;
		return -EMSGSIZE;
	}
	ip = (struct rte_ipv4_hdr *)rte_pktmbuf_prepend(m, sizeof(*ip));
	if (ip == NULL) {
		nif->stats.tx_no_headroom++;
		return -ENOSPC;
	}
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16((uint16_t)len);
	/* DF is always set: the datagram is atomic and its ID means nothing
	 * (RFC 6864 4.1); zero, as Linux sends, leaks no count of what this
	 * host sends to others. */
	ip->packet_id = 0;
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = proto;
	ip->hdr_checksum = 0;
	ip->src_addr = src;
	ip->dst_addr = dst;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	return 0;
}

int tcp_netif_ip_output(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t dst, uint64_t now_tsc)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod(m, const struct rte_ipv4_hdr *);
	struct rte_ether_hdr *eth;
	uint32_t nh;
	int rc;

	if (rte_pktmbuf_data_len(m) < sizeof(*ip) || (ip->version_ihl >> 4) != 4 ||
	    rte_ipv4_hdr_len(ip) < sizeof(*ip) || rte_ipv4_hdr_len(ip) > rte_pktmbuf_data_len(m) ||
	    rte_be_to_cpu_16(ip->total_length) != rte_pktmbuf_pkt_len(m) || ip->dst_addr != dst ||
	    !ip_peer_ok(nif, dst)) {
		nif->stats.tx_bad_ip++;
		rc = -EINVAL;
		goto drop;
	}
	if (rte_pktmbuf_pkt_len(m) > nif->conf.mtu) {
		nif->stats.tx_too_big++;
		rc = -EMSGSIZE;
		goto drop;
	}
	nh = tcp_netif_on_link(nif, dst) ? dst : nif->conf.gateway;
	if (nh == 0) {
		nif->stats.ip_no_route++;
		rc = -ENETUNREACH;
		goto drop;
	}
	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eth));
	if (eth == NULL) {
		nif->stats.tx_no_headroom++;
		rc = -ENOSPC;
		goto drop;
	}
	rte_ether_addr_copy(&nif->conf.mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	return tcp_arp_output(nif, m, nh, now_tsc);
drop:
	rte_pktmbuf_free(m);
	return rc;
}

#define TCP_ICMP_DEST_UNREACH 3 /* RFC 792 (rte_icmp.h has no name for it) */

/* Destination unreachable (@ilen bytes of ICMP at @icmp, checksum good):
 * to the protocol of the packet it quotes, if that was ours. */
static void icmp_unreach(struct tcp_netif *nif, const struct rte_icmp_hdr *icmp, uint32_t ilen,
			 uint64_t now)
{
	const struct rte_ipv4_hdr *in = (const struct rte_ipv4_hdr *)(icmp + 1);
	uint32_t ihl;

	if (ilen < sizeof(*icmp) + sizeof(*in) + 8 || (in->version_ihl >> 4) != 4 ||
	    (ihl = (uint32_t)(in->version_ihl & 0xf) * 4) < sizeof(*in) ||
	    ilen < sizeof(*icmp) + ihl + 8 || !tcp_netif_is_ours(nif, in->src_addr)) {
		nif->stats.icmp_err_bad++;
		return;
	}
	for (unsigned i = 0; i < nif->nl4; i++) {
		if (nif->l4[i].proto == in->next_proto_id && nif->l4[i].err != NULL) {
			/* RFC 1191: the next-hop MTU in the low half of the unused word. */
			uint16_t mtu = rte_be_to_cpu_16((uint16_t)(icmp->icmp_seq_nb));

			nif->stats.icmp_errors++;
			nif->l4[i].err(
			    nif->l4[i].err_arg, icmp->icmp_code, icmp->icmp_code == 4 ? mtu : 0, in,
			    (const uint8_t *)in + ihl, ilen - (uint32_t)sizeof(*icmp) - ihl, now);
			return;
		}
	}
	nif->stats.icmp_unhandled++;
}

/* An ICMP message for us, @hlen bytes of IPv4 header in front of it. */
static bool icmp_input(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t hlen, uint64_t now)
{
	const struct rte_ipv4_hdr *ip =
	    rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
	uint32_t ilen = rte_be_to_cpu_16(ip->total_length) - hlen;
	uint32_t src = ip->src_addr, dst = ip->dst_addr;
	struct rte_icmp_hdr *icmp;
	uint16_t ck;

	if (ilen < sizeof(*icmp)) {
		nif->stats.icmp_short++;
		goto drop;
	}
	icmp = rte_pktmbuf_mtod_offset(m, struct rte_icmp_hdr *, RTE_ETHER_HDR_LEN + hlen);
	if (rte_raw_cksum(icmp, ilen) != 0xffff) {
		nif->stats.icmp_bad_csum++;
		goto drop;
	}
	if (icmp->icmp_type == TCP_ICMP_DEST_UNREACH) {
		icmp_unreach(nif, icmp, ilen, now);
		goto drop;
	}
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0) {
		nif->stats.icmp_unhandled++;
		goto drop;
	}
	nif->stats.icmp_echo_requests++;

	/* The reply is the request's ICMP message, retyped, behind new headers. */
	rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN + hlen);
	m->ol_flags = 0; /* receive flags mean nothing on the way out */
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	ck = ~rte_raw_cksum(icmp, ilen);
	icmp->icmp_cksum = ck;
	if (tcp_netif_ip_prepend_from(nif, m, dst, src, IPPROTO_ICMP) != 0)
		goto drop;
	if (tcp_netif_ip_output(nif, m, src, now) != 0)
		return false;
	nif->stats.icmp_echo_replies++;
	return true;
drop:
	rte_pktmbuf_free(m);
	return false;
}

/* An IPv4 packet; data at the Ethernet header, which is known to be there. */
static bool ip_input(struct tcp_netif *nif, struct rte_mbuf *m, uint64_t now)
{
	uint32_t len = rte_pktmbuf_data_len(m) - RTE_ETHER_HDR_LEN;
	const struct rte_ipv4_hdr *ip;
	uint32_t hlen, tot;

	if (len < sizeof(struct rte_ipv4_hdr)) {
		nif->stats.ip_short++;
		goto drop;
	}
	ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
	if ((ip->version_ihl >> 4) != 4) {
		nif->stats.ip_bad_version++;
		goto drop;
	}
	hlen = rte_ipv4_hdr_len(ip);
	if (hlen < sizeof(struct rte_ipv4_hdr) || hlen > len) {
		nif->stats.ip_bad_hlen++;
		goto drop;
	}
	tot = rte_be_to_cpu_16(ip->total_length);
	if (tot < hlen || tot > len) {
		nif->stats.ip_bad_len++;
		goto drop;
	}
	if (rte_raw_cksum(ip, hlen) != 0xffff) {
		nif->stats.ip_bad_csum++;
		goto drop;
	}
	if (!tcp_netif_is_ours(nif, ip->dst_addr)) {
		nif->stats.ip_not_for_us++;
		goto drop;
	}
	if (!ip_peer_ok(nif, ip->src_addr)) {
		nif->stats.ip_bad_src++;
		goto drop;
	}
	if (ip->fragment_offset &
	    rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
		nif->stats.ip_fragment++;
		goto drop;
	}
	/* Ethernet pads short frames: what lies beyond the total length is not ours. */
	if (tot < len)
		rte_pktmbuf_trim(m, len - tot);
	switch (ip->next_proto_id) {
	case IPPROTO_ICMP:
		return icmp_input(nif, m, hlen, now);
	default:
		for (unsigned i = 0; i < nif->nl4; i++) {
			if (nif->l4[i].proto == ip->next_proto_id) {
				rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN);
				nif->l4[i].fn(nif->l4[i].arg, m, hlen, now);
				return true;
			}
		}
		nif->stats.ip_unknown_proto++;
		goto drop;
	}
drop:
	rte_pktmbuf_free(m);
	return false;
}

void tcp_netif_arp_learn(struct tcp_netif *nif, struct rte_mbuf *m, uint64_t now_tsc)
{
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);

	nif->stats.arp_copies_rx++;
	if (m->nb_segs != 1 || rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN ||
	    eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
		rte_pktmbuf_free(m);
		return;
	}
	(void)tcp_arp_input(nif, m, now_tsc, false);
}

uint16_t tcp_netif_input(struct tcp_netif *nif, struct rte_mbuf **pkts, uint16_t n,
			 uint64_t now_tsc)
{
	uint16_t accepted = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const struct rte_ether_hdr *eth;
		bool ok = false;

		nif->stats.rx_frames++;
		nif->stats.rx_bytes += rte_pktmbuf_pkt_len(m);
		if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
			nif->stats.rx_multiseg++;
			goto drop;
		}
		if (rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN) {
			nif->stats.rx_short++;
			goto drop;
		}
		eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
		if (!rte_is_unicast_ether_addr(&eth->src_addr)) {
			nif->stats.eth_bad_src++;
			goto drop;
		}
		if (!rte_is_same_ether_addr(&eth->dst_addr, &nif->conf.mac) &&
		    !rte_is_broadcast_ether_addr(&eth->dst_addr)) {
			nif->stats.eth_not_for_us++;
			goto drop;
		}
		switch (rte_be_to_cpu_16(eth->ether_type)) {
		case RTE_ETHER_TYPE_ARP:
			ok = tcp_arp_input(nif, m, now_tsc, true);
			break;
		case RTE_ETHER_TYPE_IPV4:
			ok = ip_input(nif, m, now_tsc);
			break;
		default:
			nif->stats.eth_unknown_type++;
			goto drop;
		}
		accepted += ok;
		continue;
	drop:
		rte_pktmbuf_free(m);
	}
	return accepted;
}
