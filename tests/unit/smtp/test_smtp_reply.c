/*
 * test_smtp_reply.c - the SMTP reply parser: valid and malformed replies,
 * every split point, chained partial parses, limits; the enhanced status
 * code parser and the status of a recorded reply text.
 *
 * Each input is copied to the very end of a page followed by an unreadable
 * page, so any read past the given length faults at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtp/smtp_reply.h"

#define GUARD_AREA (64 * 1024)

static char *area;

/* Copy n bytes so that they end where the unreadable page starts. */
static const char *at_edge(const char *s, size_t n)
{
	assert_true(n <= GUARD_AREA);
	char *p = area + GUARD_AREA - n;
	memcpy(p, s, n);
	return p;
}

static int setup(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, GUARD_AREA + (size_t)pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + GUARD_AREA, (size_t)pg, PROT_NONE), 0);
	area = m;
	return 0;
}

struct good {
	const char *in;
	size_t reply_len; /* 0: all of in */
	int code;
	unsigned nlines;
	const char *text;
	int esc[3];
};

static const struct good goods[] = {
    {"220 mx.example ESMTP\r\n", 0, 220, 1, "mx.example ESMTP", {0, 0, 0}},
    {"250 OK\r\n", 0, 250, 1, "OK", {0, 0, 0}},
    {"250\r\n", 0, 250, 1, "", {0, 0, 0}},
    {"250\n", 0, 250, 1, "", {0, 0, 0}},
    {"250 \r\n", 0, 250, 1, "", {0, 0, 0}},
    {"354 go ahead\n", 0, 354, 1, "go ahead", {0, 0, 0}},
    {"250 2.1.0 Ok\r\n", 0, 250, 1, "2.1.0 Ok", {2, 1, 0}},
    {"550 5.1.1 <x@y>: Recipient address rejected\r\n",
     0,
     550,
     1,
     "5.1.1 <x@y>: Recipient address rejected",
     {5, 1, 1}},
    {"452 4.5.3 Too many recipients\r\n", 0, 452, 1, "4.5.3 Too many recipients", {4, 5, 3}},
    {"550 4.1.1 class mismatch\r\n", 0, 550, 1, "4.1.1 class mismatch", {0, 0, 0}},
    {"250 2.100.999\r\n", 0, 250, 1, "2.100.999", {2, 100, 999}},
    {"250 2.1000.1 too many digits\r\n", 0, 250, 1, "2.1000.1 too many digits", {0, 0, 0}},
    {"250 2.1.0x no space\r\n", 0, 250, 1, "2.1.0x no space", {0, 0, 0}},
    {"250 2.01.0 leading zero\r\n", 0, 250, 1, "2.01.0 leading zero", {0, 0, 0}},
    {"250 2.1.0\tOk\r\n", 0, 250, 1, "2.1.0\tOk", {2, 1, 0}},
    {"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
     0,
     250,
     4,
     "mx.example",
     {0, 0, 0}},
    {"250-a\n250-b\r\n250 c\n", 0, 250, 3, "a", {0, 0, 0}},
    {"250-first\r\n250\r\n", 0, 250, 2, "first", {0, 0, 0}},
    {"250 OK\r\n354 next reply\r\n", 8, 250, 1, "OK", {0, 0, 0}},
    {"250-x\r\n250 y\r\n250 z\r\n", 14, 250, 2, "x", {0, 0, 0}},
    {"421 4.4.2 bye \xc3\xa9t\xc3\xa9\r\n", 0, 421, 1, "4.4.2 bye \xc3\xa9t\xc3\xa9", {4, 4, 2}},
    {"559 top of range\r\n", 0, 559, 1, "top of range", {0, 0, 0}},
    {"200 bottom\r\n", 0, 200, 1, "bottom", {0, 0, 0}},
};

static void check_good(const struct good *g, const struct smtp_reply *r, const char *buf)
{
	size_t want = g->reply_len ? g->reply_len : strlen(g->in);

	assert_int_equal(r->raw_len, want);
	assert_ptr_equal(r->raw, buf);
	assert_int_equal(r->code, g->code);
	assert_int_equal(r->nlines, g->nlines);
	assert_int_equal(r->text_len, strlen(g->text));
	assert_memory_equal(r->text, g->text, r->text_len);
	assert_int_equal(r->esc_class, g->esc[0]);
	assert_int_equal(r->esc_subject, g->esc[1]);
	assert_int_equal(r->esc_detail, g->esc[2]);
	if (g->esc[0]) {
		assert_ptr_equal(r->esc, r->text);
		assert_true(r->esc_len >= 5);
	}
}

static void test_good_whole(void **state)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		size_t n = strlen(g->in);
		const char *b = at_edge(g->in, n);
		struct smtp_reply r;
		int rc = smtp_reply_parse(b, n, &r, 0);

		if (rc < 0)
			fail_msg("case %zu: got %d, want consumed", i, rc);
		check_good(g, &r, b);
	}
}

/* Every prefix shorter than the reply is incomplete, parsed fresh. */
static void test_good_every_prefix(void **state)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		size_t want = g->reply_len ? g->reply_len : strlen(g->in);
		struct smtp_reply r;

		for (size_t k = 0; k < want; k++) {
			const char *b = at_edge(g->in, k);
			int rc = smtp_reply_parse(b, k, &r, 0);

			if (rc != -2)
				fail_msg("case %zu prefix %zu: got %d, want -2", i, k, rc);
		}
	}
}

/* Split at every point: parse the prefix, then the whole with last_len. */
static void test_good_every_split(void **state)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		size_t n = strlen(g->in);
		size_t want = g->reply_len ? g->reply_len : n;

		for (size_t k = 1; k < want; k++) {
			const char *b = at_edge(g->in, n);
			struct smtp_reply r;

			/* The prefix lives at the same address, as it would in a
			 * receive buffer that grows. */
			assert_int_equal(smtp_reply_parse(b, k, &r, 0), -2);
			int rc = smtp_reply_parse(b, n, &r, k);
			if (rc != (int)want)
				fail_msg("case %zu split %zu: got %d, want %zu", i, k, rc, want);
			check_good(g, &r, b);
		}
	}
}

/* One byte at a time, each call passing the previous length. */
static void test_good_byte_by_byte(void **state)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		size_t n = strlen(g->in);
		size_t want = g->reply_len ? g->reply_len : n;
		const char *b = at_edge(g->in, n);
		struct smtp_reply r;
		size_t last = 0;
		int rc = -2;

		for (size_t k = 1; k <= n; k++) {
			rc = smtp_reply_parse(b, k, &r, last);
			if (rc != -2)
				break;
			last = k;
		}
		if (rc != (int)want)
			fail_msg("case %zu: got %d, want %zu", i, rc, want);
		check_good(g, &r, b);
	}
}

static const char *const bads[] = {
    "HTTP/1.1 400 Bad Request\r\n",
    "25O OK\r\n",
    "150 one-digit class out of range\r\n",
    "650 class out of range\r\n",
    "260 second digit out of range\r\n",
    "2500 four digits\r\n",
    "250x junk separator\r\n",
    "250-a\r\n251 b\r\n",
    "250-a\r\n25", /* fine so far: must stay incomplete, tested apart */
    "250 nul \0 inside\r\n",
    "250 bare\rcr\r\n",
    "250\r\r\n",
    "\r\n",
    "\n",
    " 250 leading space\r\n",
    "250-a\r\nxyz\r\n",
};
static const size_t bad_lens[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0};

static void test_bad(void **state)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		size_t n = bad_lens[i] ? bad_lens[i] : strlen(bads[i]);
		const char *b = at_edge(bads[i], n);
		struct smtp_reply r;
		int rc = smtp_reply_parse(b, n, &r, 0);
		int want = (i == 8) ? -2 : -1;

		if (rc != want)
			fail_msg("bad case %zu: got %d, want %d", i, rc, want);
		if (want == -2)
			continue;
		/* Fed byte by byte it must end malformed and never succeed. */
		size_t last = 0;
		for (size_t k = 1; k <= n; k++) {
			rc = smtp_reply_parse(b, k, &r, last);
			if (rc >= 0)
				fail_msg("bad case %zu prefix %zu: got %d", i, k, rc);
			if (rc == -1)
				break;
			last = k;
		}
		if (rc != -1)
			fail_msg("bad case %zu byte by byte: got %d, want -1", i, rc);
	}
}

/* Garbage is refused at its first bytes, not after a whole line. */
static void test_bad_early(void **state)
{
	struct smtp_reply r;
	const char *b = at_edge("HELLO", 1);

	assert_int_equal(smtp_reply_parse(b, 1, &r, 0), -1);
	b = at_edge("250-a\r\n251", 10);
	assert_int_equal(smtp_reply_parse(b, 10, &r, 0), -1);
	b = at_edge("250 a\rb", 7);
	assert_int_equal(smtp_reply_parse(b, 7, &r, 0), -1);
	assert_int_equal(smtp_reply_parse(b, 6, &r, 0), -2);
	assert_int_equal(smtp_reply_parse(b, 7, &r, 6), -1);
}

static void test_long_line(void **state)
{
	static char buf[SMTP_REPLY_LINE_MAX + 16];
	struct smtp_reply r;

	/* Exactly the limit, ending included: accepted. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "250 ", 4);
	buf[SMTP_REPLY_LINE_MAX - 2] = '\r';
	buf[SMTP_REPLY_LINE_MAX - 1] = '\n';
	const char *b = at_edge(buf, SMTP_REPLY_LINE_MAX);
	assert_int_equal(smtp_reply_parse(b, SMTP_REPLY_LINE_MAX, &r, 0), SMTP_REPLY_LINE_MAX);
	assert_int_equal(r.text_len, SMTP_REPLY_LINE_MAX - 6);

	/* One more: refused, whole or as it arrives. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "250 ", 4);
	buf[SMTP_REPLY_LINE_MAX - 1] = '\r';
	buf[SMTP_REPLY_LINE_MAX] = '\n';
	b = at_edge(buf, SMTP_REPLY_LINE_MAX + 1);
	assert_int_equal(smtp_reply_parse(b, SMTP_REPLY_LINE_MAX + 1, &r, 0), -1);
	size_t last = 0;
	int rc = -2;
	size_t k;
	for (k = 1; k <= SMTP_REPLY_LINE_MAX + 1 && rc == -2; k++) {
		rc = smtp_reply_parse(b, k, &r, last);
		last = k;
	}
	assert_int_equal(rc, -1);
	assert_true(k - 1 <= SMTP_REPLY_LINE_MAX);
}

static void test_long_reply(void **state)
{
	static char buf[SMTP_REPLY_MAX + 2048];
	size_t n = 0;
	struct smtp_reply r;

	/* Many short lines: over SMTP_REPLY_MAX_LINES. */
	for (unsigned i = 0; i <= SMTP_REPLY_MAX_LINES; i++) {
		memcpy(buf + n, "250-x\r\n", 7);
		n += 7;
	}
	memcpy(buf + n, "250 x\r\n", 7);
	n += 7;
	const char *b = at_edge(buf, n);
	assert_int_equal(smtp_reply_parse(b, n, &r, 0), -1);
	/* Chained in two halves the count is redone and still refused. */
	assert_int_equal(smtp_reply_parse(b, n / 2, &r, 0), -2);
	assert_int_equal(smtp_reply_parse(b, n, &r, n / 2), -1);

	/* Exactly at the line limit: accepted, and counted the same both ways. */
	n = 0;
	for (unsigned i = 0; i + 1 < SMTP_REPLY_MAX_LINES; i++) {
		memcpy(buf + n, "250-x\r\n", 7);
		n += 7;
	}
	memcpy(buf + n, "250 x\r\n", 7);
	n += 7;
	b = at_edge(buf, n);
	assert_int_equal(smtp_reply_parse(b, n, &r, 0), (int)n);
	assert_int_equal(r.nlines, SMTP_REPLY_MAX_LINES);
	assert_int_equal(smtp_reply_parse(b, n / 3, &r, 0), -2);
	assert_int_equal(smtp_reply_parse(b, n, &r, n / 3), (int)n);
	assert_int_equal(r.nlines, SMTP_REPLY_MAX_LINES);

	/* Long lines: over SMTP_REPLY_MAX bytes in all. */
	n = 0;
	while (n < SMTP_REPLY_MAX + 10) {
		memcpy(buf + n, "250-", 4);
		memset(buf + n + 4, 'y', 994);
		memcpy(buf + n + 998, "\r\n", 2);
		n += 1000;
	}
	b = at_edge(buf, n);
	assert_int_equal(smtp_reply_parse(b, n, &r, 0), -1);
}

static void test_next_line(void **state)
{
	const char *in = "250-mx.example\r\n250-PIPELINING\n250-SIZE 100\r\n250\r\n";
	const char *want[] = {"mx.example", "PIPELINING", "SIZE 100", ""};
	struct smtp_reply r;
	size_t off = 0, tl, i = 0;
	const char *t;

	assert_int_equal(smtp_reply_parse(in, strlen(in), &r, 0), (int)strlen(in));
	while (smtp_reply_next_line(&r, &off, &t, &tl)) {
		assert_true(i < 4);
		assert_int_equal(tl, strlen(want[i]));
		assert_memory_equal(t, want[i], tl);
		i++;
	}
	assert_int_equal(i, 4);
}

/* A reply that was incomplete at last_len and needs many more calls with
 * the receive buffer growing in odd steps. */
static void test_chained_steps(void **state)
{
	const char *in =
	    "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n";
	size_t n = strlen(in);

	for (size_t step = 1; step < 9; step++) {
		const char *b = at_edge(in, n);
		struct smtp_reply r;
		size_t last = 0, k = 0;
		int rc = -2;

		while (rc == -2) {
			k = k + step > n ? n : k + step;
			rc = smtp_reply_parse(b, k, &r, last);
			last = k;
		}
		assert_int_equal(rc, (int)n);
		assert_int_equal(r.nlines, 4);
	}
}

struct esc_case {
	const char *in;
	int want; /* bytes consumed, or -1 */
	int esc[3];
};

static const struct esc_case escs[] = {
    {"2.0.0", 5, {2, 0, 0}},
    {"5.1.1 no such user", 5, {5, 1, 1}},
    {"4.7.0\tTLS", 5, {4, 7, 0}},
    {"4.4.2\r\n", 5, {4, 4, 2}},
    {"5.1.1\n", 5, {5, 1, 1}},
    {"2.100.999", 9, {2, 100, 999}},
    {"5.0.10 x", 6, {5, 0, 10}},
    {"5.999.999", 9, {5, 999, 999}},
    {"5.7.26 unauthenticated", 6, {5, 7, 26}},
    /* Malformed: the class. */
    {"1.0.0", -1, {0}},
    {"3.0.0", -1, {0}},
    {"6.0.0", -1, {0}},
    {"0.0.0", -1, {0}},
    {"55.1.1", -1, {0}},
    {"x.1.1", -1, {0}},
    {" 5.1.1", -1, {0}},
    /* Malformed: short or missing parts and dots. */
    {"", -1, {0}},
    {"5", -1, {0}},
    {"5.", -1, {0}},
    {"5.1", -1, {0}},
    {"5.1.", -1, {0}},
    {"5..1", -1, {0}},
    {"5.1..", -1, {0}},
    {"5-1-1", -1, {0}},
    {"5,1.1", -1, {0}},
    {"5.1,1", -1, {0}},
    {"5.a.1", -1, {0}},
    {"5.1.b", -1, {0}},
    /* Malformed: over 999, leading zeros. */
    {"5.1000.1", -1, {0}},
    {"5.1.1000", -1, {0}},
    {"5.01.1", -1, {0}},
    {"5.1.01", -1, {0}},
    {"5.00.0", -1, {0}},
    {"5.1.000", -1, {0}},
    /* Malformed: what follows. */
    {"5.1.1x", -1, {0}},
    {"5.1.1:", -1, {0}},
    {"5.1.1.2", -1, {0}},
    {"5.1.1-", -1, {0}},
};

static void test_esc_parse(void **state)
{
	for (size_t i = 0; i < sizeof(escs) / sizeof(escs[0]); i++) {
		const struct esc_case *c = &escs[i];
		size_t n = strlen(c->in);
		struct smtp_esc e = {-7, -7, -7};
		int rc = smtp_esc_parse(at_edge(c->in, n), n, &e);

		if (rc != c->want)
			fail_msg("\"%s\": got %d, want %d", c->in, rc, c->want);
		if (rc < 0) {
			if (e.cls != -7 || e.subject != -7 || e.detail != -7)
				fail_msg("\"%s\": malformed, yet the result was written", c->in);
			continue;
		}
		if (e.cls != c->esc[0] || e.subject != c->esc[1] || e.detail != c->esc[2])
			fail_msg("\"%s\": got %d.%d.%d, want %d.%d.%d", c->in, e.cls, e.subject,
				 e.detail, c->esc[0], c->esc[1], c->esc[2]);
	}
}

/* The length counts, not a NUL: every prefix of a code is malformed. */
static void test_esc_parse_prefixes(void **state)
{
	const char *in = "5.123.456 text";
	struct smtp_esc e;

	for (size_t n = 0; n < 9; n++) {
		int rc = smtp_esc_parse(at_edge(in, n), n, &e);

		if (rc != -1 && !(n == 7 || n == 8))
			fail_msg("\"%.*s\": got %d, want -1", (int)n, in, rc);
	}
	/* "5.123.4" and "5.123.45" are codes of their own. */
	assert_int_equal(smtp_esc_parse(at_edge(in, 7), 7, &e), 7);
	assert_int_equal(e.detail, 4);
	assert_int_equal(smtp_esc_parse(at_edge(in, 9), 9, &e), 9);
	assert_int_equal(e.detail, 456);
	assert_int_equal(smtp_esc_parse(NULL, 5, &e), -1);
}

struct status_case {
	const char *in;
	int want; /* smtp_reply_status()'s return */
	const char *status;
};

static const struct status_case statuses[] = {
    {"550 5.1.1 no such user", 1, "5.1.1"},
    {"451 4.7.1 later", 1, "4.7.1"},
    {"250 2.1.5 Ok", 1, "2.1.5"},
    {"554 5.7.1 see 1.2.3.4", 1, "5.7.1"},
    {"550-5.1.1 first\r\n550 5.1.1 last", 1, "5.1.1"},
    {"550 user unknown", 0, "5.0.0"},
    {"550 4.1.1 wrong class", 0, "5.0.0"},
    {"550 5.01.1 leading zero", 0, "5.0.0"},
    {"421", 0, "4.0.0"},
    {"250\r\n", 0, "2.0.0"},
    {"4.4.7 delivery time expired", 1, "4.4.7"},
    {"5.4.4 no route", 1, "5.4.4"},
    {"mx.example[192.0.2.1]: 454 4.7.0 TLS failed", 1, "4.7.0"},
    {"mx.example[192.0.2.1]: 535 5.7.8 authentication failed", 1, "5.7.8"},
    {"mx.example[192.0.2.1]: 421 too busy", 0, "4.0.0"},
    {"mx.example[192.0.2.1]: connect: Connection refused", -1, NULL},
    {"mx.example[192.0.2.1]: timed out", -1, NULL},
    {"[192.0.2.1]: 454 4.7.0 no host name", -1, NULL},
    {"mx[]: 454 4.7.0 no address", -1, NULL},
    {"a b[192.0.2.1]: 454 4.7.0 space in the name", -1, NULL},
    {"mx[a[b]: 454 4.7.0 two brackets", -1, NULL},
    {"mx[192.0.2.1]:454 4.7.0 no space", -1, NULL},
    {"mx[1]: mx[2]: 454 4.7.0 two hosts", -1, NULL},
    {"5500 5.1.1 four digits", -1, NULL},
    {"600 6.0.0 out of range", -1, NULL},
    {"199 1.0.0 out of range", -1, NULL},
    {"connect failed", -1, NULL},
    {"", -1, NULL},
};

static void test_reply_status(void **state)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		const struct status_case *c = &statuses[i];
		size_t n = strlen(c->in);
		struct smtp_esc e = {-7, -7, -7};
		char got[SMTP_ESC_STRLEN];
		int rc = smtp_reply_status(at_edge(c->in, n), n, &e);

		if (rc != c->want)
			fail_msg("\"%s\": got %d, want %d", c->in, rc, c->want);
		if (rc < 0) {
			if (e.cls != -7)
				fail_msg("\"%s\": none, yet the result was written", c->in);
			continue;
		}
		smtp_esc_format(&e, got, sizeof(got));
		if (strcmp(got, c->status) != 0)
			fail_msg("\"%s\": got %s, want %s", c->in, got, c->status);
	}
	assert_int_equal(smtp_reply_status(NULL, 0, NULL), -1);
}

/* Only len bytes count: a code cut short is the class alone. */
static void test_reply_status_len(void **state)
{
	const char *in = "550 5.1.1 no such user";
	struct smtp_esc e;
	char got[SMTP_ESC_STRLEN];

	assert_int_equal(smtp_reply_status(at_edge(in, 3), 3, &e), 0);
	assert_string_equal(smtp_esc_format(&e, got, sizeof(got)), "5.0.0");
	assert_int_equal(smtp_reply_status(at_edge(in, 8), 8, &e), 0);
	assert_int_equal(smtp_reply_status(at_edge(in, 9), 9, &e), 1);
	assert_string_equal(smtp_esc_format(&e, got, sizeof(got)), "5.1.1");
	assert_int_equal(smtp_reply_status(at_edge(in, 2), 2, &e), -1);
}

static void test_esc_format(void **state)
{
	struct smtp_esc big = {5, 999, 999}, small = {2, 0, 0};
	char buf[SMTP_ESC_STRLEN];

	assert_string_equal(smtp_esc_format(&big, buf, sizeof(buf)), "5.999.999");
	assert_string_equal(smtp_esc_format(&small, buf, sizeof(buf)), "2.0.0");
	/* Too small: empty, never cut. */
	assert_string_equal(smtp_esc_format(&big, buf, sizeof(buf) - 1), "");
	assert_string_equal(smtp_esc_format(&small, buf, 5), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_whole),
	    cmocka_unit_test(test_good_every_prefix),
	    cmocka_unit_test(test_good_every_split),
	    cmocka_unit_test(test_good_byte_by_byte),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_bad_early),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_long_reply),
	    cmocka_unit_test(test_next_line),
	    cmocka_unit_test(test_chained_steps),
	    cmocka_unit_test(test_esc_parse),
	    cmocka_unit_test(test_esc_parse_prefixes),
	    cmocka_unit_test(test_reply_status),
	    cmocka_unit_test(test_reply_status_len),
	    cmocka_unit_test(test_esc_format),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
