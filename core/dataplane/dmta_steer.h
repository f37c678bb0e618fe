/*
 * dmta_steer.h - flow steering: which worker owns a received frame, and
 * which local ports a worker may use so that replies come back to it.
 *
 * SYNOPSIS
 *	dmta_steer_init(&st, nb_workers, port_lo, span);
 *	dmta_steer_set_rss(&st, key, key_len, reta_size, nb_rxq);   (RSS ports)
 *	owner = dmta_steer_owner(&st, m);
 *	ok = dmta_steer_port_ok(&st, worker, laddr, lport, raddr, rport);
 *
 * DESCRIPTION
 *	Every worker runs its own TCP stack, so every segment must reach the
 *	worker whose stack holds the connection. The owner of a connection
 *	is a function of its local port alone: worker k opens connections
 *	from its own slice [port_lo + k*span, port_lo + (k+1)*span) of the
 *	[tcp] port range; any other local port (a listening port) belongs to
 *	worker 0. A worker that receives a segment of another worker's
 *	connection (a stray) forwards it over that worker's ring.
 *
 *	On a port with RSS (a multi-queue NIC) the data plane programs the
 *	Toeplitz key and a redirection table of queue = entry % nb_rxq, and
 *	each worker opens connections only from the ports of its slice whose
 *	reply 4-tuple hashes to its own queue (dmta_steer_port_ok(), computed
 *	in software with rte_softrss). Replies then arrive at their owner and
 *	strays are rare; they are still counted and forwarded, so a NIC that
 *	hashes differently is slower, never wrong.
 *
 *	On a port without RSS (most virtual devices: af_packet spreads by
 *	the kernel's own flow hash, others have one RX queue) every worker
 *	polls the RX queues it has and dispatches by owner in software.
 *
 *	ICMP destination unreachable messages belong to the owner of the
 *	local port in the segment they quote (path MTU, failed connects).
 *
 *	ARP frames are not owned: each worker keeps its own neighbour cache,
 *	so the worker that receives one handles it (and answers a request)
 *	and gives every other worker a copy to learn from.
 */
#ifndef DMTA_STEER_H
#define DMTA_STEER_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_mbuf.h>

/* dmta_steer_owner(): every worker (ARP), not one. */
#define DMTA_STEER_ALL	    UINT32_MAX
#define DMTA_STEER_KEY_MAX  64
#define DMTA_STEER_RETA_MAX 512

struct dmta_steer {
	uint32_t nb_workers;
	uint16_t port_lo; /* host order */
	uint16_t span;	  /* local ports per worker */
	bool rss;	  /* the port hashes with our key and redirection table */
	uint16_t nb_rxq;
	uint16_t reta_size;
	uint8_t key_len;
	uint8_t key[DMTA_STEER_KEY_MAX] __rte_aligned(4); /* rte_softrss reads words */
};

/** Owners by port slice: worker k has [port_lo + k*span, port_lo + (k+1)*span). */
void dmta_steer_init(struct dmta_steer *st, uint32_t nb_workers, uint16_t port_lo, uint16_t span);

/** The port hashes with @p key into a table of @p reta_size entries, entry i -> queue i % nb_rxq.
 */
void dmta_steer_set_rss(struct dmta_steer *st, const uint8_t *key, uint8_t key_len,
			uint16_t reta_size, uint16_t nb_rxq);

/** The worker owning local port @p lport (host order). */
static inline uint32_t dmta_steer_port_owner(const struct dmta_steer *st, uint16_t lport)
{
	uint32_t k;

	if (lport < st->port_lo)
		return 0;
	k = (uint32_t)(lport - st->port_lo) / st->span;
	return k < st->nb_workers ? k : 0;
}

/**
 * The worker that must handle received frame @p m: a worker index, or
 * DMTA_STEER_ALL (ARP). Frames that own nothing (ICMP, malformed, not
 * IPv4) are for @p self, whose netif drops or answers them.
 */
uint32_t dmta_steer_owner(const struct dmta_steer *st, const struct rte_mbuf *m, uint32_t self);

/** Toeplitz hash of a segment from raddr:rport to laddr:lport (network order). */
uint32_t dmta_steer_rss_hash(const struct dmta_steer *st, uint32_t laddr, uint16_t lport,
			     uint32_t raddr, uint16_t rport);

/** RSS queue a segment from raddr:rport to laddr:lport lands on (network order). */
uint16_t dmta_steer_rss_queue(const struct dmta_steer *st, uint32_t laddr, uint16_t lport,
			      uint32_t raddr, uint16_t rport);

/**
 * May @p worker open a connection from laddr:lport to raddr:rport
 * (network order)? Always true without RSS; with RSS, only when the
 * reply hashes to the worker's own queue.
 */
bool dmta_steer_port_ok(const struct dmta_steer *st, uint32_t worker, uint32_t laddr,
			uint16_t lport, uint32_t raddr, uint16_t rport);

#endif
