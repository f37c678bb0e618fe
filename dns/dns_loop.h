/*
 * dns_loop.h - a small epoll loop that drives a resolver, for programs that
 *		have no control loop of their own (dmta-route, dmta-queue route,
 *		tests, benches).
 *
 * SYNOPSIS
 *	loop = dns_loop_new();
 *	r = dns_resolver_new(&cfg, dns_loop_watch, loop);
 *	dns_loop_attach(loop, r);
 *	dns_loop_every(loop, period_ms, fn, arg);	(optional timer)
 *	rc = dns_loop_run(loop, deadline_ms);
 *	dns_loop_free(loop);
 *
 * DESCRIPTION
 *	The loop is what the daemon's control thread does with the resolver:
 *	wait in epoll on c-ares's sockets (and a timerfd), hand readiness to
 *	dns_resolver_process(), and call dns_resolver_tick() after each wait.
 *	dns_loop_run() returns when no request is pending (0) or when
 *	@deadline_ms of wall time has passed (-ETIMEDOUT).
 */
#ifndef DNS_LOOP_H
#define DNS_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/dns_resolver.h"

struct dns_loop;

struct dns_loop *dns_loop_new(void);
void dns_loop_watch(int fd, bool want_read, bool want_write, void *arg);
void dns_loop_attach(struct dns_loop *loop, struct dns_resolver *r);
int dns_loop_every(struct dns_loop *loop, unsigned period_ms, void (*fn)(void *arg), void *arg);
int dns_loop_run(struct dns_loop *loop, uint64_t deadline_ms);
/** The longest single dns_resolver_process()/tick() call so far: how long the loop was held. */
uint64_t dns_loop_max_busy_ns(const struct dns_loop *loop);
/** The most CPU time any single such call used (wall time minus this: not running). */
uint64_t dns_loop_max_busy_cpu_ns(const struct dns_loop *loop);
void dns_loop_free(struct dns_loop *loop);

#endif
