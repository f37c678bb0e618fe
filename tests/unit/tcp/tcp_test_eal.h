/*
 * tcp_test_eal.h - DPDK EAL and mbuf helpers shared by the tcp/ tests.
 *
 * SYNOPSIS
 *	struct rte_mempool *pool = tcp_test_eal_init(nmbufs);
 *	m = tcp_test_mbuf(pool, bytes, len);
 *
 * DESCRIPTION
 *	The tests run DPDK's EAL without hugepages, PCI or shared files, so
 *	they need no setup, run in parallel and work under ASan:
 *	--no-huge -m 128 --no-pci --no-shconf --no-telemetry. (--in-memory
 *	would be the natural choice but EAL refuses it with --no-huge, which
 *	implies legacy memory.)
 */
#ifndef TCP_TEST_EAL_H
#define TCP_TEST_EAL_H

#include <stddef.h>
#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

/* Initialise EAL once per process and create a pool of @nmbufs 2 KiB mbufs; aborts on failure. */
struct rte_mempool *tcp_test_eal_init(unsigned nmbufs);

/* A single-segment mbuf holding a copy of @len bytes; aborts when the pool is empty. */
struct rte_mbuf *tcp_test_mbuf(struct rte_mempool *pool, const void *bytes, size_t len);

/* RFC 1071 checksum, written independently of DPDK's so tests do not check DPDK against itself. */
uint16_t tcp_test_csum(const void *buf, size_t len);

#endif
