/*
 * fuzz_netif.c - libFuzzer target for tcp_netif's input path.
 *
 * SYNOPSIS
 *	fuzz_tcp_netif [libFuzzer options] [CORPUS_DIR...]   (clang, -Dfuzz=true)
 *	replay_tcp_netif CORPUS_DIR...                       (normal build)
 *
 * DESCRIPTION
 *	One input is a little program run against a fresh netif (198.18.0.2/24,
 *	gateway 198.18.0.1, fake 1 MHz TSC), so every input replays alone and
 *	the same way. It is a sequence of records, each starting with an op
 *	byte:
 *
 *	  op % 4 == 0  frame: u16 length (little-endian), then the frame bytes
 *	               (cut at the end of the input); one mbuf
 *	  op % 4 == 1  frame as above, split over two chained mbufs after
 *	               byte (op >> 2)
 *	  op % 4 == 2  ip_output: a destination byte (low bit: on-link 198.18.0.x
 *	               or off-link 203.0.113.x, the rest the host) and a
 *	               payload length byte
 *	  op % 4 == 3  tick: u16 milliseconds to advance the clock, then tick
 *
 *	After each record the TX FIFO is drained and every frame checked: it
 *	must be a sane frame from our MAC, and an IPv4 one must have a good
 *	header checksum and a total length matching the frame. At the end the
 *	netif is freed and the pool must be full again (no mbuf leak).
 *
 *	The bytes beyond each received frame are poisoned for ASan while the
 *	netif handles it (mbuf data lives in DPDK memory that ASan does not
 *	otherwise watch), so reading past data_len faults at once.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "tcp/tcp_netif.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HZ 1000000ULL

static struct rte_mempool *pool;
static unsigned pool_full;
static int verbose; /* $DMTA_FUZZ_VERBOSE: print the counters after each input */
static const uint8_t our_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

/* a.b.c.d in network byte order (RTE_IPV4 shifts a signed int: UB for a >= 128). */
static uint32_t be_ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
	return rte_cpu_to_be_32(a << 24 | b << 16 | c << 8 | d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *eal[] = {
	    "fuzz",	      "--no-huge",	   "-m", "128", "--no-pci", "--no-shconf",
	    "--no-telemetry", "--log-level=error", NULL};

	(void)argc;
	(void)argv;
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "fuzz: rte_eal_init failed\n");
		abort();
	}
	pool =
	    rte_pktmbuf_pool_create("fuzz", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL) {
		fprintf(stderr, "fuzz: no mempool\n");
		abort();
	}
	pool_full = rte_mempool_avail_count(pool);
	verbose = getenv("DMTA_FUZZ_VERBOSE") != NULL;
	return 0;
}

static void unpoison_tail(struct rte_mbuf *m)
{
	UNPOISON((char *)m->buf_addr, m->buf_len);
}

static void poison_tail(struct rte_mbuf *m)
{
	uint32_t end = (uint32_t)m->data_off + m->data_len;

	POISON((char *)m->buf_addr + end, m->buf_len - end);
}

static struct rte_mbuf *seg(const uint8_t *p, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	if (m == NULL)
		abort(); /* the pool is far larger than one input can hold */
	unpoison_tail(m);
	if (len > 0)
		memcpy(rte_pktmbuf_append(m, (uint16_t)len), p, len);
	return m;
}

static void check_tx(struct tcp_netif *nif)
{
	struct rte_mbuf *out[64];
	uint16_t n;

	while ((n = tcp_netif_tx_drain(nif, out, 64)) > 0) {
		for (uint16_t i = 0; i < n; i++) {
			struct rte_mbuf *m = out[i];
			const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);

			if (m->nb_segs != 1 || m->data_len < RTE_ETHER_HDR_LEN ||
			    memcmp(p + 6, our_mac, 6) != 0)
				abort();
			if (p[12] == 0x08 && p[13] == 0x00) {
				const struct rte_ipv4_hdr *ip = (const void *)(p + 14);

				if (m->data_len < 34 || rte_raw_cksum(ip, 20) != 0xffff ||
				    rte_be_to_cpu_16(ip->total_length) != m->data_len - 14 ||
				    ip->src_addr != be_ip(198, 18, 0, 2))
					abort();
			} else if (!(p[12] == 0x08 && p[13] == 0x06) || m->data_len != 42) {
				abort();
			}
		}
		rte_pktmbuf_free_bulk(out, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tcp_netif_conf c = {0};
	struct tcp_netif *nif;
	uint64_t now = 1000 * HZ;
	size_t o = 0;

	memcpy(c.mac.addr_bytes, our_mac, 6);
	c.ip = be_ip(198, 18, 0, 2);
	c.prefix_len = 24;
	c.gateway = be_ip(198, 18, 0, 1);
	c.mtu = 1500;
	c.tsc_hz = HZ;
	c.arp_timeout_ms = 5000;
	c.arp_retry_ms = 100;
	c.arp_max_retries = 2;
	c.arp_pending_max = 3;
	nif = tcp_netif_create(&c, pool, SOCKET_ID_ANY);
	if (nif == NULL)
		abort();

	while (o < size) {
		uint8_t op = data[o++];

		switch (op % 4) {
		case 0:
		case 1: {
			size_t len, cut;
			struct rte_mbuf *m, *tail;

			if (size - o < 2)
				goto out;
			len = (size_t)(data[o] | data[o + 1] << 8) % 2000;
			o += 2;
			if (len > size - o)
				len = size - o;
			cut = (size_t)(op >> 2) * 8;
			if (op % 4 == 1 && cut < len) {
				m = seg(data + o, cut);
				tail = seg(data + o + cut, len - cut);
				if (rte_pktmbuf_chain(m, tail) != 0)
					abort();
				poison_tail(tail);
			} else {
				m = seg(data + o, len);
				tail = m;
				poison_tail(m);
			}
			o += len;
			if (tcp_netif_input(nif, &m, 1, now) > 1)
				abort();
			unpoison_tail(tail);
			break;
		}
		case 2: {
			uint8_t payload[255] = {0};
			uint32_t dst;
			struct rte_mbuf *m;

			if (size - o < 2)
				goto out;
			dst = data[o] & 1 ? be_ip(203, 0, 113, data[o] >> 1u)
					  : be_ip(198, 18, 0, data[o] >> 1u);
			m = seg(payload, data[o + 1]);
			o += 2;
			if (tcp_netif_ip_prepend(nif, m, dst, 17) == 0)
				tcp_netif_ip_output(nif, m, dst, now);
			else
				rte_pktmbuf_free(m);
			break;
		}
		case 3:
			if (size - o < 2)
				goto out;
			now += (uint64_t)(data[o] | data[o + 1] << 8) * (HZ / 1000);
			o += 2;
			tcp_netif_tick(nif, now);
			break;
		}
		check_tx(nif);
	}
out:
	check_tx(nif);
	if (verbose) {
		size_t n;
		const struct tcp_stat_name *t = tcp_netif_stat_names(&n);

		for (size_t i = 0; i < n; i++)
			if (TCP_STAT_GET(tcp_netif_stats(nif), &t[i]) != 0)
				fprintf(
				    stderr, " %s=%llu", t[i].name,
				    (unsigned long long)TCP_STAT_GET(tcp_netif_stats(nif), &t[i]));
		fprintf(stderr, "\n");
	}
	tcp_netif_free(nif);
	if (rte_mempool_avail_count(pool) != pool_full) {
		fprintf(stderr, "fuzz: mbuf leak: %u in pool, want %u\n",
			rte_mempool_avail_count(pool), pool_full);
		abort();
	}
	return 0;
}
