/*
 * dmta_kbackend.c - see dmta_kbackend.h: the session pool (dmta_pool.h)
 * over non-blocking kernel sockets in the control thread's epoll loop.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/base/dmta_time.h"
#include "core/control/dmta_kbackend.h"
#include "core/control/dmta_pool.h"
#include "core/control/dmta_stats.h"

struct kbe {
	struct dmta_backend ops;
	struct dmta_loop *loop;
	struct dmta_pool *pool;
	uint64_t retrans_closed; /* retransmissions of the sockets closed so far */
};

/* The kernel's count of this socket's retransmitted segments (SYNs too). */
static uint64_t sock_retrans(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return 0;
	return ti.tcpi_total_retrans;
}

static void ks_event(void *arg, int fd, uint32_t events)
{
	struct dmta_pool_conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (c->xh == NULL) { /* still connecting */
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err == 0 && (events & (EPOLLERR | EPOLLHUP)))
			err = ECONNREFUSED;
		if (err != 0) {
			dmta_pool_failed(c, err);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		c->xh = c; /* connected */
		dmta_pool_connected(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		dmta_pool_readable(c); /* may close c */
		return;
	}
	if (events & EPOLLOUT)
		dmta_pool_writable(c);
}

/*
 * Leave from @p src: bound before connect(), with IP_BIND_ADDRESS_NO_PORT
 * so that the kernel picks the port at connect() time for the whole
 * 4-tuple, as for an unbound socket, instead of reserving one per source
 * address (which would exhaust the ephemeral range at 28,000 connections).
 * Whatever fails is our side's (the address is not on this host): the
 * pool takes -EADDRNOTAVAIL as that.
 */
static int ks_bind(int fd, struct in_addr src)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = src};
	int one = 1;

#ifdef IP_BIND_ADDRESS_NO_PORT
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return -EADDRNOTAVAIL;
	return 0;
}

static int ks_connect(void *x, struct dmta_pool_conn *c, struct in_addr src, struct in_addr a,
		      uint16_t port)
{
	struct kbe *k = x;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = a};
	int fd, one = 1, rc;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src.s_addr != 0 && (rc = ks_bind(fd, src)) != 0) {
		close(fd);
		return rc;
	}
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = dmta_loop_add(k->loop, fd, EPOLLIN | EPOLLOUT, ks_event, c);
	if (rc != 0) {
		close(fd);
		return rc;
	}
	c->fd = fd;
	c->xh = NULL;
	return 0;
}

static ssize_t ks_writev(void *x, struct dmta_pool_conn *c, const struct iovec *iov, int n)
{
	/* sendmsg with MSG_NOSIGNAL: a peer's reset must not kill the daemon. */
	struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};

	for (;;) {
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static ssize_t ks_read(void *x, struct dmta_pool_conn *c, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = read(c->fd, buf, n);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static void ks_want_write(void *x, struct dmta_pool_conn *c, bool on)
{
	struct kbe *k = x;

	dmta_loop_mod(k->loop, c->fd, EPOLLIN | (on ? EPOLLOUT : 0));
}

static void ks_close(void *x, struct dmta_pool_conn *c, bool graceful)
{
	struct kbe *k = x;

	if (c->fd >= 0) {
		/* One getsockopt per connection, when it ends: the live ones are
		 * asked only when the statistics are taken. */
		k->retrans_closed += sock_retrans(c->fd);
		dmta_loop_del(k->loop, c->fd);
		close(c->fd);
	}
	c->fd = -1;
	c->xh = NULL;
}

static uint64_t ks_now(void *x)
{
	return dmta_now_ns();
}

static int kb_submit(void *be, struct dmta_job *job)
{
	struct kbe *k = be;

	return dmta_pool_submit(k->pool, job);
}

static int kb_next_timeout_ms(void *be)
{
	struct kbe *k = be;
	uint64_t first = dmta_pool_next_deadline(k->pool), now = dmta_now_ns();

	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : (int)((first - now) / DMTA_NS_PER_MS + 1);
}

static void kb_tick(void *be)
{
	struct kbe *k = be;

	dmta_pool_tick(k->pool);
}

static void kb_drain(void *be)
{
	struct kbe *k = be;

	dmta_pool_drain(k->pool);
}

static unsigned kb_busy(void *be)
{
	struct kbe *k = be;

	return dmta_pool_busy(k->pool);
}

static void add_retrans(void *arg, struct dmta_pool_conn *c)
{
	if (c->fd >= 0)
		*(uint64_t *)arg += sock_retrans(c->fd);
}

/* One "worker": the control thread, whose pool runs over kernel sockets. */
static unsigned kb_workers(void *be, struct dmta_stats_worker *w, unsigned max)
{
	struct kbe *k = be;
	struct dmta_pool_stats ps;
	uint64_t retrans = k->retrans_closed;

	if (max == 0)
		return 0;
	dmta_pool_read_stats(k->pool, &ps);
	dmta_pool_foreach_conn(k->pool, add_retrans, &retrans);
	*w = (struct dmta_stats_worker){
	    .jobs = ps.busy,
	    .sessions = ps.conns,
	    .connecting = ps.connecting,
	    .idle = ps.idle,
	    .opened = ps.opened,
	    .connect_failed = ps.connect_failed,
	    .retransmits = retrans,
	};
	return 1;
}

static void kb_free(void *be)
{
	struct kbe *k = be;

	dmta_pool_free(k->pool);
	free(k);
}

struct dmta_backend *dmta_kbackend_new(const struct dmta_pool_conf *pc, struct dmta_loop *loop,
				       dmta_job_done_fn *done, void *ctl)
{
	struct kbe *k = calloc(1, sizeof(*k));
	struct dmta_pool_xport xp = {
	    .connect = ks_connect,
	    .writev = ks_writev,
	    .read = ks_read,
	    .want_write = ks_want_write,
	    .close = ks_close,
	    .now_ns = ks_now,
	};

	if (k == NULL)
		return NULL;
	k->loop = loop;
	xp.x = k;
	k->pool = dmta_pool_new(pc, &xp, done, ctl);
	if (k->pool == NULL) {
		free(k);
		return NULL;
	}
	k->ops = (struct dmta_backend){
	    .name = "kernel",
	    .submit = kb_submit,
	    .next_timeout_ms = kb_next_timeout_ms,
	    .tick = kb_tick,
	    .drain = kb_drain,
	    .busy = kb_busy,
	    .free = kb_free,
	    .workers = kb_workers,
	    .be = k,
	};
	return &k->ops;
}
