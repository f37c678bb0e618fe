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
 *	The sessions, their reuse and limits per destination, MX failover and
 *	the idle timeout are the session pool's (dmta_pool.h); this file is
 *	its transport: a socket per connection, watched in the loop, its
 *	kernel retransmission count read for the live view. A job with a
 *	source address (job->src) has its socket bound to it before
 *	connect(); an address this host does not have fails the job as a
 *	local failure, naming the address.
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
