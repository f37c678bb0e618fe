/*
 * queue_ctl.c - see queue_ctl.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_bounce.h"
#include "queue/queue_ctl.h"

struct queue_ctl {
	struct spool *sp;
	struct queue_sched *s;
	int wake_fd;
	struct spool_txn *t; /* the open write transaction, or NULL */
	int txn_err;	     /* first error in it: the commit is abandoned */
	uint64_t next_qid;   /* load from here on */
	char hostname[256];
	uint64_t lifetime_ms; /* for Will-Retry-Until in delay warnings */
	uint64_t now_ns;      /* for DSN dates inside scheduler callbacks */
	uint64_t *gone;	      /* deleted behind our back: to forget after the call */
	size_t ngone, capgone;
};

static struct spool_txn *wtxn(struct queue_ctl *qc)
{
	int rc;

	if (qc->t == NULL && qc->txn_err == 0) {
		rc = spool_begin(qc->sp, true, &qc->t);
		if (rc < 0) {
			qc->txn_err = rc;
			dmta_err("queue: cannot begin a spool transaction: %s", spool_strerror(rc));
		}
	}
	return qc->txn_err ? NULL : qc->t;
}

static void note_err(struct queue_ctl *qc, int rc, const char *what, uint64_t qid)
{
	char id[17];

	if (rc == 0)
		return;
	dmta_err("queue: %s %s: %s", what, queue_id_fmt(qid, id), spool_strerror(rc));
	if (qc->txn_err == 0)
		qc->txn_err = rc;
}

static void ctl_store(void *ctx, const struct queue_env *env)
{
	struct queue_ctl *qc = ctx;
	struct spool_txn *t = wtxn(qc);
	int rc;

	if (t == NULL)
		return;
	rc = spool_env_store(t, env);
	if (rc == -ENOENT) {
		/* deleted by dmta-queue meanwhile: forget it too */
		uint64_t *v = qc->gone;

		if (qc->ngone == qc->capgone) {
			v = realloc(qc->gone, (qc->capgone ? qc->capgone * 2 : 16) * sizeof(*v));
			if (v == NULL)
				return;
			qc->gone = v;
			qc->capgone = qc->capgone ? qc->capgone * 2 : 16;
		}
		qc->gone[qc->ngone++] = env->qid;
		return;
	}
	note_err(qc, rc, "cannot store", env->qid);
}

static void queue_dsn(struct queue_ctl *qc, const struct queue_env *env, const uint32_t *rcpt,
		      uint32_t n, bool delayed)
{
	struct spool_txn *t = wtxn(qc);
	struct queue_bounce_opts bo = {
	    .hostname = qc->hostname,
	    .now_ns = qc->now_ns,
	    .delayed = delayed,
	    .retry_until_ns = env->arrival_ns + qc->lifetime_ms * DMTA_NS_PER_MS,
	};
	const void *msg;
	size_t len;
	uint64_t bq;
	int rc;

	if (t == NULL)
		return;
	rc = spool_msg_get(t, env->qid, &msg, &len);
	if (rc == -ENOENT) {
		msg = "";
		len = 0;
	} else if (rc < 0) {
		note_err(qc, rc, "cannot read for a DSN", env->qid);
		return;
	}
	rc = queue_bounce_queue(t, env, msg, len, rcpt, n, &bo, &bq);
	if (rc == 0) {
		char id[17], bid[17];

		dmta_info("queue: %s: %s DSN %s queued for %u recipient%s",
			  queue_id_fmt(env->qid, id), delayed ? "delay" : "failure",
			  queue_id_fmt(bq, bid), n, n == 1 ? "" : "s");
	}
	note_err(qc, rc, "cannot queue the DSN of", env->qid);
}

static void ctl_dsn(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	queue_dsn(ctx, env, rcpt, n, false);
}

static void ctl_delay(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	queue_dsn(ctx, env, rcpt, n, true);
}

static void ctl_done(void *ctx, const struct queue_env *env)
{
	struct queue_ctl *qc = ctx;
	struct spool_txn *t = wtxn(qc);
	int rc;

	if (t == NULL)
		return;
	rc = spool_delete(t, env->qid);
	if (rc != -ENOENT)
		note_err(qc, rc, "cannot remove", env->qid);
}

static void forget_gone(struct queue_ctl *qc)
{
	for (size_t i = 0; i < qc->ngone; i++)
		(void)queue_sched_remove(qc->s, qc->gone[i]);
	qc->ngone = 0;
}

struct load_ctx {
	struct queue_ctl *qc;
	uint64_t now;
	int n;
};

static int load_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct load_ctx *lc = arg;
	int rc;

	if (env->qid >= lc->qc->next_qid)
		lc->qc->next_qid = env->qid + 1;
	if (!queue_env_active(env))
		return 0; /* finished but not removed: removed by queue_ctl_sync() */
	rc = queue_sched_add(lc->qc->s, env, lc->now);
	if (rc == -EEXIST)
		return 0;
	if (rc == 0)
		lc->n++;
	return rc;
}

int queue_ctl_load_new(struct queue_ctl *qc, uint64_t now_ns)
{
	struct load_ctx lc = {qc, now_ns, 0};
	struct spool_txn *t;
	int rc = spool_begin(qc->sp, false, &t);

	if (rc < 0)
		return rc;
	rc = spool_foreach_from(t, qc->next_qid, load_one, &lc, NULL);
	spool_abort(t);
	return rc < 0 ? rc : lc.n;
}

struct sync_ctx {
	struct queue_sched *s;
	uint64_t now;
};

static int sync_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct sync_ctx *sc = arg;
	const struct queue_env *mine = queue_sched_env(sc->s, env->qid);
	bool hold = env->flags & QUEUE_F_HOLD;

	if (mine == NULL)
		return 0;
	if (hold && !(mine->flags & QUEUE_F_HOLD))
		return queue_sched_hold(sc->s, env->qid);
	if (!hold && (mine->flags & QUEUE_F_HOLD))
		return queue_sched_release(sc->s, env->qid, sc->now);
	return 0;
}

int queue_sync(struct spool *sp, struct queue_sched *s, uint64_t now_ns)
{
	struct sync_ctx sc = {s, now_ns};
	struct spool_txn *t;
	int rc = spool_begin(sp, false, &t);
	struct queue_sched_stats st;

	if (rc < 0)
		return rc;
	rc = spool_foreach(t, sync_one, &sc, NULL);
	/* Messages the scheduler tracks that the spool no longer has. */
	queue_sched_get_stats(s, &st);
	if (rc == 0 && st.messages) {
		uint64_t *ids = malloc(st.messages * sizeof(*ids));
		size_t n = 0;

		if (ids == NULL) {
			spool_abort(t);
			return -ENOMEM;
		}
		n = queue_sched_ids(s, ids, st.messages);
		for (size_t i = 0; i < n; i++) {
			const void *p;
			size_t len;

			if (spool_msg_get(t, ids[i], &p, &len) == -ENOENT)
				(void)queue_sched_remove(s, ids[i]);
		}
		free(ids);
	}
	spool_abort(t);
	return rc;
}

int queue_ctl_sync(struct queue_ctl *qc, uint64_t now_ns)
{
	return queue_sync(qc->sp, qc->s, now_ns);
}

struct queue_ctl *queue_ctl_open(const struct dmta_conf *conf, uint64_t now_ns, char *err,
				 size_t errlen)
{
	struct queue_sched_conf sc;
	struct spool_opts so = {0};
	struct queue_ctl *qc = calloc(1, sizeof(*qc));
	struct queue_sched_ops ops;
	char host[256];
	int rc;

	if (qc == NULL) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	qc->wake_fd = -1;
	if (spool_opts_from_conf(conf, &so) < 0 || queue_sched_conf_load(conf, &sc) < 0) {
		snprintf(err, errlen, "bad [spool] or [queue] configuration");
		free(qc);
		errno = EINVAL;
		return NULL;
	}
	so.create = true;
	qc->sp = spool_open(&so, err, errlen);
	if (qc->sp == NULL) {
		rc = errno;
		free(qc);
		errno = rc;
		return NULL;
	}
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = 0;
	snprintf(qc->hostname, sizeof(qc->hostname), "%s",
		 dmta_conf_str(conf, "queue", "myhostname", host));
	qc->lifetime_ms = sc.lifetime_ms;
	ops = (struct queue_sched_ops){
	    .store = ctl_store, .dsn = ctl_dsn, .delay = ctl_delay, .done = ctl_done, .ctx = qc};
	qc->s = queue_sched_new(&sc, &ops, now_ns ^ (uint64_t)getpid());
	if (qc->s == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	qc->wake_fd = spool_wake_listen(spool_path(qc->sp));
	if (qc->wake_fd < 0) {
		snprintf(err, errlen, "wake socket in %s: %s", spool_path(qc->sp),
			 strerror(-qc->wake_fd));
		goto fail;
	}
	rc = queue_ctl_load_new(qc, now_ns);
	if (rc < 0) {
		snprintf(err, errlen, "loading the spool: %s", spool_strerror(rc));
		goto fail;
	}
	dmta_info("queue: %d messages loaded from %s", rc, spool_path(qc->sp));
	return qc;
fail:
	queue_ctl_close(qc);
	errno = EIO;
	return NULL;
}

void queue_ctl_close(struct queue_ctl *qc)
{
	if (qc == NULL)
		return;
	if (qc->t)
		(void)queue_ctl_commit(qc, qc->now_ns);
	if (qc->wake_fd >= 0)
		close(qc->wake_fd);
	queue_sched_free(qc->s);
	spool_close(qc->sp);
	free(qc->gone);
	free(qc);
}

int queue_ctl_wake_fd(const struct queue_ctl *qc)
{
	return qc->wake_fd;
}

int queue_ctl_on_wake(struct queue_ctl *qc, uint64_t now_ns)
{
	bool load = false, sync = false;
	int n = 0, rc = 0;

	for (;;) {
		char buf[300];
		ssize_t len = recv(qc->wake_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (len < 0)
			break;
		buf[len] = 0;
		n++;
		if (strcmp(buf, "wake") == 0) {
			load = true;
		} else if (strcmp(buf, "sync") == 0) {
			sync = true;
		} else if (strcmp(buf, "flush") == 0 || strncmp(buf, "flush ", 6) == 0) {
			load = true;
			(void)queue_sched_flush(qc->s, buf[5] ? buf + 6 : NULL, now_ns);
		} else {
			dmta_warn("queue: unknown wake-up request \"%.40s\" ignored", buf);
		}
	}
	if (load)
		rc = queue_ctl_load_new(qc, now_ns);
	if (rc >= 0 && sync)
		rc = queue_ctl_sync(qc, now_ns);
	/* Holds applied by the sync are stored: commit before anyone else writes. */
	if (qc->t) {
		int c = queue_ctl_commit(qc, now_ns);

		if (rc >= 0 && c < 0)
			rc = c;
	}
	return rc < 0 ? rc : n;
}

int queue_ctl_tick(struct queue_ctl *qc, uint64_t now_ns)
{
	int rc;

	qc->now_ns = now_ns;
	rc = queue_sched_tick(qc->s, now_ns);
	forget_gone(qc);
	return rc;
}

int queue_ctl_jobs(struct queue_ctl *qc, uint64_t now_ns, struct queue_job *jobs, int max)
{
	int n;

	qc->now_ns = now_ns;
	n = queue_sched_jobs(qc->s, now_ns, jobs, max);
	forget_gone(qc);
	return n;
}

int queue_ctl_result(struct queue_ctl *qc, struct queue_job *job, const struct queue_result *res,
		     uint64_t now_ns)
{
	int rc;

	qc->now_ns = now_ns;
	rc = queue_sched_result(qc->s, job, res, now_ns);
	forget_gone(qc);
	return rc;
}

int queue_ctl_commit(struct queue_ctl *qc, uint64_t now_ns)
{
	int rc = qc->txn_err;

	if (qc->t) {
		if (rc == 0) {
			rc = spool_commit(qc->t);
		} else {
			spool_abort(qc->t);
		}
		qc->t = NULL;
	}
	qc->txn_err = 0;
	if (rc < 0) {
		dmta_err("queue: results not committed (%s); they are redone after a restart",
			 spool_strerror(rc));
		return rc;
	}
	/* DSNs queued by this commit join the schedule. */
	rc = queue_ctl_load_new(qc, now_ns);
	return rc < 0 ? rc : 0;
}

struct spool *queue_ctl_spool(struct queue_ctl *qc)
{
	return qc->sp;
}

struct queue_sched *queue_ctl_sched(struct queue_ctl *qc)
{
	return qc->s;
}
