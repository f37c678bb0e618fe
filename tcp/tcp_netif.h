/*
 * tcp_netif.h - the first layer of a worker's network stack: Ethernet, ARP,
 *	IPv4 and ICMP echo over DPDK mbufs.
 *
 * SYNOPSIS
 *	#include "tcp/tcp_netif.h"
 *
 *	nif = tcp_netif_create(&conf, pool, rte_socket_id());
 *	for (;;) {
 *		n = rte_eth_rx_burst(port, q, pkts, BURST);
 *		tcp_netif_input(nif, pkts, n, rte_rdtsc());
 *		n = tcp_netif_tx_drain(nif, out, BURST);
 *		sent = rte_eth_tx_burst(port, q, out, n);
 *		rte_pktmbuf_free_bulk(out + sent, n - sent);   (count them)
 *		every ~1 ms: tcp_netif_tick(nif, rte_rdtsc());
 *	}
 *	tcp_netif_free(nif);
 *
 * DESCRIPTION
 *	One struct tcp_netif per worker lcore: it is never shared, so it takes
 *	no locks; it makes no system calls and allocates nothing after
 *	tcp_netif_create() except mbufs from the pool it was given.
 *
 *	Input: frames addressed to our MAC (or broadcast) are checked layer by
 *	layer; anything malformed, truncated or not for us is freed and counted
 *	under its own reason in struct tcp_netif_stats. Every length is checked
 *	against rte_pktmbuf_data_len() before a byte is read. Multi-segment
 *	frames are linearized with rte_pktmbuf_linearize() when the first
 *	segment has room, and dropped (rx_multiseg) otherwise. Ethernet
 *	padding beyond the IPv4 total length is trimmed.
 *
 *	Addresses: conf.ip, the primary, and up to TCP_NETIF_ADDR_MAX more
 *	added with tcp_netif_add_ip() (egress sources), all on the same port
 *	and MAC. Each is answered for in ARP, accepted as a destination and
 *	usable as a source (tcp_netif_ip_prepend_from()); the netif's own
 *	frames (ARP requests) go from the primary.
 *
 *	ARP (RFC 826): requests for any of our addresses are answered in place (the
 *	received mbuf becomes the reply, a 42-byte frame: the port pads it).
 *	The sender of any ARP packet is merged into the neighbour cache if it
 *	is already there, and added if the packet was aimed at us. Neighbours
 *	are resolved on demand by tcp_netif_ip_output(): a broadcast request,
 *	then up to arp_max_retries more every arp_retry_ms, while up to
 *	arp_pending_max packets wait in the entry; after the last retry the
 *	waiting packets are dropped (arp_unresolved_drop) and the address is
 *	held as failed for arp_retry_ms (packets to it are dropped at once,
 *	which keeps a dead neighbour from causing an ARP storm). A resolved
 *	entry lives arp_timeout_ms; if it was used meanwhile it is then probed
 *	with unicast requests (still usable while probed), otherwise dropped.
 *	The cache is 256 entries, 4-way set associative by address.
 *
 *	IPv4: version, header length, total length against the frame, header
 *	checksum, source address sanity; fragments are dropped and counted (no
 *	reassembly); only our own unicast addresses are accepted. Checksums are
 *	computed in software.
 *
 *	ICMP: an echo request whose checksum over the whole ICMP message is
 *	right is answered, from the address it was sent to, with an echo
 *	reply carrying the same identifier,
 *	sequence number and data, built in the received mbuf and sent through
 *	tcp_netif_ip_output() (so via the source's ARP entry when on-link, the
 *	gateway otherwise). Other ICMP types are counted as icmp_unhandled.
 *
 *	Output: frames to send (replies, ARP requests, packets given to
 *	tcp_netif_ip_output() whose next hop is known) wait in a FIFO of
 *	TCP_NETIF_TXQ_SIZE frames inside the netif until tcp_netif_tx_drain().
 *
 * DIAGNOSTICS
 *	Nothing is logged on the data path; everything is a counter.
 */
#ifndef TCP_NETIF_H
#define TCP_NETIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "tcp/tcp_stat.h"

/** Frames the netif holds for tcp_netif_tx_drain(); beyond that tx_full counts drops. */
#define TCP_NETIF_TXQ_SIZE 1024

/** Addresses a netif may have beside its primary (tcp_netif_add_ip()). */
#define TCP_NETIF_ADDR_MAX 64

/** Largest arp_pending_max accepted by tcp_netif_create(). */
#define TCP_NETIF_ARP_PENDING_LIMIT 256

/** Configuration of one netif; copied by tcp_netif_create(). */
struct tcp_netif_conf {
	struct rte_ether_addr mac; /**< our MAC address (the port's); unicast */
	uint32_t ip;		   /**< our IPv4 address, network byte order; not 0 */
	uint8_t prefix_len;	   /**< on-link prefix length, 0..32 (e.g. 24) */
	uint32_t gateway;	   /**< default gateway, network byte order, on-link; 0 = none */
	uint16_t mtu;		   /**< IPv4 MTU, 68..9216; a frame fits one mbuf */
	uint64_t tsc_hz;	   /**< TSC ticks per second: rte_get_tsc_hz() or a test value */
	uint32_t arp_timeout_ms;   /**< lifetime of a resolved ARP entry; > 0 */
	uint32_t arp_retry_ms;	   /**< interval between ARP requests while resolving; > 0 */
	uint32_t arp_max_retries;  /**< requests sent after the first before giving up */
	uint32_t arp_pending_max;  /**< packets held per unresolved entry, 0..256 */
};

/**
 * Counters of one netif. Every drop reason has its own counter; all fields
 * are uint64_t so tcp_netif_stat_names() can describe them by offset.
 */
struct tcp_netif_stats {
	/* Received frames */
	uint64_t rx_frames;	   /**< frames given to tcp_netif_input() */
	uint64_t rx_bytes;	   /**< their bytes (pkt_len) */
	uint64_t rx_short;	   /**< drop: shorter than an Ethernet header */
	uint64_t rx_multiseg;	   /**< drop: multi-segment and could not be linearized */
	uint64_t eth_unknown_type; /**< drop: EtherType neither IPv4 nor ARP (VLAN, IPv6...) */
	uint64_t eth_not_for_us;   /**< drop: destination neither our MAC nor broadcast */
	uint64_t eth_bad_src;	   /**< drop: multicast/broadcast source MAC */
	/* ARP */
	uint64_t arp_malformed;	 /**< drop: short, or not Ethernet/IPv4, or bad opcode */
	uint64_t arp_not_for_us; /**< drop: target address is not ours (after the merge) */
	uint64_t arp_bad_src; /**< drop: sender address unusable (0, ours, broadcast, off-link) */
	uint64_t arp_requests_rx;     /**< requests for our address received */
	uint64_t arp_replies_rx;      /**< replies for our address received */
	uint64_t arp_copies_rx;	      /**< ARP copies from another worker, learned from */
	uint64_t arp_replies_tx;      /**< replies we queued */
	uint64_t arp_requests_tx;     /**< requests we queued (first tries, retries, probes) */
	uint64_t arp_resolved;	      /**< unresolved or probed entries that got an answer */
	uint64_t arp_timeouts;	      /**< resolutions that gave up after the last retry */
	uint64_t arp_unresolved_drop; /**< drop: IPv4 packets that no ARP entry could carry */
	uint64_t arp_evictions;	      /**< entries pushed out of a full set */
	/* IPv4 */
	uint64_t ip_short;	   /**< drop: shorter than a minimal IPv4 header */
	uint64_t ip_bad_version;   /**< drop: version is not 4 */
	uint64_t ip_bad_hlen;	   /**< drop: IHL < 5 or header beyond the frame */
	uint64_t ip_bad_len;	   /**< drop: total length < header or > frame */
	uint64_t ip_bad_csum;	   /**< drop: header checksum wrong */
	uint64_t ip_bad_src;	   /**< drop: source 0, ours, loopback, multicast, broadcast */
	uint64_t ip_fragment;	   /**< drop: a fragment (no reassembly) */
	uint64_t ip_not_for_us;	   /**< drop: destination is not our address */
	uint64_t ip_unknown_proto; /**< drop: protocol with no handler */
	uint64_t ip_no_route;	   /**< drop: output off-link with no gateway */
	/* ICMP */
	uint64_t icmp_short;	     /**< drop: shorter than an ICMP echo header */
	uint64_t icmp_bad_csum;	     /**< drop: ICMP checksum wrong */
	uint64_t icmp_unhandled;     /**< drop: ICMP type/code we do not handle */
	uint64_t icmp_echo_requests; /**< valid echo requests received */
	uint64_t icmp_echo_replies;  /**< echo replies handed to output */
	uint64_t icmp_errors;	     /**< destination unreachable passed to a protocol */
	uint64_t icmp_err_bad;	     /**< drop: unreachable quoting nothing of ours */
	/* Transmit */
	uint64_t tx_frames;	 /**< frames handed out by tcp_netif_tx_drain() */
	uint64_t tx_bytes;	 /**< their bytes */
	uint64_t tx_no_mbuf;	 /**< drop: pool empty when building a frame */
	uint64_t tx_full;	 /**< drop: the TX FIFO was full */
	uint64_t tx_no_headroom; /**< drop: no mbuf headroom for a header */
	uint64_t tx_too_big;	 /**< drop: IPv4 packet larger than the MTU */
	uint64_t tx_bad_ip;	 /**< drop: output given a bad IPv4 header or address */
};

/** A worker's netif; opaque. */
struct tcp_netif;

/**
 * Create a netif.
 *
 * @param conf      configuration, copied; may be freed after the call
 * @param pool      mbuf pool for the frames the netif builds itself (ARP
 *                  requests); not owned, must outlive the netif
 * @param socket_id NUMA socket for the netif's memory (SOCKET_ID_ANY allowed)
 * @return the netif, or NULL with errno EINVAL (bad conf: see the field
 *         comments; gateway off-link) or ENOMEM
 */
struct tcp_netif *tcp_netif_create(const struct tcp_netif_conf *conf, struct rte_mempool *pool,
				   int socket_id);

/**
 * Free a netif and every mbuf it still holds (TX FIFO, packets waiting for
 * ARP). NULL is allowed.
 */
void tcp_netif_free(struct tcp_netif *nif);

/**
 * Consume a burst of received frames.
 *
 * Takes ownership of all @p n mbufs: each is freed, or reused for a reply
 * that is queued for tcp_netif_tx_drain().
 *
 * @param nif     the netif
 * @param pkts    the frames; the array itself stays the caller's
 * @param n       number of frames
 * @param now_tsc current TSC (ARP entry lifetimes)
 * @return how many frames were valid and handled (answered, or used to
 *         learn a neighbour); the others were dropped under a counter
 */
uint16_t tcp_netif_input(struct tcp_netif *nif, struct rte_mbuf **pkts, uint16_t n,
			 uint64_t now_tsc);

/**
 * Learn from a copy of an ARP frame that another worker of the same port
 * received and handled (each worker keeps its own neighbour cache): merge
 * the sender into the cache, resolving what waits for it, but never
 * answer. Takes ownership of @p m.
 */
void tcp_netif_arp_learn(struct tcp_netif *nif, struct rte_mbuf *m, uint64_t now_tsc);

/**
 * Move up to @p max queued frames, oldest first, to @p out for
 * rte_eth_tx_burst().
 *
 * @return the number moved; their ownership passes to the caller, who frees
 *         what the port did not take (and counts it)
 */
uint16_t tcp_netif_tx_drain(struct tcp_netif *nif, struct rte_mbuf **out, uint16_t max);

/** Frames waiting in the TX FIFO. */
uint32_t tcp_netif_tx_pending(const struct tcp_netif *nif);

/**
 * Run the ARP timers: request retries, giving up, entry expiry and probes.
 * Call every ~1 ms from the worker loop; cheap when nothing is due.
 *
 * @param nif     the netif
 * @param now_tsc current TSC
 */
void tcp_netif_tick(struct tcp_netif *nif, uint64_t now_tsc);

/**
 * Prepend a 20-byte IPv4 header (no options) to @p m: our source address,
 * @p dst, @p proto, TTL 64, DF set, a fresh identification, total length
 * from rte_pktmbuf_pkt_len(), software header checksum. The payload (e.g. a
 * TCP segment whose checksum uses tcp_netif_ip()) must already be in @p m.
 *
 * @param nif   the netif (source address, identification counter)
 * @param m     the payload; stays the caller's in every case
 * @param dst   destination address, network byte order
 * @param proto IP protocol number (IPPROTO_TCP, IPPROTO_ICMP, ...)
 * @return 0, -ENOSPC (no headroom) or -EMSGSIZE (would exceed the MTU)
 */
int tcp_netif_ip_prepend(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t dst, uint8_t proto);

/**
 * tcp_netif_ip_prepend() from @p src, which must be one of the netif's
 * addresses (network order; 0: the primary).
 * @return as tcp_netif_ip_prepend(), or -EADDRNOTAVAIL (@p src is not
 *         ours; counted as tx_bad_ip)
 */
int tcp_netif_ip_prepend_from(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t src, uint32_t dst,
			      uint8_t proto);

/**
 * Send an IPv4 packet.
 *
 * @p m starts with a complete IPv4 header (checksum included, e.g. from
 * tcp_netif_ip_prepend()) and may have several segments. The next hop is
 * @p dst when on-link, the gateway otherwise; the netif prepends the
 * Ethernet header, and queues the frame for tcp_netif_tx_drain() if the
 * next hop's MAC is known, or holds it (up to arp_pending_max per entry)
 * while ARP resolves it.
 *
 * @param nif     the netif
 * @param m       the packet; ownership always passes to the netif (freed
 *                on error)
 * @param dst     final destination, network byte order (the header's)
 * @param now_tsc current TSC
 * @return 0 when sent or held for ARP; -EINVAL (bad header, dst mismatch
 *         or unusable), -EMSGSIZE (larger than the MTU), -ENETUNREACH (off-link
 *         and no gateway), -EHOSTUNREACH (ARP failed recently for the next
 *         hop), -ENOBUFS (ARP queue, TX FIFO or pool full), -ENOSPC (no
 *         headroom for the Ethernet header)
 */
int tcp_netif_ip_output(struct tcp_netif *nif, struct rte_mbuf *m, uint32_t dst, uint64_t now_tsc);

/**
 * Handler of an IPv4 protocol above the netif (TCP).
 *
 * @param arg     as given to tcp_netif_set_l4()
 * @param m       the packet, data at its IPv4 header: version, lengths,
 *                checksum, addresses already checked, Ethernet padding
 *                trimmed, one segment; ownership passes to the handler
 * @param hlen    length of the IPv4 header (options included)
 * @param now_tsc as given to tcp_netif_input()
 */
typedef void (*tcp_netif_l4_fn)(void *arg, struct rte_mbuf *m, uint32_t hlen, uint64_t now_tsc);

/** Protocols that can have a handler at once. */
#define TCP_NETIF_L4_MAX 4

/**
 * Hand received packets of IP protocol @p proto to @p fn (NULL removes the
 * handler; packets are then counted as ip_unknown_proto). ICMP cannot be
 * taken over.
 * @return 0, -EINVAL (ICMP) or -ENOSPC (TCP_NETIF_L4_MAX handlers already)
 */
int tcp_netif_set_l4(struct tcp_netif *nif, uint8_t proto, tcp_netif_l4_fn fn, void *arg);

/**
 * Handler of ICMP destination unreachable messages (RFC 792 type 3) about
 * packets of a protocol above the netif.
 *
 * @param arg     as given to tcp_netif_set_l4_err()
 * @param code    the ICMP code (4: fragmentation needed and DF set)
 * @param mtu     with code 4, the next-hop MTU (RFC 1191), 0 if not given
 * @param inner   the quoted IPv4 header: its source is our address, its
 *                protocol the handler's; the netif checked both
 * @param l4      the quoted transport header, @p l4len >= 8 bytes of it
 * @param now_tsc as given to tcp_netif_input()
 */
typedef void (*tcp_netif_err_fn)(void *arg, uint8_t code, uint16_t mtu,
				 const struct rte_ipv4_hdr *inner, const uint8_t *l4,
				 uint32_t l4len, uint64_t now_tsc);

/**
 * Pass ICMP destination unreachable messages quoting a packet of protocol
 * @p proto to @p fn (NULL: count them as icmp_unhandled). The protocol
 * must validate them against its state (RFC 5927): anyone can send one.
 * @return 0, -EINVAL (ICMP) or -ENOSPC
 */
int tcp_netif_set_l4_err(struct tcp_netif *nif, uint8_t proto, tcp_netif_err_fn fn, void *arg);

/**
 * Add @p ip (network order) to the netif's addresses: ARP requests for it
 * are answered, packets to it accepted, and it may be a source. Adding an
 * address already ours does nothing. Not on the data path: call it before
 * the worker runs.
 * @return 0, -EINVAL (0, loopback, multicast, broadcast, or the gateway)
 *         or -ENOSPC (TCP_NETIF_ADDR_MAX already)
 */
int tcp_netif_add_ip(struct tcp_netif *nif, uint32_t ip);

/** Whether @p ip (network order) is one of the netif's addresses. */
bool tcp_netif_has_ip(const struct tcp_netif *nif, uint32_t ip);

/** Our primary IPv4 address, network byte order. */
uint32_t tcp_netif_ip(const struct tcp_netif *nif);

/** The IPv4 MTU given at creation. */
uint16_t tcp_netif_mtu(const struct tcp_netif *nif);

/** The TSC frequency given at creation. */
uint64_t tcp_netif_tsc_hz(const struct tcp_netif *nif);

/** The netif's counters; valid as long as the netif. */
const struct tcp_netif_stats *tcp_netif_stats(const struct tcp_netif *nif);

/**
 * The names and offsets of every field of struct tcp_netif_stats, for
 * telemetry.
 *
 * @param n set to the number of entries
 * @return a static table of @p n entries
 */
const struct tcp_stat_name *tcp_netif_stat_names(size_t *n);

/**
 * Look a neighbour up in the ARP cache (for tests and diagnostics).
 *
 * @param nif the netif
 * @param ip  address, network byte order
 * @param mac set to the MAC when the entry is resolved (may be NULL)
 * @return 1 resolved (reachable or being probed), 0 unresolved or failed,
 *         -ENOENT no entry
 */
int tcp_netif_arp_lookup(const struct tcp_netif *nif, uint32_t ip, struct rte_ether_addr *mac);

#endif
