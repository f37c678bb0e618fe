/*
 * test_dns_conf.c - [dns], [routes] and [relay]: host lists, domain names,
 * route matching, defaults and errors.
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
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_log.h"
#include "dns/dns_conf.h"

static void test_hostlist(void **state)
{
	struct dns_route_host h[4];
	char err[128], ip[INET6_ADDRSTRLEN];
	int n;

	n = dns_hostlist_parse(" 198.18.1.10:2525 ,MX2.Example.Test, [2001:db8::1]:26,[10.0.0.1]",
			       h, 4, err, sizeof(err));
	assert_int_equal(n, 4);
	assert_int_equal(h[0].family, AF_INET);
	assert_int_equal(h[0].port, 2525);
	inet_ntop(AF_INET, &h[0].addr.v4, ip, sizeof(ip));
	assert_string_equal(ip, "198.18.1.10");
	assert_int_equal(h[1].family, 0);
	assert_int_equal(h[1].port, 0);
	assert_string_equal(h[1].name, "mx2.example.test");
	assert_int_equal(h[2].family, AF_INET6);
	assert_int_equal(h[2].port, 26);
	assert_int_equal(h[3].family, AF_INET);
	assert_int_equal(h[3].port, 0);

	static const char *bad[] = {
	    "",	    "a,,b",	 "host:",  "host:0",   "host:65536", "host:12x",
	    "[::1", "[nope]:25", "[::1]x", "bad host", "a..b",	     "a,b,c,d,e",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		n = dns_hostlist_parse(bad[i], h, 4, err, sizeof(err));
		if (n != -EINVAL || err[0] == '\0')
			fail_msg("\"%s\": got %d (%s), want -EINVAL with a reason", bad[i], n, err);
	}
}

static void test_name_canon(void **state)
{
	char out[DNS_NAME_MAX + 1];
	char long_label[80], long_name[400];

	assert_int_equal(dns_name_canon("Example.COM.", out), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(dns_name_canon("_dmarc.x-y.test", out), 0);
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_int_equal(dns_name_canon(long_label, out), -EINVAL);
	long_label[63] = '\0';
	assert_int_equal(dns_name_canon(long_label, out), 0);
	snprintf(long_name, sizeof(long_name), "%s.%s.%s.%s", long_label, long_label, long_label,
		 long_label);
	assert_int_equal(dns_name_canon(long_name, out), -EINVAL); /* 255 > 253 */
	assert_int_equal(dns_name_canon("a..b", out), -EINVAL);
	assert_int_equal(dns_name_canon(".a", out), -EINVAL);
	assert_int_equal(dns_name_canon("", out), -EINVAL);
	assert_int_equal(dns_name_canon("-a.test", out), -EINVAL);
	assert_int_equal(dns_name_canon("a-.test", out), -EINVAL);
	assert_int_equal(dns_name_canon("a.test-", out), -EINVAL);
	assert_int_equal(dns_name_canon("a-b.test", out), 0);
}

static void test_idna(void **state)
{
	char out[DNS_NAME_MAX + 1];

	assert_int_equal(dns_name_canon_idna("B\xc3\xbc"
					     "cher.Example",
					     out),
			 0);
	assert_string_equal(out, "xn--bcher-kva.example");
	assert_int_equal(dns_name_canon_idna("plain.Example.", out), 0);
	assert_string_equal(out, "plain.example");
	assert_int_equal(dns_name_canon_idna("bad\xff.example", out), -EINVAL); /* not UTF-8 */
	assert_int_equal(dns_name_canon_idna("a..\xc3\xbc", out), -EINVAL);
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/dmta-test-dnsconf-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_load(void **state)
{
	char err[256];
	char *path = write_tmp("[dns]\nservers = 198.18.53.1, 198.18.53.2:5353\ntimeout = 2s\n"
			       "tries = 3\nttl_min = 10s\nttl_max = 1h\nnegative_ttl_max = 10m\n"
			       "tempfail_ttl = 0\ncache_size = 500\nmax_in_flight = 32\n"
			       "max_mx = 5\nmax_addrs = 4\nipv6 = no\n"
			       "local_names = MX.Example.test., b\xc3\xbc"
			       "cher.example\n"
			       "[routes]\nexample.test = 198.18.1.10:2525, mx2.example.test\n"
			       ".corp.test = relay.corp.test:587\ncorp.test = 192.0.2.1\n");
	struct dmta_conf *conf = dmta_conf_load(path, err, sizeof(err));
	struct dns_config cfg;
	const struct dns_route *r;

	assert_non_null(conf);
	assert_int_equal(dns_config_load(&cfg, conf), 0);
	assert_string_equal(cfg.servers, "198.18.53.1,198.18.53.2:5353");
	assert_int_equal(cfg.timeout_ms, 2000);
	assert_int_equal(cfg.tries, 3);
	assert_int_equal(cfg.ttl_min, 10);
	assert_int_equal(cfg.ttl_max, 3600);
	assert_int_equal(cfg.neg_ttl_max, 600);
	assert_int_equal(cfg.tempfail_ttl, 0);
	assert_int_equal(cfg.cache_size, 500);
	assert_int_equal(cfg.max_in_flight, 32);
	assert_int_equal(cfg.max_mx, 5);
	assert_int_equal(cfg.max_addrs, 4);
	assert_false(cfg.ipv6);
	assert_int_equal(cfg.n_local, 2);
	assert_true(dns_config_is_local(&cfg, "mx.example.test"));
	assert_true(dns_config_is_local(&cfg, "xn--bcher-kva.example"));
	assert_false(dns_config_is_local(&cfg, "example.test"));
	assert_int_equal(cfg.n_routes, 3);
	assert_int_equal(cfg.relay.n, 0);

	r = dns_config_route(&cfg, "example.test");
	assert_non_null(r);
	assert_int_equal(r->n, 2);
	assert_int_equal(r->hosts[0].port, 2525);
	assert_null(dns_config_route(&cfg, "sub.example.test")); /* exact only */
	r = dns_config_route(&cfg, "a.b.corp.test");
	assert_non_null(r);
	assert_true(r->subdomains);
	assert_string_equal(r->hosts[0].name, "relay.corp.test");
	r = dns_config_route(&cfg, "corp.test"); /* the exact entry, not the dotted one */
	assert_non_null(r);
	assert_false(r->subdomains);
	assert_null(dns_config_route(&cfg, "xcorp.test"));
	assert_null(dns_config_route(&cfg, "other.test"));
	dns_config_release(&cfg);
	dmta_conf_free(conf);
	unlink(path);
	free(path);

	/* Defaults: no file at all. Under test the system resolver is refused
	 * (DMTA_DNS_NO_SYSTEM); without that guard the default is taken. */
	conf = dmta_conf_new();
	setenv("DMTA_DNS_NO_SYSTEM", "1", 1);
	assert_int_not_equal(dns_config_load(&cfg, conf), 0);
	dns_config_release(&cfg);
	unsetenv("DMTA_DNS_NO_SYSTEM");
	assert_int_equal(dns_config_load(&cfg, conf), 0);
	assert_null(cfg.servers);
	assert_int_equal(cfg.timeout_ms, 5000);
	assert_int_equal(cfg.max_mx, 10);
	assert_true(cfg.ipv6);
	dns_config_release(&cfg);
	dmta_conf_free(conf);
}

static void test_relay_and_errors(void **state)
{
	struct dmta_conf *conf = dmta_conf_new();
	struct dns_config cfg;

	assert_int_equal(dmta_conf_set(conf, "relay", "host", "smtp.example.net:587"), 0);
	assert_int_equal(dns_config_load(&cfg, conf), 0);
	assert_int_equal(cfg.relay.n, 1);
	assert_int_equal(cfg.relay.hosts[0].port, 587);
	dns_config_release(&cfg);
	dmta_conf_free(conf);

	static const char *bad[][3] = {
	    {"relay", "host", "smtp.example.net:99999"},
	    {"routes", "bad..domain", "mx.example.test"},
	    {"routes", "example.test", ""},
	    {"dns", "tries", "0"},
	    {"dns", "timeout", "forever"},
	    {"dns", "max_mx", "1000"},
	    {"dns", "cache_size", "0"},
	    {"dns", "ipv6", "perhaps"},
	    {"dns", "local_names", "a.test,,b.test"},
	    {"dns", "local_names", "bad name"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		conf = dmta_conf_new();
		assert_int_equal(dmta_conf_set(conf, bad[i][0], bad[i][1], bad[i][2]), 0);
		if (dns_config_load(&cfg, conf) != -EINVAL)
			fail_msg("[%s] %s = %s: got accepted, want -EINVAL", bad[i][0], bad[i][1],
				 bad[i][2]);
		dns_config_release(&cfg);
		dmta_conf_free(conf);
	}
	conf = dmta_conf_new();
	assert_int_equal(dmta_conf_set(conf, "dns", "ttl_min", "2h"), 0);
	assert_int_equal(dmta_conf_set(conf, "dns", "ttl_max", "1h"), 0);
	assert_int_equal(dns_config_load(&cfg, conf), -EINVAL);
	dns_config_release(&cfg);
	dmta_conf_free(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostlist),
	    cmocka_unit_test(test_name_canon),
	    cmocka_unit_test(test_idna),
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_relay_and_errors),
	};

	dmta_log_init("test_dns_conf", DMTA_LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
