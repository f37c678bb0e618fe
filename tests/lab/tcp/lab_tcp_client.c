/*
 * lab_tcp_client.c - the userspace TCP against the Linux kernel's TCP,
 *	over a real DPDK port (net_af_packet on a veth).
 *
 * SYNOPSIS
 *	lab_tcp_client IFACE LOCAL_IP GATEWAY_IP SERVER_IP PORT BYTES [CLOSED_PORT [CONNS]]
 *
 * DESCRIPTION
 *	Attaches DPDK to IFACE, runs one netif + stack on one queue, connects
 *	to SERVER_IP:PORT (an echo server), sends BYTES of a pattern while
 *	reading the echo, shuts down, reads to EOF, and checks that the echo
 *	is byte for byte what was sent and that the connection closed
 *	cleanly. With CLOSED_PORT it first checks that a connection there is
 *	refused. With CONNS > 1, opens CONNS connections at once instead
 *	(at most 256 new ones per loop turn), each sending BYTES and
 *	checking its own echo. Prints one summary line; exits 0 only if
 *	everything held, the connection table is empty at the end and the
 *	mempool is full again. Every wait is bounded (120 s in all).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "tcp/tcp_netif.h"
#include "tcp/tcp_stack.h"

static struct tcp_netif *nif;
static struct tcp_stack *stk;
static uint16_t port_id;
static uint64_t deadline;

static void die(const char *what)
{
	fprintf(stderr, "lab_tcp_client: %s\n", what);
	exit(1);
}

static void print_counters(void)
{
	const struct tcp_stat_name *t;
	size_t n;

	t = tcp_netif_stat_names(&n);
	fprintf(stderr, "netif:");
	for (size_t i = 0; i < n; i++)
		if (TCP_STAT_GET(tcp_netif_stats(nif), &t[i]) != 0)
			fprintf(stderr, " %s=%llu", t[i].name,
				(unsigned long long)TCP_STAT_GET(tcp_netif_stats(nif), &t[i]));
	t = tcp_stack_stat_names(&n);
	fprintf(stderr, "\ntcp:");
	for (size_t i = 0; i < n; i++)
		if (TCP_STAT_GET(tcp_stack_stats(stk), &t[i]) != 0)
			fprintf(stderr, " %s=%llu", t[i].name,
				(unsigned long long)TCP_STAT_GET(tcp_stack_stats(stk), &t[i]));
	fprintf(stderr, "\n");
}

/* One turn of a worker loop: RX, timers, TX. */
static void turn(void)
{
	struct rte_mbuf *pkts[32];
	uint16_t n, sent;
	uint64_t now = rte_rdtsc();

	if (now > deadline) {
		print_counters();
		tcp_stack_dump(stk, stderr);
		die("timed out");
	}
	n = rte_eth_rx_burst(port_id, 0, pkts, 32);
	if (n > 0)
		tcp_netif_input(nif, pkts, n, now);
	tcp_netif_tick(nif, now);
	tcp_stack_tick(stk, now);
	while ((n = tcp_netif_tx_drain(nif, pkts, 32)) > 0) {
		sent = rte_eth_tx_burst(port_id, 0, pkts, n);
		if (sent < n)
			rte_pktmbuf_free_bulk(pkts + sent, n - sent);
	}
}

static uint32_t parse_ip(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		die("bad address");
	return a.s_addr;
}

static void port_setup(struct rte_mempool *pool)
{
	struct rte_eth_conf conf;

	memset(&conf, 0, sizeof(conf));
	if (rte_eth_dev_count_avail() < 1)
		die("no DPDK port");
	port_id = 0;
	if (rte_eth_dev_configure(port_id, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(port_id, 0, 512, rte_eth_dev_socket_id(port_id), NULL, pool) <
		0 ||
	    rte_eth_tx_queue_setup(port_id, 0, 512, rte_eth_dev_socket_id(port_id), NULL) < 0 ||
	    rte_eth_dev_start(port_id) < 0)
		die("port setup failed");
}

struct lc {
	struct tcp_conn *c;
	size_t queued, got;
	bool connected, eof, closed, shut;
	uint8_t *rx;
};

static int run_many(uint32_t server, uint16_t port, unsigned conns, const uint8_t *tx, size_t bytes)
{
	struct lc *l = calloc(conns, sizeof(*l));
	unsigned opened = 0, closed = 0;
	uint64_t t0 = rte_rdtsc(), retrans = 0;

	for (unsigned i = 0; i < conns; i++)
		l[i].rx = malloc(bytes + 1);
	while (closed < conns) {
		struct tcp_event ev[64];
		uint16_t n;

		for (unsigned k = 0; k < 256 && opened < conns; k++, opened++)
			if (tcp_connect(stk, server, port, &l[opened], rte_rdtsc(), &l[opened].c) !=
			    0)
				die("connect failed");
		turn();
		while ((n = tcp_stack_poll(stk, ev, 64)) > 0) {
			for (uint16_t i = 0; i < n; i++) {
				struct lc *x = ev[i].user;

				if (ev[i].events & TCP_EV_ERROR) {
					fprintf(stderr, "lab_tcp_client: connection %u: %s\n",
						(unsigned)(x - l), strerror(ev[i].error));
					return 1;
				}
				if (ev[i].events & TCP_EV_CONNECTED)
					x->connected = true;
				for (;;) {
					ssize_t r = tcp_recv(x->c, x->rx + x->got,
							     bytes + 1 - x->got, rte_rdtsc());

					if (r == 0)
						x->eof = true;
					if (r <= 0)
						break;
					x->got += (size_t)r;
				}
				if (x->connected && x->queued < bytes) {
					ssize_t r = tcp_send(x->c, tx + x->queued,
							     bytes - x->queued, rte_rdtsc());

					if (r > 0)
						x->queued += (size_t)r;
				}
				if (x->connected && x->queued == bytes && !x->shut) {
					tcp_shutdown(x->c, rte_rdtsc());
					x->shut = true;
				}
				if (ev[i].events & TCP_EV_CLOSED) {
					if (x->closed)
						die("a connection was reported closed twice");
					if (!x->eof || x->got != bytes ||
					    memcmp(x->rx, tx, bytes) != 0)
						die("an echo differs from what was sent");
					retrans += tcp_conn_retransmits(x->c);
					tcp_close(x->c, rte_rdtsc());
					x->closed = true;
					closed++;
				}
			}
		}
		/* Connections whose send buffer filled wait for WRITABLE; retry the rest here. */
		for (unsigned i = 0; i < opened; i++) {
			struct lc *x = &l[i];

			if (x->connected && !x->closed && x->queued < bytes) {
				ssize_t r =
				    tcp_send(x->c, tx + x->queued, bytes - x->queued, rte_rdtsc());

				if (r > 0)
					x->queued += (size_t)r;
				if (x->queued == bytes && !x->shut) {
					tcp_shutdown(x->c, rte_rdtsc());
					x->shut = true;
				}
			}
		}
	}
	print_counters();
	printf("%u connections of %zu bytes echoed in %.2f s, retransmits %llu\n", conns, bytes,
	       (double)(rte_rdtsc() - t0) / (double)rte_get_tsc_hz(), (unsigned long long)retrans);
	for (unsigned i = 0; i < conns; i++)
		free(l[i].rx);
	free(l);
	return 0;
}

int main(int argc, char **argv)
{
	struct tcp_netif_conf nc;
	struct tcp_stack_conf sc;
	struct rte_mempool *pool;
	struct tcp_conn *c;
	char vdev[128];
	char *eal[] = {"lab",
		       "--no-huge",
		       "-m",
		       "1024",
		       "--no-pci",
		       "--no-shconf",
		       "--no-telemetry",
		       "--log-level=error",
		       vdev,
		       NULL};
	uint8_t *tx, *rx;
	size_t bytes, queued = 0, got = 0;
	uint16_t port;
	bool connected = false, eof = false, closed = false, shut = false;
	uint64_t t0;
	unsigned conns;
	unsigned pool_start;

	if (argc < 7 || argc > 9) {
		fprintf(stderr, "usage: lab_tcp_client IFACE LOCAL_IP GATEWAY_IP SERVER_IP PORT "
				"BYTES [CLOSED_PORT [CONNS]]\n");
		return 2;
	}
	snprintf(vdev, sizeof(vdev), "--vdev=net_af_packet0,iface=%s", argv[1]);
	bytes = strtoul(argv[6], NULL, 10);
	port = (uint16_t)atoi(argv[5]);
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0)
		die(rte_strerror(rte_errno));
	conns = argc == 9 ? (unsigned)atoi(argv[8]) : 1;
	pool = rte_pktmbuf_pool_create("lab", conns > 1000 ? 65535 : 32767, 256, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (pool == NULL)
		die("no mempool");
	port_setup(pool);
	pool_start = rte_mempool_avail_count(pool);

	memset(&nc, 0, sizeof(nc));
	rte_eth_macaddr_get(port_id, &nc.mac);
	nc.ip = parse_ip(argv[2]);
	nc.prefix_len = 24;
	nc.gateway = parse_ip(argv[3]);
	nc.mtu = 1500;
	nc.tsc_hz = rte_get_tsc_hz();
	nc.arp_timeout_ms = 60000;
	nc.arp_retry_ms = 500;
	nc.arp_max_retries = 5;
	nc.arp_pending_max = 64;
	nif = tcp_netif_create(&nc, pool, rte_socket_id());
	memset(&sc, 0, sizeof(sc));
	sc.port_lo = 20000;
	sc.port_hi = 60999;
	sc.max_conns = conns + 64;
	sc.sndbuf = 256 * 1024;
	sc.rcvbuf = 256 * 1024;
	sc.rto_init_ms = 1000;
	sc.rto_min_ms = 200;
	sc.rto_max_ms = 60000;
	sc.syn_retries = 4;
	sc.max_retries = 10;
	sc.delack_ms = 40;
	sc.time_wait_ms = 1000;
	/* LAB_TCP_NO_SACK=1: compare loss recovery without SACK. */
	sc.no_sack = getenv("LAB_TCP_NO_SACK") != NULL;
	if (nif == NULL ||
	    (stk = tcp_stack_create(&sc, nif, pool, rte_socket_id(), rte_rdtsc())) == NULL)
		die("cannot create the stack");
	deadline = rte_rdtsc() + 120 * rte_get_tsc_hz();

	if (argc >= 8) {
		struct tcp_event ev;
		int err = 0;

		if (tcp_connect(stk, parse_ip(argv[4]), (uint16_t)atoi(argv[7]), NULL, rte_rdtsc(),
				&c) != 0)
			die("connect failed");
		while (err == 0) {
			turn();
			if (tcp_stack_poll(stk, &ev, 1) == 1) {
				if (!(ev.events & TCP_EV_ERROR))
					die("connection to the closed port did not fail");
				err = ev.error;
			}
		}
		tcp_close(c, rte_rdtsc());
		if (err != ECONNREFUSED)
			die("closed port: not ECONNREFUSED");
		printf("closed port: refused\n");
	}

	tx = malloc(bytes + 1);
	rx = malloc(bytes + 1);
	for (size_t i = 0; i < bytes; i++)
		tx[i] = (uint8_t)((i * 2654435761u) >> 13);
	if (conns > 1) {
		if (run_many(parse_ip(argv[4]), port, conns, tx, bytes) != 0)
			return 1;
		goto finish;
	}
	if (tcp_connect(stk, parse_ip(argv[4]), port, NULL, rte_rdtsc(), &c) != 0)
		die("connect failed");
	t0 = rte_rdtsc();
	while (!closed) {
		struct tcp_event ev[8];
		uint16_t n;

		turn();
		n = tcp_stack_poll(stk, ev, 8);
		for (uint16_t i = 0; i < n; i++) {
			if (ev[i].events & TCP_EV_ERROR) {
				fprintf(stderr, "lab_tcp_client: connection error %s\n",
					strerror(ev[i].error));
				return 1;
			}
			if (ev[i].events & TCP_EV_CONNECTED)
				connected = true;
			if (ev[i].events & TCP_EV_CLOSED)
				closed = true;
		}
		if (connected && queued < bytes) {
			ssize_t r = tcp_send(c, tx + queued, bytes - queued, rte_rdtsc());

			if (r > 0)
				queued += (size_t)r;
		}
		if (connected && queued == bytes && !shut) {
			tcp_shutdown(c, rte_rdtsc());
			shut = true;
		}
		for (;;) {
			ssize_t r = tcp_recv(c, rx + got, bytes + 1 - got, rte_rdtsc());

			if (r == 0)
				eof = true;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
	}
	{
		double secs = (double)(rte_rdtsc() - t0) / (double)rte_get_tsc_hz();

		const struct tcp_stack_stats *st = tcp_stack_stats(stk);

		printf("sent %zu echoed %zu eof %d in %.2f s, retransmits %llu (rto %llu, fast "
		       "%llu), sack blocks in %llu out %llu, rx_ooo_drop %llu\n",
		       bytes, got, eof, secs, (unsigned long long)tcp_conn_retransmits(c),
		       (unsigned long long)st->rto_fired, (unsigned long long)st->fast_retransmits,
		       (unsigned long long)st->sack_blocks_rx,
		       (unsigned long long)st->sack_blocks_tx, (unsigned long long)st->rx_ooo_drop);
	}
	if (!eof || got != bytes || memcmp(tx, rx, bytes) != 0)
		die("echo differs from what was sent");
	tcp_close(c, rte_rdtsc());
finish:
	/* Let TIME_WAIT end, then everything must be back. */
	while (tcp_stack_stats(stk)->conns_alloc > 0 || tcp_stack_stats(stk)->conns > 0)
		turn();
	tcp_stack_free(stk);
	tcp_netif_free(nif);
	stk = NULL;
	nif = NULL;
	/* Mbufs still in the port's RX ring are the driver's; compare what we can own. */
	rte_eth_dev_stop(port_id);
	rte_eth_dev_close(port_id);
	if (rte_mempool_avail_count(pool) != pool_start + 0 &&
	    rte_mempool_avail_count(pool) < pool_start) {
		fprintf(stderr, "lab_tcp_client: mbuf leak: %u in pool, want %u\n",
			rte_mempool_avail_count(pool), pool_start);
		return 1;
	}
	printf("ok\n");
	free(tx);
	free(rx);
	return 0;
}
