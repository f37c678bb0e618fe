/*
 * dns_loop.c - a small epoll loop that drives a resolver.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "dns/dns_loop.h"

struct dns_loop {
	int ep;
	int tfd;
	struct dns_resolver *r;
	void (*fn)(void *arg);
	void *arg;
	uint64_t max_busy_ns, max_busy_cpu_ns;
};

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * DMTA_NS_PER_S + (uint64_t)ts.tv_nsec;
}

struct dns_loop *dns_loop_new(void)
{
	struct dns_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->tfd = -1;
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void dns_loop_watch(int fd, bool want_read, bool want_write, void *arg)
{
	struct dns_loop *l = arg;
	struct epoll_event ev = {
	    .events = (want_read ? EPOLLIN : 0u) | (want_write ? EPOLLOUT : 0u), .data.fd = fd};

	if (!want_read && !want_write) {
		/* c-ares may already have closed it: ENOENT/EBADF are fine. */
		(void)epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
		return;
	}
	if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) < 0 &&
	    epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		dmta_panic("epoll_ctl(%d): %s", fd, strerror(errno));
}

void dns_loop_attach(struct dns_loop *loop, struct dns_resolver *r)
{
	loop->r = r;
}

int dns_loop_every(struct dns_loop *l, unsigned period_ms, void (*fn)(void *arg), void *arg)
{
	struct itimerspec its = {
	    .it_interval = {period_ms / 1000, (long)(period_ms % 1000) * 1000000L},
	    .it_value = {period_ms / 1000, (long)(period_ms % 1000) * 1000000L},
	};
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = -2};

	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->tfd < 0)
		return -errno;
	if (timerfd_settime(l->tfd, 0, &its, NULL) < 0 ||
	    epoll_ctl(l->ep, EPOLL_CTL_ADD, l->tfd, &ev) < 0)
		return -errno;
	l->fn = fn;
	l->arg = arg;
	return 0;
}

/* Keep the longest call, in wall time and in CPU time (each its own max). */
static void busy_note(struct dns_loop *l, uint64_t t0, uint64_t c0)
{
	uint64_t wall = dmta_now_ns() - t0, cpu = cpu_ns() - c0;

	if (wall > l->max_busy_ns)
		l->max_busy_ns = wall;
	if (cpu > l->max_busy_cpu_ns)
		l->max_busy_cpu_ns = cpu;
}

int dns_loop_run(struct dns_loop *l, uint64_t deadline_ms)
{
	uint64_t end = dmta_now_ns() + deadline_ms * DMTA_NS_PER_MS;
	struct epoll_event evs[64];

	while (dns_resolver_pending(l->r) > 0) {
		uint64_t now = dmta_now_ns();
		int t = dns_resolver_next_timeout_ms(l->r);
		int left, n;

		if (now >= end)
			return -ETIMEDOUT;
		left = (int)((end - now + DMTA_NS_PER_MS - 1) / DMTA_NS_PER_MS);
		if (t < 0 || t > left)
			t = left;
		n = epoll_wait(l->ep, evs, 64, t);
		if (n < 0 && errno != EINTR)
			dmta_panic("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == -2) {
				uint64_t ticks;

				if (read(l->tfd, &ticks, sizeof(ticks)) == sizeof(ticks) && l->fn)
					l->fn(l->arg);
				continue;
			}
			unsigned e = 0;

			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				e |= DNS_EV_READ;
			if (evs[i].events & EPOLLOUT)
				e |= DNS_EV_WRITE;
			uint64_t t0 = dmta_now_ns(), c0 = cpu_ns();

			dns_resolver_process(l->r, evs[i].data.fd, e);
			busy_note(l, t0, c0);
		}
		uint64_t t1 = dmta_now_ns(), c1 = cpu_ns();

		dns_resolver_tick(l->r);
		busy_note(l, t1, c1);
	}
	return 0;
}

uint64_t dns_loop_max_busy_cpu_ns(const struct dns_loop *l)
{
	return l->max_busy_cpu_ns;
}

uint64_t dns_loop_max_busy_ns(const struct dns_loop *l)
{
	return l->max_busy_ns;
}

void dns_loop_free(struct dns_loop *l)
{
	if (!l)
		return;
	if (l->tfd >= 0)
		close(l->tfd);
	close(l->ep);
	free(l);
}
