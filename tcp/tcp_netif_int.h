/*
 * tcp_netif_int.h - private to tcp_netif.c and tcp_arp.c.
 *
 * DESCRIPTION
 *	The netif's state and the ARP cache's internal interface. The ARP
 *	cache is 64 sets of 4 ways, hashed by address; each entry owns a fixed
 *	slice of one pending array sized at creation, so nothing is allocated
 *	on the data path.
 */
#ifndef TCP_NETIF_INT_H
#define TCP_NETIF_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "tcp/tcp_netif.h"

#define TCP_ARP_SETS 64
#define TCP_ARP_WAYS 4

enum tcp_arp_state {
	TCP_ARP_FREE = 0,   /* slot unused */
	TCP_ARP_INCOMPLETE, /* requests sent, packets may wait in pending */
	TCP_ARP_REACHABLE,  /* MAC known and fresh */
	TCP_ARP_PROBE,	    /* MAC known but stale: usable while unicast requests go out */
	TCP_ARP_FAILED,	    /* gave up; drop packets to it until the deadline */
};

struct tcp_arp_entry {
	uint32_t ip;	   /* network byte order */
	uint8_t state;	   /* enum tcp_arp_state */
	uint8_t used;	   /* a packet went through it since it was last confirmed */
	uint16_t npending; /* packets waiting in pending[] */
	uint32_t retries;  /* requests sent after the first, in this resolution */
	struct rte_ether_addr mac;
	uint64_t deadline;	   /* TSC: expiry, next retry or end of the failed hold */
	struct rte_mbuf **pending; /* arp_pending_max slots, FIFO order */
};

struct tcp_netif {
	struct tcp_netif_conf conf;
	struct rte_mempool *pool;
	uint32_t netmask; /* network byte order */
	uint64_t arp_timeout_tsc, arp_retry_tsc;
	uint64_t arp_next_tsc; /* earliest entry deadline, UINT64_MAX when none */
	uint32_t arp_active;   /* entries not FREE */
	struct tcp_netif_stats stats;
	/* More addresses of ours beside conf.ip (egress sources): answered
	 * for in ARP, accepted as destinations, usable as sources. */
	uint32_t addrs[TCP_NETIF_ADDR_MAX];
	unsigned naddrs;
	struct {
		uint8_t proto;
		tcp_netif_l4_fn fn;
		void *arg;
		tcp_netif_err_fn err;
		void *err_arg;
	} l4[TCP_NETIF_L4_MAX];
	unsigned nl4;

	uint32_t txq_head, txq_count;
	struct rte_mbuf *txq[TCP_NETIF_TXQ_SIZE];

	struct tcp_arp_entry arp[TCP_ARP_SETS * TCP_ARP_WAYS];
	struct rte_mbuf **arp_pending; /* TCP_ARP_SETS * TCP_ARP_WAYS * arp_pending_max */
};

/* Signed TSC comparison: true when @a is at or after @b. */
static inline bool tcp_tsc_reached(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) >= 0;
}

static inline bool tcp_netif_on_link(const struct tcp_netif *nif, uint32_t ip)
{
	return ((ip ^ nif->conf.ip) & nif->netmask) == 0;
}

/* Is @ip (network order) one of our addresses? The primary first: the
 * common case costs one comparison. */
static inline bool tcp_netif_is_ours(const struct tcp_netif *nif, uint32_t ip)
{
	if (ip == nif->conf.ip)
		return true;
	for (unsigned i = 0; i < nif->naddrs; i++)
		if (nif->addrs[i] == ip)
			return true;
	return false;
}

/* Queue a finished frame for tcp_netif_tx_drain(); frees and counts it when full. */
int tcp_netif_txq_put(struct tcp_netif *nif, struct rte_mbuf *m);

/* ARP (tcp_arp.c) */
void tcp_arp_init(struct tcp_netif *nif);
void tcp_arp_flush_all(struct tcp_netif *nif);
/* Handle one ARP frame (data at the Ethernet header); returns true if accepted. */
/* answer: false for a copy another worker already answered (learn only). */
bool tcp_arp_input(struct tcp_netif *nif, struct rte_mbuf *m, uint64_t now, bool answer);
/* Send a frame (data at the Ethernet header, type set, dst MAC unset) to next hop @nh. */
int tcp_arp_output(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t nh, uint64_t now);
void tcp_arp_tick(struct tcp_netif *nif, uint64_t now);
struct tcp_arp_entry *tcp_arp_find(const struct tcp_netif *nif, uint32_t ip);

#endif
