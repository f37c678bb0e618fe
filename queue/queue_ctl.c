/*
 * queue_ctl.c - see queue_ctl.h.
 */
#include <errno.h>
#include <pthread.h>
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
#include "queue/queue_egress.h"

/* A change the scheduler asked for, written at the next commit. */
enum pend_kind { PEND_STORE, PEND_DSN, PEND_DELAY, PEND_DONE };

struct pend {
	enum pend_kind kind;
	struct queue_env env; /* an owning copy: the scheduler's may change;
			       * PEND_DONE: its qid only */
	uint32_t *rcpt;	      /* PEND_DSN, PEND_DELAY */
	uint32_t n;
	struct pend *next;
};

/* What a commit did, for the control thread to take in (commit_take). */
struct commit_out {
	int rc;
	uint64_t dsns, delays; /* DSNs written */
	uint64_t *gone;	       /* messages found deleted behind our back */
	size_t ngone;
	uint64_t ns; /* how long it took, handover to durable */
};

/* Longest batch handed to the committer: one LMDB transaction's worth. */
#define COMMIT_BATCH_MAX 4096
/* With this many changes waiting behind a commit, no new job goes out. */
#define COMMIT_BACKLOG_MAX (4 * COMMIT_BATCH_MAX)
/*
 * A group commit: at most one batch is handed over per COMMIT_GAP_NS
 * (sooner when COMMIT_BATCH_MAX changes wait). What these commits write
 * (delivered messages deleted, attempts recorded, DSNs) was acknowledged
 * to no one, so a crash within the gap delivers a message twice at most
 * and loses none. A commit costs the disk's flush, not its changes: at
 * 60,000 deliveries a second back-to-back commits came every 0.8 ms and
 * took half a CPU in the kernel's writeback and flush; with the gap,
 * a commit every 5 ms, 25% less CPU a message (bench/RESULTS.md).
 */
#define COMMIT_GAP_NS (5 * DMTA_NS_PER_MS)

struct queue_ctl {
	struct spool *sp;
	struct queue_sched *s;
	struct queue_egress *egress; /* sources and pools, for the scheduler */
	struct queue_ctl_hooks hooks;
	int wake_fd;
	uint64_t next_qid; /* load from here on */
	bool scan_needed;  /* a wake-up or a new DSN: load before scheduling */
	bool in_result;	   /* a failure now comes from an attempt, not from expiry */
	struct pend *head, **tail;
	size_t npend;
	/* The longest batch the committer is handed: COMMIT_BATCH_MAX, halved
	 * after each batch the spool had no room for, doubled after each
	 * written (see commit_take). */
	size_t batch_max;
	size_t batch_n; /* changes in the batch out */
	/* The last commit failed: what is pending is kept, written again no
	 * sooner than retry_ns, and no new job goes out meanwhile. */
	bool failing;
	uint64_t retry_ns, retry_ms;
	char hostname[256];
	uint64_t lifetime_ms; /* for Will-Retry-Until in delay warnings */
	char *tmpl_failed, *tmpl_delayed;
	struct queue_ctl_stats st;

	/* The committer thread (queue_ctl_commit_async). The control thread
	 * hands it a batch (busy = true) and takes it back after it said
	 * "committed" on the wake socket; meanwhile only the committer
	 * touches the batch and out. Under mu: batch, done, stop. */
	pthread_t committer;
	bool committer_running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pend *batch;	 /* handed over, being written */
	struct pend *batch_last; /* its last change */
	bool busy;		 /* a batch is out (control thread's view) */
	bool done;		 /* the committer finished it */
	bool stop;
	uint64_t batch_now_ns;	 /* the wall clock at handover (DSN dates) */
	uint64_t batch_start_ns; /* monotonic, at handover */
	struct commit_out out;
};

/* ---- changes, kept until the commit ---- */

static void pend_push(struct queue_ctl *qc, enum pend_kind kind, const struct queue_env *env,
		      const uint32_t *rcpt, uint32_t n)
{
	struct pend *p = malloc(sizeof(*p)); /* malloc has a per-thread cache, calloc not */

	if (p == NULL)
		goto oom;
	*p = (struct pend){.kind = kind};
	/* A removal needs the queue id only: the spool finds the rest. */
	if (kind == PEND_DONE)
		p->env.qid = env->qid;
	else if (queue_env_dup(&p->env, env) != 0)
		goto oom;
	if (n > 0) {
		p->rcpt = malloc(n * sizeof(*rcpt));
		if (p->rcpt == NULL)
			goto oom;
		memcpy(p->rcpt, rcpt, n * sizeof(*rcpt));
		p->n = n;
	}
	*qc->tail = p;
	qc->tail = &p->next;
	qc->npend++;
	return;
oom:
	/* The change stays in the scheduler's memory, and the spool catches
	 * up with the next change of this message (or is redone after a
	 * restart). */
	dmta_err("queue: out of memory: a spool update for %llu is delayed",
		 (unsigned long long)env->qid);
	if (p != NULL) {
		queue_env_free(&p->env);
		free(p->rcpt);
	}
	free(p);
}

static void pend_free(struct pend *p)
{
	queue_env_free(&p->env);
	free(p->rcpt);
	free(p);
}

static void ops_store(void *ctx, const struct queue_env *env)
{
	pend_push(ctx, PEND_STORE, env, NULL, 0);
}

static void ops_dsn(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	struct queue_ctl *qc = ctx;

	/* Failures from an attempt were reported with its result. */
	if (!qc->in_result) {
		qc->st.expired += n;
		if (qc->hooks.expired != NULL)
			qc->hooks.expired(qc->hooks.ctx, env, rcpt, n);
	}
	pend_push(qc, PEND_DSN, env, rcpt, n);
}

static void ops_delay(void *ctx, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	struct queue_ctl *qc = ctx;

	if (qc->hooks.delayed != NULL)
		qc->hooks.delayed(qc->hooks.ctx, env, rcpt, n);
	pend_push(ctx, PEND_DELAY, env, rcpt, n);
}

static void ops_done(void *ctx, const struct queue_env *env)
{
	pend_push(ctx, PEND_DONE, env, NULL, 0);
}

/* A DSN for p's recipients, in transaction t (in the committing thread: it
 * touches nothing of qc's but constants, and counts in @p out). 0, or a
 * spool error. */
static int write_dsn(const struct queue_ctl *qc, struct spool_txn *t, const struct pend *p,
		     uint64_t now_ns, struct commit_out *out)
{
	struct queue_bounce_opts bo = {
	    .hostname = qc->hostname,
	    .now_ns = now_ns,
	    .delayed = p->kind == PEND_DELAY,
	    .retry_until_ns = p->env.arrival_ns + qc->lifetime_ms * DMTA_NS_PER_MS,
	    .tmpl_failed = qc->tmpl_failed,
	    .tmpl_delayed = qc->tmpl_delayed,
	};
	char id[17], bid[17];
	const void *msg;
	size_t len;
	uint64_t bq;
	int rc = spool_msg_get(t, p->env.qid, &msg, &len);

	if (rc != 0)
		return rc; /* -ENOENT: deleted by an administrator, no DSN */
	rc = queue_bounce_queue(t, &p->env, msg, len, p->rcpt, p->n, &bo, &bq);
	if (rc == -EINVAL)
		return 0; /* the null sender, or a DSN itself: none is due */
	if (rc != 0)
		return rc;
	if (bo.delayed)
		out->delays++;
	else
		out->dsns++;
	dmta_info("queue: %s: %s DSN %s queued for %u recipient%s", queue_id_fmt(p->env.qid, id),
		  bo.delayed ? "delay" : "failure", queue_id_fmt(bq, bid), p->n,
		  p->n == 1 ? "" : "s");
	return 0;
}

#define COMMIT_RETRY_MIN_MS 500
#define COMMIT_RETRY_MAX_MS 30000

/*
 * Write the changes from @p first to @p last (inclusive) in one
 * transaction. Runs in the committer thread, or in the control thread
 * when no batch is out: it reads only the changes and qc's constants.
 */
static void commit_write(const struct queue_ctl *qc, struct pend *first, const struct pend *last,
			 uint64_t now_ns, struct commit_out *out)
{
	struct spool_txn *t;
	struct pend *p;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = spool_begin(qc->sp, true, &t);
	for (p = first; rc == 0 && p != NULL; p = p == last ? NULL : p->next) {
		switch (p->kind) {
		case PEND_STORE:
			rc = spool_env_store(t, &p->env);
			break;
		case PEND_DSN:
		case PEND_DELAY:
			rc = write_dsn(qc, t, p, now_ns, out);
			break;
		case PEND_DONE:
			rc = spool_delete(t, p->env.qid);
			break;
		default:
			dmta_panic("queue: pending change of kind %d", p->kind);
		}
		if (rc == -ENOENT) {
			/* Deleted by dmta-queue meanwhile: the scheduler forgets it too. */
			uint64_t *v = realloc(out->gone, (out->ngone + 1) * sizeof(*v));

			if (v != NULL) {
				out->gone = v;
				out->gone[out->ngone++] = p->env.qid;
			}
			rc = 0;
		}
		if (rc != 0)
			spool_abort(t);
	}
	if (rc == 0)
		rc = spool_commit(t);
	out->rc = rc;
}

#define COMMIT_RETRY_MIN_MS 500
#define COMMIT_RETRY_MAX_MS 30000

/*
 * A commit of the changes from qc->head to @p last is over (@p out): take
 * it in. Written, they are freed and what they reported is counted; not,
 * they stay at the head of the pending list, in order, and are written
 * with what comes after them: dropping them would lose the failure DSNs
 * the scheduler has marked as sent and keep delivered messages in the
 * spool for a second delivery after a restart. Until they are written no
 * new delivery starts, so what we cannot record we do not do.
 */
static int commit_take(struct queue_ctl *qc, struct pend *last, struct commit_out *out,
		       uint64_t now_ns)
{
	int rc = out->rc;

	if (rc == 0) {
		struct pend *p = qc->head, *next;

		qc->st.commits++;
		qc->st.dsns += out->dsns;
		qc->st.delays += out->delays;
		if (out->dsns + out->delays > 0)
			qc->scan_needed = true; /* the DSNs are new mail */
		for (size_t i = 0; i < out->ngone; i++)
			(void)queue_sched_remove(qc->s, out->gone[i]);
		qc->batch_max =
		    qc->batch_max < COMMIT_BATCH_MAX / 2 ? qc->batch_max * 2 : COMMIT_BATCH_MAX;
		if (qc->failing)
			dmta_info("queue: spool updates written again; deliveries resume");
		qc->failing = false;
		qc->retry_ms = 0;
		qc->head = last->next;
		if (qc->head == NULL)
			qc->tail = &qc->head;
		for (;; p = next) {
			next = p->next;
			pend_free(p);
			qc->npend--;
			if (p == last)
				break;
		}
	} else {
		/*
		 * A full spool (map or disk) can refuse a batch that frees room
		 * (removals) and needs room (DSNs) at once: LMDB reuses the pages
		 * a transaction frees only in later ones. A shorter prefix, next
		 * time, lets the removals go first, in order.
		 */
		if (rc == -ENOSPC && qc->batch_n > 1)
			qc->batch_max =
			    qc->batch_n / 2 < COMMIT_BATCH_MAX ? qc->batch_n / 2 : COMMIT_BATCH_MAX;
		qc->st.commit_errors++;
		qc->retry_ms = qc->retry_ms ? qc->retry_ms * 2 : COMMIT_RETRY_MIN_MS;
		if (qc->retry_ms > COMMIT_RETRY_MAX_MS)
			qc->retry_ms = COMMIT_RETRY_MAX_MS;
		qc->retry_ns = now_ns + qc->retry_ms * DMTA_NS_PER_MS;
		dmta_err("queue: spool update failed (%s); deliveries paused, trying again in "
			 "%llu ms",
			 spool_strerror(rc), (unsigned long long)qc->retry_ms);
		qc->failing = true;
	}
	qc->st.last_commit_ns = out->ns;
	free(out->gone);
	memset(out, 0, sizeof(*out));
	return rc;
}

static void *queue_ctl_committer(void *arg)
{
	struct queue_ctl *qc = arg;

	pthread_mutex_lock(&qc->mu);
	for (;;) {
		struct pend *first, *last;
		uint64_t now;

		while (qc->batch == NULL && !qc->stop)
			pthread_cond_wait(&qc->cv, &qc->mu);
		if (qc->batch == NULL)
			break;
		first = qc->batch;
		last = qc->batch_last;
		now = qc->batch_now_ns;
		pthread_mutex_unlock(&qc->mu);

		commit_write(qc, first, last, now, &qc->out);
		qc->out.ns = dmta_now_ns() - qc->batch_start_ns;

		pthread_mutex_lock(&qc->mu);
		qc->batch = NULL;
		qc->done = true;
		pthread_cond_broadcast(&qc->cv);
		/* The control thread's loop learns it the way it learns of new
		 * mail; a full socket means it has a wake-up to read anyway. */
		(void)spool_wake(spool_path(qc->sp), "committed");
	}
	pthread_mutex_unlock(&qc->mu);
	return NULL;
}

/* Take in the batch out, if it is done (or, with @p wait, once it is). */
static void commit_reap(struct queue_ctl *qc, bool wait, uint64_t now_ns)
{
	struct pend *last;
	bool done;

	if (!qc->busy)
		return;
	pthread_mutex_lock(&qc->mu);
	while (wait && !qc->done)
		pthread_cond_wait(&qc->cv, &qc->mu);
	done = qc->done;
	qc->done = false;
	last = qc->batch_last;
	pthread_mutex_unlock(&qc->mu);
	if (!done)
		return;
	qc->busy = false;
	(void)commit_take(qc, last, &qc->out, now_ns);
}

/* The first @p max pending changes (*n of them); their last. */
static struct pend *batch_end(struct queue_ctl *qc, size_t max, size_t *n)
{
	struct pend *p = qc->head;

	for (*n = 1; *n < max && p->next != NULL; ++*n)
		p = p->next;
	return p;
}

/* Nanoseconds until the next batch may be handed over (COMMIT_GAP_NS). */
static uint64_t commit_hold_ns(const struct queue_ctl *qc)
{
	uint64_t since = dmta_now_ns() - qc->batch_start_ns;

	if (qc->npend >= COMMIT_BATCH_MAX || since >= COMMIT_GAP_NS)
		return 0;
	return COMMIT_GAP_NS - since;
}

int queue_ctl_commit_async(struct queue_ctl *qc, uint64_t now_ns)
{
	commit_reap(qc, false, now_ns);
	if (qc->head == NULL || qc->busy)
		return 0;
	if (qc->failing && now_ns < qc->retry_ns)
		return -EAGAIN;
	if (commit_hold_ns(qc) > 0)
		return 0; /* queue_ctl_next_due() says when */
	if (!qc->committer_running) {
		if (pthread_create(&qc->committer, NULL, queue_ctl_committer, qc) != 0)
			return queue_ctl_commit(qc, now_ns); /* in this thread, then */
		qc->committer_running = true;
	}
	pthread_mutex_lock(&qc->mu);
	qc->batch_last = batch_end(qc, qc->batch_max, &qc->batch_n);
	qc->batch_now_ns = now_ns;
	qc->batch_start_ns = dmta_now_ns();
	qc->batch = qc->head;
	qc->busy = true;
	pthread_cond_signal(&qc->cv);
	pthread_mutex_unlock(&qc->mu);
	return 0;
}

int queue_ctl_commit(struct queue_ctl *qc, uint64_t now_ns)
{
	struct commit_out out;
	struct pend *last;
	uint64_t t0;

	commit_reap(qc, true, now_ns);
	if (qc->head == NULL)
		return 0;
	if (qc->failing && now_ns < qc->retry_ns)
		return -EAGAIN;
	last = batch_end(qc, SIZE_MAX, &qc->batch_n);
	t0 = dmta_now_ns();
	commit_write(qc, qc->head, last, now_ns, &out);
	out.ns = dmta_now_ns() - t0;
	return commit_take(qc, last, &out, now_ns);
}

/* ---- reading the spool ---- */

struct load_ctx {
	struct queue_ctl *qc;
	uint64_t now;
	int n;
};

static int load_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct load_ctx *lc = arg;
	char id[17];
	int rc;

	if (env->qid >= lc->qc->next_qid)
		lc->qc->next_qid = env->qid + 1;
	if (!queue_env_active(env))
		return 0; /* finished but not removed: removed by queue_ctl_sync() */
	rc = queue_sched_add(lc->qc->s, env, lc->now);
	if (rc == 0) {
		lc->n++;
		lc->qc->st.loaded++;
		if (lc->qc->hooks.loaded != NULL) {
			const void *msg = NULL;
			size_t len = 0;

			if (spool_msg_get(t, env->qid, &msg, &len) != 0)
				msg = NULL;
			lc->qc->hooks.loaded(lc->qc->hooks.ctx, env, msg, msg ? len : 0);
		}
	} else if (rc != -EEXIST) {
		/* It stays spooled, and is loaded again at the next start. */
		dmta_err("queue: cannot schedule %s: %s", queue_id_fmt(env->qid, id),
			 strerror(-rc));
	}
	return 0;
}

int queue_ctl_load_new(struct queue_ctl *qc, uint64_t now_ns)
{
	struct load_ctx lc = {qc, now_ns, 0};
	struct spool_txn *t;
	int rc = spool_begin(qc->sp, false, &t);

	qc->scan_needed = false;
	if (rc < 0) {
		dmta_err("queue: spool: %s", spool_strerror(rc));
		return rc;
	}
	rc = spool_foreach_from(t, qc->next_qid, load_one, &lc, NULL);
	spool_abort(t);
	if (rc < 0)
		dmta_err("queue: spool scan: %s", spool_strerror(rc));
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

int queue_ctl_sync(struct queue_ctl *qc, uint64_t now_ns)
{
	struct sync_ctx sc = {qc->s, now_ns};
	struct queue_sched_stats st;
	struct spool_txn *t;
	int rc = spool_begin(qc->sp, false, &t);

	if (rc < 0)
		return rc;
	rc = spool_foreach(t, sync_one, &sc, NULL);
	/* Messages the scheduler tracks that the spool no longer has. */
	queue_sched_get_stats(qc->s, &st);
	if (rc == 0 && st.messages) {
		uint64_t *ids = malloc(st.messages * sizeof(*ids));
		size_t n;

		if (ids == NULL) {
			spool_abort(t);
			return -ENOMEM;
		}
		n = queue_sched_ids(qc->s, ids, st.messages);
		for (size_t i = 0; i < n; i++) {
			const void *p;
			size_t len;

			if (spool_msg_get(t, ids[i], &p, &len) == -ENOENT)
				(void)queue_sched_remove(qc->s, ids[i]);
		}
		free(ids);
	}
	spool_abort(t);
	return rc;
}

/* ---- set-up ---- */

struct queue_ctl_keys {
	const char *bounce_template, *delay_template;
};

static const struct dmta_conf_key queue_ctl_keys[] = {
    {.name = "bounce_template",
     .type = DMTA_CONF_STR,
     .example = "/etc/dmta/bounce.txt",
     DMTA_CONF_AT(struct queue_ctl_keys, bounce_template),
     .help = "Bounces and delay notices: the text for people is dmta's own unless\n"
	     "these name a file (UTF-8; first line \"Subject: ...\", then an empty\n"
	     "line, then the text, with ${hostname}, ${sender}, ${queue_id},\n"
	     "${arrival_date}, ${retry_until}, ${recipients}, ${returned})."},
    {.name = "delay_template",
     .type = DMTA_CONF_STR,
     .example = "/etc/dmta/delay.txt",
     DMTA_CONF_AT(struct queue_ctl_keys, delay_template)},
};

const struct dmta_conf_section queue_ctl_conf_section = {
    .name = "queue",
    .keys = queue_ctl_keys,
    .nkeys = DMTA_CONF_NKEYS(queue_ctl_keys),
};

/* An operator's DSN template, read and checked at start. */
static int load_template(const char *path, const char *key, char **out, char *err, size_t errlen)
{
	char why[200];
	FILE *f;
	size_t n;

	*out = NULL;
	if (path == NULL || *path == 0)
		return 0;
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "[queue] %s %s: %s", key, path, strerror(errno));
		return -EINVAL;
	}
	*out = malloc(QUEUE_BOUNCE_TEMPLATE_MAX + 2);
	if (*out == NULL) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = fread(*out, 1, QUEUE_BOUNCE_TEMPLATE_MAX + 1, f);
	fclose(f);
	(*out)[n] = 0;
	if (queue_bounce_template_check(*out, n, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "[queue] %s %s: %s", key, path, why);
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

struct queue_ctl *queue_ctl_open(const struct dmta_conf *conf, unsigned shards,
				 const struct queue_ctl_hooks *hooks, uint64_t now_ns, char *err,
				 size_t errlen)
{
	struct queue_sched_conf sc;
	struct spool_opts so = {0};
	struct queue_ctl *qc = calloc(1, sizeof(*qc));
	struct queue_sched_ops ops;
	struct queue_ctl_keys k = {NULL, NULL};

	if (qc == NULL) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	qc->wake_fd = -1;
	qc->tail = &qc->head;
	qc->batch_max = COMMIT_BATCH_MAX;
	pthread_mutex_init(&qc->mu, NULL);
	pthread_cond_init(&qc->cv, NULL);
	if (hooks != NULL)
		qc->hooks = *hooks;
	if (spool_opts_from_conf(conf, &so) < 0) {
		snprintf(err, errlen, "bad [spool] settings in %s", dmta_conf_source(conf));
		goto fail;
	}
	if (queue_sched_conf_load(conf, &sc) < 0) {
		snprintf(err, errlen, "bad [queue] settings in %s", dmta_conf_source(conf));
		goto fail;
	}
	if (shards != 0)
		sc.workers = shards;
	if (queue_egress_load(conf, &qc->egress, err, errlen) != 0)
		goto fail;
	sc.egress = qc->egress;
	(void)dmta_conf_read(conf, &queue_ctl_conf_section, &k); /* strings: never invalid */
	if (load_template(k.bounce_template, "bounce_template", &qc->tmpl_failed, err, errlen) !=
		0 ||
	    load_template(k.delay_template, "delay_template", &qc->tmpl_delayed, err, errlen) != 0)
		goto fail;
	so.create = true;
	so.check_owner = true;
	qc->sp = spool_open(&so, err, errlen);
	if (qc->sp == NULL)
		goto fail;
	queue_myhostname(conf, qc->hostname, sizeof(qc->hostname));
	qc->lifetime_ms = sc.lifetime_ms;
	ops = (struct queue_sched_ops){
	    .store = ops_store, .dsn = ops_dsn, .delay = ops_delay, .done = ops_done, .ctx = qc};
	qc->s = queue_sched_new(&sc, &ops, now_ns ^ (uint64_t)getpid());
	if (qc->s == NULL) {
		snprintf(err, errlen, "cannot create the scheduler: %s", strerror(errno));
		goto fail;
	}
	return qc;
fail:
	queue_ctl_close(qc);
	errno = EINVAL;
	return NULL;
}

int queue_ctl_start(struct queue_ctl *qc, uint64_t now_ns, char *err, size_t errlen)
{
	int rc;

	qc->wake_fd = spool_wake_listen(spool_path(qc->sp));
	if (qc->wake_fd < 0) {
		snprintf(err, errlen, "cannot listen for wake-ups in %s: %s", spool_path(qc->sp),
			 strerror(-qc->wake_fd));
		return qc->wake_fd;
	}
	rc = queue_ctl_load_new(qc, now_ns);
	if (rc < 0) {
		snprintf(err, errlen, "loading the spool: %s", spool_strerror(rc));
		return rc;
	}
	dmta_info("queue: %d messages loaded from %s", rc, spool_path(qc->sp));
	return 0;
}

void queue_ctl_close(struct queue_ctl *qc)
{
	if (qc == NULL)
		return;
	if (qc->busy)
		commit_reap(qc, true, dmta_wall_ns());
	if (qc->committer_running) {
		pthread_mutex_lock(&qc->mu);
		qc->stop = true;
		pthread_cond_signal(&qc->cv);
		pthread_mutex_unlock(&qc->mu);
		pthread_join(qc->committer, NULL);
	}
	if (qc->head != NULL) {
		qc->retry_ns = 0; /* the last chance */
		if (queue_ctl_commit(qc, dmta_wall_ns()) != 0)
			dmta_err("queue: spool updates not written; they are redone after a "
				 "restart (mail may go twice, none is lost)");
		for (struct pend *p = qc->head, *next; p != NULL; p = next) {
			next = p->next;
			pend_free(p);
		}
		qc->head = NULL;
	}
	if (qc->wake_fd >= 0)
		close(qc->wake_fd);
	queue_sched_free(qc->s);
	queue_egress_free(qc->egress);
	spool_close(qc->sp);
	free(qc->tmpl_failed);
	free(qc->tmpl_delayed);
	pthread_mutex_destroy(&qc->mu);
	pthread_cond_destroy(&qc->cv);
	free(qc);
}

/* ---- the loop's calls ---- */

int queue_ctl_wake_fd(const struct queue_ctl *qc)
{
	return qc->wake_fd;
}

/* "suspend TARGET [MS]" or "resume TARGET", from dmta-queue. */
static void wake_suspend(struct queue_ctl *qc, char *buf, uint64_t now_ns)
{
	bool suspend = buf[0] == 's';
	char *target = buf + (suspend ? 8 : 7), *ms = strchr(target, ' ');
	uint64_t dur = 0;
	int rc;

	if (ms != NULL) {
		*ms++ = '\0';
		if (dmta_parse_u64(ms, &dur) != 0) {
			dmta_warn("queue: %s %s: bad duration \"%.20s\"",
				  suspend ? "suspend" : "resume", target, ms);
			return;
		}
	}
	rc = suspend ? queue_sched_suspend(qc->s, target, dur, now_ns)
		     : queue_sched_resume(qc->s, target, now_ns);
	if (rc == 0)
		dmta_info("queue: %s %s%s", suspend ? "suspended" : "resumed", target,
			  suspend && dur == 0 ? " until resumed" : "");
	else
		dmta_warn("queue: %s %s: %s", suspend ? "suspend" : "resume", target,
			  rc == -ENOENT ? "nothing was suspended there" : strerror(-rc));
}

int queue_ctl_on_wake(struct queue_ctl *qc, uint64_t now_ns)
{
	int n = 0, rc = 0;
	bool load = false;

	commit_reap(qc, false, now_ns);
	for (;;) {
		char buf[512];
		ssize_t len = recv(qc->wake_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (len < 0)
			break;
		buf[len] = 0;
		n++;
		if (strcmp(buf, "committed") == 0) {
			/* the committer's: taken in above or, if it came after
			 * that, at the next turn's commit */
		} else if (strcmp(buf, "wake") == 0) {
			load = true; /* once for all the wake-ups read here */
		} else if (strcmp(buf, "sync") == 0) {
			rc = queue_ctl_sync(qc, now_ns);
			if (rc < 0)
				dmta_err("queue: sync with the spool: %s", spool_strerror(rc));
		} else if (strcmp(buf, "flush") == 0 || strncmp(buf, "flush ", 6) == 0) {
			const char *dom = buf[5] == ' ' && buf[6] ? buf + 6 : NULL;
			int k;

			/* New mail first, so that the flush covers it too. */
			(void)queue_ctl_load_new(qc, now_ns);
			k = queue_sched_flush(qc->s, dom, now_ns);
			dmta_info("queue: flush%s%s: %d messages due now", dom ? " " : "",
				  dom ? dom : "", k);
		} else if (strncmp(buf, "suspend ", 8) == 0 || strncmp(buf, "resume ", 7) == 0) {
			wake_suspend(qc, buf, now_ns);
		} else {
			dmta_warn("queue: unknown wake-up request \"%.40s\" ignored", buf);
		}
	}
	if (load) {
		int k = queue_ctl_load_new(qc, now_ns);

		if (rc == 0 && k < 0)
			rc = k;
	}
	return rc < 0 ? rc : n;
}

int queue_ctl_tick(struct queue_ctl *qc, uint64_t now_ns)
{
	if (qc->scan_needed)
		(void)queue_ctl_load_new(qc, now_ns);
	return queue_sched_tick(qc->s, now_ns);
}

int queue_ctl_jobs(struct queue_ctl *qc, uint64_t now_ns, struct queue_job *jobs, int max)
{
	if (qc->failing || qc->npend >= COMMIT_BACKLOG_MAX)
		return 0; /* back-pressure: outcomes could not be written (yet) */
	return queue_sched_jobs(qc->s, now_ns, jobs, max);
}

int queue_ctl_result(struct queue_ctl *qc, struct queue_job *job, const struct queue_result *res,
		     uint64_t now_ns)
{
	int rc;

	qc->in_result = true;
	rc = queue_sched_result(qc->s, job, res, now_ns);
	qc->in_result = false;
	return rc;
}

bool queue_ctl_pending(const struct queue_ctl *qc)
{
	/* Changes behind a batch that is out wait for its "committed": no
	 * reason to spin meanwhile. */
	return qc->scan_needed ||
	       (qc->head != NULL && !qc->failing && !qc->busy && commit_hold_ns(qc) == 0);
}

uint64_t queue_ctl_next_due(const struct queue_ctl *qc)
{
	uint64_t due = queue_sched_next_due(qc->s);

	if (qc->failing && qc->head != NULL && qc->retry_ns < due)
		due = qc->retry_ns;
	if (qc->head != NULL && !qc->failing && !qc->busy) {
		uint64_t commit = dmta_wall_ns() + commit_hold_ns(qc);

		if (commit < due)
			due = commit;
	}
	return due;
}

struct spool *queue_ctl_spool(struct queue_ctl *qc)
{
	return qc->sp;
}

struct queue_egress *queue_ctl_egress(struct queue_ctl *qc)
{
	return qc->egress;
}

struct queue_sched *queue_ctl_sched(struct queue_ctl *qc)
{
	return qc->s;
}

void queue_ctl_get_stats(const struct queue_ctl *qc, struct queue_ctl_stats *st)
{
	*st = qc->st;
}
