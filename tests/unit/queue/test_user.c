/*
 * test_user.c - [user NAME] defaults and how a message's X-Dmta-* fields
 * override them.
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

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "queue/queue_egress.h"
#include "queue/queue_user.h"

static struct queue_users *load(struct dmta_conf *c, char *err, size_t errlen)
{
	struct queue_users *us = queue_users_load(c, err, errlen);

	dmta_conf_free(c);
	return us;
}

static void test_user_defaults(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct queue_users *us;
	struct queue_env env = {0};
	char err[256] = "";

	(void)state;
	assert_int_equal(dmta_conf_set(c, "user alice", "pool", "transactional"), 0);
	assert_int_equal(dmta_conf_set(c, "user alice", "priority", "HIGH"), 0);
	assert_int_equal(dmta_conf_set(c, "user alice", "tenant", "shop"), 0);
	assert_int_equal(dmta_conf_set(c, "user bob", "priority", "bulk"), 0);
	assert_int_equal(dmta_conf_set(c, "dest alice", "max_connections", "3"), 0);
	us = load(c, err, sizeof(err)); /* the table outlives the configuration */
	assert_non_null(us);

	assert_int_equal(queue_users_apply(us, "alice", &env), 0);
	assert_string_equal(env.pool, "transactional");
	assert_string_equal(env.tenant, "shop");
	assert_int_equal(env.priority, QUEUE_PRIO_HIGH);
	queue_env_free(&env);

	/* Only what the section sets changes. */
	assert_int_equal(queue_env_set_pool(&env, "kept"), 0);
	assert_int_equal(queue_users_apply(us, "bob", &env), 0);
	assert_string_equal(env.pool, "kept");
	assert_null(env.tenant);
	assert_int_equal(env.priority, QUEUE_PRIO_BULK);
	queue_env_free(&env);

	/* No section, no user: nothing. */
	assert_int_equal(queue_users_apply(us, "carol", &env), 0);
	assert_int_equal(queue_users_apply(us, NULL, &env), 0);
	assert_int_equal(queue_users_apply(NULL, "alice", &env), 0);
	assert_null(env.pool);
	assert_null(env.tenant);
	assert_int_equal(env.priority, QUEUE_PRIO_NORMAL);
	queue_env_free(&env);
	queue_users_free(us);

	/* No configuration at all. */
	us = queue_users_load(NULL, err, sizeof(err));
	assert_non_null(us);
	queue_users_free(us);
}

/* The defaults first, then the message's fields, which win and go. */
static void test_user_take(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct queue_users *us;
	struct queue_env env = {0};
	char err[256] = "";
	char msg[] = "Received: by x\r\n"
		     "X-Dmta-Priority: normal\r\n"
		     "Subject: hi\r\n"
		     "\r\n"
		     "X-Dmta-Priority: bulk\r\n";
	const char *want = "Received: by x\r\n"
			   "Subject: hi\r\n"
			   "\r\n"
			   "X-Dmta-Priority: bulk\r\n";
	const char *why = NULL;
	size_t len = strlen(msg);

	(void)state;
	assert_int_equal(dmta_conf_set(c, "user alice", "priority", "high"), 0);
	assert_int_equal(dmta_conf_set(c, "user alice", "tenant", "shop"), 0);
	us = load(c, err, sizeof(err));
	assert_non_null(us);
	assert_int_equal(queue_users_take(us, "alice", &env, msg, &len, &why), 1);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(msg, want, len);
	assert_int_equal(env.priority, QUEUE_PRIO_NORMAL); /* the field won */
	assert_string_equal(env.tenant, "shop");	   /* the default stayed */
	queue_env_free(&env);
	queue_users_free(us);
}

/* Fixed fields keep the section's value (or the default) whatever the
 * message says; the message loses its fields all the same. */
static void test_user_fixed(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct queue_users *us;
	struct queue_env env = {0};
	char err[256] = "";
	char msg[] = "X-Dmta-Tenant: other\r\n"
		     "X-Dmta-Priority: high\r\n"
		     "X-Dmta-Pool: p2\r\n"
		     "Subject: hi\r\n"
		     "\r\n"
		     "body\r\n";
	const char *why = NULL;
	size_t len = strlen(msg);

	(void)state;
	assert_int_equal(dmta_conf_set(c, "user carol", "tenant", "carol"), 0);
	assert_int_equal(dmta_conf_set(c, "user carol", "fixed", "Tenant,priority"), 0);
	us = load(c, err, sizeof(err));
	assert_non_null(us);
	assert_int_equal(queue_users_take(us, "carol", &env, msg, &len, &why), 3);
	assert_int_equal(len, strlen("Subject: hi\r\n\r\nbody\r\n"));
	assert_memory_equal(msg, "Subject: hi\r\n\r\nbody\r\n", len);
	assert_string_equal(env.tenant, "carol");	   /* the section's */
	assert_int_equal(env.priority, QUEUE_PRIO_NORMAL); /* the default: the section names none */
	assert_string_equal(env.pool, "p2");		   /* not fixed: the field's */
	queue_env_free(&env);

	/* Without fields, the section alone; for another user, nothing fixed. */
	len = 0;
	assert_int_equal(queue_users_take(us, "carol", &env, msg, &len, &why), 0);
	assert_string_equal(env.tenant, "carol");
	queue_env_free(&env);
	strcpy(msg, "X-Dmta-Tenant: dave\r\n\r\n");
	len = strlen(msg);
	assert_int_equal(queue_users_take(us, "dave", &env, msg, &len, &why), 1);
	assert_string_equal(env.tenant, "dave");
	queue_env_free(&env);
	queue_users_free(us);
}

static void test_user_bad(void **state)
{
	static const struct {
		const char *key, *value, *want;
	} bad[] = {
	    {"pool", "two words", "[user alice] pool: 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"tenant", "", "[user alice] tenant: 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"priority", "urgent", "[user alice] priority: want high, normal or bulk"},
	    {"fixed", "tenant, colour",
	     "[user alice] fixed: want a list of pool, priority and tenant"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dmta_conf *c = dmta_conf_new();
		char err[256] = "";

		assert_int_equal(dmta_conf_set(c, "user alice", bad[i].key, bad[i].value), 0);
		errno = 0;
		if (load(c, err, sizeof(err)) != NULL)
			fail_msg("[user alice] %s = '%s': got accepted, want refused", bad[i].key,
				 bad[i].value);
		assert_int_equal(errno, EINVAL);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("got \"%s\", want it to hold \"%s\"", err, bad[i].want);
	}
}

/* A [user NAME] pool must name a [pool NAME]; the implicit source may
 * make one. */
static void test_user_pools(void **state)
{
	struct dmta_conf *c = dmta_conf_new();
	struct queue_users *us;
	struct queue_egress *eg;
	char err[256] = "", why[180] = "";

	(void)state;
	assert_int_equal(dmta_conf_set(c, "user alice", "pool", "transactional"), 0);
	assert_int_equal(dmta_conf_set(c, "user bob", "priority", "bulk"), 0);
	us = queue_users_load(c, err, sizeof(err));
	assert_non_null(us);

	assert_int_equal(queue_egress_load(c, &eg, err, sizeof(err)), 0);
	assert_int_equal(queue_users_check_pools(us, eg, c, err, sizeof(err)), -EINVAL);
	if (strstr(err, "[user alice] pool: 'transactional': no [pool transactional]") == NULL)
		fail_msg("got \"%s\"", err);
	assert_int_equal(queue_egress_check_pool(eg, "transactional", why, sizeof(why)), -EBADMSG);
	assert_string_equal(why,
			    "pool 'transactional': no [pool transactional] in the configuration");
	assert_int_equal(queue_egress_check_pool(eg, NULL, why, sizeof(why)), 0);
	queue_egress_free(eg);

	/* No [source] sections: a pool of the implicit one. */
	assert_int_equal(dmta_conf_set(c, "pool transactional", "sources", "default"), 0);
	assert_int_equal(queue_egress_load(c, &eg, err, sizeof(err)), 0);
	assert_int_equal(queue_users_check_pools(us, eg, c, err, sizeof(err)), 0);
	assert_int_equal(queue_egress_check_pool(eg, "transactional", why, sizeof(why)), 0);
	assert_int_equal(queue_egress_check_pool(eg, "bulk", why, sizeof(why)), -EBADMSG);
	queue_egress_free(eg);
	queue_users_free(us);
	dmta_conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_user_defaults), cmocka_unit_test(test_user_take),
	    cmocka_unit_test(test_user_fixed),	  cmocka_unit_test(test_user_bad),
	    cmocka_unit_test(test_user_pools),
	};

	dmta_log_init("test_user", DMTA_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
