/*
 * test_netif.c - tcp_netif: Ethernet, ARP, IPv4 and ICMP echo over
 *	hand-built frames in real mbufs.
 *
 * DESCRIPTION
 *	Frames are written byte by byte here (big-endian fields spelled out,
 *	checksums from the test's own RFC 1071 routine), so the netif is never
 *	checked against the DPDK helpers it uses itself. Time is a fake TSC
 *	at 1 MHz: 1000 ticks per millisecond. Every test ends by freeing the
 *	netif and checking that the pool has all its mbufs back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "tcp/tcp_netif.h"
#include "tcp_test_eal.h"

#define HZ    1000000ULL
#define MS    (HZ / 1000)
#define T0    (1000 * HZ) /* an arbitrary start time */
#define NMBUF 2047

static struct rte_mempool *pool;
static unsigned pool_start;

static const uint8_t our_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
static const uint8_t gw_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x07};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t our_ip[4] = {198, 18, 0, 2};
static const uint8_t gw_ip[4] = {198, 18, 0, 1};
static const uint8_t peer_ip[4] = {198, 18, 0, 7};
static const uint8_t far_ip[4] = {203, 0, 113, 9};

static uint32_t ip4(const uint8_t b[4])
{
	uint32_t v;

	memcpy(&v, b, 4); /* already network order */
	return v;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static struct tcp_netif_conf test_conf(void)
{
	struct tcp_netif_conf c = {0};

	memcpy(c.mac.addr_bytes, our_mac, 6);
	c.ip = ip4(our_ip);
	c.prefix_len = 24;
	c.gateway = ip4(gw_ip);
	c.mtu = 1500;
	c.tsc_hz = HZ;
	c.arp_timeout_ms = 60000;
	c.arp_retry_ms = 1000;
	c.arp_max_retries = 3;
	c.arp_pending_max = 4;
	return c;
}

static int setup(void **state)
{
	struct tcp_netif_conf c = test_conf();
	struct tcp_netif *nif;

	pool_start = rte_mempool_avail_count(pool);
	nif = tcp_netif_create(&c, pool, SOCKET_ID_ANY);
	assert_non_null(nif);
	*state = nif;
	return 0;
}

static int teardown(void **state)
{
	tcp_netif_free(*state);
	if (rte_mempool_avail_count(pool) != pool_start) {
		fprintf(stderr, "mbuf leak: pool has %u, want %u\n", rte_mempool_avail_count(pool),
			pool_start);
		return -1;
	}
	return 0;
}

/* Counter by telemetry name, so the name table is exercised too. */
static uint64_t stat(const struct tcp_netif *nif, const char *name)
{
	size_t n;
	const struct tcp_stat_name *t = tcp_netif_stat_names(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return TCP_STAT_GET(tcp_netif_stats(nif), &t[i]);
	fail_msg("no counter named %s", name);
	return 0;
}

/* Ethernet header: returns 14. */
static size_t eth(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	put16(f + 12, type);
	return 14;
}

/* A whole ARP frame (42 bytes). */
static size_t arp_frame(uint8_t *f, const uint8_t edst[6], uint16_t op, const uint8_t sha[6],
			const uint8_t sip[4], const uint8_t tha[6], const uint8_t tip[4])
{
	uint8_t *a = f + eth(f, edst, sha, 0x0806);

	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, sha, 6);
	memcpy(a + 14, sip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tip, 4);
	return 42;
}

/* IPv4 header (IHL 5 + @optwords) at @p, checksummed; returns its length. */
static size_t ip_hdr(uint8_t *p, const uint8_t src[4], const uint8_t dst[4], uint8_t proto,
		     size_t payload, uint16_t id, uint16_t frag, unsigned optwords)
{
	size_t hl = 20 + 4 * optwords;

	memset(p, 0, hl);
	p[0] = (uint8_t)(0x40 | (5 + optwords));
	put16(p + 2, (uint16_t)(hl + payload));
	put16(p + 4, id);
	put16(p + 6, frag);
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	for (unsigned i = 0; i < optwords; i++)
		p[20 + 4 * i] = 1; /* NOP options */
	put16(p + 10, tcp_test_csum(p, hl));
	return hl;
}

/* ICMP echo (@type 8 request / 0 reply) with @dlen bytes of data at @p. */
static size_t icmp_echo(uint8_t *p, uint8_t type, uint16_t id, uint16_t seq, size_t dlen)
{
	p[0] = type;
	p[1] = 0;
	put16(p + 2, 0);
	put16(p + 4, id);
	put16(p + 6, seq);
	for (size_t i = 0; i < dlen; i++)
		p[8 + i] = (uint8_t)(i * 7 + 3);
	put16(p + 2, tcp_test_csum(p, 8 + dlen));
	return 8 + dlen;
}

/* A ping frame from @smac/@sip to us. */
static size_t ping_frame(uint8_t *f, const uint8_t smac[6], const uint8_t sip[4], size_t dlen)
{
	size_t o = eth(f, our_mac, smac, 0x0800);

	o += ip_hdr(f + o, sip, our_ip, 1, 8 + dlen, 0x1234, 0, 0);
	return o + icmp_echo(f + o, 8, 0xbeef, 42, dlen);
}

static uint16_t input1(struct tcp_netif *nif, const uint8_t *f, size_t len, uint64_t now)
{
	struct rte_mbuf *m = tcp_test_mbuf(pool, f, len);

	return tcp_netif_input(nif, &m, 1, now);
}

/* The only queued frame; its bytes must be @want. */
static void expect_tx(struct tcp_netif *nif, const uint8_t *want, size_t len)
{
	struct rte_mbuf *out[4];
	uint16_t n = tcp_netif_tx_drain(nif, out, 4);

	assert_int_equal(n, 1);
	assert_int_equal(rte_pktmbuf_pkt_len(out[0]), len);
	assert_int_equal(rte_pktmbuf_data_len(out[0]), len);
	assert_memory_equal(rte_pktmbuf_mtod(out[0], uint8_t *), want, len);
	rte_pktmbuf_free(out[0]);
}

static void expect_no_tx(struct tcp_netif *nif)
{
	assert_int_equal(tcp_netif_tx_pending(nif), 0);
}

/* Teach the netif @mac for @ip with an ARP request aimed at us. */
static void learn(struct tcp_netif *nif, const uint8_t mac[6], const uint8_t ip[4], uint64_t now)
{
	uint8_t f[64], zero[6] = {0};
	struct rte_mbuf *out[2];

	assert_int_equal(input1(nif, f, arp_frame(f, bcast, 1, mac, ip, zero, our_ip), now), 1);
	assert_int_equal(tcp_netif_tx_drain(nif, out, 2), 1);
	rte_pktmbuf_free(out[0]);
}

/* An IPv4/UDP-ish packet to @dst, as a layer above would hand it down. */
static struct rte_mbuf *ip_packet(struct tcp_netif *nif, const uint8_t dst[4], uint8_t tag)
{
	uint8_t payload[16];
	struct rte_mbuf *m;

	memset(payload, tag, sizeof(payload));
	m = tcp_test_mbuf(pool, payload, sizeof(payload));
	assert_int_equal(tcp_netif_ip_prepend(nif, m, ip4(dst), 17), 0);
	return m;
}

/* ------------------------------------------------------------------ */

static void test_create_rejects_bad_conf(void **state)
{
	struct tcp_netif_conf c;

	(void)state;
	c = test_conf();
	c.ip = 0;
	errno = 0;
	assert_null(tcp_netif_create(&c, pool, SOCKET_ID_ANY));
	assert_int_equal(errno, EINVAL);
	c = test_conf();
	c.gateway = ip4(far_ip); /* gateway off-link */
	assert_null(tcp_netif_create(&c, pool, SOCKET_ID_ANY));
	assert_int_equal(errno, EINVAL);
	c = test_conf();
	c.mac.addr_bytes[0] = 0x01; /* multicast */
	assert_null(tcp_netif_create(&c, pool, SOCKET_ID_ANY));
	c = test_conf();
	c.arp_pending_max = TCP_NETIF_ARP_PENDING_LIMIT + 1;
	assert_null(tcp_netif_create(&c, pool, SOCKET_ID_ANY));
	c = test_conf();
	c.mtu = 20;
	assert_null(tcp_netif_create(&c, pool, SOCKET_ID_ANY));
	/* A jumbo MTU with 2 KB mbufs: frames are single mbufs, it cannot be. */
	c = test_conf();
	c.mtu = 9000;
	errno = 0;
	if (tcp_netif_create(&c, pool, SOCKET_ID_ANY) != NULL || errno != EINVAL)
		fail_msg("MTU 9000 over %u-byte mbufs: got errno %d, want EINVAL",
			 rte_pktmbuf_data_room_size(pool), errno);
	assert_null(tcp_netif_create(NULL, pool, SOCKET_ID_ANY));
	c = test_conf();
	assert_null(tcp_netif_create(&c, NULL, SOCKET_ID_ANY));
}

static void test_stat_names(void **state)
{
	size_t n;
	const struct tcp_stat_name *t = tcp_netif_stat_names(&n);

	(void)state;
	assert_int_equal(n * sizeof(uint64_t), sizeof(struct tcp_netif_stats));
	for (size_t i = 0; i < n; i++) {
		assert_true(t[i].offset < sizeof(struct tcp_netif_stats));
		for (size_t j = i + 1; j < n; j++) {
			assert_true(strcmp(t[i].name, t[j].name) != 0);
			assert_true(t[i].offset != t[j].offset);
		}
	}
}

static void test_arp_request_answered(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[64], want[64], zero[6] = {0};
	struct rte_ether_addr mac;

	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, our_ip);
	/* Ethernet pads to 60 bytes: the netif must ignore the padding. */
	memset(f + 42, 0xaa, 18);
	assert_int_equal(input1(nif, f, 60, T0), 1);
	arp_frame(want, peer_mac, 2, our_mac, our_ip, peer_mac, peer_ip);
	expect_tx(nif, want, 42);
	assert_int_equal(stat(nif, "arp_requests_rx"), 1);
	assert_int_equal(stat(nif, "arp_replies_tx"), 1);
	assert_int_equal(stat(nif, "tx_frames"), 1);
	/* RFC 826: the requester was learned. */
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(peer_ip), &mac), 1);
	assert_memory_equal(mac.addr_bytes, peer_mac, 6);

	/* A request sent to our MAC (unicast, as Linux's probes are) is answered too. */
	arp_frame(f, our_mac, 1, peer_mac, peer_ip, zero, our_ip);
	assert_int_equal(input1(nif, f, 42, T0), 1);
	expect_tx(nif, want, 42);
}

static void test_arp_probe_answered(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[64], want[64], zero[6] = {0}, any[4] = {0};

	/* RFC 5227 probe: sender 0.0.0.0; answer, learn nothing. */
	arp_frame(f, bcast, 1, peer_mac, any, zero, our_ip);
	assert_int_equal(input1(nif, f, 42, T0), 1);
	arp_frame(want, peer_mac, 2, our_mac, our_ip, peer_mac, any);
	expect_tx(nif, want, 42);
	assert_int_equal(tcp_netif_arp_lookup(nif, 0, NULL), -ENOENT);
}

static void test_arp_other_ip_ignored(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[64], zero[6] = {0}, other[4] = {198, 18, 0, 3};

	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, other);
	assert_int_equal(input1(nif, f, 42, T0), 0);
	expect_no_tx(nif);
	assert_int_equal(stat(nif, "arp_not_for_us"), 1);
	/* Not for us and not known: not learned (RFC 826 adds only when targeted). */
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(peer_ip), NULL), -ENOENT);

	/* Once known, the same request updates the entry (RFC 826 merge). */
	learn(nif, peer_mac, peer_ip, T0);
	{
		uint8_t newmac[6] = {0x02, 0, 0, 0, 0, 0x77};
		struct rte_ether_addr mac;

		arp_frame(f, bcast, 1, newmac, peer_ip, zero, other);
		assert_int_equal(input1(nif, f, 42, T0), 0);
		assert_int_equal(tcp_netif_arp_lookup(nif, ip4(peer_ip), &mac), 1);
		assert_memory_equal(mac.addr_bytes, newmac, 6);
	}
	assert_int_equal(stat(nif, "arp_not_for_us"), 2);
	expect_no_tx(nif);
}

static void test_arp_malformed(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[64], zero[6] = {0}, off[4] = {10, 0, 0, 1}, mcast[6] = {0x01, 0, 0x5e, 0, 0, 1};

	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, our_ip);
	assert_int_equal(input1(nif, f, 41, T0), 0); /* truncated */
	f[15] = 6;				     /* hardware type 6 */
	assert_int_equal(input1(nif, f, 42, T0), 0);
	arp_frame(f, bcast, 3, peer_mac, peer_ip, zero, our_ip); /* RARP opcode */
	assert_int_equal(input1(nif, f, 42, T0), 0);
	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, our_ip);
	f[19] = 16; /* protocol length 16 */
	assert_int_equal(input1(nif, f, 42, T0), 0);
	assert_int_equal(stat(nif, "arp_malformed"), 4);

	arp_frame(f, bcast, 1, peer_mac, off, zero, our_ip); /* sender off-link */
	assert_int_equal(input1(nif, f, 42, T0), 0);
	arp_frame(f, bcast, 1, peer_mac, our_ip, zero, our_ip); /* sender claims our address */
	assert_int_equal(input1(nif, f, 42, T0), 0);
	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, our_ip);
	memcpy(f + 22, mcast, 6); /* multicast sender hardware address */
	assert_int_equal(input1(nif, f, 42, T0), 0);
	assert_int_equal(stat(nif, "arp_bad_src"), 3);
	expect_no_tx(nif);
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(off), NULL), -ENOENT);
}

/* Off-link output: resolve the gateway; 1 request + 3 retries, then give up. */
static void test_gateway_resolution_timeout(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t want[64], zero[6] = {0};
	uint64_t t = T0;

	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, far_ip, 1), ip4(far_ip), t), 0);
	arp_frame(want, bcast, 1, our_mac, our_ip, zero, gw_ip);
	expect_tx(nif, want, 42);
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(gw_ip), NULL), 0);

	for (int retry = 1; retry <= 3; retry++) {
		tcp_netif_tick(nif, t + 1000 * MS - 1);
		expect_no_tx(nif);
		t += 1000 * MS;
		tcp_netif_tick(nif, t);
		expect_tx(nif, want, 42);
	}
	assert_int_equal(stat(nif, "arp_requests_tx"), 4);
	assert_int_equal(stat(nif, "arp_unresolved_drop"), 0);
	t += 1000 * MS;
	tcp_netif_tick(nif, t);
	expect_no_tx(nif);
	assert_int_equal(stat(nif, "arp_timeouts"), 1);
	assert_int_equal(stat(nif, "arp_unresolved_drop"), 1);

	/* Held as failed for one retry interval: dropped at once, no ARP storm. */
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, far_ip, 2), ip4(far_ip), t),
			 -EHOSTUNREACH);
	expect_no_tx(nif);
	assert_int_equal(stat(nif, "arp_unresolved_drop"), 2);
	t += 1000 * MS;
	tcp_netif_tick(nif, t);
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(gw_ip), NULL), -ENOENT);
	/* Then a new packet starts a new resolution. */
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, far_ip, 3), ip4(far_ip), t), 0);
	expect_tx(nif, want, 42);
	assert_int_equal(stat(nif, "arp_requests_tx"), 5);
}

static void test_pending_sent_once_resolved(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[64];
	struct rte_mbuf *out[8];
	uint64_t t = T0;

	for (uint8_t i = 0; i < 4; i++)
		assert_int_equal(
		    tcp_netif_ip_output(nif, ip_packet(nif, far_ip, i), ip4(far_ip), t), 0);
	/* The fifth exceeds arp_pending_max. */
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, far_ip, 4), ip4(far_ip), t),
			 -ENOBUFS);
	assert_int_equal(stat(nif, "arp_unresolved_drop"), 1);
	assert_int_equal(tcp_netif_tx_drain(nif, out, 8), 1); /* one request only */
	rte_pktmbuf_free(out[0]);
	assert_int_equal(stat(nif, "arp_requests_tx"), 1);

	/* The gateway answers after one retry. */
	t += 1000 * MS;
	tcp_netif_tick(nif, t);
	assert_int_equal(tcp_netif_tx_drain(nif, out, 8), 1);
	rte_pktmbuf_free(out[0]);
	arp_frame(f, our_mac, 2, gw_mac, gw_ip, our_mac, our_ip);
	assert_int_equal(input1(nif, f, 42, t + 5), 1);
	assert_int_equal(stat(nif, "arp_resolved"), 1);
	assert_int_equal(stat(nif, "arp_replies_rx"), 1);
	assert_int_equal(tcp_netif_tx_drain(nif, out, 8), 4);
	for (uint8_t i = 0; i < 4; i++) {
		uint8_t *p = rte_pktmbuf_mtod(out[i], uint8_t *);

		assert_int_equal(rte_pktmbuf_pkt_len(out[i]), 14 + 20 + 16);
		assert_memory_equal(p, gw_mac, 6);
		assert_memory_equal(p + 6, our_mac, 6);
		assert_int_equal(p[12], 0x08);
		assert_int_equal(p[13], 0x00);
		assert_int_equal(tcp_test_csum(p + 14, 20), 0);
		assert_memory_equal(p + 14 + 16, far_ip, 4);
		assert_int_equal(p[14 + 20], i); /* in order */
		rte_pktmbuf_free(out[i]);
	}
	/* No more retries once resolved. */
	tcp_netif_tick(nif, t + 5000 * MS);
	expect_no_tx(nif);

	/* Now resolved: output goes straight out. */
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, far_ip, 9), ip4(far_ip), t), 0);
	assert_int_equal(tcp_netif_tx_drain(nif, out, 8), 1);
	assert_memory_equal(rte_pktmbuf_mtod(out[0], uint8_t *), gw_mac, 6);
	rte_pktmbuf_free(out[0]);
}

/* A used entry is probed by unicast at expiry, and dropped if the probes go unanswered. */
static void test_arp_expiry_probe(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t want[64], zero[6] = {0};
	struct rte_mbuf *out[4];
	uint64_t t = T0;

	learn(nif, peer_mac, peer_ip, t);
	learn(nif, gw_mac, gw_ip, t);
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, peer_ip, 1), ip4(peer_ip), t), 0);
	assert_int_equal(tcp_netif_tx_drain(nif, out, 4), 1);
	rte_pktmbuf_free(out[0]);

	t += 60000 * MS;
	tcp_netif_tick(nif, t);
	/* Unused gateway entry: gone. Used peer entry: probed, still usable. */
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(gw_ip), NULL), -ENOENT);
	arp_frame(want, peer_mac, 1, our_mac, our_ip, zero, peer_ip);
	expect_tx(nif, want, 42);
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(peer_ip), NULL), 1);
	for (int i = 0; i < 3; i++) {
		t += 1000 * MS;
		tcp_netif_tick(nif, t);
		expect_tx(nif, want, 42);
	}
	t += 1000 * MS;
	tcp_netif_tick(nif, t);
	expect_no_tx(nif);
	assert_int_equal(tcp_netif_arp_lookup(nif, ip4(peer_ip), NULL), -ENOENT);
	assert_int_equal(stat(nif, "arp_timeouts"), 1);
}

/* Every reply has DF and IPv4 ID 0 (an atomic datagram, RFC 6864): IDs
 * that count would tell anyone how much this host sends. */
static void check_echo_reply(struct tcp_netif *nif, const uint8_t dmac[6], const uint8_t dip[4],
			     size_t dlen)
{
	uint8_t want[1600];
	size_t o = eth(want, dmac, our_mac, 0x0800);

	o += ip_hdr(want + o, our_ip, dip, 1, 8 + dlen, 0, 0x4000, 0);
	o += icmp_echo(want + o, 0, 0xbeef, 42, dlen);
	expect_tx(nif, want, o);
}

static void test_ping_answered(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[1600];
	size_t len;

	learn(nif, peer_mac, peer_ip, T0);
	len = ping_frame(f, peer_mac, peer_ip, 56);
	assert_int_equal(input1(nif, f, len, T0), 1);
	check_echo_reply(nif, peer_mac, peer_ip, 56);

	/* Largest ping the MTU allows, and an empty one padded to 60 bytes. */
	len = ping_frame(f, peer_mac, peer_ip, 1500 - 28);
	assert_int_equal(input1(nif, f, len, T0), 1);
	check_echo_reply(nif, peer_mac, peer_ip, 1500 - 28);
	len = ping_frame(f, peer_mac, peer_ip, 0);
	memset(f + len, 0x55, 60 - len);
	assert_int_equal(input1(nif, f, 60, T0), 1);
	check_echo_reply(nif, peer_mac, peer_ip, 0);

	/* Odd data length: the checksum's trailing byte. */
	len = ping_frame(f, peer_mac, peer_ip, 33);
	assert_int_equal(input1(nif, f, len, T0), 1);
	check_echo_reply(nif, peer_mac, peer_ip, 33);

	assert_int_equal(stat(nif, "icmp_echo_requests"), 4);
	assert_int_equal(stat(nif, "icmp_echo_replies"), 4);
}

/*
 * Egress sources: an added address is answered for in ARP (the reply names
 * it), accepted as a destination (a ping to it is answered from it) and
 * usable as a source; an address not added stays someone else's.
 */
static void test_extra_addresses(void **state)
{
	struct tcp_netif *nif = *state;
	static const uint8_t src_a[4] = {198, 18, 0, 10}, other[4] = {198, 18, 0, 3};
	static const uint8_t mcast[4] = {224, 0, 0, 1}, bc[4] = {198, 18, 0, 255};
	uint8_t f[1600], want[1600], zero[6] = {0}, payload[16];
	struct rte_mbuf *m;
	size_t o;

	assert_int_equal(tcp_netif_add_ip(nif, ip4(src_a)), 0);
	assert_int_equal(tcp_netif_add_ip(nif, ip4(src_a)), 0); /* already ours */
	assert_int_equal(tcp_netif_add_ip(nif, ip4(our_ip)), 0);
	assert_int_equal(tcp_netif_add_ip(nif, 0), -EINVAL);
	assert_int_equal(tcp_netif_add_ip(nif, ip4(gw_ip)), -EINVAL);
	assert_int_equal(tcp_netif_add_ip(nif, ip4(mcast)), -EINVAL);
	assert_int_equal(tcp_netif_add_ip(nif, ip4(bc)), -EINVAL);
	assert_true(tcp_netif_has_ip(nif, ip4(src_a)));
	assert_true(tcp_netif_has_ip(nif, ip4(our_ip)));
	assert_false(tcp_netif_has_ip(nif, ip4(other)));

	/* ARP: a request for the source is answered in its name. */
	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, src_a);
	assert_int_equal(input1(nif, f, 42, T0), 1);
	arp_frame(want, peer_mac, 2, our_mac, src_a, peer_mac, peer_ip);
	expect_tx(nif, want, 42);
	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, other);
	assert_int_equal(input1(nif, f, 42, T0), 0);
	expect_no_tx(nif);
	assert_int_equal(stat(nif, "arp_not_for_us"), 1);

	/* A ping to the source: accepted, answered from the source. */
	o = eth(f, our_mac, peer_mac, 0x0800);
	o += ip_hdr(f + o, peer_ip, src_a, 1, 8 + 20, 0x1234, 0, 0);
	o += icmp_echo(f + o, 8, 0xbeef, 42, 20);
	assert_int_equal(input1(nif, f, o, T0), 1);
	o = eth(want, peer_mac, our_mac, 0x0800);
	o += ip_hdr(want + o, src_a, peer_ip, 1, 8 + 20, 0, 0x4000, 0);
	o += icmp_echo(want + o, 0, 0xbeef, 42, 20);
	expect_tx(nif, want, o);
	/* ...and one to an address not ours is not. */
	o = eth(f, our_mac, peer_mac, 0x0800);
	o += ip_hdr(f + o, peer_ip, other, 1, 8 + 20, 0x1234, 0, 0);
	o += icmp_echo(f + o, 8, 0xbeef, 42, 20);
	assert_int_equal(input1(nif, f, o, T0), 0);
	assert_int_equal(stat(nif, "ip_not_for_us"), 1);

	/* Output from the source; never from an address that is not ours. */
	memset(payload, 7, sizeof(payload));
	m = tcp_test_mbuf(pool, payload, sizeof(payload));
	assert_int_equal(tcp_netif_ip_prepend_from(nif, m, ip4(src_a), ip4(peer_ip), 17), 0);
	assert_memory_equal(rte_pktmbuf_mtod_offset(m, uint8_t *, 12), src_a, 4);
	assert_int_equal(rte_ipv4_cksum(rte_pktmbuf_mtod(m, struct rte_ipv4_hdr *)), 0);
	rte_pktmbuf_free(m);
	m = tcp_test_mbuf(pool, payload, sizeof(payload));
	assert_int_equal(tcp_netif_ip_prepend_from(nif, m, ip4(other), ip4(peer_ip), 17),
			 -EADDRNOTAVAIL);
	assert_int_equal(stat(nif, "tx_bad_ip"), 1);
	/* Nor to one of ours. */
	assert_int_equal(tcp_netif_ip_prepend_from(nif, m, 0, ip4(src_a), 17), 0);
	assert_int_equal(tcp_netif_ip_output(nif, m, ip4(src_a), T0), -EINVAL);

	/* The table is bounded. */
	for (unsigned i = 0; i < TCP_NETIF_ADDR_MAX - 1; i++) {
		uint8_t a[4] = {198, 18, 2, (uint8_t)(i + 1)};

		assert_int_equal(tcp_netif_add_ip(nif, ip4(a)), 0);
	}
	{
		uint8_t a[4] = {198, 18, 3, 1};

		assert_int_equal(tcp_netif_add_ip(nif, ip4(a)), -ENOSPC);
	}
}

static void test_ping_with_ip_options(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[256];
	size_t o;

	learn(nif, peer_mac, peer_ip, T0);
	o = eth(f, our_mac, peer_mac, 0x0800);
	o += ip_hdr(f + o, peer_ip, our_ip, 1, 8 + 20, 7, 0, 2);
	o += icmp_echo(f + o, 8, 0xbeef, 42, 20);
	assert_int_equal(input1(nif, f, o, T0), 1);
	check_echo_reply(nif, peer_mac, peer_ip, 20); /* options not echoed */
}

/* Off-link source: the reply goes to the gateway's MAC (resolved first). */
static void test_ping_off_link(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[256], zero[6] = {0}, want[64];
	size_t len = ping_frame(f, gw_mac, far_ip, 16);

	assert_int_equal(input1(nif, f, len, T0), 1);
	arp_frame(want, bcast, 1, our_mac, our_ip, zero, gw_ip);
	expect_tx(nif, want, 42);
	arp_frame(f, our_mac, 2, gw_mac, gw_ip, our_mac, our_ip);
	assert_int_equal(input1(nif, f, 42, T0 + 100), 1);
	check_echo_reply(nif, gw_mac, far_ip, 16);
}

/* A ping split over two segments is linearized and answered. */
static void test_ping_multiseg(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[256];
	size_t len;
	struct rte_mbuf *a, *b;

	learn(nif, peer_mac, peer_ip, T0);
	len = ping_frame(f, peer_mac, peer_ip, 64);
	a = tcp_test_mbuf(pool, f, 30);
	b = tcp_test_mbuf(pool, f + 30, len - 30);
	assert_int_equal(rte_pktmbuf_chain(a, b), 0);
	assert_int_equal(tcp_netif_input(nif, &a, 1, T0), 1);
	check_echo_reply(nif, peer_mac, peer_ip, 64);
}

/* Each malformed frame is dropped under its own counter, nothing sent. */
static void drop_case(struct tcp_netif *nif, const uint8_t *f, size_t len, const char *counter)
{
	uint64_t before = stat(nif, counter);

	assert_int_equal(input1(nif, f, len, T0), 0);
	expect_no_tx(nif);
	if (stat(nif, counter) != before + 1)
		fail_msg("%s: got %llu, want %llu", counter, (unsigned long long)stat(nif, counter),
			 (unsigned long long)before + 1);
}

static void test_malformed_dropped(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[256], g[256];
	uint8_t zero_ip[4] = {0}, bcast_ip[4] = {255, 255, 255, 255};
	uint8_t sub_bcast[4] = {198, 18, 0, 255}, mcast_mac[6] = {0x01, 0, 0x5e, 0, 0, 1};
	size_t len, o;

	learn(nif, peer_mac, peer_ip, T0);
	len = ping_frame(f, peer_mac, peer_ip, 32);

	/* Ethernet */
	drop_case(nif, f, 10, "rx_short");
	drop_case(nif, f, 0, "rx_short");
	memcpy(g, f, len);
	memcpy(g, mcast_mac, 6);
	drop_case(nif, g, len, "eth_not_for_us");
	memcpy(g, f, len);
	memcpy(g + 6, mcast_mac, 6);
	drop_case(nif, g, len, "eth_bad_src");
	memcpy(g, f, len);
	put16(g + 12, 0x86dd);
	drop_case(nif, g, len, "eth_unknown_type");
	put16(g + 12, 0x8100);
	drop_case(nif, g, len, "eth_unknown_type");

	/* IPv4 */
	drop_case(nif, f, 14 + 19, "ip_short");
	drop_case(nif, f, 14, "ip_short");
	memcpy(g, f, len);
	g[14] = 0x65;
	drop_case(nif, g, len, "ip_bad_version");
	memcpy(g, f, len);
	g[14] = 0x44; /* IHL 4 */
	drop_case(nif, g, len, "ip_bad_hlen");
	memcpy(g, f, len);
	g[14] = 0x4f; /* 60-byte header in a 34-byte frame */
	drop_case(nif, g, 14 + 20, "ip_bad_hlen");
	drop_case(nif, f, len - 1, "ip_bad_len"); /* truncated: total length > frame */
	memcpy(g, f, len);
	o = ip_hdr(g + 14, peer_ip, our_ip, 1, 0, 1, 0, 0);
	put16(g + 14 + 2, 19); /* total length < header */
	put16(g + 14 + 10, 0);
	put16(g + 14 + 10, tcp_test_csum(g + 14, o));
	drop_case(nif, g, len, "ip_bad_len");
	memcpy(g, f, len);
	g[14 + 10] ^= 0x01;
	drop_case(nif, g, len, "ip_bad_csum");
	memcpy(g, f, len);
	ip_hdr(g + 14, peer_ip, our_ip, 1, len - 34, 1, 0x2000, 0); /* more fragments */
	drop_case(nif, g, len, "ip_fragment");
	ip_hdr(g + 14, peer_ip, our_ip, 1, len - 34, 1, 0x0010, 0); /* a later fragment */
	drop_case(nif, g, len, "ip_fragment");
	ip_hdr(g + 14, peer_ip, peer_ip, 1, len - 34, 1, 0, 0);
	drop_case(nif, g, len, "ip_not_for_us");
	ip_hdr(g + 14, peer_ip, bcast_ip, 1, len - 34, 1, 0, 0);
	drop_case(nif, g, len, "ip_not_for_us");
	ip_hdr(g + 14, zero_ip, our_ip, 1, len - 34, 1, 0, 0);
	drop_case(nif, g, len, "ip_bad_src");
	ip_hdr(g + 14, sub_bcast, our_ip, 1, len - 34, 1, 0, 0);
	drop_case(nif, g, len, "ip_bad_src");
	ip_hdr(g + 14, our_ip, our_ip, 1, len - 34, 1, 0, 0);
	drop_case(nif, g, len, "ip_bad_src");
	ip_hdr(g + 14, peer_ip, our_ip, 6, len - 34, 1, 0, 0);
	drop_case(nif, g, len, "ip_unknown_proto");
	ip_hdr(g + 14, peer_ip, our_ip, 17, len - 34, 1, 0, 0);
	drop_case(nif, g, len, "ip_unknown_proto");

	/* ICMP */
	o = eth(g, our_mac, peer_mac, 0x0800);
	o += ip_hdr(g + o, peer_ip, our_ip, 1, 4, 1, 0, 0);
	memset(g + o, 0, 4);
	drop_case(nif, g, o + 4, "icmp_short");
	memcpy(g, f, len);
	g[len - 1] ^= 0x10; /* data corrupted */
	drop_case(nif, g, len, "icmp_bad_csum");
	o = eth(g, our_mac, peer_mac, 0x0800);
	o += ip_hdr(g + o, peer_ip, our_ip, 1, 8 + 8, 1, 0, 0);
	o += icmp_echo(g + o, 0, 1, 1, 8); /* an echo reply: not ours to handle */
	drop_case(nif, g, o, "icmp_unhandled");
	o = eth(g, our_mac, peer_mac, 0x0800);
	o += ip_hdr(g + o, peer_ip, our_ip, 1, 8 + 8, 1, 0, 0);
	o += icmp_echo(g + o, 8, 1, 1, 8);
	g[34 + 1] = 1; /* echo request with code 1, checksum right */
	put16(g + 34 + 2, 0);
	put16(g + 34 + 2, tcp_test_csum(g + 34, 16));
	drop_case(nif, g, o, "icmp_unhandled");

	/* Still alive: the original ping is answered. */
	assert_int_equal(input1(nif, f, len, T0), 1);
	check_echo_reply(nif, peer_mac, peer_ip, 32);
}

static void test_output_errors(void **state)
{
	struct tcp_netif *nif = *state;
	struct tcp_netif_conf c = test_conf();
	struct tcp_netif *nogw;
	uint8_t big[1500];
	struct rte_mbuf *m;

	/* Header/destination mismatch. */
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, far_ip, 1), ip4(peer_ip), T0),
			 -EINVAL);
	/* Our own address. */
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, our_ip, 1), ip4(our_ip), T0),
			 -EINVAL);
	assert_int_equal(stat(nif, "tx_bad_ip"), 2);
	/* Larger than the MTU. */
	memset(big, 0, sizeof(big));
	m = tcp_test_mbuf(pool, big, 1481);
	assert_int_equal(tcp_netif_ip_prepend(nif, m, ip4(far_ip), 17), -EMSGSIZE);
	rte_pktmbuf_free(m);
	assert_int_equal(stat(nif, "tx_too_big"), 1);
	/* No gateway. */
	c.gateway = 0;
	nogw = tcp_netif_create(&c, pool, SOCKET_ID_ANY);
	assert_non_null(nogw);
	assert_int_equal(tcp_netif_ip_output(nogw, ip_packet(nogw, far_ip, 1), ip4(far_ip), T0),
			 -ENETUNREACH);
	assert_int_equal(stat(nogw, "ip_no_route"), 1);
	tcp_netif_free(nogw);
	expect_no_tx(nif);
}

/* More replies than the TX FIFO holds: the excess is dropped and counted. */
static void test_tx_full(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[64], zero[6] = {0};
	struct rte_mbuf *out[64];
	uint32_t extra = 5, drained = 0;
	uint16_t n;

	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, our_ip);
	for (uint32_t i = 0; i < TCP_NETIF_TXQ_SIZE + extra; i++)
		input1(nif, f, 42, T0);
	assert_int_equal(tcp_netif_tx_pending(nif), TCP_NETIF_TXQ_SIZE);
	assert_int_equal(stat(nif, "tx_full"), extra);
	while ((n = tcp_netif_tx_drain(nif, out, 64)) > 0) {
		drained += n;
		rte_pktmbuf_free_bulk(out, n);
	}
	assert_int_equal(drained, TCP_NETIF_TXQ_SIZE);
}

/* Frames left queued or pending are freed with the netif (teardown checks the pool). */
static void test_free_releases_everything(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[64], zero[6] = {0};

	arp_frame(f, bcast, 1, peer_mac, peer_ip, zero, our_ip);
	input1(nif, f, 42, T0);
	assert_int_equal(tcp_netif_ip_output(nif, ip_packet(nif, far_ip, 1), ip4(far_ip), T0), 0);
	assert_int_equal(tcp_netif_tx_pending(nif), 2);
}

static struct rte_mbuf *l4_got;
static uint32_t l4_hlen;

static void l4_handler(void *arg, struct rte_mbuf *m, uint32_t hlen, uint64_t now)
{
	assert_ptr_equal(arg, &l4_got);
	assert_int_equal(now, T0);
	l4_got = m;
	l4_hlen = hlen;
}

/* A registered protocol gets its packets at the IPv4 header, padding trimmed. */
static void test_l4_handler(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[128];
	size_t o = eth(f, our_mac, peer_mac, 0x0800);

	assert_int_equal(tcp_netif_set_l4(nif, 1, l4_handler, NULL), -EINVAL);
	assert_int_equal(tcp_netif_set_l4(nif, 6, l4_handler, &l4_got), 0);
	o += ip_hdr(f + o, peer_ip, our_ip, 6, 24, 5, 0, 1);
	memset(f + o, 0x5a, 24);
	o += 24;
	memset(f + o, 0, 10); /* padding */
	l4_got = NULL;
	assert_int_equal(input1(nif, f, o + 10, T0), 1);
	assert_non_null(l4_got);
	assert_int_equal(l4_hlen, 24);
	assert_int_equal(rte_pktmbuf_pkt_len(l4_got), 24 + 24);
	assert_memory_equal(rte_pktmbuf_mtod(l4_got, uint8_t *), f + 14, 48);
	rte_pktmbuf_free(l4_got);
	/* Removed: unknown again. */
	assert_int_equal(tcp_netif_set_l4(nif, 6, NULL, NULL), 0);
	drop_case(nif, f, o, "ip_unknown_proto");
	for (uint8_t p = 10; p < 10 + TCP_NETIF_L4_MAX; p++)
		assert_int_equal(tcp_netif_set_l4(nif, p, l4_handler, NULL), 0);
	assert_int_equal(tcp_netif_set_l4(nif, 99, l4_handler, NULL), -ENOSPC);
}

static uint8_t err_code;
static uint16_t err_mtu;
static uint16_t err_port;
static int err_calls;

static void err_handler(void *arg, uint8_t code, uint16_t mtu, const struct rte_ipv4_hdr *inner,
			const uint8_t *l4, uint32_t l4len, uint64_t now)
{
	(void)arg;
	(void)inner;
	(void)now;
	assert_true(l4len >= 8);
	err_calls++;
	err_code = code;
	err_mtu = mtu;
	err_port = (uint16_t)(l4[0] << 8 | l4[1]);
}

/* "Fragmentation needed" quoting one of our TCP segments reaches the TCP
 * error handler with the next-hop MTU; one quoting someone else's packet,
 * or too short to hold the ports, is dropped under a counter. */
static void test_icmp_unreachable(void **state)
{
	struct tcp_netif *nif = *state;
	uint8_t f[128];
	size_t o = eth(f, our_mac, gw_mac, 0x0800), icmp;

	assert_int_equal(tcp_netif_set_l4_err(nif, 6, err_handler, NULL), -ENOSPC);
	assert_int_equal(tcp_netif_set_l4(nif, 6, l4_handler, NULL), 0);
	assert_int_equal(tcp_netif_set_l4_err(nif, 6, err_handler, NULL), 0);
	o += ip_hdr(f + o, gw_ip, our_ip, 1, 8 + 20 + 8, 9, 0, 0);
	icmp = o;
	memset(f + o, 0, 8);
	f[o] = 3;
	f[o + 1] = 4;
	put16(f + o + 6, 1280);
	o += 8;
	o += ip_hdr(f + o, our_ip, far_ip, 6, 1460, 0, 0x4000, 0);
	put16(f + o, 40001); /* our port */
	put16(f + o + 2, 25);
	memset(f + o + 4, 0x11, 4);
	o += 8;
	put16(f + icmp + 2, tcp_test_csum(f + icmp, o - icmp));
	err_calls = 0;
	assert_int_equal(input1(nif, f, o, T0), 0);
	if (err_calls != 1 || err_code != 4 || err_mtu != 1280 || err_port != 40001)
		fail_msg("handler: %d calls, code %u mtu %u port %u; want 1, 4, 1280, 40001",
			 err_calls, err_code, err_mtu, err_port);
	assert_int_equal(stat(nif, "icmp_errors"), 1);
	/* Quoting a packet from another address. */
	memcpy(f + icmp + 8 + 12, peer_ip, 4);
	put16(f + icmp + 2, 0);
	put16(f + icmp + 2, tcp_test_csum(f + icmp, o - icmp));
	assert_int_equal(input1(nif, f, o, T0), 0);
	assert_int_equal(err_calls, 1);
	assert_int_equal(stat(nif, "icmp_err_bad"), 1);
	assert_int_equal(tcp_netif_set_l4(nif, 6, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_rejects_bad_conf),
	    cmocka_unit_test(test_stat_names),
	    cmocka_unit_test_setup_teardown(test_arp_request_answered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arp_probe_answered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arp_other_ip_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arp_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_resolution_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pending_sent_once_resolved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arp_expiry_probe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ping_answered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_extra_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ping_with_ip_options, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ping_off_link, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ping_multiseg, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_icmp_unreachable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_releases_everything, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_l4_handler, setup, teardown),
	};
	int rc;

	pool = tcp_test_eal_init(NMBUF);
	rc = cmocka_run_group_tests_name("tcp_netif", tests, NULL, NULL);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return rc;
}
