/*
 * dmta_steer.c - see dmta_steer.h.
 */
#include <string.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_thash.h>

#include "core/dataplane/dmta_steer.h"

void dmta_steer_init(struct dmta_steer *st, uint32_t nb_workers, uint16_t port_lo, uint16_t span)
{
	memset(st, 0, sizeof(*st));
	st->nb_workers = nb_workers == 0 ? 1 : nb_workers;
	st->port_lo = port_lo;
	st->span = span == 0 ? 1 : span;
}

void dmta_steer_set_rss(struct dmta_steer *st, const uint8_t *key, uint8_t key_len,
			uint16_t reta_size, uint16_t nb_rxq)
{
	/* rte_softrss reads one word past the 12 bytes of an IPv4 tuple. */
	if (key_len < 16 || key_len > DMTA_STEER_KEY_MAX || reta_size == 0 || nb_rxq == 0) {
		st->rss = false;
		return;
	}
	memcpy(st->key, key, key_len);
	st->key_len = key_len;
	st->reta_size = reta_size;
	st->nb_rxq = nb_rxq;
	st->rss = true;
}

/*
 * An ICMP destination unreachable (RFC 792 type 3) quotes one of our
 * segments: it belongs to the worker owning the segment's source port (our
 * port), whoever the router that sent it hashed to (RFC 5927 validation is
 * that worker's stack's business). Anything else ICMP stays.
 */
static uint32_t icmp_owner(const struct dmta_steer *st, const struct rte_ipv4_hdr *ip,
			   uint32_t hlen, uint32_t len, uint32_t self)
{
	const uint8_t *icmp = (const uint8_t *)ip + hlen;
	const struct rte_ipv4_hdr *in = (const struct rte_ipv4_hdr *)(icmp + 8);
	const struct rte_tcp_hdr *th;
	uint32_t ihl;

	if (hlen < sizeof(*ip) || len < hlen + 8 + sizeof(*in) + 4 || icmp[0] != 3 ||
	    (ip->fragment_offset &
	     rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0 ||
	    in->next_proto_id != IPPROTO_TCP)
		return self;
	ihl = (uint32_t)(in->version_ihl & 0xf) * 4;
	if (ihl < sizeof(*in) || len < hlen + 8 + ihl + 4)
		return self;
	th = (const struct rte_tcp_hdr *)((const uint8_t *)in + ihl);
	return dmta_steer_port_owner(st, rte_be_to_cpu_16(th->src_port));
}

uint32_t dmta_steer_owner(const struct dmta_steer *st, const struct rte_mbuf *m, uint32_t self)
{
	const struct rte_ether_hdr *eth;
	const struct rte_ipv4_hdr *ip;
	const struct rte_tcp_hdr *th;
	uint32_t len = rte_pktmbuf_data_len(m);
	uint32_t hlen;

	/* Anything odd stays where it is: that netif drops it under a counter. */
	if (len < RTE_ETHER_HDR_LEN)
		return self;
	eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
		return DMTA_STEER_ALL;
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    len < RTE_ETHER_HDR_LEN + sizeof(*ip))
		return self;
	ip = (const struct rte_ipv4_hdr *)(eth + 1);
	hlen = (uint32_t)(ip->version_ihl & 0xf) * 4;
	if (ip->next_proto_id == IPPROTO_ICMP)
		return icmp_owner(st, ip, hlen, len - RTE_ETHER_HDR_LEN, self);
	if (ip->next_proto_id != IPPROTO_TCP || hlen < sizeof(*ip) ||
	    (ip->fragment_offset &
	     rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0 ||
	    len < RTE_ETHER_HDR_LEN + hlen + 4)
		return self;
	th = (const struct rte_tcp_hdr *)((const uint8_t *)ip + hlen);
	return dmta_steer_port_owner(st, rte_be_to_cpu_16(th->dst_port));
}

uint32_t dmta_steer_rss_hash(const struct dmta_steer *st, uint32_t laddr, uint16_t lport,
			     uint32_t raddr, uint16_t rport)
{
	union rte_thash_tuple t;

	/* The tuple as the NIC sees the reply: the peer is the source. */
	memset(&t, 0, sizeof(t));
	t.v4.src_addr = rte_be_to_cpu_32(raddr);
	t.v4.dst_addr = rte_be_to_cpu_32(laddr);
	t.v4.sport = rte_be_to_cpu_16(rport);
	t.v4.dport = rte_be_to_cpu_16(lport);
	return rte_softrss((uint32_t *)&t.v4, RTE_THASH_V4_L4_LEN, st->key);
}

uint16_t dmta_steer_rss_queue(const struct dmta_steer *st, uint32_t laddr, uint16_t lport,
			      uint32_t raddr, uint16_t rport)
{
	if (!st->rss)
		return 0;
	return (uint16_t)((dmta_steer_rss_hash(st, laddr, lport, raddr, rport) % st->reta_size) %
			  st->nb_rxq);
}

bool dmta_steer_port_ok(const struct dmta_steer *st, uint32_t worker, uint32_t laddr,
			uint16_t lport, uint32_t raddr, uint16_t rport)
{
	if (!st->rss || st->nb_workers < 2)
		return true;
	return dmta_steer_rss_queue(st, laddr, lport, raddr, rport) == worker;
}
