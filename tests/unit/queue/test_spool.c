/*
 * test_spool.c - envelope records and the LMDB spool.
 */
#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_log.h"
#include "queue/queue_env.h"
#include "queue/spool.h"
#include "tests/unit/queue/spool_v1.h"

static char *tmpdir(void)
{
	char *d = strdup("/tmp/dmta-test-spool-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void rmtree(const char *d)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

static void make_env(struct queue_env *env, int nrcpt)
{
	char a[64];

	memset(env, 0, sizeof(*env));
	assert_int_equal(queue_env_set_sender(env, "sender@example.org"), 0);
	assert_int_equal(queue_env_set_envid(env, "ENV-1"), 0);
	for (int i = 0; i < nrcpt; i++) {
		snprintf(a, sizeof(a), "user%d@d%d.example", i, i % 3);
		assert_int_equal(
		    queue_env_add_rcpt(env, a, i ? "rfc822;x@y" : NULL, QUEUE_NOTIFY_FAILURE), 0);
	}
	env->flags = QUEUE_F_8BITMIME;
	env->ret = QUEUE_RET_HDRS;
}

static void test_env_roundtrip(void **state)
{
	struct queue_env env, out;
	unsigned char buf[4096];
	long n;

	make_env(&env, 5);
	env.qid = 42;
	env.arrival_ns = 1234567;
	assert_int_equal(queue_env_set_reply(&env, 2, "451 4.7.1 try later"), 0);
	env.rcpt[2].state = QUEUE_RCPT_DEFERRED;
	env.rcpt[2].attempts = 3;
	n = queue_env_encode(&env, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal((size_t)n, queue_env_encoded_size(&env));
	assert_int_equal(queue_env_encode(&env, buf, (size_t)n - 1), -ENOSPC);
	assert_int_equal(queue_env_decode(buf, (size_t)n, &out), 0);
	assert_int_equal(out.qid, 42);
	assert_int_equal(out.arrival_ns, 1234567);
	assert_int_equal(out.flags, QUEUE_F_8BITMIME);
	assert_int_equal(out.ret, QUEUE_RET_HDRS);
	assert_string_equal(out.sender, "sender@example.org");
	assert_string_equal(out.envid, "ENV-1");
	assert_int_equal(out.nrcpt, 5);
	assert_null(out.rcpt[0].orcpt);
	assert_string_equal(out.rcpt[1].orcpt, "rfc822;x@y");
	assert_string_equal(out.rcpt[2].reply, "451 4.7.1 try later");
	assert_int_equal(out.rcpt[2].state, QUEUE_RCPT_DEFERRED);
	assert_int_equal(out.rcpt[2].attempts, 3);
	assert_int_equal(out.rcpt[4].notify, QUEUE_NOTIFY_FAILURE);
	queue_env_release(&out);
	queue_env_free(&env);
}

/* Every single-byte corruption and every truncation is refused, never crashes. */
static void test_env_corrupt(void **state)
{
	struct queue_env env, out;
	unsigned char buf[4096], bad[4096];
	long n;

	make_env(&env, 3);
	n = queue_env_encode(&env, buf, sizeof(buf));
	assert_true(n > 0);
	for (long i = 0; i < n; i++) {
		memcpy(bad, buf, (size_t)n);
		bad[i] ^= 0x5a;
		assert_int_equal(queue_env_decode(bad, (size_t)n, &out), -EBADMSG);
		/* exactly at the end of a heap block, so ASan sees any over-read */
		unsigned char *h = malloc((size_t)i);
		memcpy(h, buf, (size_t)i);
		assert_int_equal(queue_env_decode(h, (size_t)i, &out), -EBADMSG);
		free(h);
	}
	queue_env_free(&env);
}

static struct spool *open_spool(const char *dir, uint64_t map)
{
	char err[256];
	struct spool *sp = spool_open(
	    &(struct spool_opts){.path = dir, .create = true, .map_size = map}, err, sizeof(err));

	if (sp == NULL)
		fail_msg("spool_open: %s", err);
	return sp;
}

static int count_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int count(struct spool *sp)
{
	struct spool_txn *t;
	int n = 0;

	assert_int_equal(spool_begin(sp, false, &t), 0);
	assert_int_equal(spool_foreach(t, count_one, &n, NULL), 0);
	spool_abort(t);
	return n;
}

static void test_spool_group_commit(void **state)
{
	char *dir = tmpdir();
	struct spool *sp = open_spool(dir, 0);
	struct spool_txn *t;
	struct queue_env env, got;
	uint64_t ids[100];
	const void *p;
	size_t len;
	char msg[200];

	assert_int_equal(spool_begin(sp, true, &t), 0);
	for (int i = 0; i < 100; i++) {
		make_env(&env, 1 + i % 4);
		snprintf(msg, sizeof(msg), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		assert_int_equal(spool_put(t, &env, msg, strlen(msg)), 0);
		ids[i] = env.qid;
		queue_env_free(&env);
	}
	/* not visible to others before commit */
	spool_abort(t);
	assert_int_equal(count(sp), 0);

	assert_int_equal(spool_begin(sp, true, &t), 0);
	for (int i = 0; i < 100; i++) {
		make_env(&env, 1 + i % 4);
		snprintf(msg, sizeof(msg), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		assert_int_equal(spool_put(t, &env, msg, strlen(msg)), 0);
		ids[i] = env.qid;
		if (i)
			assert_true(ids[i] > ids[i - 1]);
		queue_env_free(&env);
	}
	assert_int_equal(spool_commit(t), 0);
	spool_close(sp);

	sp = open_spool(dir, 0);
	assert_int_equal(count(sp), 100);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	assert_int_equal(spool_env_get(t, ids[7], &got), 0);
	assert_int_equal(got.nrcpt, 4);
	assert_int_equal(spool_msg_get(t, ids[7], &p, &len), 0);
	assert_int_equal(len, got.size);
	assert_memory_equal(p, "Subject: 7\r\n", 12);
	queue_env_release(&got);
	{
		uint64_t due[200];
		int n = spool_due(t, UINT64_MAX, due, 200);

		assert_int_equal(n, 100);
		n = spool_by_domain(t, "D1.example", due, 200);
		/* rcpt i has domain d(i%3); messages with >= 2 recipients reach d1 */
		assert_int_equal(n, 75);
		assert_int_equal(spool_due(t, 1, due, 200), 0);
	}
	spool_abort(t);
	{
		struct spool_check_report rep;

		assert_int_equal(spool_check(sp, false, &rep), 0);
		assert_int_equal(rep.messages, 100);
		assert_int_equal(rep.bad_env + rep.orphan_msg + rep.missing_msg, 0);
	}
	spool_close(sp);
	rmtree(dir);
	free(dir);
}

static void test_spool_update_delete(void **state)
{
	char *dir = tmpdir();
	struct spool *sp = open_spool(dir, 0);
	struct spool_txn *t;
	struct queue_env env, got, cp;
	uint64_t due[10], qid;
	struct spool_check_report rep;

	assert_int_equal(spool_begin(sp, true, &t), 0);
	make_env(&env, 2);
	env.next_attempt_ns = 1000;
	assert_int_equal(spool_put(t, &env, "x\r\n", 3), 0);
	qid = env.qid;
	queue_env_free(&env);
	assert_int_equal(spool_commit(t), 0);

	/* defer recipient 0, deliver recipient 1, move the next attempt */
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_env_get(t, qid, &got), 0);
	assert_int_equal(queue_env_dup(&cp, &got), 0);
	queue_env_release(&got);
	cp.rcpt[0].state = QUEUE_RCPT_DEFERRED;
	cp.rcpt[0].attempts = 1;
	assert_int_equal(queue_env_set_reply(&cp, 0, "421 busy"), 0);
	cp.rcpt[1].state = QUEUE_RCPT_DELIVERED;
	cp.next_attempt_ns = 5000;
	assert_int_equal(spool_env_store(t, &cp), 0);
	assert_int_equal(spool_due(t, 4999, due, 10), 0);
	assert_int_equal(spool_due(t, 5000, due, 10), 1);
	assert_int_equal(spool_by_domain(t, "d1.example", due, 10), 0);
	assert_int_equal(spool_by_domain(t, "d0.example", due, 10), 1);
	/* hold: not due, still a message for its domain */
	cp.flags |= QUEUE_F_HOLD;
	assert_int_equal(spool_env_store(t, &cp), 0);
	assert_int_equal(spool_due(t, UINT64_MAX, due, 10), 0);
	queue_env_free(&cp);
	assert_int_equal(spool_commit(t), 0);
	assert_int_equal(spool_check(sp, false, &rep), 0);
	assert_int_equal(rep.messages, 1);

	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_delete(t, qid), 0);
	assert_int_equal(spool_delete(t, qid), -ENOENT);
	assert_int_equal(spool_by_domain(t, "d0.example", due, 10), 0);
	assert_int_equal(spool_commit(t), 0);
	assert_int_equal(count(sp), 0);
	spool_close(sp);
	rmtree(dir);
	free(dir);
}

/* MDB_MAP_FULL is a temporary failure and leaves the spool as it was. */
static void test_spool_map_full(void **state)
{
	char *dir = tmpdir();
	struct spool *sp = open_spool(dir, 256 * 1024);
	struct spool_txn *t;
	struct queue_env env;
	static char big[512 * 1024];
	int rc;

	memset(big, 'a', sizeof(big));
	assert_int_equal(spool_begin(sp, true, &t), 0);
	make_env(&env, 1);
	assert_int_equal(spool_put(t, &env, "small\r\n", 7), 0);
	queue_env_free(&env);
	assert_int_equal(spool_commit(t), 0);

	assert_int_equal(spool_begin(sp, true, &t), 0);
	make_env(&env, 1);
	rc = spool_put(t, &env, big, sizeof(big));
	queue_env_free(&env);
	assert_int_equal(rc, -ENOSPC);
	spool_abort(t);
	assert_int_equal(count(sp), 1);
	spool_close(sp);
	rmtree(dir);
	free(dir);
}

/* Behind the spool's back: flip a bit of @p qid's envelope, and lose the
 * bytes of the message two before it. */
static void corrupt_env(const char *dir, uint64_t qid)
{
	MDB_env *e;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	unsigned char key[8], *copy;

	assert_int_equal(mdb_env_create(&e), 0);
	mdb_env_set_maxdbs(e, 8);
	assert_int_equal(mdb_env_open(e, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "env", 0, &dbi), 0);
	for (int i = 0; i < 8; i++)
		key[i] = (unsigned char)(qid >> (56 - 8 * i));
	k.mv_size = 8;
	k.mv_data = key;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	copy[v.mv_size - 3] ^= 1;
	v.mv_data = copy;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_dbi_open(txn, "msg", 0, &dbi), 0);
	key[7] = (unsigned char)(qid - 2);
	assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(e);
	free(copy);
}

/* Three messages, the last one's envelope corrupt and the first one's bytes
 * lost (corrupt_env); the last one's queue id. */
static uint64_t three_damaged(const char *dir)
{
	struct spool *sp = open_spool(dir, 0);
	struct spool_txn *t;
	struct queue_env env;
	uint64_t qid = 0;

	assert_int_equal(spool_begin(sp, true, &t), 0);
	for (int i = 0; i < 3; i++) {
		make_env(&env, 2);
		assert_int_equal(spool_put(t, &env, "m\r\n", 3), 0);
		qid = env.qid;
		queue_env_free(&env);
	}
	assert_int_equal(spool_commit(t), 0);
	spool_close(sp);
	corrupt_env(dir, qid);
	return qid;
}

/* spool_check() finds nothing missing, bad or left over, and @p n messages. */
static void assert_whole(struct spool *sp, uint64_t n, struct spool_check_report *rep)
{
	assert_int_equal(spool_check(sp, false, rep), 0);
	assert_int_equal(rep->bad_env, 0);
	assert_int_equal(rep->missing_msg, 0);
	assert_int_equal(rep->orphan_msg, 0);
	assert_int_equal(rep->messages, n);
}

/* A delivered message is deleted whole even when its envelope does not
 * decode or its bytes are gone; then it is gone. */
static void test_spool_delete_damaged(void **state)
{
	char *dir = tmpdir();
	uint64_t qid = three_damaged(dir);
	struct spool *sp = open_spool(dir, 0);
	struct spool_txn *t;
	struct spool_check_report rep;

	(void)state;
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_delete(t, qid), 0);
	assert_int_equal(spool_delete(t, qid), -ENOENT);
	assert_int_equal(spool_delete(t, qid - 2), 0);
	assert_int_equal(spool_delete(t, qid - 2), -ENOENT);
	assert_int_equal(spool_commit(t), 0);
	assert_whole(sp, 1, &rep);
	spool_close(sp);
	rmtree(dir);
	free(dir);
}

/* A record that fails to decode is quarantined with a log line, not a crash. */
static void test_spool_quarantine(void **state)
{
	char *dir = tmpdir();
	struct spool *sp;
	struct spool_check_report rep;

	(void)three_damaged(dir);
	sp = open_spool(dir, 0);
	assert_int_equal(count(sp), 2); /* the bad one is skipped */
	assert_int_equal(spool_check(sp, false, &rep), 0);
	assert_int_equal(rep.bad_env, 1);
	assert_int_equal(rep.missing_msg, 1);
	assert_int_equal(spool_check(sp, true, &rep), 0);
	assert_whole(sp, 1, &rep);
	/* reason, envelope, message of the bad one; reason, envelope of the other */
	assert_int_equal(rep.quarantined, 5);
	spool_close(sp);
	rmtree(dir);
	free(dir);
}

static void test_spool_open_errors(void **state)
{
	char err[256];
	struct spool *sp;

	sp = spool_open(&(struct spool_opts){.path = "/nonexistent/dir/spool", .create = true}, err,
			sizeof(err));
	assert_null(sp);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dir/spool"));
	sp = spool_open(&(struct spool_opts){.path = "/etc/hostname", .create = true}, err,
			sizeof(err));
	assert_null(sp);
}

/* The format version in @p dir's meta database (behind the spool's back),
 * and whether format 1's index databases are there. */
static uint32_t raw_format(const char *dir, bool *indexes, uint32_t set)
{
	MDB_env *e;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, (void *)"format"}, v;
	uint32_t ver;

	assert_int_equal(mdb_env_create(&e), 0);
	mdb_env_set_maxdbs(e, 8);
	assert_int_equal(mdb_env_open(e, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	if (set) {
		v.mv_size = sizeof(set);
		v.mv_data = &set;
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	}
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, sizeof(ver));
	memcpy(&ver, v.mv_data, sizeof(ver));
	*indexes =
	    mdb_dbi_open(txn, "sched", 0, &dbi) == 0 && mdb_dbi_open(txn, "dom", 0, &dbi) == 0;
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(e);
	return ver;
}

/*
 * A format-1 spool (with its indexes by time and by domain) is read as it is
 * by a read-only open, converted by the first writer in the transaction that
 * opens it (the indexes dropped, the version 2), and then holds the same
 * messages; a newer format is refused with a clear error.
 */
static void test_spool_v1(void **state)
{
	static const char *const msgs[3] = {"Subject: a\r\n\r\na\r\n", "Subject: b\r\n\r\nb\r\n",
					    "Subject: c\r\n\r\nc\r\n"};
	char *dir = tmpdir(), err[256];
	struct queue_env envs[3];
	struct spool_check_report rep;
	struct spool_txn *t;
	struct spool *sp;
	uint64_t q[8];
	const void *p;
	size_t len;
	bool indexes;

	(void)state;
	for (int i = 0; i < 3; i++)
		make_env(&envs[i], 2);
	envs[1].flags |= QUEUE_F_HOLD;
	envs[2].next_attempt_ns = 5000;
	spool_v1_write(dir, envs, msgs, 3);
	for (int i = 0; i < 3; i++)
		queue_env_free(&envs[i]);

	sp = spool_open(&(struct spool_opts){.path = dir, .readonly = true}, err, sizeof(err));
	if (sp == NULL)
		fail_msg("read-only open of a format-1 spool: %s", err);
	assert_int_equal(count(sp), 3);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	assert_int_equal(spool_msg_get(t, 2, &p, &len), 0);
	assert_int_equal(len, strlen(msgs[1]));
	assert_memory_equal(p, msgs[1], len);
	spool_abort(t);
	spool_close(sp);
	assert_int_equal(raw_format(dir, &indexes, 0), 1);
	assert_true(indexes);

	sp = open_spool(dir, 0);
	assert_int_equal(raw_format(dir, &indexes, 0), 2);
	assert_false(indexes);
	assert_whole(sp, 3, &rep);
	assert_int_equal(spool_begin(sp, true, &t), 0);
	/* due: the first at 1, the third at 5000; the second is on hold */
	assert_int_equal(spool_due(t, UINT64_MAX, q, 8), 2);
	assert_int_equal(q[0], 1);
	assert_int_equal(q[1], 3);
	assert_int_equal(spool_due(t, 4999, q, 8), 1);
	assert_int_equal(spool_by_domain(t, "D1.example", q, 8), 3);
	assert_int_equal(spool_msg_get(t, 3, &p, &len), 0);
	assert_memory_equal(p, msgs[2], len);
	/* queue ids go on from format 1's next_id */
	make_env(&envs[0], 1);
	assert_int_equal(spool_put(t, &envs[0], "d\r\n", 3), 0);
	assert_int_equal(envs[0].qid, 4);
	queue_env_free(&envs[0]);
	assert_int_equal(spool_delete(t, 1), 0);
	assert_int_equal(spool_commit(t), 0);
	assert_whole(sp, 3, &rep);
	spool_close(sp);

	/* a version from the future: refused, the spool left as it is */
	assert_int_equal(raw_format(dir, &indexes, 3), 3);
	sp = spool_open(&(struct spool_opts){.path = dir}, err, sizeof(err));
	assert_null(sp);
	assert_int_equal(errno, EPROTO);
	assert_non_null(strstr(err, "format version"));
	assert_int_equal(raw_format(dir, &indexes, 0), 3);
	rmtree(dir);
	free(dir);
}

/* The daemon refuses a spool others may write to (they could plant links
 * where it writes its files); tools that only read do not check. */
static void test_spool_owner_mode(void **state)
{
	char dir[] = "/tmp/dmta-test-spool-XXXXXX", err[256];
	struct spool *sp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0777), 0);
	sp = spool_open(&(struct spool_opts){.path = dir, .create = true, .check_owner = true}, err,
			sizeof(err));
	if (sp != NULL)
		fail_msg("a world-writable spool was opened, want it refused");
	assert_int_equal(errno, EPERM);
	assert_non_null(strstr(err, "write permission for others"));
	assert_int_equal(chmod(dir, 0750), 0);
	sp = spool_open(&(struct spool_opts){.path = dir, .create = true, .check_owner = true}, err,
			sizeof(err));
	if (sp == NULL)
		fail_msg("spool of ours with mode 0750: %s, want it opened", err);
	spool_close(sp);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

/*
 * A message to 50,000 domains: each indexed once, found by its domain, in
 * linear time (the index used to look for an earlier recipient of the
 * same domain for every recipient: over 10^9 comparisons here, under the
 * writer lock).
 */
static void test_many_domains(void **state)
{
	enum { NDOM = 50000 };
	char dir[] = "/tmp/dmta-test-spool-XXXXXX", err[256], cmd[128];
	struct spool *sp;
	struct spool_txn *t;
	struct queue_env e = {0};
	uint64_t q[4];
	clock_t t0;
	double cpu;

	(void)state;
	assert_non_null(mkdtemp(dir));
	sp = spool_open(&(struct spool_opts){.path = dir, .create = true}, err, sizeof(err));
	assert_non_null(sp);
	assert_int_equal(queue_env_set_sender(&e, "s@x.example"), 0);
	for (unsigned i = 0; i < NDOM; i++) {
		char a[64];

		snprintf(a, sizeof(a), "u@D%u.example", i);
		assert_int_equal(queue_env_add_rcpt(&e, a, NULL, 0), 0);
	}
	/* the same domains again, in other case: found once all the same */
	assert_int_equal(queue_env_add_rcpt(&e, "v@d7.EXAMPLE", NULL, 0), 0);
	t0 = clock();
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_put(t, &e, "Subject: x\r\n\r\nx\r\n", 17), 0);
	assert_int_equal(spool_commit(t), 0);
	cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
	if (cpu > 5.0)
		fail_msg("spooling a message to %d domains took %.1f s of CPU, want well under 5",
			 NDOM, cpu);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	if (spool_by_domain(t, "d7.example", q, 4) != 1 || q[0] != e.qid)
		fail_msg("d7.example: want the message, once");
	if (spool_by_domain(t, "d49999.example", q, 4) != 1)
		fail_msg("d49999.example: want the message, once");
	spool_abort(t);
	queue_env_free(&e);
	spool_close(sp);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * Many removals in one transaction, out of order and between writes (the
 * commit's cursors must follow the tree as it changes), recipients whose
 * domains repeat in other case: afterwards nothing is left over of the
 * messages removed and the messages kept are whole.
 */
static void test_delete_many(void **state)
{
	enum { N = 600 };
	char *dir = tmpdir();
	struct spool *sp = open_spool(dir, 0);
	struct spool_check_report rep;
	struct spool_txn *t;
	static uint64_t qid[N];
	uint64_t q[N + 2], extra;
	struct queue_env e;
	int n;

	(void)state;
	assert_int_equal(spool_begin(sp, true, &t), 0);
	for (int i = 0; i < N; i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(queue_env_set_sender(&e, "s@x.example"), 0);
		for (int k = 0; k <= i % 5; k++) {
			char a[64];

			snprintf(a, sizeof(a), k % 2 ? "v%d@D%d.EXAMPLE" : "u%d@d%d.example", k,
				 (i + k / 2) % 7);
			assert_int_equal(queue_env_add_rcpt(&e, a, NULL, 0), 0);
		}
		e.next_attempt_ns = 1000 + (uint64_t)(i % 13);
		assert_int_equal(spool_put(t, &e, "Subject: x\r\n\r\nx\r\n", 17), 0);
		qid[i] = e.qid;
		queue_env_free(&e);
	}
	assert_int_equal(spool_commit(t), 0);

	/* Every message but those at i % 10 == 3: evens up, then odds down, a
	 * new message and a rewrite in between. */
	assert_int_equal(spool_begin(sp, true, &t), 0);
	for (int i = 0; i < N; i += 2)
		if (i % 10 != 3)
			assert_int_equal(spool_delete(t, qid[i]), 0);
	make_env(&e, 4);
	assert_int_equal(spool_put(t, &e, "y\r\n", 3), 0);
	extra = e.qid;
	queue_env_free(&e);
	assert_int_equal(spool_env_get(t, qid[3], &e), 0);
	{
		struct queue_env cp;

		assert_int_equal(queue_env_dup(&cp, &e), 0);
		queue_env_release(&e);
		cp.next_attempt_ns = 7;
		assert_int_equal(spool_env_store(t, &cp), 0);
		queue_env_free(&cp);
	}
	for (int i = N - 1; i > 0; i -= 2)
		if (i % 10 != 3)
			assert_int_equal(spool_delete(t, qid[i]), 0);
	assert_int_equal(spool_delete(t, qid[0]), -ENOENT);
	assert_int_equal(spool_commit(t), 0);

	assert_int_equal(spool_check(sp, false, &rep), 0);
	if (rep.messages != N / 10 + 1 || rep.missing_msg != 0 || rep.orphan_msg != 0)
		fail_msg("got %llu messages, %llu without bytes, %llu bytes without envelope; "
			 "want %d, 0, 0",
			 (unsigned long long)rep.messages, (unsigned long long)rep.missing_msg,
			 (unsigned long long)rep.orphan_msg, N / 10 + 1);
	assert_int_equal(spool_begin(sp, false, &t), 0);
	n = spool_due(t, UINT64_MAX, q, N + 2);
	if (n != N / 10 + 1 || q[0] != qid[3])
		fail_msg("got %d messages due, first %llu; want %d, first %llu", n,
			 (unsigned long long)(n > 0 ? q[0] : 0), N / 10 + 1,
			 (unsigned long long)qid[3]);
	n = spool_by_domain(t, "d3.example", q, N + 2);
	for (int i = 0; i < n; i++)
		if (q[i] != extra && (q[i] - qid[0]) % 10 != 3)
			fail_msg("d3.example lists %llu, which was removed",
				 (unsigned long long)q[i]);
	spool_abort(t);
	spool_close(sp);
	rmtree(dir);
	free(dir);
}

static void test_ids(void **state)
{
	char b[17];
	uint64_t v;

	assert_string_equal(queue_id_fmt(0xabc, b), "000000000ABC");
	assert_int_equal(queue_id_parse("000000000abc", &v), 0);
	assert_int_equal(v, 0xabc);
	assert_int_equal(queue_id_parse("xyz", &v), -EINVAL);
	assert_int_equal(queue_id_parse("", &v), -EINVAL);
	assert_int_equal(queue_id_parse("11112222333344445", &v), -EINVAL);
}

/* CRC-32C (the records' checksum): the standard check value, and a sum
 * taken in pieces equals the sum taken at once (hardware and table alike). */
static void test_crc32c(void **state)
{
	unsigned char b[1000];

	assert_int_equal(queue_crc32c(0, "123456789", 9), 0xe3069283u);
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(i * 131 + 7);
	for (size_t k = 0; k < 40; k++)
		assert_int_equal(queue_crc32c(queue_crc32c(0, b, k), b + k, sizeof(b) - k),
				 queue_crc32c(0, b, sizeof(b)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),
	    cmocka_unit_test(test_env_roundtrip),
	    cmocka_unit_test(test_env_corrupt),
	    cmocka_unit_test(test_spool_group_commit),
	    cmocka_unit_test(test_spool_update_delete),
	    cmocka_unit_test(test_spool_map_full),
	    cmocka_unit_test(test_spool_quarantine),
	    cmocka_unit_test(test_spool_delete_damaged),
	    cmocka_unit_test(test_spool_open_errors),
	    cmocka_unit_test(test_spool_v1),
	    cmocka_unit_test(test_delete_many),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_spool_owner_mode),
	    cmocka_unit_test(test_many_domains),
	};

	dmta_log_init("test_spool", DMTA_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
