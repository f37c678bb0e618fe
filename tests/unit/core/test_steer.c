/*
 * test_steer.c - flow steering: owners of frames by local port, ARP for
 * everyone, and RSS port choice checked against the Toeplitz test vector.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "core/dataplane/dmta_steer.h"

/* A frame in a plain buffer: dmta_steer_owner() reads only data. */
struct frame {
	struct rte_mbuf m;
	uint8_t buf[256];
};

static void frame_init(struct frame *f, uint16_t len)
{
	memset(f, 0, sizeof(*f));
	f->m.buf_addr = f->buf;
	f->m.data_off = 0;
	f->m.data_len = len;
	f->m.pkt_len = len;
	f->m.nb_segs = 1;
}

static void tcp_frame(struct frame *f, uint16_t dport, uint16_t frag)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f->buf;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);

	frame_init(f, sizeof(*eth) + sizeof(*ip) + sizeof(*th));
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = 0x45;
	ip->next_proto_id = IPPROTO_TCP;
	ip->fragment_offset = rte_cpu_to_be_16(frag);
	th->src_port = rte_cpu_to_be_16(25);
	th->dst_port = rte_cpu_to_be_16(dport);
}

static void owner_by_port(void **state)
{
	struct dmta_steer st;

	(void)state;
	dmta_steer_init(&st, 2, 10000, 25500);
	assert_int_equal(dmta_steer_port_owner(&st, 10000), 0);
	assert_int_equal(dmta_steer_port_owner(&st, 35499), 0);
	assert_int_equal(dmta_steer_port_owner(&st, 35500), 1);
	assert_int_equal(dmta_steer_port_owner(&st, 60999), 1);
	/* Outside every slice (a listening port, the top of the range): worker 0. */
	assert_int_equal(dmta_steer_port_owner(&st, 25), 0);
	assert_int_equal(dmta_steer_port_owner(&st, 61000), 0);
	assert_int_equal(dmta_steer_port_owner(&st, 65535), 0);
}

static void owner_of_frames(void **state)
{
	struct dmta_steer st;
	struct frame f;
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f.buf;

	(void)state;
	dmta_steer_init(&st, 3, 10000, 1000);
	tcp_frame(&f, 11500, 0);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 0), 1);
	tcp_frame(&f, 12999, 0);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 1), 2);
	tcp_frame(&f, 10001, 0);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 2), 0);
	/* Fragments, short frames, other protocols: kept by the receiver. */
	tcp_frame(&f, 11500, RTE_IPV4_HDR_MF_FLAG);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 2), 2);
	tcp_frame(&f, 11500, 5);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 2), 2);
	tcp_frame(&f, 11500, 0);
	f.m.data_len = RTE_ETHER_HDR_LEN + 20 + 3; /* ports cut off */
	assert_int_equal(dmta_steer_owner(&st, &f.m, 2), 2);
	tcp_frame(&f, 11500, 0);
	f.buf[RTE_ETHER_HDR_LEN] = 0x44; /* IHL 16 bytes */
	assert_int_equal(dmta_steer_owner(&st, &f.m, 2), 2);
	tcp_frame(&f, 11500, 0);
	f.buf[RTE_ETHER_HDR_LEN + 9] = IPPROTO_ICMP;
	assert_int_equal(dmta_steer_owner(&st, &f.m, 2), 2);
	/* ICMP unreachable quoting our segment from port 12500: worker 2's. */
	tcp_frame(&f, 0, 0);
	f.buf[RTE_ETHER_HDR_LEN + 9] = IPPROTO_ICMP;
	memset(f.buf + RTE_ETHER_HDR_LEN + 20, 0, 8);
	f.buf[RTE_ETHER_HDR_LEN + 20] = 3;		       /* unreachable */
	f.buf[RTE_ETHER_HDR_LEN + 28] = 0x45;		       /* quoted IPv4 */
	f.buf[RTE_ETHER_HDR_LEN + 28 + 9] = IPPROTO_TCP;       /* quoting TCP */
	f.buf[RTE_ETHER_HDR_LEN + 48] = (uint8_t)(12500 >> 8); /* our port */
	f.buf[RTE_ETHER_HDR_LEN + 49] = (uint8_t)(12500 & 0xff);
	f.m.data_len = RTE_ETHER_HDR_LEN + 20 + 8 + 20 + 8;
	if (dmta_steer_owner(&st, &f.m, 0) != 2)
		fail_msg("ICMP about port 12500: owner %u, want 2", dmta_steer_owner(&st, &f.m, 0));
	f.m.data_len = RTE_ETHER_HDR_LEN + 20 + 8 + 20 + 3; /* quoted ports cut off */
	assert_int_equal(dmta_steer_owner(&st, &f.m, 0), 0);
	frame_init(&f, 10);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 1), 1);
	/* ARP: everyone. */
	frame_init(&f, 60);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 1), DMTA_STEER_ALL);
	eth->ether_type = rte_cpu_to_be_16(0x86dd);
	assert_int_equal(dmta_steer_owner(&st, &f.m, 1), 1);
}

/* The Microsoft RSS verification suite's key and its first IPv4/TCP case:
 * 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178. */
static const uint8_t ms_key[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void rss_vector(void **state)
{
	struct dmta_steer st;

	(void)state;
	dmta_steer_init(&st, 2, 10000, 25500);
	dmta_steer_set_rss(&st, ms_key, sizeof(ms_key), 128, 2);
	assert_true(st.rss);
	/* The reply as the NIC sees it: from the peer (source) to us. */
	assert_int_equal(dmta_steer_rss_hash(&st, ip4("161.142.100.80"), rte_cpu_to_be_16(1766),
					     ip4("66.9.149.187"), rte_cpu_to_be_16(2794)),
			 0x51ccc178);
	assert_int_equal(dmta_steer_rss_queue(&st, ip4("161.142.100.80"), rte_cpu_to_be_16(1766),
					      ip4("66.9.149.187"), rte_cpu_to_be_16(2794)),
			 (0x51ccc178 % 128) % 2);
}

static void rss_port_choice(void **state)
{
	struct dmta_steer st;
	uint32_t laddr = ip4("198.18.0.2"), raddr = ip4("198.18.1.10");
	unsigned int ok[2] = {0, 0};

	(void)state;
	dmta_steer_init(&st, 2, 10000, 25500);
	/* Without RSS every port will do. */
	assert_true(dmta_steer_port_ok(&st, 1, laddr, rte_cpu_to_be_16(40000), raddr,
				       rte_cpu_to_be_16(25)));
	dmta_steer_set_rss(&st, ms_key, sizeof(ms_key), 128, 2);
	for (uint32_t w = 0; w < 2; w++) {
		for (uint32_t p = 10000 + 25500 * w; p < 10000 + 25500 * w + 2000; p++) {
			uint16_t lp = rte_cpu_to_be_16((uint16_t)p);

			if (!dmta_steer_port_ok(&st, w, laddr, lp, raddr, rte_cpu_to_be_16(25)))
				continue;
			ok[w]++;
			assert_int_equal(
			    dmta_steer_rss_queue(&st, laddr, lp, raddr, rte_cpu_to_be_16(25)), w);
		}
	}
	/* About half of each slice hashes home. */
	assert_in_range(ok[0], 800, 1200);
	assert_in_range(ok[1], 800, 1200);
	/* A key too short for a tuple turns RSS steering off, not wrong. */
	dmta_steer_set_rss(&st, ms_key, 8, 128, 2);
	assert_false(st.rss);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(owner_by_port),
	    cmocka_unit_test(owner_of_frames),
	    cmocka_unit_test(rss_vector),
	    cmocka_unit_test(rss_port_choice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
