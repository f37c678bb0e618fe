/*
 * test_cksum.c - tcp_cksum against DPDK's own checksum and an independent
 *	RFC 1071 one: every length and alignment, and mbuf chains cut at odd
 *	and even places.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "tcp/tcp_cksum.h"
#include "tcp_test_eal.h"

static struct rte_mempool *pool;
static uint8_t buf[70000];

static void fill(uint64_t seed)
{
	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		buf[i] = (uint8_t)(seed >> 56);
	}
}

static void test_flat(void **state)
{
	fill(1);
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 600; len++) {
			uint16_t got = tcp_cksum_fold(tcp_cksum_add(buf + off, len, 0));
			uint16_t want = rte_raw_cksum(buf + off, len);
			uint16_t inv = (uint16_t)~got,
				 rfc = rte_bswap16(tcp_test_csum(buf + off, len));

			if (got != want)
				fail_msg("off %zu len %zu: got %04x, want %04x", off, len, got,
					 want);
			/* The independent RFC 1071 sum, inverted (0 and 0xffff
			 * are the same number in ones' complement). */
			if (len > 0 && inv != rfc && !(inv == 0 && rfc == 0xffff) &&
			    !(inv == 0xffff && rfc == 0))
				fail_msg("off %zu len %zu: got ~%04x, RFC 1071 says %04x", off, len,
					 inv, rfc);
		}
	/* Long runs: past the vector loop's lane limits. */
	for (size_t len = 65500; len <= sizeof(buf) - 8; len += 377)
		assert_int_equal(tcp_cksum_fold(tcp_cksum_add(buf + 3, len, 0)),
				 rte_raw_cksum(buf + 3, len));
	/* All ones: sums that are multiples of 0xffff fold to 0xffff, never 0. */
	memset(buf, 0xff, 4096);
	assert_int_equal(tcp_cksum_fold(tcp_cksum_add(buf, 4096, 0)), rte_raw_cksum(buf, 4096));
	memset(buf, 0, 4096);
	assert_int_equal(tcp_cksum_fold(tcp_cksum_add(buf, 4096, 0)), 0);
}

/* A chain of pieces of the given lengths holding buf[0..sum of lens). */
static struct rte_mbuf *chain(const unsigned *lens, unsigned n)
{
	struct rte_mbuf *head = NULL;
	size_t at = 0;

	for (unsigned i = 0; i < n; i++) {
		struct rte_mbuf *m = tcp_test_mbuf(pool, buf + at, lens[i]);

		at += lens[i];
		if (head == NULL)
			head = m;
		else
			assert_int_equal(rte_pktmbuf_chain(head, m), 0);
	}
	return head;
}

static void test_chains(void **state)
{
	static const unsigned cuts[][4] = {
	    {54, 1460, 0, 0}, {53, 1, 1460, 0}, {1, 1, 1, 1}, {7, 1000, 333, 9},
	    {1500, 1, 2, 3},  {2, 3, 5, 7},	{0, 0, 0, 0},
	};

	fill(7);
	for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		unsigned lens[4], n = 0, total = 0;

		for (unsigned i = 0; i < 4; i++)
			if (cuts[k][i] != 0)
				total += lens[n++] = cuts[k][i];
		if (n == 0)
			continue;
		struct rte_mbuf *m = chain(lens, n);

		for (uint32_t off = 0; off < total && off < 80; off += 1 + off / 3)
			for (uint32_t len = 0; off + len <= total; len += 1 + len / 2) {
				uint16_t got = 0, want = 0;

				/* What the chain holds is buf[0..total): its sum
				 * over a range is the flat sum. (DPDK 22.11's
				 * rte_raw_cksum_mbuf() drops carries when a
				 * piece starts at an odd offset.) */
				assert_int_equal(tcp_cksum_mbuf(m, off, len, &got), 0);
				want = rte_raw_cksum(buf + off, len);
				if (got != want)
					fail_msg("cut %zu off %u len %u: got %04x, want %04x", k,
						 off, len, got, want);
			}
		{
			uint16_t x;

			assert_int_equal(tcp_cksum_mbuf(m, 0, total + 1, &x), -1);
			assert_int_equal(tcp_cksum_mbuf(m, total, 1, &x), -1);
		}
		rte_pktmbuf_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_flat),
	    cmocka_unit_test(test_chains),
	};

	pool = tcp_test_eal_init(512);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
