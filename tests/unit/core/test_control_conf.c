/*
 * test_control_conf.c - the control plane's keys, the session pool's
 * [smtp] keys, and where the host names come from.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/control/dmta_control_conf.h"
#include "core/control/dmta_pool.h"
#include "queue/queue_sched.h"

static void test_defaults(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct dmta_control_conf cc;
	enum dmta_backend_kind be;
	char host[256] = "", buf[256];

	assert_int_equal(dmta_control_conf_load(c, &cc), 0);
	assert_int_equal(cc.mx_tls, SMTP_TLS_OPPORTUNISTIC);
	assert_int_equal(cc.relay_tls, SMTP_TLS_REQUIRED);
	assert_true(cc.relay_verify);
	assert_false(cc.auth_plaintext);
	assert_null(cc.relay_user);
	assert_null(cc.dlog_path);
	assert_int_equal(cc.dlog_max_size, 100 << 20);
	assert_int_equal(cc.dlog_keep, 5);
	assert_int_equal(cc.stop_timeout_ms, 10000);
	assert_int_equal(cc.stats_interval_ms, 1000);
	/* No [queue] myhostname: this host's name. */
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	assert_string_equal(queue_myhostname(c, buf, sizeof(buf)), host);
	assert_int_equal(dmta_delivery_backend(c, &be), 0);
	assert_int_equal(be, DMTA_BACKEND_DPDK);
	assert_int_equal(dmta_conf_warn_unused(c, NULL), 0);
	dmta_conf_free(c);
}

static void test_values_and_errors(void **state)
{
	static const char *const bad[][3] = {
	    {"smtp", "tls", "implicit"}, /* for relays only */
	    {"relay", "tls", "opportunistic"},
	    {"relay", "verify", "perhaps"},
	    {"control", "stats_interval", "100ms"}, /* 0, or 250ms and more */
	    {"control", "stats_interval", "2m"},
	    {"log", "delivery_keep", "101"},
	};
	static const char *const good[][3] = {
	    {"smtp", "tls", "required"},     {"relay", "tls", "implicit"},
	    {"relay", "user", "u"},	     {"control", "stats_interval", "0"},
	    {"log", "delivery", "/l/d.log"}, {"delivery", "backend", "kernel"},
	};
	struct dmta_control_conf cc;
	struct dmta_conf *c = dmta_conf_new();
	enum dmta_backend_kind be;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(dmta_conf_set(c, good[i][0], good[i][1], good[i][2]), 0);
	assert_int_equal(dmta_control_conf_load(c, &cc), 0);
	assert_int_equal(cc.mx_tls, SMTP_TLS_REQUIRED);
	assert_int_equal(cc.relay_tls, SMTP_TLS_IMPLICIT);
	assert_string_equal(cc.relay_user, "u");
	assert_int_equal(cc.stats_interval_ms, 0);
	assert_string_equal(cc.dlog_path, "/l/d.log");
	assert_int_equal(dmta_delivery_backend(c, &be), 0);
	assert_int_equal(be, DMTA_BACKEND_KERNEL);
	dmta_conf_free(c);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = dmta_conf_new();
		assert_int_equal(dmta_conf_set(c, bad[i][0], bad[i][1], bad[i][2]), 0);
		if (dmta_control_conf_load(c, &cc) != -EINVAL)
			fail_msg("[%s] %s = %s: got accepted, want -EINVAL", bad[i][0], bad[i][1],
				 bad[i][2]);
		dmta_conf_free(c);
	}
	c = dmta_conf_new();
	assert_int_equal(dmta_conf_set(c, "delivery", "backend", "netmap"), 0);
	assert_int_equal(dmta_delivery_backend(c, &be), -EINVAL);
	dmta_conf_free(c);
}

/* One name for bounces and EHLO unless helo_name says otherwise. */
static void test_host_names(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct dmta_control_conf cc;
	struct dmta_pool_conf pc;
	char helo[256], buf[256];
	const char *ca;

	assert_int_equal(dmta_conf_set(c, "queue", "myhostname", "mx.example.org"), 0);
	assert_string_equal(queue_myhostname(c, buf, sizeof(buf)), "mx.example.org");
	assert_int_equal(dmta_control_conf_load(c, &cc), 0);
	assert_int_equal(dmta_pool_conf_load(c, &pc, helo, sizeof(helo), &ca), 0);
	assert_string_equal(pc.helo_name, "mx.example.org");
	assert_int_equal(pc.connect_timeout_ms, 30000);
	assert_int_equal(pc.idle_ms, 5000);
	assert_null(ca);

	assert_int_equal(dmta_conf_set(c, "smtp", "helo_name", "out.example.org"), 0);
	assert_int_equal(dmta_conf_set(c, "smtp", "ca_file", "/smtp.pem"), 0);
	assert_int_equal(dmta_pool_conf_load(c, &pc, helo, sizeof(helo), &ca), 0);
	assert_string_equal(pc.helo_name, "out.example.org");
	assert_string_equal(ca, "/smtp.pem");
	/* bounces keep their name */
	assert_string_equal(queue_myhostname(c, buf, sizeof(buf)), "mx.example.org");
	/* The relay's CA file wins over the one for MX hosts. */
	assert_int_equal(dmta_conf_set(c, "relay", "ca_file", "/relay.pem"), 0);
	assert_int_equal(dmta_pool_conf_load(c, &pc, helo, sizeof(helo), &ca), 0);
	assert_string_equal(ca, "/relay.pem");
	/* A name cut to fit stays a string. */
	assert_string_equal(queue_myhostname(c, buf, 5), "mx.e");
	dmta_conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_values_and_errors),
	    cmocka_unit_test(test_host_names),
	};

	dmta_log_init("test_control_conf", DMTA_LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
