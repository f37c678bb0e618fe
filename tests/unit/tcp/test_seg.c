/*
 * test_seg.c - TCP option parsing and building.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tcp/tcp_seg.h"

static void test_linux_syn(void **state)
{
	/* The options of a Linux SYN: MSS 1460, SACK-perm, TS, NOP, wscale 7. */
	static const uint8_t syn[] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0,
				      0, 1, 0,	  0,	0, 0, 1, 3,  3, 7};
	uint8_t buf[TCP_OPTS_MAX];
	struct tcp_opts o;
	(void)state;

	assert_int_equal(tcp_opts_parse(syn, sizeof(syn), &o), 0);
	assert_true(o.has_mss && o.has_sack_perm && o.has_ts && o.has_wscale);
	assert_int_equal(o.mss, 1460);
	assert_int_equal(o.tsval, 1);
	assert_int_equal(o.tsecr, 0);
	assert_int_equal(o.wscale, 7);
	/* Built back, the same bytes. */
	assert_int_equal(tcp_opts_build(buf, &o), sizeof(syn));
	assert_memory_equal(buf, syn, sizeof(syn));
}

static void test_build_parse_combinations(void **state)
{
	uint8_t buf[TCP_OPTS_MAX];
	(void)state;

	for (unsigned mask = 0; mask < 16; mask++) {
		struct tcp_opts o = {0}, p;
		size_t n;

		o.has_mss = mask & 1;
		o.mss = 1234;
		o.has_sack_perm = mask & 2;
		o.has_ts = mask & 4;
		o.tsval = 0xdeadbeef;
		o.tsecr = 0x01020304;
		o.has_wscale = mask & 8;
		o.wscale = 9;
		n = tcp_opts_build(buf, &o);
		assert_int_equal(n % 4, 0);
		assert_true(n <= TCP_OPTS_MAX);
		assert_int_equal(tcp_opts_parse(buf, n, &p), 0);
		if (!o.has_mss)
			o.mss = 0;
		if (!o.has_ts)
			o.tsval = o.tsecr = 0;
		if (!o.has_wscale)
			o.wscale = 0;
		assert_memory_equal(&o, &p, sizeof(o));
	}
}

static void test_malformed(void **state)
{
	struct tcp_opts o;
	static const uint8_t trunc_len[] = {1, 1, 2};		  /* kind without length */
	static const uint8_t past_end[] = {8, 10, 0, 0, 0};	  /* length past the end */
	static const uint8_t zero_len[] = {30, 0, 1, 1};	  /* length < 2: would loop */
	static const uint8_t bad_mss[] = {2, 3, 5};		  /* MSS of length 3 */
	static const uint8_t bad_ts[] = {8, 8, 0, 0, 0, 0, 0, 0}; /* TS of length 8 */
	static const uint8_t unknown[] = {30, 4, 9, 9, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 3, 3, 2};
	static const uint8_t eol[] = {1, 0, 99, 99}; /* EOL: the rest is ignored */
	(void)state;

	assert_int_equal(tcp_opts_parse(trunc_len, sizeof(trunc_len), &o), -1);
	assert_int_equal(tcp_opts_parse(past_end, sizeof(past_end), &o), -1);
	assert_int_equal(tcp_opts_parse(zero_len, sizeof(zero_len), &o), -1);
	assert_int_equal(tcp_opts_parse(bad_mss, sizeof(bad_mss), &o), -1);
	assert_int_equal(tcp_opts_parse(bad_ts, sizeof(bad_ts), &o), -1);
	assert_int_equal(tcp_opts_parse(unknown, sizeof(unknown), &o), 0);
	assert_true(o.has_wscale);
	assert_int_equal(o.wscale, 2);
	assert_false(o.has_ts);
	assert_int_equal(tcp_opts_parse(eol, sizeof(eol), &o), 0);
	assert_int_equal(tcp_opts_parse(eol, 0, &o), 0);
}

/* SACK blocks: built after the timestamps, parsed back; bad lengths rejected. */
static void test_sack_blocks(void **state)
{
	uint8_t buf[TCP_OPTS_MAX];
	struct tcp_opts o = {0}, p;
	static const uint8_t bad_len[] = {5, 6, 0, 0, 0, 1}; /* not 2 + 8n */
	static const uint8_t linux_ack[] = {1, 1, 8, 10, 0, 0, 0,    9, 0, 0, 0,    7,
					    1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0};
	size_t n;
	(void)state;

	for (uint8_t k = 1; k <= 3; k++) {
		o.has_ts = true;
		o.tsval = 9;
		o.tsecr = 7;
		o.nsack = k;
		for (unsigned b = 0; b < k; b++) {
			o.sack[b][0] = 1000 * (b + 1);
			o.sack[b][1] = 1000 * (b + 1) + 500;
		}
		n = tcp_opts_build(buf, &o);
		assert_true(n <= TCP_OPTS_MAX);
		assert_int_equal(n % 4, 0);
		assert_int_equal(tcp_opts_parse(buf, n, &p), 0);
		assert_memory_equal(&o, &p, sizeof(o));
	}
	/* Four blocks fit without timestamps. */
	memset(&o, 0, sizeof(o));
	o.nsack = 4;
	o.sack[3][0] = 0xfffffff0;
	o.sack[3][1] = 0x10;
	n = tcp_opts_build(buf, &o);
	assert_int_equal(n, 36);
	assert_int_equal(tcp_opts_parse(buf, n, &p), 0);
	assert_memory_equal(&o, &p, sizeof(o));
	assert_int_equal(tcp_opts_parse(bad_len, sizeof(bad_len), &p), -1);
	/* What Linux sends: NOP NOP TS, NOP NOP SACK with one block. */
	assert_int_equal(tcp_opts_parse(linux_ack, sizeof(linux_ack), &p), 0);
	assert_int_equal(p.nsack, 1);
	assert_int_equal(p.sack[0][0], 0x1000);
	assert_int_equal(p.sack[0][1], 0x2000);
	assert_int_equal(tcp_opts_build(buf, &p), sizeof(linux_ack));
	assert_memory_equal(buf, linux_ack, sizeof(linux_ack));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_linux_syn),
	    cmocka_unit_test(test_build_parse_combinations),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_sack_blocks),
	};

	return cmocka_run_group_tests_name("tcp_seg", tests, NULL, NULL);
}
