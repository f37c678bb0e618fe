/*
 * dmta_loop.c - see dmta_loop.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/control/dmta_loop.h"

#define LOOP_BATCH 64

struct loop_slot {
	dmta_loop_fn *fn; /* NULL: free */
	void *arg;
	uint32_t gen; /* bumped on every add, so stale events are recognised */
};

struct dmta_loop {
	int ep;
	struct loop_slot *slot;
	size_t nslot;
};

struct dmta_loop *dmta_loop_new(void)
{
	struct dmta_loop *loop = calloc(1, sizeof(*loop));

	if (loop == NULL)
		return NULL;
	loop->ep = epoll_create1(EPOLL_CLOEXEC);
	if (loop->ep < 0) {
		int e = errno;

		free(loop);
		errno = e;
		return NULL;
	}
	return loop;
}

void dmta_loop_free(struct dmta_loop *loop)
{
	if (loop == NULL)
		return;
	close(loop->ep);
	free(loop->slot);
	free(loop);
}

static uint64_t loop_key(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

int dmta_loop_add(struct dmta_loop *loop, int fd, uint32_t events, dmta_loop_fn *fn, void *arg)
{
	struct epoll_event ev = {.events = events};

	if (fd < 0 || fn == NULL)
		return -EINVAL;
	if ((size_t)fd >= loop->nslot) {
		size_t n = loop->nslot ? loop->nslot : 64;
		struct loop_slot *s;

		while (n <= (size_t)fd)
			n *= 2;
		s = realloc(loop->slot, n * sizeof(*s));
		if (s == NULL)
			return -ENOMEM;
		memset(s + loop->nslot, 0, (n - loop->nslot) * sizeof(*s));
		loop->slot = s;
		loop->nslot = n;
	}
	if (loop->slot[fd].fn != NULL)
		return -EEXIST;
	loop->slot[fd].gen++;
	ev.data.u64 = loop_key(fd, loop->slot[fd].gen);
	if (epoll_ctl(loop->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -errno;
	loop->slot[fd].fn = fn;
	loop->slot[fd].arg = arg;
	return 0;
}

int dmta_loop_mod(struct dmta_loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events};

	if (fd < 0 || (size_t)fd >= loop->nslot || loop->slot[fd].fn == NULL)
		return -ENOENT;
	ev.data.u64 = loop_key(fd, loop->slot[fd].gen);
	if (epoll_ctl(loop->ep, EPOLL_CTL_MOD, fd, &ev) != 0)
		return -errno;
	return 0;
}

int dmta_loop_del(struct dmta_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nslot || loop->slot[fd].fn == NULL)
		return -ENOENT;
	epoll_ctl(loop->ep, EPOLL_CTL_DEL, fd, NULL);
	loop->slot[fd].fn = NULL;
	loop->slot[fd].arg = NULL;
	return 0;
}

int dmta_loop_once(struct dmta_loop *loop, int timeout_ms)
{
	struct epoll_event ev[LOOP_BATCH];
	int n = epoll_wait(loop->ep, ev, LOOP_BATCH, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)ev[i].data.u64;
		uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
		struct loop_slot *s = &loop->slot[fd];

		/* Removed (or removed and added again) by an earlier callback. */
		if (s->fn == NULL || s->gen != gen)
			continue;
		s->fn(s->arg, fd, ev[i].events);
	}
	return n;
}
