/*
 * tcp_stack.h - the userspace TCP of one worker: connections over a netif.
 *
 * SYNOPSIS
 *	#include "tcp/tcp_stack.h"
 *
 *	stk = tcp_stack_create(&conf, nif, pool, socket_id, now);
 *	tcp_connect(stk, dst_ip, 25, my_session, now, &conn);
 *	tcp_listen(stk, 2525, my_listener);
 *	loop:
 *		rx burst -> tcp_netif_input()   (TCP segments reach the stack)
 *		tcp_stack_tick(stk, now);        (every ~1 ms: timers)
 *		n = tcp_stack_poll(stk, ev, 64);
 *		for each event: tcp_recv() / tcp_send() / tcp_close() ...
 *		tcp_netif_tx_drain() -> tx burst
 *	tcp_stack_free(stk);
 *
 * DESCRIPTION
 *	One stack per worker, on top of that worker's netif, sharing nothing:
 *	no locks, no system calls, no allocation after creation except mbufs.
 *	Connections live in a table keyed by the 4-tuple, whose local
 *	address is any of the netif's (tcp_connect_from()); local ports for
 *	active opens come from the range [port_lo, port_hi] given to this
 *	worker (disjoint ranges let a dispatcher steer replies by port).
 *
 *	Events: the stack never calls the application. Whatever happens to a
 *	connection sets event bits on it and queues it (once) on a ready list;
 *	tcp_stack_poll() hands out one struct tcp_event per connection with
 *	all its bits. So the application is never re-entered from inside the
 *	stack and may do anything (send, close) while handling an event.
 *
 *	Buffers: tcp_send() copies the caller's bytes into mbufs once, cut at
 *	the connection's MSS; the send queue keeps those mbufs until they are
 *	acknowledged, and every (re)transmission sends a fresh header mbuf
 *	chained to a clone of the data mbuf, so data is never copied again.
 *	Received in-order data stays in the received mbufs until tcp_recv().
 *	The send queues of a stack hold at most three quarters of its pool
 *	(tcp_send() is cut short beyond that, TCP_EV_WRITABLE follows): the
 *	rest stays for headers, clones and received frames, so ACKs can always
 *	come in and free them (the pool is meant to be the stack's own). A
 *	segment that cannot be built because the pool is empty is tried again
 *	by a retry timer, never dropped silently.
 *
 *	Protocol: RFC 9293 state machine; RFC 5961 RST and SYN checks
 *	(challenge ACKs); RFC 6298 RTO with Karn's rule and exponential
 *	backoff; RFC 5681/6582 slow start, congestion avoidance, fast
 *	retransmit and NewReno recovery; RFC 7323 window scale, timestamps
 *	(RTT measurement, PAWS); MSS from the netif's MTU; delayed ACKs;
 *	zero-window probes; SYN retries and a connect deadline; TIME_WAIT.
 *	Out-of-order segments wait in a reassembly queue (a list threaded
 *	through the mbufs, an mbuf dynamic field) holding anything inside the
 *	offered window, its mbufs bounded at 4 x rcvbuf; holes are ACKed at
 *	once; RFC 3042 limited transmit.
 *	When the table is full, the oldest released TIME_WAIT is ended early
 *	(as Linux does on TIME_WAIT overflow). SACK (RFC 2018): offered on
 *	SYN, blocks sent from the reassembly queue, and in fast recovery a
 *	scoreboard over the send queue retransmits only the holes, paced by
 *	an RFC 6675 pipe estimate; RACK-TLP (RFC 8985) finds losses by time
 *	(lost retransmissions and tails included) and probes tails; D-SACK
 *	(RFC 2883) and timestamps undo spurious recoveries (tcp_rack.c).
 *	cwnd grows by bytes acknowledged (RFC 3465); the controller is
 *	CUBIC or BBR (tcp_cc.c, tcp_bbr.c; BBR also paces every segment). ICMP: unreachable
 *	fails a connect at once; fragmentation needed lowers the MSS (RFC
 *	1191, validated per RFC 5927), as do repeated timeouts of full
 *	segments (black-hole detection, RFC 4821); the MSS never goes up
 *	again. Not yet: checksum offload, keepalive, urgent data (ignored),
 *	RSS flow steering, PLPMTUD probing upward.
 *	Segments are cut once at tcp_send() time; a peer window smaller
 *	than the next segment (when it is at least half the largest the
 *	peer offered, or when the persist timer fires) has the segment split
 *	to fit (RFC 1122 4.2.3.4).
 *
 *	Strangers (every peer may be hostile), each defence a named function
 *	in tcp_input.c with a counter: ACKs below SND.UNA - MAX.SND.WND are
 *	refused (RFC 5961 5); on a timestamp connection segments without a
 *	timestamp are dropped (RFC 7323 3.2) and echoed timestamps never
 *	sent are not taken as RTT samples; challenge, out-of-window and PAWS
 *	ACKs are rate-limited per connection and per stack (RFC 5961 7); a
 *	peer MSS is raised to TCP_MIN_MSS; closed (orphaned) connections in
 *	FIN_WAIT_1, CLOSING and LAST_ACK are reset after orphan_retries
 *	timeouts or probes, or orphan_timeout_ms, and data arriving after
 *	tcp_close() is answered with RST; received and out-of-order data of
 *	all connections are bounded by rx_mbufs_max, out-of-order queues
 *	pruned first. ISNs (RFC 6528), timestamp offsets and ports (RFC 6056
 *	algorithm 3) come from SipHash-2-4 under a 128-bit key; IPv4 IDs are
 *	zero (DF is always set, RFC 6864).
 *
 * OWNERSHIP
 *	A connection handle returned by tcp_connect() or announced by a
 *	TCP_EV_ACCEPTED event belongs to the application until it calls
 *	tcp_close() or tcp_abort(); after that the handle must not be used
 *	and the stack frees the connection when the protocol is done with it.
 */
#ifndef TCP_STACK_H
#define TCP_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <rte_mempool.h>

#include "tcp/tcp_netif.h"
#include "tcp/tcp_stat.h"

/** Configuration of a stack; copied by tcp_stack_create(). Times in ms. */
struct tcp_stack_conf {
	uint16_t port_lo, port_hi;   /**< local ports for active opens (host order) */
	uint32_t max_conns;	     /**< connections at once (all states) */
	uint32_t sndbuf;	     /**< bytes queued for sending per connection */
	uint32_t rcvbuf;	     /**< bytes held for reading per connection */
	uint32_t rto_init_ms;	     /**< initial RTO (RFC 6298: 1000) */
	uint32_t rto_min_ms;	     /**< lower bound (RFC 6298: 1000; Linux: 200) */
	uint32_t rto_max_ms;	     /**< upper bound (>= 60000) */
	uint32_t syn_retries;	     /**< SYN (or SYN-ACK) retransmissions before giving up */
	uint32_t max_retries;	     /**< data retransmissions of one segment before ETIMEDOUT */
	uint32_t connect_timeout_ms; /**< deadline for an active open, 0 = SYN retries only */
	uint32_t delack_ms;	     /**< delayed-ACK timeout (e.g. 40) */
	uint32_t time_wait_ms;	     /**< TIME_WAIT (2 MSL) and orphaned FIN_WAIT_2 hold */
	/**
	 * 128-bit key of the keyed hashes (SipHash-2-4) behind initial
	 * sequence numbers (RFC 6528), timestamp offsets and ephemeral ports
	 * (RFC 6056); all zero: tcp_stack_create() draws one with getrandom().
	 */
	uint64_t secret[2];
	uint32_t orphan_retries;      /**< closed connections: retransmissions/probes, 0 = 8 */
	uint32_t orphan_timeout_ms;   /**< closed connections: FIN_WAIT_1..LAST_ACK, 0 = 60000 */
	uint32_t rx_mbufs_max;	      /**< received + out-of-order mbufs held, 0 = pool / 4 */
	uint32_t challenge_ack_limit; /**< RFC 5961 7: challenge ACKs per second, 0 = 1000 */
	uint32_t no_sack;	      /**< non-zero: neither offer nor accept SACK (RFC 2018) */
	int congestion_control;	      /**< enum tcp_cc_algo (0: CUBIC) */
	/**
	 * Optional, for flow steering: may an active open use local port
	 * @p lport to reach raddr:rport (all in network order)? Ports it
	 * refuses are skipped. NULL: any free port of the range.
	 */
	bool (*port_ok)(void *arg, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport);
	void *port_ok_arg;
};

/** Congestion controllers (struct tcp_stack_conf's congestion_control). */
enum tcp_cc_algo {
	TCP_CC_CUBIC = 0, /**< loss-based (RFC 9438), segments leave as the window allows */
	TCP_CC_BBR = 1,	  /**< model-based (BBR v1), every segment paced */
};

/** Connection states (RFC 9293 3.3.2). */
enum tcp_state {
	TCP_CLOSED = 0,
	TCP_LISTEN,
	TCP_SYN_SENT,
	TCP_SYN_RECEIVED,
	TCP_ESTABLISHED,
	TCP_FIN_WAIT_1,
	TCP_FIN_WAIT_2,
	TCP_CLOSE_WAIT,
	TCP_CLOSING,
	TCP_LAST_ACK,
	TCP_TIME_WAIT,
};

/** Event bits of struct tcp_event. */
enum {
	TCP_EV_CONNECTED = 1 << 0,   /**< active open completed */
	TCP_EV_ACCEPTED = 1 << 1,    /**< a new connection on a listening port; user = listener's */
	TCP_EV_READABLE = 1 << 2,    /**< data to tcp_recv() */
	TCP_EV_WRITABLE = 1 << 3,    /**< send space again after a short tcp_send() */
	TCP_EV_PEER_CLOSED = 1 << 4, /**< the peer sent FIN: tcp_recv() returns 0 after the data */
	TCP_EV_ERROR = 1 << 5,	     /**< connection failed; error says why; it is closed */
	TCP_EV_CLOSED = 1 << 6, /**< after tcp_shutdown(): our FIN acked and the peer's received */
};

/** One connection's news, from tcp_stack_poll(). */
struct tcp_event {
	struct tcp_conn *conn; /**< the connection */
	void *user;	       /**< its user pointer */
	uint32_t events;       /**< TCP_EV_* bits */
	int error;	       /**< with TCP_EV_ERROR: ECONNREFUSED, ECONNRESET, ETIMEDOUT */
};

/** Counters of a stack (all uint64_t; see tcp_stack_stat_names()). */
struct tcp_stack_stats {
	uint64_t conns;		   /**< connections in the table now (gauge) */
	uint64_t conns_alloc;	   /**< connection slots in use: handles not yet released (gauge) */
	uint64_t active_opens;	   /**< tcp_connect() calls that sent a SYN */
	uint64_t passive_opens;	   /**< connections accepted */
	uint64_t conn_refused;	   /**< active opens answered by RST */
	uint64_t conn_timeouts;	   /**< connections given up by the retransmission timer */
	uint64_t conn_resets;	   /**< established connections reset by the peer */
	uint64_t segs_rx;	   /**< segments received */
	uint64_t segs_tx;	   /**< segments sent */
	uint64_t bytes_rx;	   /**< payload bytes accepted in order */
	uint64_t bytes_tx;	   /**< payload bytes sent (first transmissions) */
	uint64_t retransmits;	   /**< segments sent again (timeout or fast retransmit) */
	uint64_t rto_fired;	   /**< retransmission timeouts */
	uint64_t fast_retransmits; /**< NewReno entries into fast recovery */
	uint64_t rx_malformed;	   /**< drop: short, bad offset, bad options */
	uint64_t rx_bad_csum;	   /**< drop: checksum wrong */
	uint64_t rx_no_conn;	   /**< segments for no connection (RST sent unless RST) */
	uint64_t rx_out_of_window; /**< drop: unacceptable sequence number (ACK sent) */
	uint64_t rx_paws;	   /**< drop: timestamp older than ts_recent (RFC 7323 PAWS) */
	uint64_t rx_ooo_drop;	   /**< drop: out-of-order data, reassembly memory full */
	uint64_t rx_rcvbuf_drop;   /**< drop: receive buffer full */
	uint64_t challenge_acks;   /**< RFC 5961 challenge ACKs sent */
	uint64_t rst_tx;	   /**< resets sent */
	uint64_t syn_dropped;	   /**< drop: SYN for a listener while the table is full */
	uint64_t tx_no_mbuf;	   /**< segments not sent (yet: retried): pool empty */
	uint64_t delayed_acks;	   /**< ACKs sent by the delayed-ACK timer */
	uint64_t zero_window_probes; /**< probes sent to a zero window */
	uint64_t tw_recycled;	     /**< TIME_WAIT connections ended early to free a slot */
	uint64_t sq_mbufs;	     /**< mbufs held in send queues (gauge) */
	uint64_t tx_sq_capped;	     /**< tcp_send() cut short: send queues at their pool share */
	uint64_t tx_txq_full;	     /**< segments held back (and retried): netif TX FIFO full */
	uint64_t sack_blocks_rx;     /**< SACK blocks received (RFC 2018) */
	uint64_t sack_blocks_tx;     /**< SACK blocks sent */
	uint64_t rx_old_ack;	     /**< drop: ACK below SND.UNA - MAX.SND.WND (RFC 5961 5) */
	uint64_t rx_no_ts;	     /**< drop: no timestamp on a timestamp connection */
	uint64_t rx_bad_tsecr;	     /**< echoed timestamp not one we sent: no RTT sample */
	uint64_t rx_mss_clamped;     /**< peer MSS raised to the minimum (TCP_MIN_MSS) */
	uint64_t ack_rate_limited;   /**< challenge/out-of-window/PAWS ACKs not sent (RFC 5961 7) */
	uint64_t orphan_drops;	     /**< closed connections reset: retries or orphan timeout */
	uint64_t rst_data_after_close; /**< connections reset: data arrived after tcp_close() */
	uint64_t rx_mbufs;	       /**< mbufs held by receive and out-of-order queues (gauge) */
	uint64_t rx_pruned;	       /**< out-of-order mbufs dropped under memory pressure */
	uint64_t rx_mem_drop;	       /**< drop: worker's receive memory budget reached */
	uint64_t tx_split;	       /**< segments split to fit a small peer window */
	uint64_t icmp_invalid;	       /**< ICMP errors quoting no segment in flight (RFC 5927) */
	uint64_t icmp_conn_aborts;     /**< connects failed at once by ICMP unreachable */
	uint64_t icmp_soft;	       /**< valid ICMP unreachable on open connections: ignored */
	uint64_t pmtu_reductions;      /**< MSS lowered by ICMP fragmentation needed (RFC 1191) */
	uint64_t pmtu_blackhole;  /**< MSS lowered after timeouts of full segments (RFC 4821) */
	uint64_t rack_lost;	  /**< segments found lost by RACK (RFC 8985) */
	uint64_t tlp_probes;	  /**< tail loss probes sent (RFC 8985 7) */
	uint64_t dsacks_rx;	  /**< D-SACK blocks received (RFC 2883) */
	uint64_t undos;		  /**< recoveries or timeouts undone as spurious */
	uint64_t dsacks_tx;	  /**< D-SACK blocks sent: duplicates reported (RFC 2883) */
	uint64_t paced;		  /**< times output stopped to wait for the pacing timer */
	uint64_t recovery_probes; /**< resends sent again in recovery, before the RTO */
};

struct tcp_stack;
struct tcp_conn;

/**
 * Create a stack over @p nif and register it as the netif's TCP handler.
 * @param conf      configuration (copied)
 * @param nif       the worker's netif; must outlive the stack
 * @param pool      mbufs for segments (headers, data, clones)
 * @param socket_id NUMA socket for the connection table
 * @param now_tsc   current TSC (timer wheel origin)
 * @return the stack, or NULL with errno EINVAL or ENOMEM
 */
struct tcp_stack *tcp_stack_create(const struct tcp_stack_conf *conf, struct tcp_netif *nif,
				   struct rte_mempool *pool, int socket_id, uint64_t now_tsc);

/** Free the stack, every connection and every mbuf it holds. NULL is allowed. */
void tcp_stack_free(struct tcp_stack *stk);

/** Run due timers. Call every ~1 ms. */
void tcp_stack_tick(struct tcp_stack *stk, uint64_t now_tsc);

/**
 * Take up to @p max events, one per connection with news.
 * @return the number written to @p ev
 */
uint16_t tcp_stack_poll(struct tcp_stack *stk, struct tcp_event *ev, uint16_t max);

/**
 * Open a connection to @p dst : @p port.
 * @param dst  IPv4 address, network byte order
 * @param port TCP port, host order
 * @param user the application's pointer, given back in events
 * @param out  set to the connection (the application's handle)
 * @return 0 (SYN sent; TCP_EV_CONNECTED or TCP_EV_ERROR follows),
 *         -EADDRNOTAVAIL (no free local port), -ENOBUFS (table full),
 *         -EINVAL (bad address or port)
 */
int tcp_connect(struct tcp_stack *stk, uint32_t dst, uint16_t port, void *user, uint64_t now_tsc,
		struct tcp_conn **out);

/**
 * tcp_connect() from local address @p src (network order): one of the
 * netif's addresses (tcp_netif_add_ip()), or 0 for its primary. The
 * local port, the ISN and the timestamp offset are keyed on the whole
 * 4-tuple, @p src included (RFC 6056, RFC 6528).
 * @return as tcp_connect(); -EADDRNOTAVAIL also when @p src is not ours
 */
int tcp_connect_from(struct tcp_stack *stk, uint32_t src, uint32_t dst, uint16_t port, void *user,
		     uint64_t now_tsc, struct tcp_conn **out);

/**
 * Accept connections on local @p port (host order); each arrives as a
 * TCP_EV_ACCEPTED event carrying @p user.
 * @return 0, -EADDRINUSE, -ENOBUFS (too many listeners)
 */
int tcp_listen(struct tcp_stack *stk, uint16_t port, void *user);

/** Stop accepting on @p port (connections already accepted go on). */
void tcp_unlisten(struct tcp_stack *stk, uint16_t port);

/** Set the user pointer given back in this connection's events. */
void tcp_conn_set_user(struct tcp_conn *c, void *user);

/**
 * Queue up to @p len bytes for sending (copied once into mbufs).
 * @return bytes queued (less than @p len when the send buffer fills or
 *         the mempool is empty: TCP_EV_WRITABLE follows when there is
 *         room), -ENOTCONN (not established yet, or after shutdown),
 *         -EPIPE (connection failed), -ENOBUFS (no mbuf and nothing
 *         queued; TCP_EV_WRITABLE follows too)
 */
ssize_t tcp_send(struct tcp_conn *c, const void *buf, size_t len, uint64_t now_tsc);

/**
 * Copy up to @p len received bytes out, in order.
 * @return bytes copied; 0 when the peer has closed and everything was
 *         read; -EAGAIN when nothing is there yet; -ENOTCONN (failed or
 *         never connected)
 */
ssize_t tcp_recv(struct tcp_conn *c, void *buf, size_t len, uint64_t now_tsc);

/** Bytes waiting to be read. */
uint32_t tcp_readable(const struct tcp_conn *c);

/**
 * Send FIN after the queued data (half-close). TCP_EV_CLOSED follows once
 * everything is acknowledged and the peer has closed too.
 * @return 0 or -ENOTCONN
 */
int tcp_shutdown(struct tcp_conn *c, uint64_t now_tsc);

/**
 * Release the handle. Unread data makes this an abort (RST, as RFC 2525
 * and Linux do); otherwise the connection is shut down gracefully in the
 * background.
 */
void tcp_close(struct tcp_conn *c, uint64_t now_tsc);

/** Reset the connection (RST) and release the handle. */
void tcp_abort(struct tcp_conn *c, uint64_t now_tsc);

/** The connection's state. */
enum tcp_state tcp_conn_state(const struct tcp_conn *c);

/** Name of a state ("ESTABLISHED"). */
const char *tcp_state_name(enum tcp_state s);

/** Retransmissions of this connection so far. */
uint64_t tcp_conn_retransmits(const struct tcp_conn *c);

/** A connection's sender state, for diagnostics (dmta-nc --trace). */
struct tcp_conn_info {
	uint32_t mss;		  /**< payload bytes per segment */
	uint32_t cwnd, ssthresh;  /**< bytes */
	uint32_t flight;	  /**< bytes sent and not acknowledged */
	uint32_t pipe;		  /**< of those, not SACKed */
	uint32_t sq_sent, sq_len; /**< send-queue segments sent, queued */
	uint32_t snd_wnd;	  /**< the peer's window, bytes */
	uint32_t srtt_us, rto_us;
	bool in_recovery;
	bool bbr;	      /**< the fields below are set */
	uint8_t bbr_mode;     /**< 0 STARTUP, 1 DRAIN, 2 PROBE_BW, 3 PROBE_RTT */
	uint16_t pacing_gain; /**< x 256 */
	uint64_t bw, pacing;  /**< bytes per second: bandwidth estimate, pacing rate */
	uint32_t min_rtt_us;  /**< BBR's (UINT32_MAX: none yet) */
	uint32_t extra_acked; /**< ACK-aggregation allowance, bytes */
	uint64_t retransmits;
};

/** Fill @p i from connection @p c (a walk over the send queue: not for
 * every packet). */
void tcp_conn_info(const struct tcp_conn *c, struct tcp_conn_info *i);

/**
 * Write one line per connection slot in use (state, flags, pending events,
 * sequence state) to @p f, for diagnostics. Not for the data path.
 */
void tcp_stack_dump(const struct tcp_stack *stk, FILE *f);

/** The stack's counters. */
const struct tcp_stack_stats *tcp_stack_stats(const struct tcp_stack *stk);

/** Names and offsets of every field of struct tcp_stack_stats. */
const struct tcp_stat_name *tcp_stack_stat_names(size_t *n);

#endif
