/*
 * dmta_dbackend.h - delivery over the DPDK workers' userspace TCP
 *	(backend = dpdk).
 *
 * SYNOPSIS
 *	db = dmta_dbackend_new(&dp, conf, err, errlen);       (after open, before launch)
 *	dmta_dataplane_launch(&dp, ...);
 *	ctl = dmta_control_new(conf, dmta_dbackend_bind, db, dp.nb_workers, ...);
 *	... dmta_control_run(ctl, stop_fd) ...
 *	dmta_dataplane_stop(&dp);        (the workers return)
 *	dmta_control_free(ctl);          (the backend gives back the jobs it holds)
 *	dmta_dbackend_free(db);
 *
 * DESCRIPTION
 *	Each worker runs a session pool (dmta_pool.h) over its own TCP stack:
 *	the worker that owns a destination (the scheduler's shard) holds all of
 *	its SMTP sessions, so per-destination limits need no locks. The control
 *	thread hands a job to its worker over a single-producer ring; the
 *	worker hands it back, its result filled in, over another, and rings a
 *	doorbell (an eventfd in the control thread's loop) at most once
 *	every 50 microseconds. Jobs are pointers: the worker reads the message from the
 *	job, where the control thread copied it out of the spool, and copies
 *	it once more, into the TCP stack's mbufs.
 *
 *	dmtad makes the instance, and the control thread binds to it through
 *	dmta_dbackend_bind() (a dmta_backend_new_fn). Start-up and teardown
 *	each run one way, every step once: the backend's free() (from
 *	dmta_control_free()) takes back the results, fails the jobs the
 *	workers never took and frees the pools, failing what they still hold,
 *	all through done(); the pools belong to the workers, so it must come
 *	after dmta_dataplane_stop(). It is an error (a panic) to let go of the
 *	backend, or to free it, while the workers run.
 *
 *	XXX The worker allocates its SMTP sessions with malloc (jemalloc in
 *	release builds); a per-worker arena is the next step.
 *
 * DIAGNOSTICS
 *	dmta_dbackend_new() returns NULL with one line in err;
 *	dmta_dbackend_bind() returns NULL with errno (EBUSY when bound before).
 */
#ifndef DMTA_DBACKEND_H
#define DMTA_DBACKEND_H

#include <stddef.h>

#include "core/base/dmta_conf.h"
#include "core/control/dmta_job.h"
#include "core/control/dmta_loop.h"
#include "core/dataplane/dmta_dataplane.h"

struct dmta_dbackend;

/**
 * Give every worker of @p dp (opened, not launched) a session pool and its
 * rings. @p dp must outlive the backend. NULL with err.
 */
struct dmta_dbackend *dmta_dbackend_new(struct dmta_dataplane *dp, const struct dmta_conf *conf,
					char *err, size_t errlen);

/**
 * The control thread's side of @p db (a struct dmta_dbackend *), as a
 * struct dmta_backend; once per instance. NULL with errno.
 */
struct dmta_backend *dmta_dbackend_bind(void *db, struct dmta_loop *loop, dmta_job_done_fn *done,
					void *ctl);

/** Free @p db (NULL: nothing), after the workers have stopped and the
 *  control thread, if it bound, has let go. */
void dmta_dbackend_free(struct dmta_dbackend *db);

#endif
