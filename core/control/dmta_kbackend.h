/*
 * dmta_kbackend.h - delivery over the kernel's sockets (backend = kernel).
 *
 * SYNOPSIS
 *	be = dmta_kbackend_new(&pool_conf, loop, done, ctl);   (a struct dmta_backend)
 *
 * DESCRIPTION
 *	The same SMTP engine as the DPDK workers run, over non-blocking kernel
 *	sockets in the control thread's epoll loop: for development machines
 *	without DPDK, and as the baseline that shows what kernel bypass buys.
 *
 *	Per destination it keeps the sessions it opened: a job goes to an idle
 *	session of its destination when there is one (connection reuse, up to
 *	max_messages_per_connection messages each), else to a new connection.
 *	The scheduler limits the jobs out per destination, and so the
 *	connections. Connecting walks the destination's hosts and their
 *	addresses in order (MX failover): a refused or timed-out connection, or
 *	a session that fails before it is ready (a 421 greeting, a TLS
 *	failure), moves on to the next address. Idle sessions are closed with
 *	QUIT after idle_ms.
 */
#ifndef DMTA_KBACKEND_H
#define DMTA_KBACKEND_H

#include <stdint.h>

#include "core/control/dmta_job.h"
#include "core/control/dmta_loop.h"
#include "core/control/dmta_pool.h"

/** A backend, or NULL with errno. The configuration is copied. */
struct dmta_backend *dmta_kbackend_new(const struct dmta_pool_conf *pc, struct dmta_loop *loop,
				       dmta_job_done_fn *done, void *ctl);

#endif
