/*
 * test_dns_cache.c - the record-set cache: hits, expiry, replacement, LRU
 * eviction under the size bound, and the TTL clamps it is fed with.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dns_cache.h"
#include "dns/dns_resolver.h"

static struct dns_rrset *mk(enum dns_rr_status st, uint32_t ttl)
{
	struct dns_rrset *rr = dns_rrset_new_status(DNS_T_MX, st, ttl, NULL);

	assert_non_null(rr);
	return rr;
}

static void test_get_put_expire(void **state)
{
	struct dns_cache *c = dns_cache_new(10);
	struct dns_cache_stats st;
	struct dns_rrset *a = mk(DNS_RR_OK, 60);

	assert_null(dns_cache_get(c, "example.com", DNS_T_MX, 0));
	assert_int_equal(dns_cache_put(c, "example.com", DNS_T_MX, a, 60000), 0);
	assert_ptr_equal(dns_cache_get(c, "example.com", DNS_T_MX, 59999), a);
	/* The key is (name, type). */
	assert_null(dns_cache_get(c, "example.com", DNS_T_A, 1));
	assert_null(dns_cache_get(c, "example.org", DNS_T_MX, 1));
	/* Expired at exactly its deadline, and dropped. */
	assert_null(dns_cache_get(c, "example.com", DNS_T_MX, 60000));
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.expired, 1);
	dns_cache_free(c);
}

static void test_replace_and_refs(void **state)
{
	struct dns_cache *c = dns_cache_new(10);
	struct dns_rrset *a = mk(DNS_RR_OK, 60), *b = mk(DNS_RR_NXDOMAIN, 30);
	struct dns_cache_stats st;

	assert_int_equal(dns_cache_put(c, "x.test", DNS_T_MX, a, 1000), 0);
	dns_rrset_ref(a); /* a job still holds it */
	assert_int_equal(dns_cache_put(c, "x.test", DNS_T_MX, b, 2000), 0);
	assert_int_equal(a->refs, 1); /* the cache let go, the job did not */
	assert_ptr_equal(dns_cache_get(c, "x.test", DNS_T_MX, 1500), b);
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 1);
	dns_rrset_unref(a);
	dns_cache_free(c);
}

static void test_lru_eviction(void **state)
{
	struct dns_cache *c = dns_cache_new(3);
	struct dns_cache_stats st;
	char name[32];

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "d%d.test", i);
		assert_int_equal(dns_cache_put(c, name, DNS_T_A, mk(DNS_RR_OK, 1), 10000), 0);
	}
	/* Touch d0: d1 is now the least recently used. */
	assert_non_null(dns_cache_get(c, "d0.test", DNS_T_A, 1));
	assert_int_equal(dns_cache_put(c, "d3.test", DNS_T_A, mk(DNS_RR_OK, 1), 10000), 0);
	assert_null(dns_cache_get(c, "d1.test", DNS_T_A, 1));
	assert_non_null(dns_cache_get(c, "d0.test", DNS_T_A, 1));
	assert_non_null(dns_cache_get(c, "d2.test", DNS_T_A, 1));
	assert_non_null(dns_cache_get(c, "d3.test", DNS_T_A, 1));
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.evictions, 1);

	/* Many more: the bound holds. */
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "many%d.test", i);
		assert_int_equal(dns_cache_put(c, name, DNS_T_AAAA, mk(DNS_RR_OK, 1), 10000), 0);
	}
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.evictions, 1001);
	assert_non_null(dns_cache_get(c, "many999.test", DNS_T_AAAA, 1));
	dns_cache_free(c);

	errno = 0;
	assert_null(dns_cache_new(0));
	assert_int_equal(errno, EINVAL);
}

/* The negative-entry gauge follows puts, replacements, expiry and eviction. */
static void test_negative_gauge(void **state)
{
	struct dns_cache *c = dns_cache_new(2);
	struct dns_cache_stats st;

	assert_int_equal(dns_cache_put(c, "nx.test", DNS_T_MX, mk(DNS_RR_NXDOMAIN, 1), 1000), 0);
	assert_int_equal(dns_cache_put(c, "ok.test", DNS_T_MX, mk(DNS_RR_OK, 1), 5000), 0);
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.negative, 1);
	/* Replaced by a positive answer: no longer negative. */
	assert_int_equal(dns_cache_put(c, "nx.test", DNS_T_MX, mk(DNS_RR_OK, 1), 1000), 0);
	dns_cache_stats(c, &st);
	assert_int_equal(st.negative, 0);
	assert_int_equal(dns_cache_put(c, "nx.test", DNS_T_MX, mk(DNS_RR_NODATA, 1), 1000), 0);
	assert_int_equal(dns_cache_put(c, "tf.test", DNS_T_A, mk(DNS_RR_TEMP, 1), 1000), 0);
	dns_cache_stats(c, &st); /* ok.test was evicted */
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.negative, 2);
	/* Expired on the way. */
	assert_null(dns_cache_get(c, "tf.test", DNS_T_A, 1000));
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.negative, 1);
	dns_cache_free(c);
}

static void test_ttl_clamp(void **state)
{
	struct dns_config cfg;

	dns_config_defaults(&cfg);
	cfg.ttl_min = 30;
	cfg.ttl_max = 3600;
	cfg.neg_ttl_max = 900;
	cfg.tempfail_ttl = 5;
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_OK, 0), 30);
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_OK, 300), 300);
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_OK, 86400), 3600);
	/* RFC 2308: negative answers by their own (lower) ceiling. */
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_NXDOMAIN, 86400), 900);
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_NODATA, 60), 60);
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_NODATA, 0), 30);
	/* Temporary failures: a fixed, short memory, whatever came. */
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_TEMP, 86400), 5);
	cfg.tempfail_ttl = 0;
	assert_int_equal(dns_ttl_clamp(&cfg, DNS_RR_TEMP, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_put_expire), cmocka_unit_test(test_replace_and_refs),
	    cmocka_unit_test(test_lru_eviction),   cmocka_unit_test(test_negative_gauge),
	    cmocka_unit_test(test_ttl_clamp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
