/*
 * test_env.c - the envelope's traffic-control fields (pool, priority,
 * tenant): names, records of both versions, copies.
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

#include "queue/queue_env.h"

/*
 * A record as the version 1 encoder (before pool, priority and tenant)
 * wrote it: sender a@example.org, ENVID "ENV1", RET HDRS, 8BITMIME, qid
 * 2A, two recipients (b@example.net NOTIFY=FAILURE with an ORCPT; and
 * c@example.com deferred twice with a reply).
 */
static const unsigned char v1_record[] = {
    0x44, 0x51, 0x45, 0x56, 0x01, 0x02, 0x00, 0x00, 0xd8, 0x00, 0x00, 0x00, 0xf0, 0x68, 0x2c, 0x49,
    0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x69, 0xc6, 0x0b, 0x16, 0x74, 0x17, 0xd2, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xb8, 0x8e, 0x0f, 0x44, 0x9d, 0x97, 0x17, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0d, 0x00, 0x00, 0x00, 0x61, 0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
    0x67, 0x00, 0x04, 0x00, 0x00, 0x00, 0x45, 0x4e, 0x56, 0x31, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x62,
    0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6e, 0x65, 0x74, 0x00, 0x14, 0x00, 0x00,
    0x00, 0x72, 0x66, 0x63, 0x38, 0x32, 0x32, 0x3b, 0x62, 0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c,
    0x65, 0x2e, 0x6e, 0x65, 0x74, 0x00, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x0d, 0x00, 0x00, 0x00, 0x63, 0x40,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0xff, 0xff, 0xff, 0xff,
    0x13, 0x00, 0x00, 0x00, 0x34, 0x35, 0x31, 0x20, 0x34, 0x2e, 0x37, 0x2e, 0x31, 0x20, 0x74, 0x72,
    0x79, 0x20, 0x6c, 0x61, 0x74, 0x65, 0x72, 0x00,
};

/* Put the record's checksum right after a test changed a byte. */
static void fix_crc(unsigned char *b, size_t len)
{
	uint32_t c = queue_crc32c(queue_crc32c(0, b, 12), b + 16, len - 16);

	for (int i = 0; i < 4; i++)
		b[12 + i] = (unsigned char)(c >> (8 * i));
}

static void test_prio_names(void **state)
{
	(void)state;
	assert_string_equal(queue_prio_name(QUEUE_PRIO_NORMAL), "normal");
	assert_string_equal(queue_prio_name(QUEUE_PRIO_HIGH), "high");
	assert_string_equal(queue_prio_name(QUEUE_PRIO_BULK), "bulk");
	assert_string_equal(queue_prio_name(3), "unknown");
	assert_int_equal(queue_prio_parse("normal"), QUEUE_PRIO_NORMAL);
	assert_int_equal(queue_prio_parse("HIGH"), QUEUE_PRIO_HIGH);
	assert_int_equal(queue_prio_parse("Bulk"), QUEUE_PRIO_BULK);
	assert_int_equal(queue_prio_parse(""), -1);
	assert_int_equal(queue_prio_parse("urgent"), -1);
	assert_int_equal(queue_prio_parse("high "), -1);
	assert_int_equal(queue_prio_parse("1"), -1);
}

static void test_tag_check(void **state)
{
	static const char *bad[] = {"", "a b", "a/b", "pool:1", "é", "a\tb", "a@b", "-x\n"};
	char s[QUEUE_TAG_MAX + 2];
	const char *why = NULL;
	struct queue_env env = {0};

	(void)state;
	assert_int_equal(queue_tag_check("a", &why), 0);
	assert_int_equal(queue_tag_check("Shop_1.eu-west", &why), 0);
	memset(s, 'x', QUEUE_TAG_MAX);
	s[QUEUE_TAG_MAX] = '\0';
	assert_int_equal(queue_tag_check(s, &why), 0);
	s[QUEUE_TAG_MAX] = 'x';
	s[QUEUE_TAG_MAX + 1] = '\0';
	assert_int_equal(queue_tag_check(s, &why), -EINVAL);
	assert_string_equal(why, "1 to 64 characters of A-Z a-z 0-9 . _ -");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (queue_tag_check(bad[i], &why) != -EINVAL || why == NULL)
			fail_msg("queue_tag_check(\"%s\"): got accepted, want -EINVAL", bad[i]);
	}
	/* A refused name leaves the envelope as it was. */
	assert_int_equal(queue_env_set_pool(&env, "first"), 0);
	assert_int_equal(queue_env_set_pool(&env, "no good"), -EINVAL);
	assert_string_equal(env.pool, "first");
	assert_int_equal(queue_env_set_tenant(&env, "bad/tenant"), -EINVAL);
	assert_null(env.tenant);
	assert_int_equal(queue_env_set_pool(&env, NULL), 0);
	assert_null(env.pool);
	queue_env_free(&env);
}

/* A record of the previous version decodes with the defaults, and an
 * envelope without the new fields is still written in that version. */
static void test_v1_record(void **state)
{
	struct queue_env env, copy;
	unsigned char out[sizeof(v1_record)];

	(void)state;
	assert_int_equal(queue_env_decode(v1_record, sizeof(v1_record), &env), 0);
	assert_int_equal(env.qid, 0x2a);
	assert_string_equal(env.sender, "a@example.org");
	assert_string_equal(env.envid, "ENV1");
	assert_int_equal(env.ret, QUEUE_RET_HDRS);
	assert_int_equal(env.flags, QUEUE_F_8BITMIME);
	assert_int_equal(env.size, 1234);
	assert_int_equal(env.nrcpt, 2);
	assert_string_equal(env.rcpt[0].orcpt, "rfc822;b@example.net");
	assert_int_equal(env.rcpt[1].state, QUEUE_RCPT_DEFERRED);
	assert_string_equal(env.rcpt[1].reply, "451 4.7.1 try later");
	assert_null(env.pool);
	assert_null(env.tenant);
	assert_int_equal(env.priority, QUEUE_PRIO_NORMAL);

	assert_int_equal(queue_env_encoded_size(&env), sizeof(v1_record));
	assert_int_equal(queue_env_encode(&env, out, sizeof(out)), (long)sizeof(v1_record));
	assert_memory_equal(out, v1_record, sizeof(v1_record));

	/* An owning copy is written the same way. */
	assert_int_equal(queue_env_dup(&copy, &env), 0);
	assert_int_equal(queue_env_encode(&copy, out, sizeof(out)), (long)sizeof(v1_record));
	assert_memory_equal(out, v1_record, sizeof(v1_record));
	queue_env_free(&copy);
	queue_env_release(&env);
}

static void test_fields_roundtrip(void **state)
{
	struct queue_env env = {0}, dec, copy;
	const uint32_t second[] = {1};
	unsigned char buf[1024];
	long n;

	(void)state;
	assert_int_equal(queue_env_set_sender(&env, "a@example.org"), 0);
	assert_int_equal(queue_env_add_rcpt(&env, "b@example.net", NULL, 0), 0);
	assert_int_equal(queue_env_add_rcpt(&env, "c@example.com", NULL, 0), 0);
	env.qid = 7;

	/* Each field alone makes a version 2 record. */
	env.priority = QUEUE_PRIO_BULK;
	n = queue_env_encode(&env, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(buf[4], 2);
	assert_int_equal(queue_env_decode(buf, (size_t)n, &dec), 0);
	assert_int_equal(dec.priority, QUEUE_PRIO_BULK);
	assert_null(dec.pool);
	assert_null(dec.tenant);
	queue_env_release(&dec);
	env.priority = QUEUE_PRIO_NORMAL;
	assert_int_equal(queue_env_set_tenant(&env, "campaign-7"), 0);
	n = queue_env_encode(&env, buf, sizeof(buf));
	assert_int_equal(buf[4], 2);
	assert_int_equal(queue_env_decode(buf, (size_t)n, &dec), 0);
	assert_null(dec.pool);
	assert_string_equal(dec.tenant, "campaign-7");
	assert_int_equal(dec.priority, QUEUE_PRIO_NORMAL);
	queue_env_release(&dec);

	/* All three, through a decode and the copies the scheduler makes. */
	env.priority = QUEUE_PRIO_HIGH;
	assert_int_equal(queue_env_set_pool(&env, "transactional"), 0);
	n = queue_env_encode(&env, buf, sizeof(buf));
	assert_int_equal((size_t)n, queue_env_encoded_size(&env));
	assert_int_equal(queue_env_decode(buf, (size_t)n, &dec), 0);
	assert_string_equal(dec.pool, "transactional");
	assert_string_equal(dec.tenant, "campaign-7");
	assert_int_equal(dec.priority, QUEUE_PRIO_HIGH);
	assert_int_equal(dec.nrcpt, 2);
	assert_int_equal(queue_env_dup_some(&copy, &dec, second, 1), 0);
	queue_env_release(&dec);
	assert_int_equal(copy.nrcpt, 1);
	assert_string_equal(copy.rcpt[0].addr, "c@example.com");
	assert_string_equal(copy.pool, "transactional");
	assert_string_equal(copy.tenant, "campaign-7");
	assert_int_equal(copy.priority, QUEUE_PRIO_HIGH);
	queue_env_free(&copy);
	assert_int_equal(queue_env_dup(&copy, &env), 0);
	assert_string_equal(copy.pool, "transactional");
	queue_env_free(&copy);
	queue_env_free(&env);
}

/* A copy is one block: what is set on it afterwards replaces its strings
 * and grows its recipients without freeing inside the block (the
 * sanitizers check the frees), and it reads as the original did. */
static void test_dup_then_change(void **state)
{
	struct queue_env env = {0}, copy;
	unsigned char a[1024], b[1024];
	long na, nb;

	(void)state;
	assert_int_equal(queue_env_set_sender(&env, "a@example.org"), 0);
	assert_int_equal(queue_env_set_envid(&env, "E1"), 0);
	assert_int_equal(queue_env_set_tenant(&env, "t1"), 0);
	assert_int_equal(queue_env_add_rcpt(&env, "b@example.net", "rfc822;b@example.net", 2), 0);
	assert_int_equal(queue_env_set_reply(&env, 0, "451 4.7.1 later"), 0);
	env.qid = 9;
	assert_int_equal(queue_env_dup(&copy, &env), 0);
	na = queue_env_encode(&env, a, sizeof(a));
	nb = queue_env_encode(&copy, b, sizeof(b));
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);

	assert_int_equal(queue_env_set_reply(&copy, 0, "250 2.0.0 ok"), 0);
	assert_int_equal(queue_env_set_reply(&copy, 0, NULL), 0);
	assert_int_equal(queue_env_set_sender(&copy, "s@example.org"), 0);
	assert_int_equal(queue_env_set_tenant(&copy, NULL), 0);
	for (int i = 0; i < 9; i++)
		assert_int_equal(queue_env_add_rcpt(&copy, "c@example.com", NULL, 0), 0);
	assert_int_equal(copy.nrcpt, 10);
	assert_string_equal(copy.rcpt[0].addr, "b@example.net");
	assert_string_equal(copy.rcpt[0].orcpt, "rfc822;b@example.net");
	assert_null(copy.rcpt[0].reply);
	assert_string_equal(copy.rcpt[9].addr, "c@example.com");
	assert_string_equal(copy.sender, "s@example.org");
	assert_string_equal(copy.envid, "E1");
	assert_null(copy.tenant);
	/* The original is untouched. */
	assert_string_equal(env.rcpt[0].reply, "451 4.7.1 later");
	assert_string_equal(env.tenant, "t1");
	queue_env_free(&copy);
	queue_env_free(&env);
}

static void test_fields_corrupt(void **state)
{
	struct queue_env env = {0}, dec;
	unsigned char buf[1024], b[1024];
	long n;

	(void)state;
	/* Records of versions this program does not know, or with bytes the
	 * version does not allow, are refused. */
	memcpy(b, v1_record, sizeof(v1_record));
	b[6] = QUEUE_PRIO_HIGH; /* a priority in a version 1 record */
	fix_crc(b, sizeof(v1_record));
	assert_int_equal(queue_env_decode(b, sizeof(v1_record), &dec), -EBADMSG);
	b[6] = 0;
	b[4] = 3;
	fix_crc(b, sizeof(v1_record));
	assert_int_equal(queue_env_decode(b, sizeof(v1_record), &dec), -EBADMSG);
	b[4] = 0;
	fix_crc(b, sizeof(v1_record));
	assert_int_equal(queue_env_decode(b, sizeof(v1_record), &dec), -EBADMSG);
	b[4] = 2; /* version 2 without its two strings */
	fix_crc(b, sizeof(v1_record));
	assert_int_equal(queue_env_decode(b, sizeof(v1_record), &dec), -EBADMSG);

	assert_int_equal(queue_env_set_sender(&env, ""), 0);
	assert_int_equal(queue_env_add_rcpt(&env, "b@example.net", NULL, 0), 0);
	assert_int_equal(queue_env_set_pool(&env, "pool1"), 0);
	env.priority = QUEUE_PRIO_BULK;
	n = queue_env_encode(&env, buf, sizeof(buf));
	assert_true(n > 0);
	memcpy(b, buf, (size_t)n);
	b[6] = 3; /* no such priority */
	fix_crc(b, (size_t)n);
	assert_int_equal(queue_env_decode(b, (size_t)n, &dec), -EBADMSG);
	memcpy(b, buf, (size_t)n);
	b[7] = 1; /* reserved */
	fix_crc(b, (size_t)n);
	assert_int_equal(queue_env_decode(b, (size_t)n, &dec), -EBADMSG);
	memcpy(b, buf, (size_t)n);
	/* "pool1" is followed by the tenant's absent marker: make it "poo 1". */
	memcpy(b + n - 4 - 6, "poo 1", 5);
	fix_crc(b, (size_t)n);
	assert_int_equal(queue_env_decode(b, (size_t)n, &dec), -EBADMSG);
	memcpy(b, buf, (size_t)n);
	fix_crc(b, (size_t)n);
	assert_int_equal(queue_env_decode(b, (size_t)n, &dec), 0);
	queue_env_release(&dec);

	/* The encoder refuses what the decoder would. */
	env.priority = 3;
	assert_int_equal(queue_env_encode(&env, buf, sizeof(buf)), -EINVAL);
	env.priority = QUEUE_PRIO_NORMAL;
	free((char *)env.pool);
	env.pool = strdup("not ok");
	assert_int_equal(queue_env_encode(&env, buf, sizeof(buf)), -EINVAL);
	queue_env_free(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prio_names),	   cmocka_unit_test(test_tag_check),
	    cmocka_unit_test(test_v1_record),	   cmocka_unit_test(test_fields_roundtrip),
	    cmocka_unit_test(test_fields_corrupt), cmocka_unit_test(test_dup_then_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
