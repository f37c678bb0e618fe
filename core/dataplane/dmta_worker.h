/*
 * dmta_worker.h - a data-plane worker: one lcore, one RX/TX queue pair,
 * one network stack instance, run to completion.
 *
 * SYNOPSIS
 *	rc = dmta_worker_init(w, id, port, netconf, stackconf, idle_sleep_us,
 *			      steer, peers);
 *	dmta_worker_set_app(w, &app);      (optional: what runs on the stack)
 *	rte_eal_remote_launch(dmta_worker_main, w, lcore);
 *	dmta_workers_stop();   (through dmta_dataplane_stop(); workers return)
 *	dmta_worker_fini(w);
 *
 * DESCRIPTION
 *	The loop: RX burst, hand the frames to the stack (netif, then TCP),
 *	run its timers every millisecond (TSC), hand the TCP events to the
 *	application (dmtad's SMTP sessions, dmta-nc), drain what the stack
 *	queued, TX burst. Frames the port does not take are kept (up to
 *	DMTA_WORKER_TX_HOLD) and offered again first on the next turns; only
 *	beyond that are they freed and counted as dropped.
 *
 *	With several workers (see dmta_steer.h), each frame read from the
 *	worker's RX queue (if it has one) goes to its owner: kept, or
 *	forwarded over the owner's inbox ring (multi-producer, single
 *	consumer), and ARP is handled here and copied to every other worker.
 *	Every turn the worker also takes what others forwarded to it. No locks and no
 *syscalls, except the optional idle sleep ([workers] idle_sleep_us, default 0 = pure polling) for
 *machines where a worker must share its core.
 *
 *	Counters live in the worker's own cache lines; the telemetry thread
 *	reads them without locking (aligned 64-bit loads, a snapshot that may
 *	be a few packets stale).
 */
#ifndef DMTA_WORKER_H
#define DMTA_WORKER_H

#include <stdint.h>

#include <rte_common.h>

#include "core/base/dmta_conf.h"
#include "core/dataplane/dmta_port.h"
#include "core/dataplane/dmta_steer.h"
#include "tcp/tcp_netif.h"
#include "tcp/tcp_stack.h"

struct dmta_worker;

/** What runs on a worker's TCP stack. Called on the worker's lcore only. */
struct dmta_worker_app {
	/** Events of this worker's connections, as tcp_stack_poll() gives them. */
	void (*events)(void *arg, struct dmta_worker *w, const struct tcp_event *ev, uint16_t n,
		       uint64_t now_tsc);
	/** Every millisecond: the application's own timers. May be NULL. */
	void (*tick)(void *arg, struct dmta_worker *w, uint64_t now_tsc);
	/** Every turn of the loop, so it must be cheap (an empty ring costs a
	 *  load): the application's own rings. May be NULL. */
	void (*poll)(void *arg, struct dmta_worker *w, uint64_t now_tsc);
	void *arg;
};

/* Frames a worker keeps when its TX queue is full, before dropping. */
#define DMTA_WORKER_TX_HOLD 512

struct dmta_worker_stats {
	uint64_t loops;
	uint64_t rx_bursts;
	uint64_t rx_frames;
	uint64_t tx_frames;
	uint64_t tx_dropped; /* queued by the stack, never taken by the port */
	uint64_t tx_retried; /* not taken at once, sent on a later turn */
	uint64_t idle_sleeps;
	uint64_t stray_out;  /* frames of another worker's connections, forwarded */
	uint64_t stray_in;   /* frames forwarded to this worker */
	uint64_t stray_drop; /* forwarded frames lost: the owner's inbox was full */
	uint64_t arp_shared; /* ARP frames copied to the other workers */
};

struct dmta_worker {
	unsigned int id;
	uint16_t port_id;
	uint16_t queue_id;
	uint32_t idle_sleep_us;
	bool has_rxq;
	const struct dmta_steer *steer; /* NULL with one worker */
	struct dmta_worker *peers;	/* every worker, this one included */
	struct rte_ring *inbox;		/* frames other workers forward to this one */
	struct rte_mempool *pool;
	struct tcp_netif *nif;
	struct tcp_stack *stk;
	struct dmta_worker_app app;
	/* Frames the port did not take, sent first on the next turns. */
	uint16_t held;
	struct rte_mbuf *hold[DMTA_WORKER_TX_HOLD];
	struct dmta_worker_stats stats;
} __rte_cache_aligned;

/** The [tcp] keys. */
extern const struct dmta_conf_section dmta_tcp_conf_section;

/**
 * The [tcp] section into @p sc for worker @p id of @p nb_workers: each
 * worker gets its own slice of [tcp] local ports. 0 or -EINVAL (logged).
 */
int dmta_worker_tcp_conf(const struct dmta_conf *conf, unsigned int id, unsigned int nb_workers,
			 struct tcp_stack_conf *sc);

/**
 * Set up worker @p id on queue @p id of @p port; with several workers,
 * @p steer says who owns what and @p peers is the array of all workers
 * (both outlive the worker; NULL with one worker). 0 or -errno.
 */
int dmta_worker_init(struct dmta_worker *w, unsigned int id, const struct dmta_port *port,
		     const struct tcp_netif_conf *netconf, const struct tcp_stack_conf *stackconf,
		     uint32_t idle_sleep_us, const struct dmta_steer *steer,
		     struct dmta_worker *peers);

/** tcp_stack_conf port_ok for worker @p arg (a struct dmta_worker *). */
bool dmta_worker_port_ok(void *arg, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport);

/** What runs on the worker's stack (before it is launched). */
void dmta_worker_set_app(struct dmta_worker *w, const struct dmta_worker_app *app);

/** The lcore entry point (argument: struct dmta_worker *). Returns 0 when stopped. */
int dmta_worker_main(void *arg);

/**
 * Ask every worker loop to return. A worker still running 10 s later ends
 * the process (exit status 70): a stop signal always stops it.
 */
void dmta_workers_stop(void);

void dmta_worker_fini(struct dmta_worker *w);

#endif
