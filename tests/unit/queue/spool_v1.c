/*
 * spool_v1.c - see spool_v1.h.
 */
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/queue/spool_v1.h"

static void be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kn, const void *v, size_t vn)
{
	MDB_val key = {kn, (void *)k}, val = {vn, (void *)v};

	assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
}

/* Format 1's dom key: the domain in lower case, NUL, the queue id. */
static size_t dom_key(unsigned char *k, const char *domain, uint64_t qid)
{
	size_t n = strlen(domain);

	assert_true(n + 9 <= 300);
	for (size_t i = 0; i < n; i++)
		k[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? domain[i] + 32 : domain[i];
	k[n] = 0;
	be64(k + n + 1, qid);
	return n + 9;
}

void spool_v1_write(const char *dir, struct queue_env *envs, const char *const *msgs, int n)
{
	MDB_env *e;
	MDB_txn *txn;
	MDB_dbi meta, msg, env, sched, dom, quar;
	uint32_t format = 1;
	uint64_t next_id = (uint64_t)n + 1;

	assert_int_equal(mdb_env_create(&e), 0);
	assert_int_equal(mdb_env_set_maxdbs(e, 8), 0);
	assert_int_equal(mdb_env_open(e, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
	assert_int_equal(mdb_dbi_open(txn, "msg", MDB_CREATE, &msg), 0);
	assert_int_equal(mdb_dbi_open(txn, "env", MDB_CREATE, &env), 0);
	assert_int_equal(mdb_dbi_open(txn, "sched", MDB_CREATE, &sched), 0);
	assert_int_equal(mdb_dbi_open(txn, "dom", MDB_CREATE, &dom), 0);
	assert_int_equal(mdb_dbi_open(txn, "quar", MDB_CREATE, &quar), 0);
	put(txn, meta, "format", 6, &format, sizeof(format));
	put(txn, meta, "next_id", 7, &next_id, sizeof(next_id));
	for (int i = 0; i < n; i++) {
		struct queue_env *ev = &envs[i];
		size_t cap = queue_env_encoded_size(ev);
		unsigned char id[8], k[300], *rec = malloc(cap);
		long len;

		assert_non_null(rec);
		ev->qid = (uint64_t)i + 1;
		ev->size = strlen(msgs[i]);
		if (ev->arrival_ns == 0)
			ev->arrival_ns = 1;
		if (ev->next_attempt_ns == 0)
			ev->next_attempt_ns = ev->arrival_ns;
		len = queue_env_encode(ev, rec, cap);
		assert_true(len > 0);
		be64(id, ev->qid);
		put(txn, msg, id, 8, msgs[i], ev->size);
		put(txn, env, id, 8, rec, (size_t)len);
		free(rec);
		if (!queue_env_active(ev))
			continue;
		if (!(ev->flags & QUEUE_F_HOLD)) {
			be64(k, ev->next_attempt_ns);
			be64(k + 8, ev->qid);
			put(txn, sched, k, 16, "", 0);
		}
		for (uint32_t r = 0; r < ev->nrcpt; r++)
			put(txn, dom, k, dom_key(k, queue_addr_domain(ev->rcpt[r].addr), ev->qid),
			    "", 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(e);
}
