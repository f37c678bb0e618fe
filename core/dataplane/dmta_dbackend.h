/*
 * dmta_dbackend.h - delivery over the DPDK workers' userspace TCP
 *	(backend = dpdk).
 *
 * SYNOPSIS
 *	rc = dmta_dbackend_attach(workers, n, conf, err, errlen);  (before launch)
 *	be = dmta_dbackend_new(loop, done, ctl);                  (the control side)
 *
 * DESCRIPTION
 *	Each worker runs a session pool (dmta_pool.h) over its own TCP stack:
 *	the worker that owns a destination (the scheduler's shard) holds all of
 *	its SMTP sessions, so per-destination limits need no locks. The control
 *	thread hands a job to its worker over a single-producer ring; the
 *	worker hands it back, its result filled in, over another, and rings a
 *	doorbell (an eventfd in the control thread's loop) at most once per
 *	millisecond. Jobs are pointers: the message bytes are read by the
 *	worker from the job and copied once, into the TCP stack's mbufs.
 *
 *	XXX The worker allocates its SMTP sessions with malloc (jemalloc in
 *	release builds); a per-worker arena is the next step.
 */
#ifndef DMTA_DBACKEND_H
#define DMTA_DBACKEND_H

#include <stddef.h>

#include "core/base/dmta_conf.h"
#include "core/control/dmta_job.h"
#include "core/control/dmta_loop.h"
#include "core/dataplane/dmta_worker.h"

/** Give every worker a session pool and its rings; 0 or -errno with err. */
int dmta_dbackend_attach(struct dmta_worker *workers, unsigned int n, const struct dmta_conf *conf,
			 char *err, size_t errlen);

/**
 * The control thread's side (a struct dmta_backend for dmta_control); after
 * dmta_dbackend_attach(). NULL with errno.
 */
struct dmta_backend *dmta_dbackend_new(struct dmta_loop *loop, dmta_job_done_fn *done, void *ctl);

#endif
