/*
 * tcp_test_eal.c - DPDK EAL and mbuf helpers shared by the tcp/ tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "tcp_test_eal.h"

struct rte_mempool *tcp_test_eal_init(unsigned nmbufs)
{
	char *argv[] = {
	    "dmta-test",      "--no-huge",	   "-m", "128", "--no-pci", "--no-shconf",
	    "--no-telemetry", "--log-level=error", NULL};
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	struct rte_mempool *pool;

	if (rte_eal_init(argc, argv) < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		abort();
	}
	pool = rte_pktmbuf_pool_create("tcp_test", nmbufs, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	if (pool == NULL) {
		fprintf(stderr, "rte_pktmbuf_pool_create: %s\n", rte_strerror(rte_errno));
		abort();
	}
	return pool;
}

struct rte_mbuf *tcp_test_mbuf(struct rte_mempool *pool, const void *bytes, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	char *p;

	if (m == NULL || (p = rte_pktmbuf_append(m, (uint16_t)len)) == NULL) {
		fprintf(stderr, "tcp_test_mbuf: no mbuf for %zu bytes\n", len);
		abort();
	}
	memcpy(p, bytes, len);
	return m;
}

uint16_t tcp_test_csum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
