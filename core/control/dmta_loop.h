/*
 * dmta_loop.h - the control thread's event loop: epoll with a callback per
 *	file descriptor.
 *
 * SYNOPSIS
 *	loop = dmta_loop_new();
 *	dmta_loop_add(loop, fd, EPOLLIN, on_ready, arg);
 *	dmta_loop_mod(loop, fd, EPOLLIN | EPOLLOUT);
 *	n = dmta_loop_once(loop, timeout_ms);
 *	dmta_loop_del(loop, fd);
 *	dmta_loop_free(loop);
 *
 * DESCRIPTION
 *	Callbacks are found through a table indexed by descriptor, not through
 *	pointers kept by the kernel, so a callback may remove (and close) any
 *	descriptor, its own included, while events of the same batch are still
 *	being dispatched: those events are then dropped. Timers are the
 *	caller's business: it passes the time to the next deadline to
 *	dmta_loop_once().
 *
 * DIAGNOSTICS
 *	dmta_loop_new() returns NULL and sets errno; the others 0 or -errno;
 *	dmta_loop_once() returns the number of events dispatched.
 */
#ifndef DMTA_LOOP_H
#define DMTA_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

typedef void dmta_loop_fn(void *arg, int fd, uint32_t events);

struct dmta_loop;

struct dmta_loop *dmta_loop_new(void);
void dmta_loop_free(struct dmta_loop *loop);

int dmta_loop_add(struct dmta_loop *loop, int fd, uint32_t events, dmta_loop_fn *fn, void *arg);
int dmta_loop_mod(struct dmta_loop *loop, int fd, uint32_t events);
/** Stop watching @p fd (before closing it). 0 or -ENOENT. */
int dmta_loop_del(struct dmta_loop *loop, int fd);

/** Wait up to @p timeout_ms (-1: forever) and dispatch. Events dispatched, or -errno. */
int dmta_loop_once(struct dmta_loop *loop, int timeout_ms);

#endif
