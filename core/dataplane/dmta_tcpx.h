/*
 * dmta_tcpx.h - the session pool's transport over a worker's userspace TCP
 *	stack: one byte stream per pool connection.
 *
 * SYNOPSIS
 *	struct dmta_tcpx tx = {.stk = stk, .now_tsc = clock, .arg = a,
 *			       .ns_per_tsc_q32 = ...};
 *	struct dmta_pool_xport xp;
 *	dmta_tcpx_xport(&tx, &xp);	   pool = dmta_pool_new(&pc, &xp, ...);
 *	n = tcp_stack_poll(stk, ev, max);  dmta_tcpx_events(ev, n);
 *
 * DESCRIPTION
 *	What the DPDK backend's workers (dmta_dbackend.c) and the cost
 *	benchmark over the in-memory wire (bench/core) share: connect, writev,
 *	read, close and the clock as the pool wants them (dmta_pool.h), and
 *	the dispatch of the stack's events to the pool, exactly one pool call
 *	per event, as dmta_pool.h requires. The clock is the caller's: the
 *	worker's TSC, or the wire's simulated one.
 *
 *	A short tcp_send() makes the stack report TCP_EV_WRITABLE by itself,
 *	so want_write() has nothing to do. Closing forgets the connection's
 *	user pointer first: no event reaches a pool connection after it.
 */
#ifndef DMTA_TCPX_H
#define DMTA_TCPX_H

#include <stdint.h>

#include "core/control/dmta_pool.h"
#include "tcp/tcp_stack.h"

struct dmta_tcpx {
	struct tcp_stack *stk;
	uint64_t (*now_tsc)(void *arg); /* the stack's clock */
	void *arg;
	uint64_t ns_per_tsc_q32; /* ns per TSC tick, 32.32 fixed point */
};

/** Fill @p xp with the transport over @p tx (which must outlive the pool). */
void dmta_tcpx_xport(struct dmta_tcpx *tx, struct dmta_pool_xport *xp);

/** Hand the stack's news to the pool connections they belong to. */
void dmta_tcpx_events(const struct tcp_event *ev, uint16_t n);

#endif
