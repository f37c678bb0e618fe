/*
 * test_reload.c - what a reload may change: the fixed sections and keys
 * found between two configurations, [dest DOMAIN] sections listed once
 * each, and the scheduler taking new limits for destinations it knows
 * while its shards stay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/base/dmta_conf.h"
#include "core/control/dmta_reload.h"
#include "queue/queue_sched.h"

static struct dmta_conf *conf_of(const char *const *kv)
{
	struct dmta_conf *c = dmta_conf_new();

	assert_non_null(c);
	for (; kv[0] != NULL; kv += 3)
		assert_int_equal(dmta_conf_set(c, kv[0], kv[1], kv[2]), 0);
	return c;
}

static void test_fixed(void **state)
{
	static const char *const a[] = {
	    "eal",  "args",	   "-l 0-1",	      "smtp", "helo_name", "a.test",  "smtp", "tls",
	    "none", "dest x.test", "max_connections", "1",    "queue",	   "workers", "2",    NULL};
	static const char *const b[] = {
	    "eal",   "args",	"-l 0-1",   "smtp",	   "helo_name",	      "a.test",
	    "smtp",  "tls",	"required", "dest x.test", "max_connections", "4",
	    "queue", "workers", "2",	    NULL};
	static const char *const c[] = {
	    "eal",  "args", "-l 0-2", "smtp",	   "helo_name", "b.test",  "smtp", "tls",
	    "none", "port", "device", "net_ring0", "queue",	"workers", "3",	   NULL};
	struct dmta_conf *ca = conf_of(a), *cb = conf_of(b), *cc = conf_of(c);
	char buf[256];
	int n;

	/* What a reload applies ([smtp] tls, [dest]) is not fixed. */
	n = dmta_reload_fixed(ca, cb, dmta_reload_fixed_list, dmta_reload_nfixed, buf, sizeof(buf));
	if (n != 0)
		fail_msg("got %d fixed changes (%s), want 0", n, buf);
	assert_string_equal(buf, "");
	n = dmta_reload_fixed(ca, cc, dmta_reload_fixed_list, dmta_reload_nfixed, buf, sizeof(buf));
	if (n != 4 || strcmp(buf, "[eal], [port], [queue] workers, [smtp] helo_name") != 0)
		fail_msg(
		    "got %d: \"%s\", want 4: \"[eal], [port], [queue] workers, [smtp] helo_name\"",
		    n, buf);
	/* Cut to fit, still terminated. */
	n = dmta_reload_fixed(ca, cc, dmta_reload_fixed_list, dmta_reload_nfixed, buf, 12);
	assert_int_equal(n, 4);
	assert_true(strlen(buf) < 12);
	dmta_conf_free(ca);
	dmta_conf_free(cb);
	dmta_conf_free(cc);
}

/* Families ([user NAME], [dkim DOMAIN], [source NAME], [pool NAME]) and
 * [listen] are read at start: a section changed, added or removed is
 * reported once, by its name. */
static void test_fixed_families(void **state)
{
	static const char *const a[] = {
	    "user alice", "pool",    "p",	    "user bob", "tenant", "b", "pool p",
	    "sources",	  "default", "dest x.test", "rate",	"5/s",	  NULL};
	static const char *const b[] = {
	    "user alice", "pool",    "p",	    "user bob", "tenant", "bb", "pool p",
	    "sources",	  "default", "dest x.test", "rate",	"9/s",	  NULL};
	static const char *const c[] = {
	    "user alice", "pool",    "p",      "user carol", "tenant",	       "c", "pool p",
	    "sources",	  "default", "listen", "smtp",	     "127.0.0.1:2525", NULL};
	struct dmta_conf *ca = conf_of(a), *cb = conf_of(b), *cc = conf_of(c);
	char buf[256];
	int n;

	n = dmta_reload_fixed(ca, ca, dmta_reload_fixed_list, dmta_reload_nfixed, buf, sizeof(buf));
	assert_int_equal(n, 0);
	n = dmta_reload_fixed(ca, cb, dmta_reload_fixed_list, dmta_reload_nfixed, buf, sizeof(buf));
	if (n != 1 || strcmp(buf, "[user bob]") != 0)
		fail_msg("got %d: \"%s\", want 1: \"[user bob]\"", n, buf);
	n = dmta_reload_fixed(ca, cc, dmta_reload_fixed_list, dmta_reload_nfixed, buf, sizeof(buf));
	if (n != 3 || strcmp(buf, "[listen], [user bob], [user carol]") != 0)
		fail_msg("got %d: \"%s\", want 3: \"[listen], [user bob], [user carol]\"", n, buf);
	dmta_conf_free(ca);
	dmta_conf_free(cb);
	dmta_conf_free(cc);
}

static void add_name(const char *section, void *arg)
{
	char *out = arg;

	strcat(out, section);
	strcat(out, ";");
}

static void test_sections(void **state)
{
	static const char *const kv[] = {
	    "dest a.test", "rate", "1",		  "queue",	    "lifetime", "1d", "dest b.test",
	    "rate",	   "2",	   "dest a.test", "max_recipients", "5",	NULL};
	struct dmta_conf *c = conf_of(kv);
	char got[128] = "";

	dmta_conf_sections(c, "dest ", add_name, got);
	assert_string_equal(got, "dest a.test;dest b.test;");
	dmta_conf_free(c);
}

static void nop_env(void *ctx, const struct queue_env *env)
{
}

static void nop_dsn(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
}

static void test_sched(void **state)
{
	static const char *const one[] = {"queue",	     "workers", "4", "dest x.test",
					  "max_connections", "1",	NULL};
	static const char *const four[] = {"queue",
					   "workers",
					   "1",
					   "dest x.test",
					   "max_connections",
					   "4",
					   "queue",
					   "dest_max_connections",
					   "7",
					   NULL};
	struct queue_sched_ops ops = {.store = nop_env, .dsn = nop_dsn, .done = nop_env};
	struct dmta_conf *c1 = conf_of(one), *c4 = conf_of(four);
	struct queue_sched_conf sc;
	struct queue_sched *s;
	struct queue_dest_limits l;
	unsigned shard;

	assert_int_equal(queue_sched_conf_load(c1, &sc), 0);
	s = queue_sched_new(&sc, &ops, 1);
	assert_non_null(s);
	assert_int_equal(queue_sched_limits(s, "x.test").max_connections, 1);
	shard = queue_sched_shard(s, "x.test");
	assert_int_equal(queue_sched_conf_load(c4, &sc), 0);
	queue_sched_reconfigure(s, &sc);
	l = queue_sched_limits(s, "x.test");
	if (l.max_connections != 4)
		fail_msg("x.test max_connections: got %u, want 4", l.max_connections);
	assert_int_equal(queue_sched_limits(s, "y.test").max_connections, 7);
	/* The shards stay: a destination keeps its worker. */
	assert_int_equal(queue_sched_shard(s, "x.test"), shard);
	queue_sched_free(s);
	dmta_conf_free(c1);
	dmta_conf_free(c4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixed),
	    cmocka_unit_test(test_fixed_families),
	    cmocka_unit_test(test_sections),
	    cmocka_unit_test(test_sched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
