/*
 * test_wire.c - dmta-wire's spec parser and impairment engine, driven by a
 * fake clock.
 *
 * DESCRIPTION
 *	Rates are measured over 100,000 frames and must match the spec within
 *	stated tolerances (about 5 standard deviations of the binomial, so a
 *	correct engine fails with odds far below one in a million; the seed is
 *	fixed anyway, so a run is reproducible). Each frame carries its sequence
 *	number three times, so a corrupted frame is still identified by
 *	majority, and the rest of it is a pattern derived from that number, so
 *	corruption is seen bit by bit.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/wire/wire.h"

#define MS	  1000000ull
#define US	  1000ull
#define FRAME_LEN 64
#define SEQ_OFF	  14

/* ---- spec ---- */

static struct wire_spec parse_ok(const char *text)
{
	struct wire_spec s;
	char err[256] = "";

	if (wire_spec_parse(text, &s, err, sizeof(err)) != 0)
		fail_msg("parse '%s': got error '%s', want success", text, err);
	return s;
}

static void test_spec_full(void **state)
{
	struct wire_spec s = parse_ok(
	    "loss=5%,delay=20ms,jitter=10ms,reorder=1%,duplicate=1%,corrupt=0.1%,rate=100mbit");

	for (int d = 0; d < 2; d++) {
		assert_int_equal(s.dir[d].loss_ppb, 50000000);
		assert_int_equal(s.dir[d].delay_ns, 20 * MS);
		assert_int_equal(s.dir[d].jitter_ns, 10 * MS);
		assert_int_equal(s.dir[d].reorder_ppb, 10000000);
		assert_int_equal(s.dir[d].dup_ppb, 10000000);
		assert_int_equal(s.dir[d].corrupt_ppb, 1000000);
		assert_int_equal(s.dir[d].rate_bps, 100000000);
		assert_int_equal(s.dir[d].queue_ns, WIRE_DEFAULT_QUEUE_NS);
		assert_int_equal(s.dir[d].limit, WIRE_DEFAULT_LIMIT);
	}
}

static void test_spec_overrides(void **state)
{
	/* A direction-prefixed key wins over the bare key in either order. */
	struct wire_spec s = parse_ok("a2b.loss=1%,loss=5%,delay=10ms,b2a.delay=30ms");

	assert_int_equal(s.dir[WIRE_DIR_A2B].loss_ppb, 10000000);
	assert_int_equal(s.dir[WIRE_DIR_B2A].loss_ppb, 50000000);
	assert_int_equal(s.dir[WIRE_DIR_A2B].delay_ns, 10 * MS);
	assert_int_equal(s.dir[WIRE_DIR_B2A].delay_ns, 30 * MS);
	s = parse_ok("loss=1%,loss=2%");
	assert_int_equal(s.dir[0].loss_ppb, 20000000);
}

static void test_spec_units(void **state)
{
	struct wire_spec s;

	s = parse_ok("rate=10kbps,delay=500us,jitter=1s,queue=250ms,burst=16kb,limit=5,dup=3");
	assert_int_equal(s.dir[0].rate_bps, 80000);
	assert_int_equal(s.dir[0].delay_ns, 500 * US);
	assert_int_equal(s.dir[0].jitter_ns, 1000 * MS);
	assert_int_equal(s.dir[0].queue_ns, 250 * MS);
	assert_int_equal(s.dir[0].burst_bytes, 16384);
	assert_int_equal(s.dir[0].limit, 5);
	assert_int_equal(s.dir[0].dup_ppb, 30000000);
	s = parse_ok("rate=2.5gbit,loss=0.0001%,delay=0,corrupt=100%");
	assert_int_equal(s.dir[1].rate_bps, 2500000000ull);
	assert_int_equal(s.dir[1].loss_ppb, 1000);
	assert_int_equal(s.dir[1].delay_ns, 0);
	assert_int_equal(s.dir[1].corrupt_ppb, WIRE_PPB);
	s = parse_ok("none");
	assert_int_equal(s.dir[0].loss_ppb, 0);
	assert_int_equal(s.dir[0].rate_bps, 0);
	s = parse_ok("");
	assert_int_equal(s.dir[1].delay_ns, 0);
}

static void test_spec_bad(void **state)
{
	static const char *const bad[] = {
	    "loss=101%",
	    "loss=-1%",
	    "loss=5%%",
	    "loss=",
	    "loss",
	    "=5%",
	    "foo=1",
	    "c2d.loss=1%",
	    "a2b.foo=1",
	    "delay=20",
	    "delay=20m",
	    "delay=-5ms",
	    "delay=2h",
	    "rate=100",
	    "rate=100mb",
	    "rate=10bit",
	    "limit=0",
	    "limit=1.5",
	    "limit=-3",
	    "burst=1q",
	    "loss=5%,",
	    ",loss=5%",
	    "loss=5%,,delay=1ms",
	    "loss=nan",
	    "delay=infms",
	    "jitter=1e400ms",
	    "loss=0x10",
	    "a2b.=1",
	    "loss=.%",
	    "loss=1.2.3%",
	    "delay=..5ms",
	    "mtu=67",
	    "mtu=65536",
	    "mtu=1280x",
	    "mtu=-1",
	    "mtu=",
	    "icmp=maybe",
	    "icmp=0.0.0.0",
	    "icmp=1.2.3",
	    "icmp=",
	    "icmp=::1",
	    "icmp= 1.2.3.4",
	};
	char err[256];
	struct wire_spec s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (wire_spec_parse(bad[i], &s, err, sizeof(err)) != -1)
			fail_msg("parse '%s': got success, want -1", bad[i]);
		if (err[0] == '\0' || strchr(err, '\n') != NULL)
			fail_msg("parse '%s': got message '%s', want one line", bad[i], err);
	}
	/* The message names the item as written. */
	assert_int_equal(wire_spec_parse("loss=1%,b2a.delay=20", &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'b2a.delay=20'"));
	assert_int_equal(wire_spec_parse("rate=1mbit,zap=1", &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown key 'zap'"));
}

static void test_spec_mtu(void **state)
{
	struct wire_spec s = parse_ok("loss=1%");

	assert_int_equal(s.dir[0].mtu, 0);
	assert_true(s.dir[0].icmp);
	s = parse_ok("mtu=1280");
	for (int d = 0; d < 2; d++) {
		assert_int_equal(s.dir[d].mtu, 1280);
		assert_true(s.dir[d].icmp);
		assert_int_equal(s.dir[d].icmp_src, 0);
	}
	s = parse_ok("a2b.mtu=1280,icmp=off");
	assert_int_equal(s.dir[WIRE_DIR_A2B].mtu, 1280);
	assert_int_equal(s.dir[WIRE_DIR_B2A].mtu, 0);
	assert_false(s.dir[WIRE_DIR_A2B].icmp);
	s = parse_ok("mtu=68,icmp=198.18.0.1,b2a.mtu=0");
	assert_int_equal(s.dir[WIRE_DIR_A2B].mtu, 68);
	assert_int_equal(s.dir[WIRE_DIR_B2A].mtu, 0);
	assert_true(s.dir[WIRE_DIR_A2B].icmp);
	assert_memory_equal(&s.dir[WIRE_DIR_A2B].icmp_src, ((uint8_t[]){198, 18, 0, 1}), 4);
}

/* ---- engine, fake clock ---- */

struct out {
	uint32_t seq;
	uint64_t sent_ns;    /* submit time */
	uint64_t release_ns; /* time taken */
	bool corrupt;
	int diff_bits;
	size_t diff_at;
};

struct sim {
	struct wire_dir *d;
	struct out *out;
	size_t nout, cap;
	uint64_t *sent_at; /* by seq */
};

static void frame_fill(uint8_t *f, uint32_t seq)
{
	memset(f, 0, SEQ_OFF);
	for (int k = 0; k < 3; k++)
		memcpy(f + SEQ_OFF + 4 * k, &seq, 4);
	for (size_t i = SEQ_OFF + 12; i < FRAME_LEN; i++)
		f[i] = (uint8_t)(seq * 31 + i * 7);
}

static uint32_t frame_seq(const uint8_t *f)
{
	uint32_t a, b, c;

	memcpy(&a, f + SEQ_OFF, 4);
	memcpy(&b, f + SEQ_OFF + 4, 4);
	memcpy(&c, f + SEQ_OFF + 8, 4);
	return a == b || a == c ? a : b;
}

static void sim_take(struct sim *s, uint64_t upto)
{
	uint64_t nx;

	while ((nx = wire_dir_next_ns(s->d)) <= upto) {
		size_t len;
		uint8_t *buf = wire_dir_take(s->d, nx, &len), ref[FRAME_LEN];
		struct out *o;

		assert_non_null(buf);
		assert_int_equal(len, FRAME_LEN);
		assert_true(s->nout < s->cap);
		o = &s->out[s->nout++];
		o->seq = frame_seq(buf);
		o->release_ns = nx;
		o->sent_ns = s->sent_at[o->seq];
		frame_fill(ref, o->seq);
		o->diff_bits = 0;
		for (size_t i = 0; i < len; i++) {
			if (buf[i] != ref[i]) {
				o->diff_bits += __builtin_popcount(buf[i] ^ ref[i]);
				o->diff_at = i;
			}
		}
		o->corrupt = o->diff_bits > 0;
		wire_dir_done(s->d, buf, true);
	}
}

/* Submit n frames, one every spacing ns, and take everything out. */
static struct sim sim_run(const struct wire_params *p, uint64_t seed, size_t n, uint64_t spacing)
{
	struct sim s = {0};

	s.d = wire_dir_create(p, seed, 128);
	assert_non_null(s.d);
	s.cap = 2 * n + 16;
	s.out = calloc(s.cap, sizeof(*s.out));
	s.sent_at = calloc(n, sizeof(*s.sent_at));
	assert_non_null(s.out);
	assert_non_null(s.sent_at);
	for (size_t i = 0; i < n; i++) {
		uint64_t now = 1000 * MS + i * spacing;
		uint8_t *buf;

		sim_take(&s, now);
		buf = wire_dir_buf_get(s.d);
		assert_non_null(buf);
		frame_fill(buf, (uint32_t)i);
		s.sent_at[i] = now;
		wire_dir_submit(s.d, buf, FRAME_LEN, now);
	}
	sim_take(&s, UINT64_MAX - 1);
	assert_int_equal(wire_dir_queued(s.d), 0);
	return s;
}

static void sim_free(struct sim *s)
{
	wire_dir_destroy(s->d);
	free(s->out);
	free(s->sent_at);
}

static void assert_near(const char *what, double got, double want, double tol)
{
	if (fabs(got - want) > tol)
		fail_msg("%s: got %.5f, want %.5f +- %.5f", what, got, want, tol);
	printf("# %s: %.5f (want %.5f +- %.5f)\n", what, got, want, tol);
}

static void test_rates(void **state)
{
	const size_t n = 100000;
	struct wire_params p;
	struct sim s;
	size_t distinct = 0, copies = 0, descents = 0, corrupt = 0;
	uint8_t *seen = calloc(n, 1);
	const struct wire_counters *c;

	wire_params_default(&p);
	p.loss_ppb = 50000000;	  /* 5% */
	p.dup_ppb = 10000000;	  /* 1% */
	p.reorder_ppb = 10000000; /* 1% */
	p.corrupt_ppb = 1000000;  /* 0.1% */
	p.delay_ns = 20 * MS;
	p.limit = 20000;
	s = sim_run(&p, 42, n, 10 * US);
	for (size_t i = 0; i < s.nout; i++) {
		const struct out *o = &s.out[i];

		assert_true(o->seq < n);
		if (seen[o->seq]++ == 0)
			distinct++;
		else
			copies++;
		if (i > 0 && o->seq < s.out[i - 1].seq)
			descents++;
		if (o->corrupt) {
			/* One bit, after the Ethernet header. */
			assert_int_equal(o->diff_bits, 1);
			assert_true(o->diff_at >= 14);
			corrupt++;
		}
	}
	c = wire_dir_counters(s.d);
	/* binomial sd over 1e5: 5%: 0.069%, 1%: 0.031%, 0.1%: 0.010% */
	assert_near("loss", 1.0 - (double)distinct / n, 0.05, 0.0035);
	assert_near("duplicate", (double)copies / distinct, 0.01, 0.0016);
	assert_near("reorder", (double)descents / distinct, 0.01, 0.0016);
	assert_near("corrupt", (double)corrupt / distinct, 0.001, 0.0005);
	/* The counters say the same as the frames. */
	assert_int_equal(c->rx, n);
	assert_int_equal(c->lost, n - distinct);
	assert_int_equal(c->duplicated, copies);
	assert_int_equal(c->forwarded, s.nout);
	assert_true(c->corrupted >= corrupt); /* a corrupted original's copy is clean */
	assert_true(c->reordered >= descents && c->reordered <= descents + descents / 10 + 5);
	assert_int_equal(c->overflow, 0);
	free(seen);
	sim_free(&s);
}

static void test_delay_uniform(void **state)
{
	/* Frames far apart (50ms > 2 * jitter): no clamping, pure U(10, 30) ms. */
	const size_t n = 4000;
	struct wire_params p;
	struct sim s;
	size_t quart[4] = {0};
	double sum = 0;

	wire_params_default(&p);
	p.delay_ns = 20 * MS;
	p.jitter_ns = 10 * MS;
	s = sim_run(&p, 3, n, 50 * MS);
	assert_int_equal(s.nout, n);
	for (size_t i = 0; i < n; i++) {
		uint64_t dl = s.out[i].release_ns - s.out[i].sent_ns;

		assert_true(dl >= 10 * MS && dl <= 30 * MS);
		assert_int_equal(s.out[i].seq, i);
		sum += (double)dl;
		quart[dl >= 30 * MS ? 3 : (dl - 10 * MS) / (5 * MS)]++;
	}
	/* mean sd: 5.77ms / sqrt(4000) = 0.09ms; quarter sd: 0.68% */
	assert_near("delay mean ms", sum / n / MS, 20.0, 0.5);
	for (int q = 0; q < 4; q++)
		assert_near("delay quarter share", (double)quart[q] / n, 0.25, 0.035);
	sim_free(&s);
}

static void test_jitter_keeps_order(void **state)
{
	/* Frames 1ms apart with 10ms of jitter: release times stay in order. */
	const size_t n = 10000;
	struct wire_params p;
	struct sim s;
	uint64_t lo = UINT64_MAX, hi = 0;
	double sum = 0;

	wire_params_default(&p);
	p.delay_ns = 20 * MS;
	p.jitter_ns = 10 * MS;
	s = sim_run(&p, 5, n, 1 * MS);
	assert_int_equal(s.nout, n);
	for (size_t i = 0; i < n; i++) {
		uint64_t dl = s.out[i].release_ns - s.out[i].sent_ns;

		assert_int_equal(s.out[i].seq, i);
		assert_true(dl >= 10 * MS && dl <= 30 * MS);
		lo = dl < lo ? dl : lo;
		hi = dl > hi ? dl : hi;
		sum += (double)dl;
	}
	/* The clamp only ever adds delay; with 1ms spacing it adds a few ms. */
	printf("# clamped delay min %.2f mean %.2f max %.2f ms\n", lo / 1e6, sum / n / MS,
	       hi / 1e6);
	assert_true(lo < 20 * MS);
	assert_true(hi > 29 * MS);
	assert_true(sum / n >= 20.0 * MS && sum / n <= 27.0 * MS);
	assert_int_equal(wire_dir_counters(s.d)->reordered, 0);
	sim_free(&s);

	/* No jitter: every frame exactly the delay. */
	p.jitter_ns = 0;
	s = sim_run(&p, 5, 1000, 100 * US);
	for (size_t i = 0; i < s.nout; i++)
		assert_int_equal(s.out[i].release_ns - s.out[i].sent_ns, 20 * MS);
	sim_free(&s);
}

static void test_reorder_without_delay(void **state)
{
	const size_t n = 10000;
	struct wire_params p;
	struct sim s;
	size_t descents = 0;

	wire_params_default(&p);
	p.reorder_ppb = 100000000; /* 10% */
	s = sim_run(&p, 9, n, 100 * US);
	assert_int_equal(s.nout, n);
	for (size_t i = 1; i < n; i++)
		descents += s.out[i].seq < s.out[i - 1].seq;
	/* A held frame is overtaken by the frames of the next millisecond. */
	assert_true(descents > n / 20);
	for (size_t i = 0; i < n; i++)
		assert_true(s.out[i].release_ns - s.out[i].sent_ns <= WIRE_REORDER_HOLD_NS);
	sim_free(&s);
}

static void test_determinism(void **state)
{
	struct wire_params p;
	struct sim a, b, c;
	bool differ = false;

	wire_params_default(&p);
	p.loss_ppb = 100000000;
	p.dup_ppb = 50000000;
	p.reorder_ppb = 50000000;
	p.delay_ns = 5 * MS;
	p.jitter_ns = 3 * MS;
	a = sim_run(&p, 1234, 5000, 200 * US);
	b = sim_run(&p, 1234, 5000, 200 * US);
	c = sim_run(&p, 1235, 5000, 200 * US);
	assert_int_equal(a.nout, b.nout);
	for (size_t i = 0; i < a.nout; i++) {
		assert_int_equal(a.out[i].seq, b.out[i].seq);
		assert_int_equal(a.out[i].release_ns, b.out[i].release_ns);
	}
	for (size_t i = 0; i < a.nout && i < c.nout && !differ; i++)
		differ = a.out[i].seq != c.out[i].seq || a.out[i].release_ns != c.out[i].release_ns;
	assert_true(differ || a.nout != c.nout);
	sim_free(&a);
	sim_free(&b);
	sim_free(&c);
}

/*
 * Offer 1250-byte frames at twice the rate for 2 s; the rate limiter must
 * let 10 Mbit/s through, drop the rest, and never hold a frame longer than
 * its queue allows.
 */
static void test_rate_limit(void **state)
{
	const uint64_t rate = 10000000, t0 = 1000 * MS, span = 2000 * MS;
	const size_t len = 1250; /* 1 ms at 10 Mbit/s */
	struct wire_params p;
	struct wire_dir *d;
	uint64_t bytes = 0, maxwait = 0, now;
	size_t submitted = 0;
	const struct wire_counters *c;

	wire_params_default(&p);
	p.rate_bps = rate;
	p.queue_ns = 50 * MS;
	d = wire_dir_create(&p, 1, 2048);
	assert_non_null(d);
	for (now = t0; now < t0 + span; now += 500 * US) {
		uint64_t nx;
		uint8_t *buf;

		while ((nx = wire_dir_next_ns(d)) <= now) {
			size_t l;
			uint8_t *f = wire_dir_take(d, nx, &l);
			uint64_t sent;

			memcpy(&sent, f, sizeof(sent));
			maxwait = nx - sent > maxwait ? nx - sent : maxwait;
			/* Count what leaves after the first 100 ms (steady state). */
			if (nx >= t0 + 100 * MS)
				bytes += l;
			wire_dir_done(d, f, true);
		}
		buf = wire_dir_buf_get(d);
		assert_non_null(buf);
		memcpy(buf, &now, sizeof(now));
		wire_dir_submit(d, buf, len, now);
		submitted++;
	}
	c = wire_dir_counters(d);
	/* Steady window is 1.9 s; each frame counts whole: +-2% is 38 frames. */
	assert_near("rate Mbit/s", (double)bytes * 8 / 1.9 / 1e6, 10.0, 0.2);
	assert_near("rate-dropped share", (double)c->rate_dropped / submitted, 0.5, 0.03);
	assert_true(maxwait <= 50 * MS);
	printf("# longest wait in the rate queue: %.2f ms\n", maxwait / 1e6);
	wire_dir_destroy(d);
}

static void test_burst(void **state)
{
	/* A 10-frame bucket lets 10 frames go at once, then paces. */
	struct wire_params p;
	struct wire_dir *d;
	uint64_t now = 5 * MS;
	size_t len;
	int i;

	wire_params_default(&p);
	p.rate_bps = 10000000;
	p.burst_bytes = 12500;
	d = wire_dir_create(&p, 1, 2048);
	assert_non_null(d);
	for (i = 0; i < 12; i++)
		wire_dir_submit(d, wire_dir_buf_get(d), 1250, now);
	for (i = 0; i < 10; i++) {
		uint8_t *f = wire_dir_take(d, now, &len);

		assert_non_null(f);
		wire_dir_done(d, f, true);
	}
	assert_null(wire_dir_take(d, now, &len));
	/* The 11th waits for one frame's worth of tokens (1 ms). */
	assert_int_equal(wire_dir_next_ns(d), now + 1 * MS);
	wire_dir_destroy(d);
}

static void test_overflow(void **state)
{
	struct wire_params p;
	struct wire_dir *d;
	uint8_t *a, *b;
	const struct wire_counters *c;

	wire_params_default(&p);
	p.limit = 3;
	p.dup_ppb = WIRE_PPB; /* every frame twice */
	p.delay_ns = 1 * MS;
	d = wire_dir_create(&p, 1, 128);
	assert_non_null(d);
	a = wire_dir_buf_get(d);
	frame_fill(a, 1);
	assert_int_equal(wire_dir_submit(d, a, FRAME_LEN, 0), 2);
	b = wire_dir_buf_get(d);
	assert_non_null(b);
	frame_fill(b, 2);
	/* No buffer left for the copy: the frame goes alone, counted. */
	assert_int_equal(wire_dir_submit(d, b, FRAME_LEN, 0), 1);
	assert_null(wire_dir_buf_get(d));
	c = wire_dir_counters(d);
	assert_int_equal(c->overflow, 1);
	assert_int_equal(c->duplicated, 1);
	assert_int_equal(c->delayed, 3);
	assert_int_equal(wire_dir_queued(d), 3);
	wire_dir_destroy(d);
	/* Bad arguments. */
	p.limit = 0;
	errno = 0;
	assert_null(wire_dir_create(&p, 1, 128));
	assert_int_equal(errno, EINVAL);
}

/* Ones' complement sum over b, 16 bits at a time, big-endian. */
static uint32_t sum16(const uint8_t *b, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void test_csum(void **state)
{
	/* Ethernet + IPv4 + TCP (20-byte header) + 37 bytes of payload. */
	uint8_t f[14 + 20 + 20 + 37];
	const size_t l4 = 34, l4len = sizeof(f) - 34;
	uint8_t pseudo[12];
	uint16_t ph;

	memset(f, 0, sizeof(f));
	f[12] = 0x08;
	f[14] = 0x45;
	f[14 + 9] = 6;
	memcpy(f + 26, (uint8_t[]){198, 18, 5, 1, 198, 18, 5, 2}, 8);
	for (size_t i = l4; i < sizeof(f); i++)
		f[i] = (uint8_t)(i * 13 + 5);
	f[l4 + 12] = 0x50;
	memcpy(pseudo, f + 26, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	pseudo[10] = (uint8_t)(l4len >> 8);
	pseudo[11] = (uint8_t)l4len;
	/* What a CHECKSUM_PARTIAL sender leaves: the pseudo-header sum. */
	ph = fold(sum16(pseudo, sizeof(pseudo), 0));
	f[l4 + 16] = (uint8_t)(ph >> 8);
	f[l4 + 17] = (uint8_t)ph;
	assert_int_equal(wire_csum_complete(f, sizeof(f), l4, 16), 0);
	/* Verify as a receiver does: pseudo-header + segment sums to 0xffff. */
	assert_int_equal(fold(sum16(f + l4, l4len, sum16(pseudo, sizeof(pseudo), 0))), 0xffff);
	/* Offsets outside the frame. */
	assert_int_equal(wire_csum_complete(f, sizeof(f), sizeof(f), 0), -EINVAL);
	assert_int_equal(wire_csum_complete(f, sizeof(f), l4, l4len - 1), -EINVAL);
	assert_int_equal(wire_csum_complete(f, sizeof(f), l4, l4len - 2), 0);
}

/*
 * A TCP super-frame (Ethernet, IPv4 or IPv6, TCP with 12 bytes of options,
 * payload bytes i * 7 + 1) with FIN|PSH|CWR|ACK set, cut at mss: every
 * segment has valid checksums, the right lengths, sequence numbers, IPv4
 * ids and flags, and the payloads put back together equal the original.
 */
static void check_tso(bool v4, size_t payload, size_t mss)
{
	const size_t l3 = 14, l4 = l3 + (v4 ? 20 : 40), hlen = l4 + 32;
	size_t len = hlen + payload, got = 0, nseg = (payload + mss - 1) / mss, idx;
	uint8_t *f = calloc(1, len), *back = calloc(1, payload), seg[2048];
	const uint32_t seq0 = 0xfffff000; /* wraps within the frame */

	assert_non_null(f);
	assert_non_null(back);
	f[12] = v4 ? 0x08 : 0x86;
	f[13] = v4 ? 0x00 : 0xdd;
	if (v4) {
		f[l3] = 0x45;
		f[l3 + 4] = 0xab; /* id 0xabcd */
		f[l3 + 5] = 0xcd;
		f[l3 + 8] = 64;
		f[l3 + 9] = 6;
		memcpy(f + l3 + 12, (uint8_t[]){198, 18, 5, 1, 198, 18, 5, 2}, 8);
	} else {
		f[l3] = 0x60;
		f[l3 + 6] = 6;
		f[l3 + 7] = 64;
		f[l3 + 8] = 0x20;
		f[l3 + 24] = 0x20;
		f[l3 + 23] = 1;
		f[l3 + 39] = 2;
	}
	f[l4 + 4] = (uint8_t)(seq0 >> 24);
	f[l4 + 5] = (uint8_t)(seq0 >> 16);
	f[l4 + 6] = (uint8_t)(seq0 >> 8);
	f[l4 + 7] = (uint8_t)seq0;
	f[l4 + 12] = 0x80;			/* 32-byte header */
	f[l4 + 13] = 0x80 | 0x10 | 0x08 | 0x01; /* CWR ACK PSH FIN */
	for (size_t i = 0; i < payload; i++)
		f[hlen + i] = (uint8_t)(i * 7 + 1);
	for (idx = 0;; idx++) {
		ssize_t n = wire_tso_segment(f, len, mss, idx, seg, sizeof(seg));
		size_t seglen, tcplen;
		uint32_t sum, seq;
		uint8_t *t = seg + l4;

		assert_true(n >= 0);
		if (n == 0)
			break;
		seglen = (size_t)n - hlen;
		assert_int_equal(seglen, idx + 1 < nseg ? mss : payload - (nseg - 1) * mss);
		tcplen = (size_t)n - l4;
		if (v4) {
			assert_int_equal(seg[l3 + 2] << 8 | seg[l3 + 3], (size_t)n - l3);
			assert_int_equal(seg[l3 + 4] << 8 | seg[l3 + 5], (0xabcd + idx) & 0xffff);
			assert_int_equal(fold(sum16(seg + l3, 20, 0)), 0xffff);
			sum = sum16(seg + l3 + 12, 8, 0);
		} else {
			assert_int_equal(seg[l3 + 4] << 8 | seg[l3 + 5], tcplen);
			sum = sum16(seg + l3 + 8, 32, 0);
		}
		sum += 6 + (uint32_t)tcplen;
		assert_int_equal(fold(sum16(t, tcplen, sum)), 0xffff);
		seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
		assert_int_equal(seq, (uint32_t)(seq0 + idx * mss));
		assert_int_equal(!!(t[13] & 0x80), idx == 0);
		assert_int_equal(!!(t[13] & 0x09), idx + 1 == nseg);
		assert_true(t[13] & 0x10);
		memcpy(back + got, seg + hlen, seglen);
		got += seglen;
	}
	assert_int_equal(idx, nseg);
	assert_int_equal(got, payload);
	assert_memory_equal(back, f + hlen, payload);
	free(f);
	free(back);
}

static void test_tso(void **state)
{
	uint8_t junk[100] = {0}, out[2048];

	check_tso(true, 10000, 1448);
	check_tso(true, 2896, 1448);
	check_tso(false, 5001, 1428);
	check_tso(false, 100, 1428);
	/* Not IP, not TCP, short, or no room: refused. */
	assert_int_equal(wire_tso_segment(junk, sizeof(junk), 1448, 0, out, sizeof(out)), -EINVAL);
	junk[12] = 0x08;
	junk[14] = 0x45;
	junk[23] = 17;
	assert_int_equal(wire_tso_segment(junk, sizeof(junk), 1448, 0, out, sizeof(out)), -EINVAL);
	junk[23] = 6;
	junk[14 + 20 + 12] = 0xf0; /* TCP header longer than the frame */
	assert_int_equal(wire_tso_segment(junk, 60, 1448, 0, out, sizeof(out)), -EINVAL);
	junk[14 + 20 + 12] = 0x50;
	assert_int_equal(wire_tso_segment(junk, sizeof(junk), 1448, 0, out, 60), -EINVAL);
	assert_int_equal(wire_tso_segment(junk, sizeof(junk), 1448, 0, out, sizeof(out)), 100);
	assert_int_equal(wire_tso_segment(junk, sizeof(junk), 1448, 1, out, sizeof(out)), 0);
	assert_int_equal(wire_tso_segment(junk, 10, 1448, 0, out, sizeof(out)), -EINVAL);
}

/*
 * An Ethernet frame (with a VLAN tag if vlan) carrying IPv4 (DF set) and
 * TCP from 198.18.0.2:40000 to 198.18.1.20:25, l3len bytes above
 * Ethernet, payload bytes i * 3 + 1. Returns its length.
 */
static size_t v4_frame(uint8_t *f, size_t l3len, bool vlan)
{
	size_t l3 = vlan ? 18 : 14;

	memset(f, 0, l3 + l3len);
	memcpy(f, (uint8_t[]){2, 0, 0, 0, 0, 0xaa, 2, 0, 0, 0, 0, 0xbb}, 12);
	if (vlan) {
		f[12] = 0x81;
		f[15] = 7;
	}
	f[l3 - 2] = 0x08;
	f[l3] = 0x45;
	f[l3 + 2] = (uint8_t)(l3len >> 8);
	f[l3 + 3] = (uint8_t)l3len;
	f[l3 + 6] = 0x40; /* DF */
	f[l3 + 8] = 64;
	f[l3 + 9] = 6;
	memcpy(f + l3 + 12, (uint8_t[]){198, 18, 0, 2, 198, 18, 1, 20}, 8);
	f[l3 + 20] = 0x9c; /* 40000 */
	f[l3 + 21] = 0x40;
	f[l3 + 23] = 25;
	for (size_t i = l3 + 24; i < l3 + l3len; i++)
		f[i] = (uint8_t)(i * 3 + 1);
	return l3 + l3len;
}

/*
 * A hop with an MTU of 1280: a 1500-byte packet with DF is answered with
 * ICMP type 3 code 4, next-hop MTU 1280, valid checksums, addresses
 * swapped at both layers, the packet quoted up to 576 bytes of ICMP
 * datagram; what RFC 1812 says never to answer gets 0.
 */
static void test_mtu_icmp(void **state)
{
	static uint8_t f[1600], out[2048];
	const uint8_t router[4] = {198, 18, 0, 1};
	uint32_t src;
	size_t len = v4_frame(f, 1500, false);
	ssize_t n;
	uint8_t *ip = out + 14, *icmp = out + 34;

	memcpy(&src, router, 4);
	assert_int_equal(wire_l3_len(f, len), 1500);
	assert_int_equal(wire_l3_len(f, 10), 0);
	n = wire_mtu_icmp(f, len, 1280, src, out, sizeof(out));
	assert_int_equal(n, 14 + 576);
	assert_memory_equal(out, f + 6, 6);
	assert_memory_equal(out + 6, f, 6);
	assert_int_equal(out[12] << 8 | out[13], 0x0800);
	assert_int_equal(ip[0], 0x45);
	assert_int_equal(ip[2] << 8 | ip[3], 576);
	assert_int_equal(ip[9], 1);
	assert_int_equal(fold(sum16(ip, 20, 0)), 0xffff);
	assert_memory_equal(ip + 12, router, 4);
	assert_memory_equal(ip + 16, f + 14 + 12, 4);
	assert_int_equal(icmp[0], 3);
	assert_int_equal(icmp[1], 4);
	assert_int_equal(icmp[6] << 8 | icmp[7], 1280);
	assert_int_equal(fold(sum16(icmp, 576 - 20, 0)), 0xffff);
	assert_memory_equal(icmp + 8, f + 14, 548);

	/* From the quoted destination when no router address is given. */
	assert_int_equal(wire_mtu_icmp(f, len, 1280, 0, out, sizeof(out)), 14 + 576);
	assert_memory_equal(ip + 12, f + 14 + 16, 4);
	/* Not over the MTU, or out too small. */
	assert_int_equal(wire_mtu_icmp(f, len, 1500, src, out, sizeof(out)), 0);
	assert_int_equal(wire_mtu_icmp(f, len, 1280, src, out, 100), -EINVAL);
	/* A short packet over a tiny MTU quotes all of itself. */
	len = v4_frame(f, 100, false);
	assert_int_equal(wire_mtu_icmp(f, len, 68, src, out, sizeof(out)), 14 + 28 + 100);
	assert_int_equal(fold(sum16(icmp, 8 + 100, 0)), 0xffff);
	assert_memory_equal(icmp + 8, f + 14, 100);
	/* One VLAN tag: kept, and everything moves along by 4 bytes. */
	len = v4_frame(f, 1500, true);
	assert_int_equal(wire_l3_len(f, len), 1500);
	assert_int_equal(wire_mtu_icmp(f, len, 1280, src, out, sizeof(out)), 18 + 576);
	assert_memory_equal(out + 12, f + 12, 6);
	assert_int_equal(out[18 + 20], 3);
	assert_int_equal(fold(sum16(out + 18 + 20, 576 - 20, 0)), 0xffff);

	/* Never answered: no DF, a non-first fragment, an ICMP error, a
	 * multicast destination, a source that is no single host, not IPv4;
	 * an ICMP echo request is. One change to a fresh frame each. */
	static const struct {
		size_t at;
		uint8_t val;
		ssize_t want;
	} cases[] = {
	    {14 + 6, 0, 0},    {14 + 7, 0x10, 0}, {14 + 9, 1, 0},
	    {14 + 16, 239, 0}, {14 + 12, 127, 0}, {14 + 12, 0, 0},
	    {13, 0x06, 0},     {14 + 16, 255, 0}, {14 + 20, 8, 14 + 576},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = v4_frame(f, 1500, false);
		f[cases[i].at] = cases[i].val;
		if (cases[i].at == 14 + 20) /* the echo request: an ICMP packet */
			f[14 + 9] = 1;
		else if (cases[i].at == 14 + 9)
			f[14 + 20] = 3; /* destination unreachable */
		n = wire_mtu_icmp(f, len, 1280, src, out, sizeof(out));
		if (n != cases[i].want)
			fail_msg("byte %zu = %u: got %zd, want %zd", cases[i].at, cases[i].val, n,
				 cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_full),
	    cmocka_unit_test(test_spec_overrides),
	    cmocka_unit_test(test_spec_units),
	    cmocka_unit_test(test_spec_bad),
	    cmocka_unit_test(test_spec_mtu),
	    cmocka_unit_test(test_rates),
	    cmocka_unit_test(test_delay_uniform),
	    cmocka_unit_test(test_jitter_keeps_order),
	    cmocka_unit_test(test_reorder_without_delay),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_rate_limit),
	    cmocka_unit_test(test_burst),
	    cmocka_unit_test(test_overflow),
	    cmocka_unit_test(test_csum),
	    cmocka_unit_test(test_tso),
	    cmocka_unit_test(test_mtu_icmp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
