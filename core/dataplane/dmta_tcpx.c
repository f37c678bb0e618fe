/*
 * dmta_tcpx.c - see dmta_tcpx.h.
 */
#include <errno.h>

#include "core/dataplane/dmta_tcpx.h"

static uint64_t tx_tsc(const struct dmta_tcpx *tx)
{
	return tx->now_tsc(tx->arg);
}

static int tx_connect(void *x, struct dmta_pool_conn *c, struct in_addr src, struct in_addr a,
		      uint16_t port)
{
	struct dmta_tcpx *tx = x;
	struct tcp_conn *tc;
	int rc = tcp_connect_from(tx->stk, src.s_addr, a.s_addr, port, c, tx_tsc(tx), &tc);

	if (rc != 0)
		return rc;
	c->xh = tc;
	c->fd = -1;
	return 0;
}

static ssize_t tx_writev(void *x, struct dmta_pool_conn *c, const struct iovec *iov, int n)
{
	uint64_t now = tx_tsc(x);
	ssize_t total = 0;

	for (int i = 0; i < n; i++) {
		ssize_t r = tcp_send(c->xh, iov[i].iov_base, iov[i].iov_len, now);

		if (r < 0) {
			if (total > 0)
				break;
			return r == -ENOBUFS ? -EAGAIN : r;
		}
		total += r;
		if ((size_t)r < iov[i].iov_len)
			break;
	}
	/* A full send buffer: TCP_EV_WRITABLE follows when there is room. */
	return total > 0 ? total : -EAGAIN;
}

static ssize_t tx_read(void *x, struct dmta_pool_conn *c, void *buf, size_t n)
{
	return tcp_recv(c->xh, buf, n, tx_tsc(x));
}

static void tx_want_write(void *x, struct dmta_pool_conn *c, bool on)
{
	/* The stack says TCP_EV_WRITABLE by itself after a short tcp_send(). */
}

static void tx_close(void *x, struct dmta_pool_conn *c, bool graceful)
{
	if (c->xh == NULL)
		return;
	tcp_conn_set_user(c->xh, NULL);
	if (graceful)
		tcp_close(c->xh, tx_tsc(x));
	else
		tcp_abort(c->xh, tx_tsc(x));
	c->xh = NULL;
}

static uint64_t tx_now(void *x)
{
	const struct dmta_tcpx *tx = x;

	return (uint64_t)(((unsigned __int128)tx_tsc(tx) * tx->ns_per_tsc_q32) >> 32);
}

void dmta_tcpx_xport(struct dmta_tcpx *tx, struct dmta_pool_xport *xp)
{
	*xp = (struct dmta_pool_xport){
	    .connect = tx_connect,
	    .writev = tx_writev,
	    .read = tx_read,
	    .want_write = tx_want_write,
	    .close = tx_close,
	    .now_ns = tx_now,
	    .x = tx,
	};
}

void dmta_tcpx_events(const struct tcp_event *ev, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		struct dmta_pool_conn *c = ev[i].user;
		uint32_t e = ev[i].events;

		if (c == NULL)
			continue;
		if (e & TCP_EV_ERROR)
			dmta_pool_failed(c, ev[i].error);
		else if (e & TCP_EV_CONNECTED)
			dmta_pool_connected(c);
		else if (e & (TCP_EV_READABLE | TCP_EV_PEER_CLOSED))
			dmta_pool_readable(c);
		else if (e & TCP_EV_WRITABLE)
			dmta_pool_writable(c);
	}
}
