/*
 * test_dns_dest.c - MX ordering and shuffling, destinations built and
 * printed (text and JSON), and the resolver's answers from its own parts
 * where no server is needed (literals, routes to addresses, bad names).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dns_dest.h"
#include "core/base/dmta_log.h"
#include "dns/dns_resolver.h"

static void test_mx_sort(void **state)
{
	struct dns_mx_ref mx[6] = {{30, 0}, {10, 1}, {20, 2}, {10, 3}, {0, 4}, {65535, 5}};
	uint64_t rng = 42;

	dns_mx_order(mx, 6, &rng);
	assert_int_equal(mx[0].pref, 0);
	assert_int_equal(mx[1].pref, 10);
	assert_int_equal(mx[2].pref, 10);
	assert_int_equal(mx[3].pref, 20);
	assert_int_equal(mx[4].pref, 30);
	assert_int_equal(mx[5].pref, 65535);
	assert_int_equal(mx[0].idx, 4);
	assert_int_equal(mx[5].idx, 5);
	assert_true((mx[1].idx == 1 && mx[2].idx == 3) || (mx[1].idx == 3 && mx[2].idx == 1));
	dns_mx_order(mx, 0, &rng); /* nothing to do, no crash */
}

static void test_mx_shuffle_fair(void **state)
{
	/* Four equal exchangers between two others: each should come first
	 * among equals about a quarter of the time, and the others never move. */
	unsigned first[4] = {0};
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	const unsigned n = 40000;

	for (unsigned k = 0; k < n; k++) {
		struct dns_mx_ref mx[6] = {{50, 9}, {10, 0}, {10, 1}, {5, 8}, {10, 2}, {10, 3}};

		dns_mx_order(mx, 6, &rng);
		assert_int_equal(mx[0].idx, 8);
		assert_int_equal(mx[5].idx, 9);
		first[mx[1].idx]++;
	}
	for (int i = 0; i < 4; i++)
		if (first[i] < n / 4 * 95 / 100 || first[i] > n / 4 * 105 / 100)
			fail_msg("exchanger %d first %u times of %u, want about %u", i, first[i], n,
				 n / 4);
}

static struct dns_dest *sample(void)
{
	struct in_addr a4[2];
	struct in6_addr a6;
	struct dns_dest_host h[2] = {
	    {.name = "mx1.example.com", .pref = 10, .n_v4 = 2, .v4 = a4, .n_v6 = 1, .v6 = &a6},
	    {.name = "mx\"2.example.com", .pref = 20, .port = 2525},
	};
	struct dns_dest_in in = {
	    .domain = "example.com",
	    .verdict = DNS_VERDICT_OK,
	    .source = DNS_SRC_MX,
	    .status = "2.0.0",
	    .reason = "ok",
	    .ttl = 300,
	    .n_hosts = 2,
	    .n_skipped = 1,
	    .hosts = h,
	};

	inet_pton(AF_INET, "192.0.2.1", &a4[0]);
	inet_pton(AF_INET, "192.0.2.2", &a4[1]);
	inet_pton(AF_INET6, "2001:db8::1", &a6);
	return dns_dest_build(&in);
}

static struct dns_dest *mk(const char *const *names, const uint16_t *prefs, const uint16_t *ports,
			   unsigned n)
{
	struct dns_dest_host h[8];
	struct dns_dest_in in = {
	    .domain = "x.test", .status = "2.0.0", .reason = "ok", .n_hosts = n, .hosts = h};

	for (unsigned i = 0; i < n; i++)
		h[i] = (struct dns_dest_host){.name = names[i], .pref = prefs[i], .port = ports[i]};
	return dns_dest_build(&in);
}

static void test_site(void **state)
{
	static const char *const a[] = {"mx1.p.test", "mx2.p.test", "mx3.p.test"};
	static const char *const b[] = {"mx3.p.test", "mx1.p.test", "mx2.p.test"};
	static const char *const c[] = {"mx1.p.test", "mx2.p.test", "mx4.p.test"};
	static const uint16_t p1[] = {10, 10, 20}, p2[] = {5, 50, 50};
	static const uint16_t port0[] = {0, 0, 0}, port25[] = {25, 25, 25}, port26[] = {26, 0, 0};
	struct dns_dest *da = mk(a, p1, port0, 3), *db = mk(b, p2, port25, 3);
	struct dns_dest *dc = mk(c, p1, port0, 3), *dd = mk(a, p1, port26, 3);
	struct dns_dest *de = mk(a, p1, port0, 0), *df = mk(a, p1, port0, 2);

	/* Same set, any order or preference, port 25 by default: one site. */
	assert_int_equal(da->site, db->site);
	assert_true(da->site != dc->site);
	assert_true(da->site != dd->site);
	assert_true(da->site != df->site);
	assert_int_equal(de->site, 0);
	dns_dest_free(da);
	dns_dest_free(db);
	dns_dest_free(dc);
	dns_dest_free(dd);
	dns_dest_free(de);
	dns_dest_free(df);
}

static char *print(const struct dns_dest *d, bool json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	dns_dest_print(f, d, json);
	fclose(f);
	return buf;
}

static void test_build_and_print(void **state)
{
	struct dns_dest *d = sample();
	char ip[INET6_ADDRSTRLEN], *s;

	assert_non_null(d);
	/* The destination is self-contained: the inputs are gone. */
	assert_string_equal(d->domain, "example.com");
	assert_int_equal(d->n_hosts, 2);
	assert_int_equal(d->hosts[0].n_v4, 2);
	inet_ntop(AF_INET, &d->hosts[0].v4[1], ip, sizeof(ip));
	assert_string_equal(ip, "192.0.2.2");
	inet_ntop(AF_INET6, &d->hosts[0].v6[0], ip, sizeof(ip));
	assert_string_equal(ip, "2001:db8::1");
	assert_int_equal(d->hosts[1].n_v4 + d->hosts[1].n_v6, 0);

	s = print(d, true);
	char want[1024];

	snprintf(want, sizeof(want),
		 "{\"domain\":\"example.com\",\"verdict\":\"ok\",\"status\":\"2.0.0\","
		 "\"reason\":\"ok\",\"source\":\"mx\",\"ttl\":300,\"site\":\"%016lx\","
		 "\"skipped\":1,\"hosts\":["
		 "{\"pref\":10,\"name\":\"mx1.example.com\",\"port\":25,"
		 "\"ipv4\":[\"192.0.2.1\",\"192.0.2.2\"],\"ipv6\":[\"2001:db8::1\"]},"
		 "{\"pref\":20,\"name\":\"mx\\\"2.example.com\",\"port\":2525,\"ipv4\":[],"
		 "\"ipv6\":[]}]}\n",
		 d->site);
	assert_string_equal(s, want);
	free(s);
	s = print(d, false);
	assert_non_null(strstr(s, "example.com: ok 2.0.0 (ok) via mx, ttl 300s, site "));
	assert_non_null(strstr(s, "   10 mx1.example.com 192.0.2.1 192.0.2.2 2001:db8::1\n"));
	assert_non_null(strstr(s, " port 2525"));
	free(s);
	dns_dest_free(d);
}

/* UTF-8 (an SMTPUTF8 domain, a reason quoting it) stays UTF-8 in JSON;
 * control characters are escaped. */
static void test_print_utf8(void **state)
{
	struct dns_dest_in in = {
	    .domain = "b\xc3\xbc"
		      "cher.example",
	    .verdict = DNS_VERDICT_PERM,
	    .source = DNS_SRC_NONE,
	    .status = "5.1.2",
	    .reason = "no such domain: b\xc3\xbc"
		      "cher.example\t(NXDOMAIN)",
	};
	struct dns_dest *d = dns_dest_build(&in);
	char *s;

	assert_non_null(d);
	s = print(d, true);
	if (strcmp(s, "{\"domain\":\"b\xc3\xbc"
		      "cher.example\",\"verdict\":\"permanent\","
		      "\"status\":\"5.1.2\",\"reason\":\"no such domain: "
		      "b\xc3\xbc"
		      "cher.example\\u0009(NXDOMAIN)\",\"source\":\"none\",\"ttl\":0,"
		      "\"site\":\"0000000000000000\",\"skipped\":0,\"hosts\":[]}\n") != 0)
		fail_msg("got %s, want the domain and reason as UTF-8", s);
	free(s);
	dns_dest_free(d);
}

/* The resolver without a server: what it answers from config and syntax. */
static struct dns_dest *got;

static void done(struct dns_dest *d, void *arg)
{
	(void)arg;
	got = d;
}

static struct dns_dest *resolve_now(struct dns_resolver *r, const char *domain)
{
	got = NULL;
	assert_int_equal(dns_resolve(r, domain, done, NULL), 0);
	assert_null(got); /* never from inside dns_resolve() */
	assert_int_equal(dns_resolver_next_timeout_ms(r), 0);
	dns_resolver_tick(r);
	assert_non_null(got);
	return got;
}

static void test_resolver_offline(void **state)
{
	struct dns_config cfg;
	struct dns_resolver *r;
	struct dns_dest *d;
	char err[128];

	dns_config_defaults(&cfg);
	cfg.servers = strdup("127.0.0.1:1"); /* never asked in this test */
	cfg.routes = calloc(2, sizeof(*cfg.routes));
	cfg.routes[0].domain = strdup("internal.test");
	cfg.routes[0].hosts = calloc(2, sizeof(struct dns_route_host));
	assert_int_equal(dns_hostlist_parse("192.0.2.10:2525, [2001:db8::25]", cfg.routes[0].hosts,
					    2, err, sizeof(err)),
			 2);
	cfg.routes[0].n = 2;
	cfg.routes[1].domain = strdup("xn--bcher-kva.example");
	cfg.routes[1].hosts = calloc(1, sizeof(struct dns_route_host));
	assert_int_equal(dns_hostlist_parse("192.0.2.11", cfg.routes[1].hosts, 1, err, sizeof(err)),
			 1);
	cfg.routes[1].n = 1;
	cfg.n_routes = 2;
	r = dns_resolver_new(&cfg, NULL, NULL);
	assert_non_null(r);

	d = resolve_now(r, "[192.0.2.7]");
	assert_int_equal(d->verdict, DNS_VERDICT_OK);
	assert_int_equal(d->source, DNS_SRC_LITERAL);
	assert_int_equal(d->hosts[0].n_v4, 1);
	dns_dest_free(d);

	d = resolve_now(r, "[IPv6:2001:db8::7]");
	assert_int_equal(d->verdict, DNS_VERDICT_TEMP);
	assert_string_equal(d->status, "4.4.4");
	dns_dest_free(d);

	d = resolve_now(r, "[999.1.1.1]");
	assert_int_equal(d->verdict, DNS_VERDICT_PERM);
	assert_string_equal(d->status, "5.1.2");
	dns_dest_free(d);

	static const char *bad[] = {"", ".", "a..b", "-", "exa mple.com", "\x01.com", "x\xff.com"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = resolve_now(r, bad[i]);
		if (d->verdict != DNS_VERDICT_PERM || strcmp(d->status, "5.1.2") != 0)
			fail_msg("\"%s\": got %s %s, want permanent 5.1.2", bad[i],
				 dns_verdict_name(d->verdict), d->status);
		dns_dest_free(d);
	}

	d = resolve_now(r, "INTERNAL.test.");
	assert_int_equal(d->verdict, DNS_VERDICT_OK);
	assert_int_equal(d->source, DNS_SRC_ROUTE);
	assert_string_equal(d->domain, "internal.test");
	assert_int_equal(d->n_hosts, 2);
	assert_int_equal(d->hosts[0].port, 2525);
	assert_int_equal(d->hosts[1].n_v6, 1);
	dns_dest_free(d);

	/* An SMTPUTF8 domain is routed (and would be looked up) by its A-labels. */
	d = resolve_now(r, "b\xc3\xbc"
			   "cher.example");
	assert_int_equal(d->verdict, DNS_VERDICT_OK);
	assert_string_equal(d->domain, "xn--bcher-kva.example");
	assert_string_equal(d->hosts[0].name, "192.0.2.11");
	dns_dest_free(d);

	/* The same from the cache-only path (no record set needed). */
	d = dns_resolve_cached(r, "internal.test");
	assert_non_null(d);
	assert_int_equal(d->n_hosts, 2);
	dns_dest_free(d);
	/* Not cached, and dns_resolve_cached() never queries. */
	assert_null(dns_resolve_cached(r, "example.com"));

	struct dns_stats st;

	dns_resolver_stats(r, &st);
	assert_int_equal(st.queries, 0);
	assert_int_equal(st.cache_misses, 1);
	assert_int_equal(dns_resolver_pending(r), 0);
	assert_int_equal(dns_resolver_next_timeout_ms(r), -1);
	dns_resolver_free(r);
	dns_config_release(&cfg);
}

static unsigned cancelled;

static void done_count(struct dns_dest *d, void *arg)
{
	(void)arg;
	if (d->verdict == DNS_VERDICT_TEMP)
		cancelled++;
	dns_dest_free(d);
}

static void test_resolver_free_cancels(void **state)
{
	struct dns_config cfg;
	struct dns_resolver *r;

	/* Requests outstanding at free: each callback runs once, temporary. */
	dns_config_defaults(&cfg);
	cfg.servers = strdup("127.0.0.1:1");
	cfg.max_in_flight = 2;
	r = dns_resolver_new(&cfg, NULL, NULL);
	assert_non_null(r);
	for (int i = 0; i < 5; i++) {
		char name[32];

		snprintf(name, sizeof(name), "d%d.example", i);
		assert_int_equal(dns_resolve(r, name, done_count, NULL), 0);
	}
	assert_int_equal(dns_resolver_pending(r), 5);
	cancelled = 0;
	dns_resolver_free(r);
	assert_int_equal(cancelled, 5);
	dns_config_release(&cfg);
}

static void test_resolver_bad_servers(void **state)
{
	struct dns_config cfg;

	dns_config_defaults(&cfg);
	cfg.servers = strdup("not-an-address,also bad");
	errno = 0;
	assert_null(dns_resolver_new(&cfg, NULL, NULL));
	assert_int_equal(errno, EINVAL);
	dns_config_release(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_sort),
	    cmocka_unit_test(test_mx_shuffle_fair),
	    cmocka_unit_test(test_build_and_print),
	    cmocka_unit_test(test_print_utf8),
	    cmocka_unit_test(test_site),
	    cmocka_unit_test(test_resolver_offline),
	    cmocka_unit_test(test_resolver_free_cancels),
	    cmocka_unit_test(test_resolver_bad_servers),
	};

	dmta_log_init("test_dns_dest", DMTA_LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
