/*
 * dmta_dbackend.c - see dmta_dbackend.h.
 *
 * The worker's side (ws_*) runs on the worker's lcore and touches its own
 * struct wstate and the rings; the control thread's side (db_*) runs in
 * the control thread. They share the rings, the doorbell, and a few
 * atomics: draining (control -> workers), drain_seen and closing (each
 * worker -> control).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_ring.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "core/dataplane/dmta_dbackend.h"
#include "core/control/dmta_pool.h"
#include "core/control/dmta_metrics.h"
#include "core/control/dmta_stats.h"
#include "core/dataplane/dmta_tcpx.h"
#include "core/dataplane/dmta_telemetry.h"

#define DB_RING	 65536 /* jobs in flight per worker, each way */
#define DB_BURST 32
/* Results wait at most this long for a doorbell; fewer syscalls under load. */
#define DB_BELL_US 50

struct dmta_dbackend;

struct wstate {
	struct dmta_dbackend *db;
	struct dmta_worker *w;
	struct rte_ring *in;  /* control -> worker */
	struct rte_ring *out; /* worker -> control */
	struct dmta_pool *pool;
	struct dmta_tcpx tcpx; /* the pool's transport over the worker's stack */
	struct smtp_tls_ctx *tls;
	uint64_t last_pool_tick;
	bool ring_bell;		      /* results since the last doorbell */
	uint64_t last_bell, bell_gap; /* TSC */
	bool drained;
	/* After the drain: published for the control thread, which waits for
	 * the sessions to say goodbye before it stops the workers. */
	atomic_bool drain_seen;
	atomic_uint closing; /* dmta_pool_busy() */
	bool direct;	     /* workers stopped: results go straight to the control thread */
	/* The control thread's: jobs given to this worker and not collected
	 * yet. Kept under the result ring's capacity, so the ring has room
	 * for every result the worker can have. */
	unsigned outstanding;
} __rte_cache_aligned;

struct dmta_dbackend {
	struct dmta_dataplane *dp;
	struct wstate *ws;
	unsigned int n;
	int bell; /* eventfd: workers -> control thread */
	atomic_bool draining;
	/* The control thread's, from dmta_dbackend_bind() until release. */
	dmta_job_done_fn *done;
	void *ctl;
	struct dmta_backend ops;
	struct dmta_loop *loop;
	unsigned busy; /* jobs handed to the workers, not back yet */
	bool released; /* the control thread has let go: the pools are gone */
};

/* ---- the worker's side ---- */

static void ws_done(void *arg, struct dmta_job *job)
{
	struct wstate *ws = arg;

	if (ws->direct) {
		ws->db->busy--;
		ws->db->done(ws->db->ctl, job);
		return;
	}
	/* Invariant: db_submit() gives a worker no more jobs than its result
	 * ring holds (ws->outstanding), so this cannot fail; if it did, the
	 * job's outcome would be lost, and stopping is the safe answer. */
	if (rte_ring_sp_enqueue(ws->out, job) != 0)
		dmta_panic("dbackend: result ring of worker %u full", ws->w->id);
	ws->ring_bell = true;
}

static uint64_t ws_tsc(void *arg)
{
	return rte_rdtsc();
}

/* TCP news: exactly one pool call per event (see dmta_pool.h). */
static void ws_events(void *arg, struct dmta_worker *w, const struct tcp_event *ev, uint16_t n,
		      uint64_t now_tsc)
{
	dmta_tcpx_events(ev, n);
}

/* Every turn: new jobs start at once, and results wake the control thread
 * soon (a doorbell is a system call: at most one per DB_BELL_US). */
static void ws_poll(void *arg, struct dmta_worker *w, uint64_t now_tsc)
{
	struct wstate *ws = arg;
	struct dmta_job *jobs[DB_BURST];
	unsigned k;

	while ((k = rte_ring_sc_dequeue_burst(ws->in, (void **)jobs, DB_BURST, NULL)) > 0) {
		for (unsigned i = 0; i < k; i++) {
			int rc = dmta_pool_submit(ws->pool, jobs[i]);

			if (rc != 0) {
				jobs[i]->connected = false;
				jobs[i]->local = true;
				snprintf(jobs[i]->reply, sizeof(jobs[i]->reply),
					 "451 4.3.0 worker %u cannot take the job: %s", w->id,
					 strerror(-rc));
				ws_done(ws, jobs[i]);
			}
		}
		if (k < DB_BURST)
			break;
	}
	if (ws->ring_bell && now_tsc - ws->last_bell >= ws->bell_gap) {
		uint64_t one = 1;

		if (write(ws->db->bell, &one, sizeof(one)) < 0) {
			/* The counter is saturated: the control thread is awake anyway. */
		}
		ws->ring_bell = false;
		ws->last_bell = now_tsc;
	}
}

static void ws_tick(void *arg, struct dmta_worker *w, uint64_t now_tsc)
{
	struct wstate *ws = arg;

	/* Deadlines are seconds long: every 10 ms is often enough. */
	if (now_tsc - ws->last_pool_tick >= rte_get_tsc_hz() / 100) {
		dmta_pool_tick(ws->pool);
		ws->last_pool_tick = now_tsc;
	}
	if (!ws->drained && atomic_load_explicit(&ws->db->draining, memory_order_acquire)) {
		dmta_pool_drain(ws->pool);
		ws->drained = true;
	}
	if (ws->drained) {
		atomic_store_explicit(&ws->closing, dmta_pool_busy(ws->pool), memory_order_release);
		atomic_store_explicit(&ws->drain_seen, true, memory_order_release);
	}
}

struct dmta_dbackend *dmta_dbackend_new(struct dmta_dataplane *dp, const struct dmta_conf *conf,
					char *err, size_t errlen)
{
	char helo[256]; /* dmta_pool_new() copies it */
	struct dmta_pool_conf pc0;
	struct dmta_dbackend *db;
	const char *ca;

	if (dmta_pool_conf_load(conf, &pc0, helo, sizeof(helo), &ca) != 0) {
		snprintf(err, errlen, "invalid [smtp] settings in %s", dmta_conf_source(conf));
		return NULL;
	}
	db = calloc(1, sizeof(*db));
	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	db->dp = dp;
	db->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (db->bell < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	db->ws =
	    rte_zmalloc("dmta_dbackend", sizeof(*db->ws) * dp->nb_workers, RTE_CACHE_LINE_SIZE);
	if (db->ws == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	db->n = dp->nb_workers;
	for (unsigned int k = 0; k < db->n; k++) {
		struct wstate *ws = &db->ws[k];
		char name[RTE_RING_NAMESIZE];
		struct dmta_pool_conf pc = pc0;
		struct dmta_pool_xport xp;
		struct dmta_worker_app app = {
		    .events = ws_events, .tick = ws_tick, .poll = ws_poll, .arg = ws};

		ws->db = db;
		ws->w = &dp->workers[k];
		ws->tcpx =
		    (struct dmta_tcpx){.stk = ws->w->stk,
				       .now_tsc = ws_tsc,
				       .ns_per_tsc_q32 = (DMTA_NS_PER_S << 32) / rte_get_tsc_hz()};
		dmta_tcpx_xport(&ws->tcpx, &xp);
		ws->bell_gap = rte_get_tsc_hz() / 1000000 * DB_BELL_US;
		snprintf(name, sizeof(name), "dmta_jobs_%u", k);
		ws->in =
		    rte_ring_create(name, DB_RING, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "dmta_results_%u", k);
		ws->out =
		    rte_ring_create(name, DB_RING, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		/* One TLS context per worker: its session cache is not shared. */
		ws->tls = smtp_tls_ctx_new(ca, 256);
		pc.tls_ctx = ws->tls;
		ws->pool = ws->tls ? dmta_pool_new(&pc, &xp, ws_done, ws) : NULL;
		if (ws->in == NULL || ws->out == NULL || ws->pool == NULL) {
			snprintf(err, errlen, "worker %u: cannot set up delivery (rings, TLS%s%s)",
				 k, ca ? " with CA file " : "", ca ? ca : "");
			goto fail;
		}
		dmta_worker_set_app(ws->w, &app);
	}
	return db;
fail:
	dmta_dbackend_free(db);
	return NULL;
}

/* ---- the control thread's side ---- */

static void db_collect(struct dmta_dbackend *db)
{
	struct dmta_job *jobs[DB_BURST];
	unsigned k;

	for (unsigned int i = 0; i < db->n; i++) {
		while ((k = rte_ring_sc_dequeue_burst(db->ws[i].out, (void **)jobs, DB_BURST,
						      NULL)) > 0) {
			for (unsigned j = 0; j < k; j++) {
				db->busy--;
				db->ws[i].outstanding--;
				db->done(db->ctl, jobs[j]);
			}
		}
	}
}

static void db_bell(void *arg, int fd, uint32_t events)
{
	struct dmta_dbackend *db = arg;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: another turn already took it */
	}
	db_collect(db);
}

static int db_submit(void *be, struct dmta_job *job)
{
	struct dmta_dbackend *db = be;
	struct wstate *ws = &db->ws[job->sjob.shard % db->n];

	if (atomic_load(&db->draining) || db->released)
		return -ESHUTDOWN;
	/* Back-pressure, not a full result ring: see ws_done(). */
	if (ws->outstanding >= rte_ring_get_capacity(ws->out))
		return -ENOBUFS;
	if (rte_ring_sp_enqueue(ws->in, job) != 0)
		return -ENOBUFS;
	ws->outstanding++;
	db->busy++;
	return 0;
}

static int db_next_timeout_ms(void *be)
{
	const struct dmta_dbackend *db = be;

	/* The doorbell wakes the loop; this is a safety net only. */
	return db->busy > 0 ? 1000 : -1;
}

static void db_tick(void *be)
{
	struct dmta_dbackend *db = be;

	db_collect(db);
}

static void db_drain(void *be)
{
	struct dmta_dbackend *db = be;

	atomic_store_explicit(&db->draining, true, memory_order_release);
}

static unsigned db_busy(void *be)
{
	struct dmta_dbackend *db = be;
	unsigned n = db->busy;

	/* Stopping: the workers' sessions say QUIT (and close_notify, and
	 * FIN) only while the workers run. */
	if (atomic_load(&db->draining) && !db->released)
		for (unsigned int i = 0; i < db->n; i++)
			n += atomic_load_explicit(&db->ws[i].drain_seen, memory_order_acquire)
				 ? atomic_load_explicit(&db->ws[i].closing, memory_order_acquire)
				 : 1;
	return n;
}

/*
 * Each worker's counters, read from the control thread while the workers
 * run: the pool's as relaxed 64-bit atomic loads (see dmta_pool.h), the TCP
 * stack's as plain aligned 64-bit loads, as telemetry reads them. Nothing
 * is asked of the workers.
 */
static unsigned db_workers(void *be, struct dmta_stats_worker *w, unsigned max)
{
	struct dmta_dbackend *db = be;
	unsigned k;

	for (k = 0; k < db->n && k < max && !db->released; k++) {
		const struct wstate *ws = &db->ws[k];
		const struct tcp_stack_stats *ts = tcp_stack_stats(ws->w->stk);
		struct dmta_pool_stats ps;

		dmta_pool_read_stats(ws->pool, &ps);
		w[k] = (struct dmta_stats_worker){
		    .jobs = ps.busy,
		    .sessions = ps.conns,
		    .connecting = ps.connecting,
		    .idle = ps.idle,
		    .opened = ps.opened,
		    .connect_failed = ps.connect_failed,
		    .retransmits = *(const volatile uint64_t *)&ts->retransmits,
		};
	}
	return k;
}

/*
 * Every TCP counter of every worker's stack for Prometheus: one family per
 * counter, a sample per worker, read as db_workers() reads them.
 */
static void db_metrics(void *be, FILE *out)
{
	static const char *const gauges[] = {"conns", "conns_alloc", "sq_mbufs"};
	struct dmta_dbackend *db = be;
	size_t n;
	const struct tcp_stat_name *names = tcp_stack_stat_names(&n);
	char name[96], labels[32];

	if (db->released)
		return;
	for (size_t i = 0; i < n; i++) {
		bool gauge = false;

		for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++)
			gauge |= strcmp(names[i].name, gauges[g]) == 0;
		snprintf(name, sizeof(name), "dmta_tcp_%s%s", names[i].name, gauge ? "" : "_total");
		dmta_metrics_family(
		    out, name, gauge ? "gauge" : "counter",
		    "The userspace TCP stack's counter of that name (tcp_stack.h).");
		for (unsigned k = 0; k < db->n; k++) {
			const struct tcp_stack_stats *ts = tcp_stack_stats(db->ws[k].w->stk);

			snprintf(labels, sizeof(labels), "worker=\"%u\"", k);
			dmta_metrics_sample(
			    out, name, labels,
			    *(const volatile uint64_t *)&TCP_STAT_GET(ts, &names[i]));
		}
	}
}

static void db_publish(void *be, const struct dmta_stats *s)
{
	dmta_telemetry_control_publish(s);
}

/*
 * The control thread lets go (its backend's free()): every job still out
 * comes back through done(), and the doorbell leaves its loop. The pools
 * belong to the workers, so this runs once they have returned: dmtad
 * stops the data plane before it frees the control thread.
 */
static void db_release(void *be)
{
	struct dmta_dbackend *db = be;

	if (db->dp->launched)
		dmta_panic("dbackend: the control thread let go while the workers run");
	db_collect(db);
	for (unsigned int i = 0; i < db->n; i++) {
		struct wstate *ws = &db->ws[i];
		struct dmta_job *job;

		ws->direct = true;
		while (rte_ring_sc_dequeue(ws->in, (void **)&job) == 0) {
			job->connected = false;
			job->local = true;
			snprintf(job->reply, sizeof(job->reply), "451 4.3.2 dmtad stopped");
			ws_done(ws, job);
		}
		dmta_pool_free(ws->pool); /* fails what is in progress, through done() */
		ws->pool = NULL;
	}
	db->released = true;
	dmta_loop_del(db->loop, db->bell);
	db->loop = NULL;
}

struct dmta_backend *dmta_dbackend_bind(void *arg, struct dmta_loop *loop, dmta_job_done_fn *done,
					void *ctl)
{
	struct dmta_dbackend *db = arg;

	if (db->loop != NULL || db->released) {
		errno = EBUSY; /* one control thread, once */
		return NULL;
	}
	if (dmta_loop_add(loop, db->bell, EPOLLIN, db_bell, db) != 0) {
		errno = EIO;
		return NULL;
	}
	db->done = done;
	db->ctl = ctl;
	db->loop = loop;
	db->ops = (struct dmta_backend){
	    .name = "dpdk",
	    .submit = db_submit,
	    .next_timeout_ms = db_next_timeout_ms,
	    .tick = db_tick,
	    .drain = db_drain,
	    .busy = db_busy,
	    .free = db_release,
	    .workers = db_workers,
	    .publish = db_publish,
	    .metrics = db_metrics,
	    .be = db,
	};
	if (dmta_telemetry_control_init() != 0)
		dmta_warn("telemetry: /dmta/control unavailable");
	return &db->ops;
}

void dmta_dbackend_free(struct dmta_dbackend *db)
{
	if (db == NULL)
		return;
	if (db->dp->launched)
		dmta_panic("dbackend: freed while the workers run");
	if (db->loop != NULL)
		dmta_panic("dbackend: freed before the control thread let go");
	for (unsigned int i = 0; db->ws != NULL && i < db->n; i++) {
		struct wstate *ws = &db->ws[i];

		if (ws->w != NULL)
			dmta_worker_set_app(ws->w, &(struct dmta_worker_app){0});
		dmta_pool_free(ws->pool); /* never bound: no job in it */
		smtp_tls_ctx_free(ws->tls);
		rte_ring_free(ws->in);
		rte_ring_free(ws->out);
	}
	rte_free(db->ws);
	if (db->bell >= 0)
		close(db->bell);
	free(db);
}
