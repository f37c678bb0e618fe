/*
 * bench_tcp_wire.c - cost of a short TCP connection over the in-memory
 *	wire: open, send 4 KiB, close, both ends.
 *
 * SYNOPSIS
 *	bench_tcp_wire [-n CONNECTIONS] [-p PARALLEL] [-b BYTES]
 *
 * DESCRIPTION
 *	Two stacks (client and server) in one process over tcp_wire with no
 *	impairments. The client keeps PARALLEL connections open at a time;
 *	each sends BYTES, shuts down, and is closed when the server has read
 *	everything and closed too. Prints connections, simulated time and
 *	wall time. Meant to run under callgrind: the difference in
 *	instructions between two runs with different -n, divided by the
 *	difference in connections, is the cost of one connection for both
 *	ends (the wire's own frame copies included), free of start-up costs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "tcp/tcp_stack.h"
#include "tcp/tcp_wire.h"

static struct wire w;
static uint8_t data[65536];
static size_t bytes = 4096;

struct cl {
	size_t sent, got;
};

static unsigned opened, done, target, parallel;

static void open_one(void)
{
	struct tcp_conn *c;
	struct cl *x = calloc(1, sizeof(*x));

	int rc = tcp_connect(w.stk[0], wire_ip[1], 25, x, w.now, &c);

	if (rc != 0) {
		fprintf(stderr, "bench_tcp_wire: connect: %s\n", strerror(-rc));
		exit(1);
	}
	opened++;
}

static void client_events(void)
{
	struct tcp_event ev[64];
	uint16_t n;

	while ((n = tcp_stack_poll(w.stk[0], ev, 64)) > 0) {
		for (uint16_t i = 0; i < n; i++) {
			struct cl *x = ev[i].user;

			if (ev[i].events & TCP_EV_ERROR) {
				fprintf(stderr, "bench_tcp_wire: error %d\n", ev[i].error);
				exit(1);
			}
			if (ev[i].events & (TCP_EV_CONNECTED | TCP_EV_WRITABLE)) {
				ssize_t r = tcp_send(ev[i].conn, data, bytes - x->sent, w.now);

				if (r > 0)
					x->sent += (size_t)r;
				if (x->sent == bytes)
					tcp_shutdown(ev[i].conn, w.now);
			}
			if (ev[i].events & TCP_EV_CLOSED) {
				tcp_close(ev[i].conn, w.now);
				free(x);
				done++;
			}
		}
	}
}

static void server_events(void)
{
	struct tcp_event ev[64];
	uint8_t buf[8192];
	uint16_t n;

	while ((n = tcp_stack_poll(w.stk[1], ev, 64)) > 0) {
		for (uint16_t i = 0; i < n; i++) {
			ssize_t r;

			if (ev[i].events & TCP_EV_ERROR) {
				tcp_close(ev[i].conn, w.now);
				continue;
			}
			if (!(ev[i].events & TCP_EV_READABLE))
				continue;
			while ((r = tcp_recv(ev[i].conn, buf, sizeof(buf), w.now)) > 0)
				;
			if (r == 0)
				tcp_close(ev[i].conn, w.now);
		}
	}
}

int main(int argc, char **argv)
{
	char *eal[] = {
	    "bench",	      "--no-huge",	   "-m", "256", "--no-pci", "--no-shconf",
	    "--no-telemetry", "--log-level=error", NULL};
	struct tcp_stack_conf conf;
	struct rte_mempool *pool;
	struct timespec t0, t1;
	uint64_t sim0;
	int opt;

	target = 1000;
	parallel = 100;
	while ((opt = getopt(argc, argv, "n:p:b:")) != -1) {
		switch (opt) {
		case 'n':
			target = (unsigned)atoi(optarg);
			break;
		case 'p':
			parallel = (unsigned)atoi(optarg);
			break;
		case 'b':
			bytes = (size_t)atoi(optarg);
			break;
		default:
			fprintf(
			    stderr,
			    "usage: bench_tcp_wire [-n CONNECTIONS] [-p PARALLEL] [-b BYTES]\n");
			return 2;
		}
	}
	if (bytes > sizeof(data) || parallel == 0) {
		fprintf(stderr, "bench_tcp_wire: -b at most %zu, -p at least 1\n", sizeof(data));
		return 2;
	}
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "bench_tcp_wire: rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	pool = rte_pktmbuf_pool_create("bench", 32767, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	if (pool == NULL) {
		fprintf(stderr, "bench_tcp_wire: no mempool\n");
		return 1;
	}
	conf = wire_stack_conf();
	conf.max_conns = 4 * parallel + 64;
	conf.port_lo = 10000;
	conf.port_hi = 60000;
	conf.time_wait_ms = 1000;
	wire_init_conf(&w, pool, 1, &conf);
	w.imp[0].delay_us = w.imp[1].delay_us = 100;
	if (tcp_listen(w.stk[1], 25, NULL) != 0)
		return 1;
	memset(data, 'x', sizeof(data));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sim0 = w.now;
	while (done < target) {
		/* The first connection alone, until ARP has resolved the server. */
		while (opened < target && opened - done < parallel &&
		       (opened == 0 || tcp_netif_arp_lookup(w.nif[0], wire_ip[1], NULL) == 1))
			open_one();
		wire_step(&w);
		client_events();
		server_events();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("connections %u bytes %zu parallel %u simulated_ms %llu wall_ms %.1f\n", done, bytes,
	       parallel, (unsigned long long)(w.now - sim0) / 1000,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	wire_free(&w);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
