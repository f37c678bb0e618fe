/*
 * spool.c - the LMDB spool; see spool.h and queue/FORMAT.md.
 *
 * Keys that must sort by number (queue ids) are stored big-endian so that
 * LMDB's byte order is numeric order.
 *
 * Format 2 keeps two records per message, the envelope and the bytes, and
 * no index: every reader walks the envelopes (the daemon once at start,
 * then from the last queue id it saw) and keeps its schedule in memory.
 * Format 1's indexes by attempt time and by domain were written with every
 * change and read by no program; a delivered message cost four deletions
 * instead of two. A format-1 spool opened for writing is converted in the
 * transaction that opens it; one opened read-only is read as it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/spool.h"

enum spool_db { DB_META, DB_MSG, DB_ENV, DB_QUAR, DB_COUNT };

static const char *const db_names[DB_COUNT] = {"meta", "msg", "env", "quar"};

/* Format 1's index databases, dropped when a format-1 spool is converted. */
static const char *const v1_index_names[] = {"sched", "dom"};

struct spool {
	MDB_env *env;
	MDB_dbi dbi[DB_COUNT];
	char *path;
	bool readonly;
};

struct spool_txn {
	struct spool *sp;
	MDB_txn *txn;
	bool write;
	bool id_loaded;
	uint64_t next_id;
	/* The transaction's cursors for lookups by key and removals, one per
	 * database, opened at the first. A cursor left on a leaf finds the
	 * next key on the same page without a search from the root: jobs
	 * read messages, and a commit removes them, mostly in queue id order. */
	MDB_cursor *cur[DB_COUNT];
};

/* Less room than this on the spool's file system: a failed write is a full disk. */
#define SPOOL_FULL_BYTES (1u << 20)

static int sp_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_TXN_FULL:
		return -E2BIG;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		return -EPROTO;
	case MDB_CORRUPTED:
	case MDB_PANIC:
	case MDB_PAGE_NOTFOUND:
		return -EIO;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

const char *spool_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case ENOSPC:
		return "spool full (disk or map size)";
	case EPROTO:
		return "spool format not understood by this program";
	case EBADMSG:
		return "record does not decode";
	case EAGAIN:
		return "spool busy, try again";
	case E2BIG:
		return "transaction too large";
	default:
		return strerror(err);
	}
}

#define SPOOL(m) DMTA_CONF_AT(struct spool_opts, m)
static const struct dmta_conf_key spool_keys[] = {
    {.name = "path", .type = DMTA_CONF_STR, .def = "/var/spool/dmta", SPOOL(path)},
    {.name = "map_size",
     .type = DMTA_CONF_SIZE,
     .def = "8G",
     .min = 64 << 10,
     .max = 1ULL << 44,
     SPOOL(map_size),
     .help = "LMDB map size: the most the spool can hold"},
    {.name = "message_size_limit",
     .type = DMTA_CONF_SIZE,
     .def = "10240000",
     .min = 1024,
     .max = 1ULL << 40,
     SPOOL(message_size_limit),
     .help = "largest message dmta-sendmail and dmta-inject accept"},
};

const struct dmta_conf_section spool_conf_section = {
    .name = "spool",
    .keys = spool_keys,
    .nkeys = DMTA_CONF_NKEYS(spool_keys),
};

int spool_opts_from_conf(const struct dmta_conf *conf, struct spool_opts *o)
{
	return dmta_conf_read(conf, &spool_conf_section, o);
}

const char *spool_path(const struct spool *sp)
{
	return sp->path;
}

static void be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Format 1 to 2 in @p txn: its index databases dropped, the version
 * written. An LMDB code. */
static int spool_convert_v1(struct spool *sp, MDB_txn *txn, MDB_val *fk)
{
	uint32_t ver = SPOOL_FORMAT_VERSION;
	MDB_val v = {sizeof(ver), &ver};
	MDB_dbi dbi;
	int rc;

	for (size_t i = 0; i < sizeof(v1_index_names) / sizeof(v1_index_names[0]); i++) {
		rc = mdb_dbi_open(txn, v1_index_names[i], 0, &dbi);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc == 0)
			rc = mdb_drop(txn, dbi, 1);
		if (rc != 0)
			return rc;
	}
	return mdb_put(txn, sp->dbi[DB_META], fk, &v, 0);
}

static int spool_init_dbs(struct spool *sp)
{
	MDB_txn *txn;
	unsigned flags = sp->readonly ? 0 : MDB_CREATE;
	bool converted = false;
	int rc;

	rc = mdb_txn_begin(sp->env, NULL, sp->readonly ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		return sp_err(rc);
	for (int i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], flags, &sp->dbi[i]);
		if (rc != 0)
			goto fail;
	}
	{
		MDB_val k = {6, (void *)"format"}, v;
		uint32_t ver = SPOOL_FORMAT_VERSION;

		rc = mdb_get(txn, sp->dbi[DB_META], &k, &v);
		if (rc == MDB_NOTFOUND && !sp->readonly) {
			v.mv_size = sizeof(ver);
			v.mv_data = &ver;
			rc = mdb_put(txn, sp->dbi[DB_META], &k, &v, 0);
		} else if (rc == 0) {
			if (v.mv_size != sizeof(ver))
				rc = MDB_INVALID;
			else
				memcpy(&ver, v.mv_data, sizeof(ver));
			if (rc == 0 && (ver == 0 || ver > SPOOL_FORMAT_VERSION))
				rc = MDB_VERSION_MISMATCH;
			/* Format 1 is read as it is; a writer converts it. */
			if (rc == 0 && ver == 1 && !sp->readonly) {
				rc = spool_convert_v1(sp, txn, &k);
				converted = rc == 0;
			}
		}
		if (rc != 0)
			goto fail;
	}
	rc = mdb_txn_commit(txn);
	if (rc == 0 && converted)
		dmta_info("spool: %s converted from format 1 to %d (index databases dropped)",
			  sp->path, SPOOL_FORMAT_VERSION);
	return sp_err(rc);
fail:
	mdb_txn_abort(txn);
	return sp_err(rc);
}

struct spool *spool_open(const struct spool_opts *o, char *errmsg, size_t errlen)
{
	struct spool *sp;
	struct stat st;
	unsigned flags = MDB_NOTLS;
	int rc;

	if (o->create && !o->readonly && mkdir(o->path, 0750) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(errmsg, errlen, "cannot create spool %s: %s", o->path, strerror(-rc));
		errno = -rc;
		return NULL;
	}
	if (stat(o->path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = stat(o->path, &st) < 0 ? errno : ENOTDIR;
		snprintf(errmsg, errlen, "spool %s: %s", o->path, strerror(rc));
		errno = rc;
		return NULL;
	}
	if (o->check_owner &&
	    ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & S_IWOTH) != 0)) {
		snprintf(errmsg, errlen,
			 "spool %s: owned by uid %u with mode %03o; want uid %u (or root) and no "
			 "write permission for others",
			 o->path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777),
			 (unsigned)geteuid());
		errno = EPERM;
		return NULL;
	}
	if (!o->readonly && access(o->path, W_OK) < 0) {
		rc = errno;
		snprintf(errmsg, errlen, "spool %s not writable: %s", o->path, strerror(rc));
		errno = rc;
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	if (sp == NULL || (sp->path = strdup(o->path)) == NULL) {
		free(sp);
		snprintf(errmsg, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	sp->readonly = o->readonly;
	if (o->readonly)
		flags |= MDB_RDONLY;
	rc = mdb_env_create(&sp->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(sp->env, DB_COUNT + 2);
	if (rc == 0) {
		struct spool_opts def = {0};

		(void)spool_opts_from_conf(NULL, &def); /* defaults cannot fail */
		rc = mdb_env_set_mapsize(sp->env, o->map_size ? o->map_size : def.map_size);
	}
	if (rc == 0)
		rc = mdb_env_open(sp->env, o->path, flags, 0640);
	if (rc == 0) {
		int dead = 0;

		/* Readers left behind by killed injectors would pin old pages. */
		mdb_reader_check(sp->env, &dead);
		rc = spool_init_dbs(sp);
		rc = rc < 0 ? -rc : 0;
		if (rc == EPROTO) {
			snprintf(errmsg, errlen,
				 "spool %s: format version not understood (this program reads "
				 "versions 1 to %d)",
				 o->path, SPOOL_FORMAT_VERSION);
			goto fail;
		}
	}
	if (rc != 0) {
		rc = -sp_err(rc);
		snprintf(errmsg, errlen, "cannot open spool %s: %s", o->path, spool_strerror(rc));
		goto fail;
	}
	return sp;
fail:
	if (sp->env)
		mdb_env_close(sp->env);
	free(sp->path);
	free(sp);
	errno = rc;
	return NULL;
}

void spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	mdb_env_close(sp->env);
	free(sp->path);
	free(sp);
}

int spool_begin(struct spool *sp, bool write, struct spool_txn **out)
{
	struct spool_txn *t = calloc(1, sizeof(*t));
	int rc;

	if (t == NULL)
		return -ENOMEM;
	if (write && sp->readonly) {
		free(t);
		return -EROFS;
	}
	t->sp = sp;
	t->write = write;
	for (int tries = 0;; tries++) {
		rc = mdb_txn_begin(sp->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
		/* Another process grew the map: adopt its size and retry. */
		if (rc == MDB_MAP_RESIZED && tries < 3) {
			mdb_env_set_mapsize(sp->env, 0);
			continue;
		}
		break;
	}
	if (rc != 0) {
		free(t);
		return sp_err(rc);
	}
	*out = t;
	return 0;
}

/*
 * LMDB reports a write that the file system cut short (its disk full) as
 * EIO: it is ENOSPC, a temporary failure, when the spool's file system
 * has next to no room left.
 */
static int commit_err(const struct spool *sp, int rc)
{
	struct statvfs vfs;

	rc = sp_err(rc);
	if (rc == -EIO && statvfs(sp->path, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < SPOOL_FULL_BYTES)
		rc = -ENOSPC;
	return rc;
}

static void cursors_close(struct spool_txn *t)
{
	for (int i = 0; i < DB_COUNT; i++)
		if (t->cur[i] != NULL)
			mdb_cursor_close(t->cur[i]);
}

int spool_commit(struct spool_txn *t)
{
	struct spool *sp = t->sp;
	int rc = 0;

	if (t->write && t->id_loaded) {
		MDB_val k = {7, (void *)"next_id"}, v = {8, &t->next_id};

		rc = mdb_put(t->txn, t->sp->dbi[DB_META], &k, &v, 0);
	}
	cursors_close(t);
	if (rc != 0)
		mdb_txn_abort(t->txn);
	else
		rc = mdb_txn_commit(t->txn);
	free(t);
	return commit_err(sp, rc);
}

void spool_abort(struct spool_txn *t)
{
	if (t == NULL)
		return;
	cursors_close(t);
	mdb_txn_abort(t->txn);
	free(t);
}

/* The record at @p key in @p db (@p val may be NULL), as mdb_get() does (an
 * LMDB code), through the transaction's cursor for @p db, which stays on it. */
static int key_find(struct spool_txn *t, enum spool_db db, const MDB_val *key, MDB_val *val)
{
	MDB_val k = *key;
	int rc;

	if (t->cur[db] == NULL) {
		rc = mdb_cursor_open(t->txn, t->sp->dbi[db], &t->cur[db]);
		if (rc != 0) {
			t->cur[db] = NULL;
			return rc;
		}
	}
	/* Without @p val, MDB_SET with no data: a message's overflow pages
	 * are not looked up only to be deleted. */
	if (val == NULL)
		return mdb_cursor_get(t->cur[db], &k, NULL, MDB_SET);
	return mdb_cursor_get(t->cur[db], &k, val, MDB_SET_KEY);
}

/* Delete @p key from @p db, as mdb_del() does (an LMDB code). */
static int key_del(struct spool_txn *t, enum spool_db db, const MDB_val *key)
{
	int rc = key_find(t, db, key, NULL);

	return rc != 0 ? rc : mdb_cursor_del(t->cur[db], 0);
}

static bool rcpt_active(const struct queue_rcpt *r)
{
	return r->state == QUEUE_RCPT_PENDING || r->state == QUEUE_RCPT_DEFERRED;
}

static int env_write(struct spool_txn *t, const struct queue_env *env)
{
	unsigned char k[8];
	size_t n = queue_env_encoded_size(env);
	unsigned char stackbuf[1024];
	unsigned char *buf = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
	MDB_val key = {8, k}, val;
	long len;
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	/*
	 * Encode into our own buffer, not with MDB_RESERVE: @p env may be a
	 * view of the very record being replaced.
	 */
	len = queue_env_encode(env, buf, n);
	if (len < 0) {
		rc = (int)len;
	} else {
		be64(k, env->qid);
		val.mv_size = (size_t)len;
		val.mv_data = buf;
		rc = sp_err(mdb_put(t->txn, t->sp->dbi[DB_ENV], &key, &val, 0));
	}
	if (buf != stackbuf)
		free(buf);
	return rc;
}

int spool_put(struct spool_txn *t, struct queue_env *env, const void *msg, size_t len)
{
	unsigned char k[8];
	MDB_val key = {8, k}, val;
	int rc;

	if (!t->write)
		return -EROFS;
	if (env->nrcpt == 0 || env->sender == NULL)
		return -EINVAL;
	if (!t->id_loaded) {
		MDB_val mk = {7, (void *)"next_id"}, mv;

		rc = mdb_get(t->txn, t->sp->dbi[DB_META], &mk, &mv);
		if (rc == 0 && mv.mv_size == 8)
			memcpy(&t->next_id, mv.mv_data, 8);
		else if (rc == MDB_NOTFOUND)
			t->next_id = 1;
		else
			return rc ? sp_err(rc) : -EIO;
		t->id_loaded = true;
	}
	env->qid = t->next_id++;
	env->size = len;
	if (env->arrival_ns == 0)
		env->arrival_ns = dmta_wall_ns();
	if (env->next_attempt_ns == 0)
		env->next_attempt_ns = env->arrival_ns;
	be64(k, env->qid);
	val.mv_size = len;
	val.mv_data = NULL;
	rc = mdb_put(t->txn, t->sp->dbi[DB_MSG], &key, &val, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc != 0)
		return sp_err(rc);
	if (len)
		memcpy(val.mv_data, msg, len);
	return env_write(t, env);
}

static int env_raw(struct spool_txn *t, uint64_t qid, MDB_val *val)
{
	unsigned char k[8];
	MDB_val key = {8, k};

	be64(k, qid);
	return sp_err(key_find(t, DB_ENV, &key, val));
}

int spool_env_get(struct spool_txn *t, uint64_t qid, struct queue_env *env)
{
	MDB_val val;
	int rc = env_raw(t, qid, &val);

	if (rc < 0) {
		memset(env, 0, sizeof(*env));
		return rc;
	}
	rc = queue_env_decode(val.mv_data, val.mv_size, env);
	if (rc == 0 && env->qid != qid) {
		queue_env_release(env);
		rc = -EBADMSG;
	}
	return rc;
}

int spool_env_store(struct spool_txn *t, const struct queue_env *env)
{
	unsigned char k[8];
	MDB_val key = {8, k};
	int rc;

	if (!t->write)
		return -EROFS;
	be64(k, env->qid);
	rc = sp_err(key_find(t, DB_ENV, &key, NULL));
	if (rc < 0)
		return rc; /* -ENOENT: deleted meanwhile, do not resurrect it */
	return env_write(t, env);
}

int spool_msg_get(struct spool_txn *t, uint64_t qid, const void **p, size_t *len)
{
	unsigned char k[8];
	MDB_val key = {8, k}, val;
	int rc;

	be64(k, qid);
	rc = key_find(t, DB_MSG, &key, &val);
	if (rc != 0)
		return sp_err(rc);
	*p = val.mv_data;
	*len = val.mv_size;
	return 0;
}

static int del_key(struct spool_txn *t, enum spool_db db, uint64_t qid)
{
	unsigned char k[8];
	MDB_val key = {8, k};
	int rc;

	be64(k, qid);
	rc = key_del(t, db, &key);
	return rc == MDB_NOTFOUND ? -ENOENT : sp_err(rc);
}

int spool_delete(struct spool_txn *t, uint64_t qid)
{
	int rc, rc2;

	if (!t->write)
		return -EROFS;
	/* Whether the envelope decodes or not: nothing else names the message. */
	rc = del_key(t, DB_ENV, qid);
	rc2 = del_key(t, DB_MSG, qid);
	if (rc == -ENOENT && rc2 == -ENOENT)
		return -ENOENT;
	if (rc < 0 && rc != -ENOENT)
		return rc;
	return rc2 < 0 && rc2 != -ENOENT ? rc2 : 0;
}

static int quar_put(struct spool_txn *t, uint64_t qid, char type, const void *p, size_t n)
{
	unsigned char k[9];
	MDB_val key = {9, k}, val = {n, (void *)p};

	be64(k, qid);
	k[8] = (unsigned char)type;
	return sp_err(mdb_put(t->txn, t->sp->dbi[DB_QUAR], &key, &val, 0));
}

int spool_quarantine(struct spool_txn *t, uint64_t qid, const char *reason)
{
	MDB_val val;
	const void *m;
	size_t mlen;
	char id[17];
	int rc;

	if (!t->write)
		return -EROFS;
	rc = quar_put(t, qid, 'r', reason, strlen(reason));
	if (rc == 0 && env_raw(t, qid, &val) == 0)
		rc = quar_put(t, qid, 'e', val.mv_data, val.mv_size);
	if (rc == 0 && spool_msg_get(t, qid, &m, &mlen) == 0)
		rc = quar_put(t, qid, 'm', m, mlen);
	if (rc < 0)
		return rc;
	rc = del_key(t, DB_ENV, qid);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	rc = del_key(t, DB_MSG, qid);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	dmta_err("spool: quarantined record %s: %s", queue_id_fmt(qid, id), reason);
	return 0;
}

int spool_foreach(struct spool_txn *t,
		  int (*fn)(struct spool_txn *t, const struct queue_env *env, void *arg), void *arg,
		  unsigned *bad)
{
	return spool_foreach_from(t, 0, fn, arg, bad);
}

int spool_foreach_from(struct spool_txn *t, uint64_t first,
		       int (*fn)(struct spool_txn *t, const struct queue_env *env, void *arg),
		       void *arg, unsigned *bad)
{
	MDB_cursor *c;
	MDB_val key, val;
	unsigned char k0[8];
	uint64_t *badids = NULL;
	size_t nbad = 0;
	int rc, ret = 0;

	if (bad)
		*bad = 0;
	rc = mdb_cursor_open(t->txn, t->sp->dbi[DB_ENV], &c);
	if (rc != 0)
		return sp_err(rc);
	be64(k0, first);
	key.mv_size = 8;
	key.mv_data = k0;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		struct queue_env env;
		uint64_t qid = key.mv_size == 8 ? get_be64(key.mv_data) : 0;
		int d = queue_env_decode(val.mv_data, val.mv_size, &env);

		if (d == 0 && env.qid != qid) {
			queue_env_release(&env);
			d = -EBADMSG;
		}
		if (d == -ENOMEM) {
			ret = d;
			break;
		}
		if (d < 0) {
			char id[17];
			uint64_t *v;

			if (bad)
				(*bad)++;
			if (!t->write) {
				dmta_warn("spool: record %s does not decode; skipped "
					  "(dmta-queue check --repair quarantines it)",
					  queue_id_fmt(qid, id));
				continue;
			}
			v = realloc(badids, (nbad + 1) * sizeof(*v));
			if (v == NULL) {
				ret = -ENOMEM;
				break;
			}
			badids = v;
			badids[nbad++] = qid;
			continue;
		}
		ret = fn(t, &env, arg);
		queue_env_release(&env);
		if (ret != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND && ret == 0)
		ret = sp_err(rc);
	for (size_t i = 0; i < nbad && ret == 0; i++)
		ret = spool_quarantine(t, badids[i], "envelope record does not decode");
	free(badids);
	return ret;
}

struct due_ctx {
	uint64_t now_ns;
	uint64_t *qids, *when;
	int n, max;
};

/* Keep the @p max earliest due messages, in (time, queue id) order: the walk
 * is in queue id order, so a message goes after those due at the same time. */
static int due_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct due_ctx *dc = arg;
	int pos = dc->n;

	(void)t;
	if (!queue_env_active(env) || (env->flags & QUEUE_F_HOLD) ||
	    env->next_attempt_ns > dc->now_ns)
		return 0;
	while (pos > 0 && dc->when[pos - 1] > env->next_attempt_ns)
		pos--;
	if (pos >= dc->max)
		return 0;
	if (dc->n < dc->max)
		dc->n++;
	memmove(dc->qids + pos + 1, dc->qids + pos, (size_t)(dc->n - 1 - pos) * sizeof(uint64_t));
	memmove(dc->when + pos + 1, dc->when + pos, (size_t)(dc->n - 1 - pos) * sizeof(uint64_t));
	dc->qids[pos] = env->qid;
	dc->when[pos] = env->next_attempt_ns;
	return 0;
}

int spool_due(struct spool_txn *t, uint64_t now_ns, uint64_t *qids, int max)
{
	struct due_ctx dc = {now_ns, qids, NULL, 0, max};
	int rc;

	if (max <= 0)
		return 0;
	dc.when = malloc((size_t)max * sizeof(uint64_t));
	if (dc.when == NULL)
		return -ENOMEM;
	rc = spool_foreach(t, due_one, &dc, NULL);
	free(dc.when);
	return rc < 0 ? rc : dc.n;
}

static bool env_wants_dom(const struct queue_env *env, const char *domain)
{
	for (uint32_t i = 0; i < env->nrcpt; i++)
		if (rcpt_active(&env->rcpt[i]) &&
		    strcasecmp(queue_addr_domain(env->rcpt[i].addr), domain) == 0)
			return true;
	return false;
}

struct dom_ctx {
	const char *domain;
	uint64_t *qids;
	int n, max;
};

static int dom_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct dom_ctx *dc = arg;

	(void)t;
	if (!queue_env_active(env) || !env_wants_dom(env, dc->domain))
		return 0;
	dc->qids[dc->n++] = env->qid;
	return dc->n == dc->max; /* enough: stop the walk */
}

int spool_by_domain(struct spool_txn *t, const char *domain, uint64_t *qids, int max)
{
	struct dom_ctx dc = {domain, qids, 0, max};
	int rc;

	if (max <= 0)
		return 0;
	rc = spool_foreach(t, dom_one, &dc, NULL);
	return rc < 0 ? rc : dc.n;
}

/* Checking. */

struct check_ctx {
	struct spool_check_report *rep;
	uint64_t *nomsg; /* envelopes without message bytes, to quarantine */
	size_t nnomsg;
};

static int check_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct check_ctx *cx = arg;
	const void *m;
	size_t len;
	int rc = spool_msg_get(t, env->qid, &m, &len);

	if (rc == -ENOENT) {
		uint64_t *v = realloc(cx->nomsg, (cx->nnomsg + 1) * sizeof(*v));

		cx->rep->missing_msg++;
		if (v == NULL)
			return -ENOMEM;
		cx->nomsg = v;
		cx->nomsg[cx->nnomsg++] = env->qid;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (len != env->size)
		cx->rep->size_mismatch++;
	cx->rep->messages++;
	return 0;
}

int spool_check(struct spool *sp, bool repair, struct spool_check_report *rep)
{
	struct check_ctx cx = {rep, NULL, 0};
	struct spool_txn *t;
	unsigned bad = 0;
	MDB_cursor *c;
	MDB_val key, val;
	uint64_t *orphans = NULL;
	size_t norph = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = spool_begin(sp, repair, &t);
	if (rc < 0)
		return rc;
	rc = spool_foreach(t, check_one, &cx, &bad);
	rep->bad_env = bad;
	for (size_t i = 0; rc == 0 && repair && i < cx.nnomsg; i++)
		rc = spool_quarantine(t, cx.nomsg[i], "envelope without message bytes");
	free(cx.nomsg);
	/* Message bytes without an envelope. */
	if (rc == 0 && (rc = sp_err(mdb_cursor_open(t->txn, sp->dbi[DB_MSG], &c))) == 0) {
		int r;

		for (r = mdb_cursor_get(c, &key, &val, MDB_FIRST); r == 0;
		     r = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
			MDB_val ev;
			uint64_t qid = key.mv_size == 8 ? get_be64(key.mv_data) : 0;
			uint64_t *v;

			if (env_raw(t, qid, &ev) == 0)
				continue;
			rep->orphan_msg++;
			v = realloc(orphans, (norph + 1) * sizeof(*v));
			if (v == NULL) {
				rc = -ENOMEM;
				break;
			}
			orphans = v;
			orphans[norph++] = qid;
		}
		mdb_cursor_close(c);
	}
	if (rc == 0 && repair)
		for (size_t i = 0; i < norph && rc == 0; i++)
			rc = spool_quarantine(t, orphans[i], "message bytes without an envelope");
	free(orphans);
	if (rc == 0) {
		MDB_stat ms;

		if (mdb_stat(t->txn, sp->dbi[DB_QUAR], &ms) == 0)
			rep->quarantined = ms.ms_entries;
	}
	if (rc < 0 || !repair) {
		spool_abort(t);
		return rc;
	}
	return spool_commit(t);
}

struct stats_ctx {
	struct spool_stats *st;
};

static int stats_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct spool_stats *st = arg;

	st->messages++;
	st->bytes += env->size;
	st->recipients += env->nrcpt;
	if (env->flags & QUEUE_F_HOLD)
		st->held++;
	for (uint32_t i = 0; i < env->nrcpt; i++) {
		switch (env->rcpt[i].state) {
		case QUEUE_RCPT_PENDING:
			st->pending++;
			break;
		case QUEUE_RCPT_DEFERRED:
			st->deferred++;
			break;
		case QUEUE_RCPT_DELIVERED:
			st->delivered++;
			break;
		case QUEUE_RCPT_BOUNCED:
			st->bounced++;
			break;
		default:
			dmta_panic("recipient state %u passed decoding", env->rcpt[i].state);
		}
	}
	return 0;
}

int spool_get_stats(struct spool_txn *t, struct spool_stats *st)
{
	MDB_envinfo info;
	MDB_stat ms;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = spool_foreach(t, stats_one, st, NULL);
	if (rc < 0)
		return rc;
	if (mdb_stat(t->txn, t->sp->dbi[DB_QUAR], &ms) == 0)
		st->quarantined = ms.ms_entries;
	if (mdb_env_info(t->sp->env, &info) == 0 && mdb_env_stat(t->sp->env, &ms) == 0) {
		st->map_size = info.me_mapsize;
		st->map_used = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
	}
	return 0;
}

/* Wake-ups: one datagram; a missing or dead daemon is no error for injectors. */

static int wake_addr(const char *spool_path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", spool_path, SPOOL_WAKE_SOCKET) >=
	    (int)sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int spool_wake(const char *spool_path, const char *what)
{
	struct sockaddr_un sa;
	int fd, rc = wake_addr(spool_path, &sa);

	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	rc = sendto(fd, what, strlen(what), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	close(fd);
	/* A full socket buffer means the daemon has wake-ups pending anyway. */
	return rc == -EAGAIN ? 0 : rc;
}

int spool_wake_listen(const char *spool_path)
{
	struct sockaddr_un sa;
	int fd, rc = wake_addr(spool_path, &sa);

	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}
