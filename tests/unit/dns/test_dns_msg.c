/*
 * test_dns_msg.c - the reply parser: answers, CNAME chains, negative TTLs,
 * null MX, and malformed replies (every truncation of every message).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "dns/dns_msg.h"

/* A tiny message writer: names are written uncompressed unless given as a
 * pointer with ptr(). */
struct w {
	uint8_t b[65536];
	size_t n;
	size_t an, ns;
};

static void put8(struct w *w, unsigned v)
{
	w->b[w->n++] = (uint8_t)v;
}

static void put16(struct w *w, unsigned v)
{
	put8(w, v >> 8);
	put8(w, v & 0xff);
}

static void put32(struct w *w, uint32_t v)
{
	put16(w, v >> 16);
	put16(w, v & 0xffff);
}

static void putname(struct w *w, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		put8(w, (unsigned)l);
		memcpy(w->b + w->n, name, l);
		w->n += l;
		name += l + (dot ? 1 : 0);
	}
	put8(w, 0);
}

static void begin(struct w *w, unsigned rcode, const char *qname, uint16_t qtype)
{
	memset(w, 0, sizeof(*w));
	put16(w, 0x1234);
	put16(w, 0x8180 | rcode); /* QR RD RA */
	put16(w, 1);
	put16(w, 0); /* ancount, patched */
	put16(w, 0); /* nscount, patched */
	put16(w, 0);
	putname(w, qname);
	put16(w, qtype);
	put16(w, 1);
}

static void patch(struct w *w)
{
	w->b[6] = (uint8_t)(w->an >> 8);
	w->b[7] = (uint8_t)w->an;
	w->b[8] = (uint8_t)(w->ns >> 8);
	w->b[9] = (uint8_t)w->ns;
}

/* An answer record with rdata built by the caller after this call. */
static size_t rr_begin(struct w *w, const char *owner, uint16_t type, uint32_t ttl, bool auth)
{
	size_t at;

	if (owner)
		putname(w, owner);
	else
		put16(w, 0xc00c); /* pointer to the question name */
	put16(w, type);
	put16(w, 1);
	put32(w, ttl);
	at = w->n;
	put16(w, 0);
	if (auth)
		w->ns++;
	else
		w->an++;
	patch(w);
	return at;
}

static void rr_end(struct w *w, size_t at)
{
	size_t l = w->n - at - 2;

	w->b[at] = (uint8_t)(l >> 8);
	w->b[at + 1] = (uint8_t)l;
}

static void add_a(struct w *w, const char *owner, uint32_t ttl, const char *ip)
{
	size_t at = rr_begin(w, owner, DNS_T_A, ttl, false);

	inet_pton(AF_INET, ip, w->b + w->n);
	w->n += 4;
	rr_end(w, at);
}

static void add_mx(struct w *w, const char *owner, uint32_t ttl, unsigned pref, const char *host)
{
	size_t at = rr_begin(w, owner, DNS_T_MX, ttl, false);

	put16(w, pref);
	putname(w, host);
	rr_end(w, at);
}

static void add_cname(struct w *w, const char *owner, uint32_t ttl, const char *target)
{
	size_t at = rr_begin(w, owner, DNS_T_CNAME, ttl, false);

	putname(w, target);
	rr_end(w, at);
}

static void add_soa(struct w *w, const char *owner, uint32_t ttl, uint32_t minimum)
{
	size_t at = rr_begin(w, owner, DNS_T_SOA, ttl, true);

	putname(w, "ns.example");
	putname(w, "host.example");
	put32(w, 1);
	put32(w, 3600);
	put32(w, 600);
	put32(w, 86400);
	put32(w, minimum);
	rr_end(w, at);
}

static struct dns_rrset *parse_ok(struct w *w, uint16_t qtype)
{
	struct dns_rrset *rr = NULL;
	int rc = dns_msg_parse(w->b, w->n, qtype, &rr);

	if (rc != 0)
		fail_msg("dns_msg_parse: got %d, want 0", rc);
	assert_non_null(rr);
	return rr;
}

static void test_a_answer(void **state)
{
	struct w w;
	struct dns_rrset *rr;
	char ip[16];

	begin(&w, 0, "Mail.Example.COM", DNS_T_A);
	add_a(&w, NULL, 300, "192.0.2.1");
	add_a(&w, "mail.example.com", 200, "192.0.2.2");
	add_a(&w, "other.example.com", 10, "192.0.2.99"); /* not ours: ignored */
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->status, DNS_RR_OK);
	assert_int_equal(rr->n, 2);
	assert_int_equal(rr->ttl, 200);
	inet_ntop(AF_INET, dns_rrset_v4(rr, 1), ip, sizeof(ip));
	assert_string_equal(ip, "192.0.2.2");
	dns_rrset_unref(rr);
}

static void test_unusable_addresses(void **state)
{
	struct w w;
	struct dns_rrset *rr;
	char ip[16];

	begin(&w, 0, "mx.example.com", DNS_T_A);
	add_a(&w, NULL, 300, "0.0.0.0");
	add_a(&w, NULL, 300, "224.0.0.1");
	add_a(&w, NULL, 300, "255.255.255.255");
	add_a(&w, NULL, 300, "192.0.2.1");
	add_a(&w, NULL, 300, "127.0.0.1"); /* loopback stays: labs use it */
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->status, DNS_RR_OK);
	assert_int_equal(rr->n, 2);
	assert_int_equal(rr->dropped, 3);
	inet_ntop(AF_INET, dns_rrset_v4(rr, 0), ip, sizeof(ip));
	assert_string_equal(ip, "192.0.2.1");
	dns_rrset_unref(rr);

	begin(&w, 0, "mx.example.com", DNS_T_A);
	add_a(&w, NULL, 300, "0.0.0.0");
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->status, DNS_RR_NODATA); /* nothing usable: none */
	assert_int_equal(rr->n, 0);
	dns_rrset_unref(rr);
}

static void test_mx_answer(void **state)
{
	struct w w;
	struct dns_rrset *rr;

	begin(&w, 0, "example.com", DNS_T_MX);
	add_mx(&w, NULL, 3600, 20, "MX2.example.com");
	add_mx(&w, NULL, 600, 10, "mx1.example.com");
	rr = parse_ok(&w, DNS_T_MX);
	assert_int_equal(rr->status, DNS_RR_OK);
	assert_int_equal(rr->n, 2);
	assert_int_equal(rr->ttl, 600);
	assert_false(rr->null_mx);
	assert_int_equal(dns_rrset_mx(rr, 0)->pref, 20);
	assert_string_equal(dns_rrset_mx_name(rr, 0), "mx2.example.com");
	assert_string_equal(dns_rrset_mx_name(rr, 1), "mx1.example.com");
	dns_rrset_unref(rr);
}

/*
 * 512 exchangers with long names (compressed in the message, whole in the
 * record set): more than 64 KiB of names, each found at its place.
 */
static void test_many_long_mx(void **state)
{
	char suffix[256], name[300];
	struct w w;
	struct dns_rrset *rr;
	size_t suffix_at = 0;

	(void)state;
	snprintf(suffix, sizeof(suffix), "%060d.%060d.%060d.example.com", 1, 2, 3);
	begin(&w, 0, "example.com", DNS_T_MX);
	for (unsigned i = 0; i < 512; i++) {
		size_t at = rr_begin(&w, NULL, DNS_T_MX, 600, false);
		char label[8];

		put16(&w, i);
		snprintf(label, sizeof(label), "m%04u", i);
		put8(&w, (unsigned)strlen(label));
		memcpy(w.b + w.n, label, strlen(label));
		w.n += strlen(label);
		if (i == 0) {
			suffix_at = w.n;
			putname(&w, suffix);
		} else {
			put16(&w, 0xc000 | (unsigned)suffix_at); /* the suffix, compressed */
		}
		rr_end(&w, at);
	}
	rr = parse_ok(&w, DNS_T_MX);
	if (rr->n != 512)
		fail_msg("got %u exchangers, want 512", rr->n);
	for (unsigned i = 0; i < rr->n; i++) {
		snprintf(name, sizeof(name), "m%04u.%s", i, suffix);
		if (strcmp(dns_rrset_mx_name(rr, i), name) != 0)
			fail_msg("exchanger %u: got \"%.40s...\", want \"%.40s...\"", i,
				 dns_rrset_mx_name(rr, i), name);
		if (dns_rrset_mx(rr, i)->pref != i)
			fail_msg("exchanger %u: got preference %u", i, dns_rrset_mx(rr, i)->pref);
	}
	dns_rrset_unref(rr);
}

/*
 * 2000 exchangers, the best one last: every record of the answer is read,
 * not only the first few hundred (which made the best one unseen and the
 * domain look as if none of its exchangers had an address).
 */
static void test_thousands_of_mx(void **state)
{
	struct w w;
	struct dns_rrset *rr;
	unsigned best = 0;

	(void)state;
	begin(&w, 0, "example.com", DNS_T_MX);
	for (unsigned i = 0; i < 2000; i++) {
		size_t at = rr_begin(&w, NULL, DNS_T_MX, 600, false);
		char label[8];

		put16(&w, i == 1999 ? 0 : 10 + i);
		snprintf(label, sizeof(label), "m%04u", i);
		put8(&w, (unsigned)strlen(label));
		memcpy(w.b + w.n, label, strlen(label));
		w.n += strlen(label);
		put16(&w, 0xc00c); /* .example.com */
		rr_end(&w, at);
	}
	rr = parse_ok(&w, DNS_T_MX);
	if (rr->n != 2000)
		fail_msg("got %u exchangers of 2000", rr->n);
	for (unsigned i = 1; i < rr->n; i++)
		if (dns_rrset_mx(rr, i)->pref < dns_rrset_mx(rr, best)->pref)
			best = i;
	if (strcmp(dns_rrset_mx_name(rr, best), "m1999.example.com") != 0)
		fail_msg("best exchanger %s, want m1999.example.com", dns_rrset_mx_name(rr, best));
	dns_rrset_unref(rr);
}

static void test_null_mx(void **state)
{
	struct w w;
	struct dns_rrset *rr;

	begin(&w, 0, "example.com", DNS_T_MX);
	add_mx(&w, NULL, 3600, 0, "");
	rr = parse_ok(&w, DNS_T_MX);
	assert_int_equal(rr->status, DNS_RR_OK);
	assert_true(rr->null_mx);
	assert_int_equal(rr->n, 0);
	dns_rrset_unref(rr);

	/* "." among real exchangers is dropped, the rest stands. */
	begin(&w, 0, "example.com", DNS_T_MX);
	add_mx(&w, NULL, 3600, 0, "");
	add_mx(&w, NULL, 3600, 10, "mx.example.com");
	rr = parse_ok(&w, DNS_T_MX);
	assert_false(rr->null_mx);
	assert_int_equal(rr->n, 1);
	assert_string_equal(dns_rrset_mx_name(rr, 0), "mx.example.com");
	dns_rrset_unref(rr);
}

static void test_cname_chain(void **state)
{
	struct w w;
	struct dns_rrset *rr;

	/* Records out of order: the chain is followed by name, not position. */
	begin(&w, 0, "www.example.com", DNS_T_A);
	add_a(&w, "c.example.net", 900, "198.51.100.7");
	add_cname(&w, "b.example.org", 50, "c.example.net");
	add_cname(&w, NULL, 800, "b.example.org");
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->status, DNS_RR_OK);
	assert_int_equal(rr->n, 1);
	assert_int_equal(rr->hops, 2);
	assert_int_equal(rr->ttl, 50); /* RFC 2181: the smallest along the chain */
	dns_rrset_unref(rr);

	/* A chain that stops at a CNAME: NODATA naming the target to ask next. */
	begin(&w, 0, "www.example.com", DNS_T_A);
	add_cname(&w, NULL, 100, "elsewhere.example.net");
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->status, DNS_RR_NODATA);
	assert_non_null(rr->cname);
	assert_string_equal(rr->cname, "elsewhere.example.net");
	assert_int_equal(rr->hops, 1);
	dns_rrset_unref(rr);

	/* A loop ends (each record used once) as a dangling chain. */
	begin(&w, 0, "a.example", DNS_T_A);
	add_cname(&w, "a.example", 100, "b.example");
	add_cname(&w, "b.example", 100, "a.example");
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->status, DNS_RR_NODATA);
	assert_string_equal(rr->cname, "a.example");
	dns_rrset_unref(rr);

	/* Longer than DNS_CNAME_MAX in one reply: a temporary failure. */
	begin(&w, 0, "n0.example", DNS_T_A);
	for (int i = 0; i <= DNS_CNAME_MAX; i++) {
		char o[32], t[32];

		snprintf(o, sizeof(o), "n%d.example", i);
		snprintf(t, sizeof(t), "n%d.example", i + 1);
		add_cname(&w, o, 100, t);
	}
	add_a(&w, "n9.example", 100, "192.0.2.9");
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->status, DNS_RR_TEMP);
	assert_string_equal(rr->why, "CNAME chain too long");
	dns_rrset_unref(rr);
}

static void test_negative(void **state)
{
	struct w w;
	struct dns_rrset *rr;

	begin(&w, 3, "nope.example.com", DNS_T_MX);
	add_soa(&w, "example.com", 900, 300);
	rr = parse_ok(&w, DNS_T_MX);
	assert_int_equal(rr->status, DNS_RR_NXDOMAIN);
	assert_int_equal(rr->ttl, 300); /* RFC 2308 §5: min(SOA TTL, MINIMUM) */
	dns_rrset_unref(rr);

	begin(&w, 0, "example.com", DNS_T_AAAA);
	add_soa(&w, "example.com", 120, 3600);
	rr = parse_ok(&w, DNS_T_AAAA);
	assert_int_equal(rr->status, DNS_RR_NODATA);
	assert_int_equal(rr->ttl, 120);
	assert_null(rr->cname);
	dns_rrset_unref(rr);

	/* No SOA: a zero negative TTL (the cache applies its floor). */
	begin(&w, 0, "example.com", DNS_T_AAAA);
	rr = parse_ok(&w, DNS_T_AAAA);
	assert_int_equal(rr->status, DNS_RR_NODATA);
	assert_int_equal(rr->ttl, 0);
	dns_rrset_unref(rr);

	/* RFC 2181 §8: a TTL with the top bit set counts as zero. */
	begin(&w, 0, "example.com", DNS_T_A);
	add_a(&w, NULL, 0x80000001u, "192.0.2.1");
	rr = parse_ok(&w, DNS_T_A);
	assert_int_equal(rr->ttl, 0);
	dns_rrset_unref(rr);
}

static void test_rcodes(void **state)
{
	static const struct {
		unsigned rcode;
		const char *why;
	} cases[] = {
	    {1, "FORMERR from DNS server"}, {2, "SERVFAIL from DNS server"},
	    {4, "NOTIMP from DNS server"},  {5, "REFUSED by DNS server"},
	    {9, "unexpected DNS rcode"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct w w;
		struct dns_rrset *rr;

		begin(&w, cases[i].rcode, "example.com", DNS_T_MX);
		rr = parse_ok(&w, DNS_T_MX);
		assert_int_equal(rr->status, DNS_RR_TEMP);
		assert_string_equal(rr->why, cases[i].why);
		dns_rrset_unref(rr);
	}
}

static void expect_bad(const uint8_t *m, size_t n, uint16_t qtype, const char *what)
{
	struct dns_rrset *rr = (struct dns_rrset *)(uintptr_t)1;
	int rc = dns_msg_parse(m, n, qtype, &rr);

	if (rc != -EBADMSG || rr != NULL)
		fail_msg("%s: got %d, want -EBADMSG", what, rc);
}

static void test_malformed(void **state)
{
	struct w w;

	begin(&w, 0, "example.com", DNS_T_MX);
	add_mx(&w, NULL, 60, 10, "mx.example.com");
	expect_bad(w.b, w.n, DNS_T_A, "question of another type");
	w.b[2] &= 0x7f;
	expect_bad(w.b, w.n, DNS_T_MX, "not a reply (QR clear)");

	/* A compression pointer to itself. */
	begin(&w, 0, "example.com", DNS_T_A);
	{
		size_t at = w.n;

		put16(&w, 0xc000 | (unsigned)at);
		put16(&w, DNS_T_A);
		put16(&w, 1);
		put32(&w, 60);
		put16(&w, 4);
		put32(&w, 0xc0000201);
		w.an = 1;
		patch(&w);
	}
	expect_bad(w.b, w.n, DNS_T_A, "pointer loop");

	/* An A record of the wrong size. */
	begin(&w, 0, "example.com", DNS_T_A);
	{
		size_t at = rr_begin(&w, NULL, DNS_T_A, 60, false);

		put16(&w, 0x0102);
		rr_end(&w, at);
	}
	expect_bad(w.b, w.n, DNS_T_A, "A rdata of 2 bytes");

	/* MX rdata whose name runs past rdlength. */
	begin(&w, 0, "example.com", DNS_T_MX);
	{
		size_t at = rr_begin(&w, NULL, DNS_T_MX, 60, false);

		put16(&w, 10);
		putname(&w, "mx.example.com");
		rr_end(&w, at);
		w.b[at + 1] -= 3;
	}
	expect_bad(w.b, w.n, DNS_T_MX, "MX name longer than its rdata");

	/* Labels with a control byte or a dot are refused. */
	begin(&w, 0, "example.com", DNS_T_MX);
	add_mx(&w, NULL, 60, 10, "mx.example.com");
	w.b[w.n - 15] = 0x01; /* a byte inside "mx" */
	expect_bad(w.b, w.n, DNS_T_MX, "control byte in a name");
}

/*
 * Every prefix of a valid reply placed at the very end of a page followed
 * by an inaccessible page: the parser either rejects it or parses it, and
 * never reads past the end (ASan or the guard page would say).
 */
static void test_truncations(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *map =
	    mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct w w;

	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);

	begin(&w, 0, "www.example.com", DNS_T_MX);
	add_cname(&w, NULL, 100, "mail.example.com");
	add_mx(&w, "mail.example.com", 100, 10, "mx1.example.com");
	add_mx(&w, "mail.example.com", 100, 20, "mx2.example.com");
	add_soa(&w, "example.com", 100, 100);
	for (size_t n = 0; n <= w.n; n++) {
		uint8_t *p = map + pg - n;
		struct dns_rrset *rr = NULL;
		int rc;

		memcpy(p, w.b, n);
		rc = dns_msg_parse(p, n, DNS_T_MX, &rr);
		if (n < w.n) {
			if (rc != -EBADMSG)
				fail_msg("prefix of %zu/%zu bytes: got %d, want -EBADMSG", n, w.n,
					 rc);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(rr->n, 2);
		}
		dns_rrset_unref(rr);
	}
	/* And every single-byte corruption: no crash, no over-read. */
	for (size_t i = 0; i < w.n; i++) {
		for (unsigned v = 0; v < 256; v += 17) {
			uint8_t *p = map + pg - w.n;
			struct dns_rrset *rr = NULL;

			memcpy(p, w.b, w.n);
			p[i] = (uint8_t)v;
			(void)dns_msg_parse(p, w.n, DNS_T_MX, &rr);
			dns_rrset_unref(rr);
		}
	}
	munmap(map, (size_t)pg * 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_answer),	    cmocka_unit_test(test_unusable_addresses),
	    cmocka_unit_test(test_mx_answer),	    cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_cname_chain),	    cmocka_unit_test(test_negative),
	    cmocka_unit_test(test_rcodes),	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_truncations),	    cmocka_unit_test(test_many_long_mx),
	    cmocka_unit_test(test_thousands_of_mx),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
