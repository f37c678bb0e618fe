/*
 * dmta_control.c - see dmta_control.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_str.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_control.h"
#include "core/control/dmta_control_conf.h"
#include "core/control/dmta_dlog.h"
#include "core/control/dmta_events.h"
#include "core/control/dmta_job.h"
#include "core/control/dmta_kbackend.h"
#include "core/control/dmta_listen.h"
#include "core/control/dmta_loop.h"
#include "core/control/dmta_metrics.h"
#include "core/control/dmta_pool.h"
#include "core/control/dmta_reload.h"
#include "core/control/dmta_stats.h"
#include "dns/dns_resolver.h"
#include "queue/queue_bounce.h"
#include "queue/queue_ctl.h"
#include "queue/queue_egress.h"
#include "queue/queue_rules.h"
#include "queue/queue_sched.h"
#include "queue/spool.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_tls.h"

#define CTL_JOBS_PER_TURN 256

/*
 * Routes kept per domain (job_route): a direct-mapped table of the last
 * answer for each slot's domain. A route is reused for at most
 * ROUTE_REUSE_NS and never past its TTL: a destination's TTL is its
 * records' whole TTL, not what remains of it in the resolver's cache, and
 * equal-preference exchangers are shuffled once per answer, so an answer
 * held long would outlive its records and send a domain's mail to one of
 * them only. A second of reuse still spares the cache walk and the copy of
 * the destination for all but the first of a busy domain's jobs.
 */
#define ROUTE_SLOTS    256
#define ROUTE_DOMAIN   80
#define ROUTE_REUSE_NS DMTA_NS_PER_S

struct route_slot {
	struct dmta_route *r; /* NULL: empty */
	uint64_t until_ns;    /* wall clock */
	char domain[ROUTE_DOMAIN];
};

/* Jobs waiting for one domain's DNS answer. */
struct dns_wait {
	struct dmta_control *ctl;
	char *domain;
	struct dmta_job **jobs;
	size_t n, cap;
	struct dns_wait *next, *prev;
};

struct dmta_control {
	const struct dmta_conf *conf;
	struct dmta_loop *loop;
	struct queue_ctl *qc;	   /* the spool, the schedule, DSNs */
	struct spool *sp;	   /* queue_ctl's, for reading messages */
	struct queue_sched *sched; /* queue_ctl's */
	struct dns_config dnscfg;
	bool dnscfg_loaded;
	struct dns_resolver *dns;
	struct dmta_backend *be;
	struct smtp_tls_ctx *tls_ctx;
	struct dmta_dlog *dlog;
	struct queue_rules *rules;	  /* reply rules: throttles, bounce-now */
	uint64_t by_class[QUEUE_CLASS_N]; /* failed attempts per bounce class */
	struct dmta_listen *listen;	  /* its own thread: SMTP in, the maildrop */

	bool stopping;
	struct dns_wait *waits;
	struct route_slot routes[ROUTE_SLOTS];

	char helo[256];
	struct dmta_control_conf cc;
	enum smtp_tls_policy mx_tls;
	enum smtp_tls_policy relay_tls;
	bool relay_verify, auth_plaintext;
	bool private_mx; /* [smtp] allow_private_mx */
	char *relay_user, *relay_pass;
	uint64_t stop_timeout_ms;
	/* [control] max_jobs, max_job_bytes: what may be out at once (each job
	 * holds a copy of its message); beyond it nothing more is handed out
	 * until jobs come back. */
	uint64_t max_jobs, max_job_bytes;
	uint64_t biggest; /* the largest message a job held so far */
	struct dmta_control_stats st;
	uint64_t commits_seen; /* spool commits (and failures) in the histogram */

	/* The live view (dmta_stats.h). */
	int lock_fd;		/* SPOOL/dmtad.pid, locked while we run */
	uint64_t started_ns;	/* wall clock */
	uint64_t stats_ms;	/* [control] stats_interval; 0: none */
	uint64_t next_stats_ns; /* monotonic */
	bool stats_warned;
	struct dmta_stats_rate rate;
	struct dmta_stats *snap;

	/* Operations (dmta_metrics.h): counters the view lacks, the server. */
	struct dmta_metrics_extra ops;
	struct dmta_metrics *metrics;
	struct dmta_events *events; /* [events] url; NULL: none */

	/* Reloads: the configuration read last (NULL: still the caller's),
	 * and what earlier ones replaced. */
	struct dmta_conf *own_conf;
	struct dmta_reload *retired;	   /* what reloads replaced (dmta_reload.h) */
	const struct dmta_conf *boot_conf; /* the caller's: what was built at start */
};

/*
 * The enhanced status code (RFC 3463) of a reply "250 2.1.5 Ok" into buf;
 * the reply's class alone ("2.0.0") when it has none. A session-level
 * failure names the host first ("mx.example[192.0.2.1]: 454 4.7.0 TLS
 * failed"): the code after it counts, in class 4 since such a failure
 * defers (as Postfix does: 535 5.7.8 becomes 4.7.8), and with no code
 * there (a refused or timed-out connection) it is 4.4.0, a network or
 * routing problem.
 */
static const char *reply_status(const char *text, bool connected, char *buf, size_t cap)
{
	struct smtp_esc e;

	if (text == NULL)
		return NULL;
	if (smtp_reply_status(text, strlen(text), &e) < 0) {
		if (connected)
			return NULL;
		e = (struct smtp_esc){4, 4, 0};
	}
	if (!connected)
		e.cls = 4;
	return smtp_esc_format(&e, buf, cap);
}

static void log_rcpt(struct dmta_control *ctl, const struct queue_env *env, uint32_t k,
		     const struct dmta_job *job, const char *text, const char *outcome,
		     enum queue_class cls)
{
	char status[16], src[INET_ADDRSTRLEN] = "";
	const struct queue_rcpt *r = &env->rcpt[k];
	uint64_t now = dmta_wall_ns();
	struct dmta_dlog_rec rec = {
	    .qid = env->qid,
	    .from = env->sender,
	    .to = r->addr,
	    .domain = queue_addr_domain(r->addr),
	    .mx = job ? job->mx : NULL,
	    .ip = job ? job->ip : NULL,
	    .tls = job ? job->tls : NULL,
	    .reply = text,
	    .status = job ? reply_status(text, job->connected, status, sizeof(status))
			  : queue_bounce_status(text, status),
	    .attempt = r->attempts + (job ? 1 : 0),
	    .delay_s = now > env->arrival_ns ? (double)(now - env->arrival_ns) / 1e9 : 0,
	    .outcome = outcome,
	    .source = src,
	    .cls = queue_class_name(cls),
	    .site = job ? queue_sched_job_site_name(ctl->sched, &job->sjob) : NULL,
	    .priority = queue_prio_name(env->priority),
	    .tenant = env->tenant,
	};

	if (job != NULL && job->src.s_addr != 0)
		inet_ntop(AF_INET, &job->src, src, sizeof(src));
	dmta_dlog_write(ctl->dlog, &rec);
	if (ctl->events != NULL)
		dmta_events_attempt(ctl->events, &rec, job ? job->bytes : NULL, job ? job->len : 0,
				    job && now > job->start_ns ? (double)(now - job->start_ns) / 1e9
							       : -1);
}

/* Recipients whose lifetime ran out: no attempt reports them, so log them here. */
static void on_expired(void *arg, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	struct dmta_control *ctl = arg;

	for (uint32_t i = 0; i < n; i++)
		log_rcpt(ctl, env, rcpt[i], NULL, env->rcpt[rcpt[i]].reply, "expired",
			 queue_class_of(0, env->rcpt[rcpt[i]].reply));
}

/* Delivery events for what the queue does on its own: new mail, delay warnings. */
static void on_loaded(void *arg, const struct queue_env *env, const void *msg, size_t len)
{
	struct dmta_control *ctl = arg;

	if (ctl->events != NULL)
		dmta_events_reception(ctl->events, env, msg, len);
}

static void on_delayed(void *arg, const struct queue_env *env, const uint32_t *rcpt, uint32_t n)
{
	struct dmta_control *ctl = arg;

	if (ctl->events != NULL)
		dmta_events_delay(ctl->events, env, rcpt, n);
}

static void on_wake(void *arg, int fd, uint32_t events)
{
	struct dmta_control *ctl = arg;

	(void)queue_ctl_on_wake(ctl->qc, dmta_wall_ns());
}

/* ---- jobs ---- */

static void route_put(struct dmta_route *r)
{
	if (r != NULL && --r->refs == 0) {
		dns_dest_free(r->dest);
		free(r);
	}
}

/* The job and all it holds but the backend's reply texts are one block (job_make). */
static void job_free(struct dmta_job *job)
{
	for (uint32_t i = 0; i < job->sjob.nrcpt; i++)
		free(job->text[i]);
	route_put(job->route);
	free(job);
}

/* For metrics: 0 MX (or no route), 1 a [routes] entry, 2 the relay. */
static unsigned route_kind(const struct dmta_job *job)
{
	if (job->route == NULL)
		return 0;
	return job->route->dest->source == DNS_SRC_RELAY   ? 2
	       : job->route->dest->source == DNS_SRC_ROUTE ? 1
							   : 0;
}

static void count_status(uint64_t *by, const struct dmta_job *job, const char *text)
{
	char status[16];

	dmta_metrics_count_status(by, reply_status(text, job->connected, status, sizeof(status)));
}

/*
 * A rule says this 4xx is final: the recipient bounces now, its reply
 * kept and the rule named. The new code.
 */
static int rule_bounce(struct dmta_job *job, uint32_t i, const struct queue_rule *r)
{
	char buf[600];
	char *t;

	snprintf(buf, sizeof(buf), "%s (bounced by rule %s)", job->text[i] ? job->text[i] : "",
		 r->name);
	t = strdup(buf);
	if (t != NULL) {
		free(job->text[i]);
		job->text[i] = t;
	}
	job->code[i] = 550;
	return 550;
}

/* The backend (or DNS) is done with a job: record the outcome. */
static void job_done(void *arg, struct dmta_job *job)
{
	struct dmta_control *ctl = arg;
	struct queue_result res = {
	    .connected = job->connected,
	    .local = job->local,
	    .reply = job->reply,
	    .code = job->code,
	    .text = (const char *const *)job->text,
	};
	uint64_t now = dmta_wall_ns();
	const struct queue_rule *throttle = NULL; /* the first rule that slows the site */

	for (uint32_t i = 0; i < job->sjob.nrcpt; i++) {
		int code = job->connected ? job->code[i] : 421;
		const char *text = job->connected ? job->text[i] : job->reply;
		enum queue_class cls = QUEUE_CLASS_NONE;
		const char *outcome;

		if (job->connected && code == 0) {
			/* The engine answers for every recipient; a gap is a bug
			 * there, and retrying is the safe reading of it. */
			code = job->code[i] = 451;
			free(job->text[i]);
			job->text[i] = strdup("451 4.3.0 no reply for this recipient");
			text = job->text[i];
		}
		if (code >= 400 && !job->local) {
			const struct queue_rule *r =
			    queue_rules_match(ctl->rules, job->connected ? code : 0, text);

			if (r != NULL && r->act == QUEUE_ACT_BOUNCE && job->connected &&
			    code < 500) {
				code = rule_bounce(job, i, r);
				text = job->text[i];
			} else if (r != NULL && r->act != QUEUE_ACT_BOUNCE && throttle == NULL)
				throttle = r;
		}
		if (code >= 400)
			cls = queue_class_of(job->connected ? code : 0, text);
		ctl->st.attempts++;
		if (code >= 200 && code < 300) {
			outcome = "delivered";
			ctl->st.delivered++;
			ctl->ops.delivered_by_route[route_kind(job)]++;
		} else if (code >= 500 && code < 600) {
			outcome = "bounced";
			ctl->st.bounced++;
			ctl->ops.bounced_by_route[route_kind(job)]++;
			count_status(ctl->ops.bounced_by, job, text);
		} else {
			outcome = "deferred";
			ctl->st.deferred++;
			ctl->ops.deferred_by_route[route_kind(job)]++;
			count_status(ctl->ops.deferred_by, job, text);
		}
		ctl->by_class[cls]++;
		log_rcpt(ctl, &job->env, i, job, job->connected ? job->text[i] : job->reply,
			 outcome, cls); /* the job's recipients only */
	}
	if (throttle != NULL) {
		struct queue_throttle t = {
		    .suspend = throttle->act == QUEUE_ACT_SUSPEND,
		    .duration_ms = throttle->duration_ms,
		    .rate = throttle->rate_per_day,
		    .max_connections = throttle->max_connections,
		    .why = throttle->name,
		};

		queue_sched_throttle(ctl->sched, &job->sjob, &t, now);
	}
	if (job->connected && job->sjob.shard < DMTA_METRICS_MAX_WORKERS) {
		ctl->ops.tls_by_worker[job->sjob.shard][job->tls[0] != '\0']++;
		if (job->sjob.shard >= ctl->ops.nworkers)
			ctl->ops.nworkers = job->sjob.shard + 1;
	}
	if (queue_ctl_result(ctl->qc, &job->sjob, &res, now) != 0)
		dmta_err("scheduler refused the result of message %llu",
			 (unsigned long long)job->sjob.qid);
	ctl->st.inflight--;
	ctl->st.inflight_bytes -= job->len;
	job_free(job);
}

/* Settle a job without a backend (DNS said no, or we are stopping). */
static void job_settle(struct dmta_control *ctl, struct dmta_job *job, bool perm, const char *reply)
{
	job->local = true; /* no server of the destination said anything */
	if (perm) {
		job->connected = true;
		for (uint32_t i = 0; i < job->sjob.nrcpt; i++) {
			job->code[i] = 550;
			job->text[i] = strdup(reply);
		}
	} else {
		/* Stopping, out of memory, a DNS failure: nothing the destination's
		 * servers said, so nothing to hold against them. */
		job->connected = false;
		snprintf(job->reply, sizeof(job->reply), "%s", reply);
	}
	job_done(ctl, job);
}

static void job_go(struct dmta_control *ctl, struct dmta_job *job, struct dmta_route *route)
{
	const struct dns_dest *d = route->dest;
	char reply[512];
	int rc;

	route->refs++;
	job->route = route;
	if (ctl->stopping) {
		job_settle(ctl, job, false, "451 4.3.2 dmtad is stopping");
		return;
	}
	if (d->verdict == DNS_VERDICT_PERM) {
		snprintf(reply, sizeof(reply), "550 %s %s: %s", d->status, d->domain, d->reason);
		job_settle(ctl, job, true, reply);
		return;
	}
	if (d->verdict != DNS_VERDICT_OK || d->n_hosts == 0) {
		snprintf(reply, sizeof(reply), "451 %s %s: %s", d->status ? d->status : "4.4.3",
			 d->domain, d->reason ? d->reason : "no route");
		job_settle(ctl, job, false, reply);
		return;
	}
	{
		const char *mx[16];
		unsigned nmx = d->n_hosts < 16 ? d->n_hosts : 16;

		for (unsigned i = 0; i < nmx; i++)
			mx[i] = d->hosts[i].name;
		queue_sched_job_site(ctl->sched, &job->sjob, d->site, mx, nmx,
				     d->source != DNS_SRC_RELAY);
		job->src = queue_egress_source_addr(queue_ctl_egress(ctl->qc), job->sjob.source);
	}
	if (d->source == DNS_SRC_RELAY) {
		job->policy.tls = ctl->relay_tls;
		if (d->hosts[0].port == 465)
			job->policy.tls = SMTP_TLS_IMPLICIT;
		job->policy.tls_verify = ctl->relay_verify;
		job->policy.auth_user = ctl->relay_user;
		job->policy.auth_pass = ctl->relay_pass;
		job->policy.auth_plaintext_ok = ctl->auth_plaintext;
		job->policy.private_ok = true;
	} else {
		job->policy.tls = ctl->mx_tls;
		job->policy.private_ok = d->source == DNS_SRC_ROUTE || ctl->private_mx;
	}
	ctl->st.jobs++;
	rc = ctl->be->submit(ctl->be->be, job);
	if (rc != 0) {
		snprintf(reply, sizeof(reply), "451 4.3.0 delivery backend: %s", strerror(-rc));
		job_settle(ctl, job, false, reply);
	}
}

static struct dmta_route *route_new(struct dns_dest *dest)
{
	struct dmta_route *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		dns_dest_free(dest);
		return NULL;
	}
	r->dest = dest;
	return r;
}

static void on_dns(struct dns_dest *dest, void *arg)
{
	struct dns_wait *w = arg;
	struct dmta_control *ctl = w->ctl;
	struct dmta_route *r = route_new(dest);

	if (w->prev)
		w->prev->next = w->next;
	else
		ctl->waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (r != NULL)
		r->refs++; /* ours, while the waiting jobs go */
	for (size_t i = 0; i < w->n; i++) {
		if (r != NULL)
			job_go(ctl, w->jobs[i], r);
		else
			job_settle(ctl, w->jobs[i], false, "451 4.3.0 out of memory");
	}
	route_put(r);
	free(w->jobs);
	free(w->domain);
	free(w);
}

static int wait_add(struct dns_wait *w, struct dmta_job *job)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		struct dmta_job **v = realloc(w->jobs, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		w->jobs = v;
		w->cap = cap;
	}
	w->jobs[w->n++] = job;
	return 0;
}

static struct route_slot *route_slot(struct dmta_control *ctl, const char *domain, size_t *len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t n = 0;

	for (; domain[n] != '\0'; n++)
		h = (h ^ (unsigned char)domain[n]) * 16777619u;
	*len = n;
	return &ctl->routes[h % ROUTE_SLOTS];
}

/* Forget the routes kept: at a reload (routes and relay may change) and at the end. */
static void routes_forget(struct dmta_control *ctl)
{
	for (size_t i = 0; i < ROUTE_SLOTS; i++) {
		route_put(ctl->routes[i].r);
		ctl->routes[i].r = NULL;
	}
}

/* Find the destination for a job: kept from a job a moment ago, from the
 * cache, or wait for DNS. */
static void job_route(struct dmta_control *ctl, struct dmta_job *job)
{
	const char *domain = job->sjob.domain;
	size_t len;
	struct route_slot *s = route_slot(ctl, domain, &len);
	uint64_t now = job->start_ns;
	struct dns_dest *dest;
	struct dns_wait *w;

	if (s->r != NULL && now < s->until_ns && s->until_ns - now <= ROUTE_REUSE_NS &&
	    strcmp(s->domain, domain) == 0) {
		job_go(ctl, job, s->r);
		return;
	}
	dest = dns_resolve_cached(ctl->dns, domain);
	if (dest != NULL) {
		struct dmta_route *r = route_new(dest);
		uint64_t ttl_ns = (uint64_t)dest->ttl * DMTA_NS_PER_S;

		if (r == NULL) {
			job_settle(ctl, job, false, "451 4.3.0 out of memory");
			return;
		}
		r->refs++;
		if (ttl_ns > 0 && len < ROUTE_DOMAIN) {
			route_put(s->r);
			s->r = r;
			r->refs++;
			s->until_ns = now + (ttl_ns < ROUTE_REUSE_NS ? ttl_ns : ROUTE_REUSE_NS);
			memcpy(s->domain, domain, len + 1);
		}
		job_go(ctl, job, r);
		route_put(r);
		return;
	}
	for (w = ctl->waits; w != NULL; w = w->next)
		if (strcmp(w->domain, domain) == 0)
			break;
	if (w == NULL) {
		w = calloc(1, sizeof(*w));
		if (w == NULL || (w->domain = strdup(domain)) == NULL) {
			free(w);
			job_settle(ctl, job, false, "451 4.3.0 out of memory");
			return;
		}
		w->ctl = ctl;
		if (wait_add(w, job) != 0 || dns_resolve(ctl->dns, domain, on_dns, w) != 0) {
			free(w->jobs);
			free(w->domain);
			free(w);
			job_settle(ctl, job, false, "451 4.3.0 cannot start a DNS query");
			return;
		}
		w->next = ctl->waits;
		if (ctl->waits)
			ctl->waits->prev = w;
		ctl->waits = w;
		return;
	}
	if (wait_add(w, job) != 0)
		job_settle(ctl, job, false, "451 4.3.0 out of memory");
}

/* RFC 3461 NOTIFY values by QUEUE_NOTIFY_* bits; constant, as the engine keeps the pointer. */
static const char *notify_value(uint8_t n)
{
	static const char *const names[8] = {
	    NULL,    "SUCCESS",	      "FAILURE",       "SUCCESS,FAILURE",
	    "DELAY", "SUCCESS,DELAY", "FAILURE,DELAY", "SUCCESS,FAILURE,DELAY"};

	if (n & QUEUE_NOTIFY_NEVER)
		return "NEVER";
	return names[n & 7];
}

/* Room for a string of the job's envelope copy, its NUL included. */
static size_t str_room(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

/* A copy of @p s at *at, which moves past it; NULL stays NULL. */
static const char *str_put(char **at, const char *s, size_t room)
{
	char *d = *at;

	if (s == NULL)
		return NULL;
	memcpy(d, s, room);
	*at += room;
	return d;
}

/*
 * Make a job from a scheduler job; NULL when the message cannot be read.
 *
 * One allocation holds the job, its per-recipient arrays, its copy of the
 * envelope (the job's recipients only: a message may have a great many,
 * sent a job, max_recipients, at a time) and the message bytes, copied out
 * of the map once: a job may outlive the read transaction by seconds, and
 * a read transaction held that long would keep LMDB from reusing the pages
 * the spool frees meanwhile. The envelope copy's strings point into the
 * block (it is not "owned" in queue_env's sense, and is never passed to
 * queue_env_free()); its recipients' last replies are not copied, since
 * nothing reads them from a job.
 */
static struct dmta_job *job_make(struct dmta_control *ctl, struct spool_txn *t,
				 const struct queue_job *sj, int *err)
{
	const struct queue_env *env = queue_sched_env(ctl->sched, sj->qid);
	size_t len, head, room, nr = sj->nrcpt;
	struct dmta_job *job;
	const void *bytes;
	char *at;
	int rc;

	*err = -ENOMEM;
	if (env == NULL)
		return NULL;
	rc = spool_msg_get(t, sj->qid, &bytes, &len);
	if (rc != 0) {
		*err = rc;
		return NULL;
	}
	head = sizeof(*job) + nr * (sizeof(*job->code) + sizeof(*job->text) + sizeof(*job->rcpts) +
				    sizeof(*job->env.rcpt));
	head = (head + 7) & ~(size_t)7;
	room = head + str_room(env->sender) + str_room(env->envid) + str_room(env->pool) +
	       str_room(env->tenant);
	for (size_t i = 0; i < nr; i++) {
		if (sj->rcpt[i] >= env->nrcpt) {
			*err = -EINVAL;
			return NULL;
		}
		room +=
		    str_room(env->rcpt[sj->rcpt[i]].addr) + str_room(env->rcpt[sj->rcpt[i]].orcpt);
	}
	job = malloc(room + len);
	if (job == NULL)
		return NULL;
	memset(job, 0, sizeof(*job));
	/* Pointers first, then ints, then the strings: each aligned. */
	job->text = (char **)(job + 1);
	job->rcpts = (struct smtp_rcpt *)(job->text + nr);
	job->env.rcpt = (struct queue_rcpt *)(job->rcpts + nr);
	job->code = (int *)(job->env.rcpt + nr);
	memset(job->text, 0, nr * sizeof(*job->text));
	memset(job->code, 0, nr * sizeof(*job->code));
	at = (char *)job + head;
	job->sjob = *sj;
	job->start_ns = dmta_wall_ns();
	{
		struct queue_rcpt *rcpt = job->env.rcpt;

		job->env = *env; /* every field; then what points into the scheduler's */
		job->env.owned = false;
		job->env.pack = NULL;
		job->env.pack_len = 0;
		job->env.rcpt = rcpt;
		job->env.nrcpt = job->env.cap = sj->nrcpt;
	}
	/* Every string of struct queue_env, or the copy would point into the
	 * scheduler's envelope. */
	job->env.sender = str_put(&at, env->sender, str_room(env->sender));
	job->env.envid = str_put(&at, env->envid, str_room(env->envid));
	job->env.pool = str_put(&at, env->pool, str_room(env->pool));
	job->env.tenant = str_put(&at, env->tenant, str_room(env->tenant));
	for (uint32_t i = 0; i < sj->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[sj->rcpt[i]];
		struct queue_rcpt *c = &job->env.rcpt[i];

		*c = *r;
		c->addr = str_put(&at, r->addr, str_room(r->addr));
		c->orcpt = str_put(&at, r->orcpt, str_room(r->orcpt));
		c->reply = NULL;
		job->rcpts[i].addr = c->addr;
		job->rcpts[i].orcpt = c->orcpt;
		job->rcpts[i].notify = notify_value(c->notify);
	}
	job->bytes = at;
	memcpy(job->bytes, bytes, len);
	job->len = len;
	job->chunk = (struct smtp_chunk){.p = job->bytes, .len = len};
	job->msg = (struct smtp_msg){
	    .from = job->env.sender,
	    .rcpts = job->rcpts,
	    .nrcpts = sj->nrcpt,
	    .body = &job->chunk,
	    .nbody = 1,
	    .envid = job->env.envid,
	    .ret = job->env.ret == QUEUE_RET_FULL   ? SMTP_RET_FULL
		   : job->env.ret == QUEUE_RET_HDRS ? SMTP_RET_HDRS
						    : SMTP_RET_DEFAULT,
	    .user = job,
	};
	return job;
}

/* Hand out what is due. */
static void schedule(struct dmta_control *ctl)
{
	struct queue_job jobs[64];
	struct spool_txn *t = NULL;
	uint64_t now = dmta_wall_ns();
	int n, total = 0;

	queue_ctl_tick(ctl->qc, now);
	while (!ctl->stopping && total < CTL_JOBS_PER_TURN) {
		uint64_t room =
		    ctl->max_jobs > ctl->st.inflight ? ctl->max_jobs - ctl->st.inflight : 0;

		/* Back-pressure: what is out must come back first. */
		if (room == 0 || ctl->st.inflight_bytes >= ctl->max_job_bytes) {
			ctl->st.throttled++;
			break;
		}
		/* Near the bytes bound (or before any size is known), one at a
		 * time: it is passed by one message at most. */
		if (room > 64)
			room = 64;
		if (ctl->biggest == 0 ||
		    ctl->st.inflight_bytes + room * ctl->biggest >= ctl->max_job_bytes)
			room = 1;
		n = queue_ctl_jobs(ctl->qc, now, jobs, (int)room);
		if (n <= 0)
			break;
		if (t == NULL && spool_begin(ctl->sp, false, &t) != 0) {
			t = NULL;
		}
		for (int i = 0; i < n; i++) {
			int err = -EIO;
			struct dmta_job *job = t ? job_make(ctl, t, &jobs[i], &err) : NULL;

			if (job == NULL) {
				/* Settle it through the scheduler so that it is
				 * tried again (or bounced when it is gone). */
				int codes[QUEUE_JOB_MAX_RCPT];
				const char *texts[QUEUE_JOB_MAX_RCPT];
				bool gone = err == -ENOENT;
				struct queue_result res = {.connected = gone,
							   .local = true,
							   .reply =
							       "451 4.3.0 cannot read the message",
							   .code = codes,
							   .text = texts};

				for (uint32_t k = 0; k < jobs[i].nrcpt && k < QUEUE_JOB_MAX_RCPT;
				     k++) {
					codes[k] = 550;
					texts[k] = "550 5.3.0 message removed from the spool";
				}
				dmta_err("message %llu: %s", (unsigned long long)jobs[i].qid,
					 gone ? "gone from the spool" : spool_strerror(err));
				queue_ctl_result(ctl->qc, &jobs[i], &res, now);
				continue;
			}
			ctl->st.inflight++;
			ctl->st.inflight_bytes += job->len;
			if (job->len > ctl->biggest)
				ctl->biggest = job->len;
			job_route(ctl, job);
		}
		total += n;
	}
	if (t != NULL)
		spool_abort(t);
}

/* ---- DNS sockets in our loop ---- */

static void on_dns_fd(void *arg, int fd, uint32_t events)
{
	struct dmta_control *ctl = arg;
	unsigned ev = 0;

	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		ev |= DNS_EV_READ;
	if (events & EPOLLOUT)
		ev |= DNS_EV_WRITE;
	dns_resolver_process(ctl->dns, fd, ev);
}

static void dns_watch(int fd, bool want_read, bool want_write, void *arg)
{
	struct dmta_control *ctl = arg;
	uint32_t ev = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0);

	if (!want_read && !want_write) {
		dmta_loop_del(ctl->loop, fd);
		return;
	}
	if (dmta_loop_mod(ctl->loop, fd, ev) == -ENOENT &&
	    dmta_loop_add(ctl->loop, fd, ev, on_dns_fd, ctl) != 0)
		dmta_err("cannot watch DNS socket %d", fd);
}

/* ---- the live view ---- */

static void stats_take(struct dmta_control *ctl)
{
	struct dmta_stats *s = ctl->snap;
	struct queue_sched_stats qs;
	struct queue_ctl_stats q;
	struct dns_stats ds;
	uint64_t now = dmta_now_ns();

	dmta_stats_rate_push(&ctl->rate, now, ctl->st.delivered);
	memset(s, 0, sizeof(*s));
	s->pid = (uint64_t)getpid();
	snprintf(s->backend, sizeof(s->backend), "%s", ctl->be->name);
	s->time_ms = dmta_wall_ns() / DMTA_NS_PER_MS;
	s->started_ms = ctl->started_ns / DMTA_NS_PER_MS;
	s->interval_ms = ctl->stats_ms;
	/* XXX O(messages): the scheduler counts states by walking its table,
	 * a few ms per interval at a million queued messages. */
	queue_sched_get_stats(ctl->sched, &qs);
	s->messages = qs.messages;
	s->waiting = qs.waiting;
	s->ready = qs.ready;
	s->in_flight = qs.inflight;
	s->held = qs.held;
	s->dests = qs.dests;
	s->suspended = qs.suspended;
	s->sites = qs.sites;
	_Static_assert(QUEUE_CLASS_N == sizeof(s->classes) / sizeof(s->classes[0]),
		       "dmta_stats' classes follow enum queue_class");
	memcpy(s->classes, ctl->by_class, sizeof(s->classes));
	s->throttled = qs.throttled;
	{
		struct queue_suspension v[DMTA_STATS_MAX_SUSP];
		size_t n =
		    queue_sched_suspensions(ctl->sched, dmta_wall_ns(), v, DMTA_STATS_MAX_SUSP);

		for (size_t i = 0; i < n; i++) {
			struct dmta_stats_susp *u = &s->susp[s->nsusp++];

			dmta_str_copy(u->kind, sizeof(u->kind), v[i].kind);
			dmta_str_copy(u->name, sizeof(u->name), v[i].name);
			dmta_str_copy(u->source, sizeof(u->source), v[i].source);
			dmta_str_copy(u->why, sizeof(u->why), v[i].why);
			u->until_ms = v[i].until_ns == UINT64_MAX ? DMTA_STATS_NA
								  : v[i].until_ns / DMTA_NS_PER_MS;
			u->throttled = v[i].throttled;
		}
	}
	s->jobs_busy = ctl->be->busy(ctl->be->be);
	for (const struct dns_wait *w = ctl->waits; w != NULL; w = w->next)
		s->jobs_dns += w->n;
	s->attempts = ctl->st.attempts;
	s->delivered = ctl->st.delivered;
	s->deferred = ctl->st.deferred;
	s->bounced = ctl->st.bounced;
	queue_ctl_get_stats(ctl->qc, &q);
	s->expired = q.expired;
	s->rate_10s = dmta_stats_rate(&ctl->rate, 10 * DMTA_NS_PER_S);
	if (s->time_ms > s->started_ms)
		s->rate = (double)s->delivered * 1000.0 / (double)(s->time_ms - s->started_ms);
	s->bounces = q.dsns;
	s->delay_dsns = q.delays;
	s->loaded = q.loaded;
	s->commits = q.commits;
	s->commit_errors = q.commit_errors;
	dns_resolver_stats(ctl->dns, &ds);
	s->dns_hits = ds.cache_hits;
	s->dns_misses = ds.cache_misses;
	s->dns_entries = ds.cache_entries;
	s->dns_negative = ds.neg_entries;
	s->dns_in_flight = ds.in_flight;
	s->dns_failures = ds.failures;
	s->dns_queries = ds.queries;
	if (ctl->be->workers != NULL)
		s->nworkers = ctl->be->workers(ctl->be->be, s->workers, DMTA_STATS_MAX_WORKERS);
}

/* The view as Prometheus text, for the metrics server to serve until the next one. */
static void metrics_publish(struct dmta_control *ctl)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (out == NULL)
		return;
	if (ctl->events != NULL)
		dmta_events_counters(ctl->events, &ctl->ops);
	dmta_metrics_census(&ctl->ops, ctl->sched, ctl->snap->messages, dmta_wall_ns());
	if (ctl->snap->nworkers > ctl->ops.nworkers)
		ctl->ops.nworkers = ctl->snap->nworkers;
	dmta_metrics_write(out, ctl->snap, &ctl->ops);
	if (ctl->be->metrics != NULL)
		ctl->be->metrics(ctl->be->be, out);
	if (fclose(out) != 0) {
		free(text);
		return;
	}
	dmta_metrics_publish(ctl->metrics, text, len);
}

/* Take the view and publish it: the file in the spool, and the backend's own way. */
static void stats_publish(struct dmta_control *ctl)
{
	int rc;

	stats_take(ctl);
	rc = dmta_stats_publish(spool_path(ctl->sp), ctl->snap);
	if (rc != 0 && !ctl->stats_warned) {
		dmta_warn("cannot write %s/%s: %s (said once)", spool_path(ctl->sp),
			  DMTA_STATS_FILE, strerror(-rc));
		ctl->stats_warned = true;
	}
	if (ctl->be->publish != NULL)
		ctl->be->publish(ctl->be->be, ctl->snap);
	if (ctl->metrics != NULL)
		metrics_publish(ctl);
}

/* [metrics] listen: the server, fed each time the view is taken (once a second at least). */
static int metrics_setup(struct dmta_control *ctl, char *err, size_t errlen)
{
	struct dmta_metrics_conf mc;

	if (dmta_metrics_conf_load(ctl->conf, &mc) != 0) {
		snprintf(err, errlen, "invalid [metrics] settings in %s",
			 dmta_conf_source(ctl->conf));
		return -EINVAL;
	}
	if (mc.listen == NULL)
		return 0;
	ctl->metrics = dmta_metrics_start(mc.listen, err, errlen);
	if (ctl->metrics == NULL)
		return -EINVAL;
	if (ctl->stats_ms == 0 || ctl->stats_ms > 1000)
		ctl->stats_ms = 1000;
	dmta_info("metrics: http://%s/metrics", mc.listen);
	return 0;
}

/* [events] url: the events file in the spool and its poster, before the spool is loaded. */
static int events_setup(struct dmta_control *ctl, char *err, size_t errlen)
{
	struct dmta_events_conf ec;

	if (dmta_events_conf_load(ctl->conf, &ec) != 0) {
		snprintf(err, errlen, "invalid [events] settings in %s",
			 dmta_conf_source(ctl->conf));
		return -EINVAL;
	}
	if (ec.url == NULL)
		return 0;
	ctl->events = dmta_events_open(&ec, spool_path(ctl->sp), err, errlen);
	if (ctl->events == NULL)
		return -EINVAL;
	dmta_info("events: posted to %s", ec.url);
	return 0;
}

static int stats_setup(struct dmta_control *ctl, char *err, size_t errlen)
{
	int64_t owner;

	ctl->stats_ms = ctl->cc.stats_interval_ms;
	/* One daemon per spool: the lock also tells dmta-queue that we run. */
	ctl->lock_fd = dmta_stats_lock(spool_path(ctl->sp), &owner);
	if (ctl->lock_fd == -EAGAIN) {
		snprintf(err, errlen, "another dmtad (pid %lld) runs on spool %s", (long long)owner,
			 spool_path(ctl->sp));
		return -EAGAIN;
	}
	if (ctl->lock_fd < 0) {
		snprintf(err, errlen, "%s/%s: %s", spool_path(ctl->sp), DMTA_STATS_LOCK_FILE,
			 strerror(-ctl->lock_fd));
		return ctl->lock_fd;
	}
	ctl->snap = calloc(1, sizeof(*ctl->snap));
	if (ctl->snap == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return metrics_setup(ctl, err, errlen);
}

/* ---- set-up ---- */

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The TLS and AUTH policy and the stop timeout from ctl->cc (at start and on reload). */
static void policy_set(struct dmta_control *ctl)
{
	ctl->mx_tls = ctl->cc.mx_tls;
	ctl->relay_tls = ctl->cc.relay_tls;
	ctl->relay_verify = ctl->cc.relay_verify;
	ctl->private_mx = ctl->cc.private_mx;
	ctl->auth_plaintext = ctl->cc.auth_plaintext;
	ctl->stop_timeout_ms = ctl->cc.stop_timeout_ms;
	ctl->max_jobs = ctl->cc.max_jobs;
	ctl->max_job_bytes = ctl->cc.max_job_bytes;
}

static int control_config(struct dmta_control *ctl, dmta_backend_new_fn *make, void *make_arg,
			  char *err, size_t errlen)
{
	const struct dmta_conf *conf = ctl->conf;
	struct dmta_pool_conf pc;
	const char *s, *ca;

	if (dmta_pool_conf_load(conf, &pc, ctl->helo, sizeof(ctl->helo), &ca) != 0) {
		snprintf(err, errlen, "invalid [smtp] settings in %s", dmta_conf_source(conf));
		return -EINVAL;
	}
	policy_set(ctl);
	s = ctl->cc.relay_user;
	if (s != NULL) {
		const char *pf = ctl->cc.relay_password_file;

		if (pf == NULL) {
			snprintf(err, errlen, "[relay] user needs [relay] password_file");
			return -EINVAL;
		}
		ctl->relay_user = strdup(s);
		ctl->relay_pass = dmta_control_conf_secret(pf, err, errlen);
		if (ctl->relay_user == NULL || ctl->relay_pass == NULL)
			return -EINVAL;
	}
	ctl->tls_ctx = smtp_tls_ctx_new(ca, 256);
	if (ctl->tls_ctx == NULL) {
		snprintf(err, errlen, "TLS set-up failed%s%s", ca ? " for CA file " : "",
			 ca ? ca : "");
		return -EINVAL;
	}
	pc.tls_ctx = ctl->tls_ctx;
	ctl->be = make ? make(make_arg, ctl->loop, job_done, ctl)
		       : dmta_kbackend_new(&pc, ctl->loop, job_done, ctl);
	if (ctl->be == NULL) {
		snprintf(err, errlen, "cannot start the delivery backend: %s", strerror(errno));
		return -ENOMEM;
	}
	return 0;
}

struct dmta_control *dmta_control_new(const struct dmta_conf *conf, dmta_backend_new_fn *make,
				      void *make_arg, unsigned shards, char *err, size_t errlen)
{
	struct dmta_control *ctl = calloc(1, sizeof(*ctl));
	struct queue_ctl_hooks hooks = {.expired = on_expired, .delayed = on_delayed, .ctx = ctl};
	struct dmta_events_conf ec;
	char path[4096];
	const char *dl;

	if (ctl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->conf = conf;
	ctl->boot_conf = conf;
	ctl->lock_fd = -1;
	ctl->started_ns = dmta_wall_ns();
	if (dmta_control_conf_load(conf, &ctl->cc) != 0) {
		snprintf(err, errlen, "%s", dmta_conf_last_error());
		goto fail;
	}
	ctl->loop = dmta_loop_new();
	if (ctl->loop == NULL) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	/* New mail is reported only to [events]: without it, loading a message
	 * need not read its bytes. */
	if (dmta_events_conf_load(conf, &ec) != 0 || ec.url != NULL)
		hooks.loaded = on_loaded;
	/* shards: one per data-plane worker */
	ctl->qc = queue_ctl_open(conf, shards, &hooks, dmta_wall_ns(), err, errlen);
	if (ctl->qc == NULL)
		goto fail;
	ctl->sp = queue_ctl_spool(ctl->qc);
	ctl->sched = queue_ctl_sched(ctl->qc);
	if (stats_setup(ctl, err, errlen) != 0 || events_setup(ctl, err, errlen) != 0)
		goto fail;
	if (queue_ctl_start(ctl->qc, dmta_wall_ns(), err, errlen) != 0)
		goto fail;
	if (dmta_loop_add(ctl->loop, queue_ctl_wake_fd(ctl->qc), EPOLLIN, on_wake, ctl) != 0) {
		snprintf(err, errlen, "cannot watch the wake-up socket");
		goto fail;
	}
	dns_config_defaults(&ctl->dnscfg);
	if (dns_config_load(&ctl->dnscfg, conf) != 0) {
		snprintf(err, errlen, "bad [dns], [routes] or [relay] settings in %s",
			 dmta_conf_source(conf));
		goto fail;
	}
	ctl->dnscfg_loaded = true;
	if (queue_rules_load_conf(conf, &ctl->rules, err, errlen) != 0)
		goto fail;
	ctl->dns = dns_resolver_new(&ctl->dnscfg, dns_watch, ctl);
	if (ctl->dns == NULL) {
		snprintf(err, errlen, "cannot start the resolver: %s", strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/delivery.log", spool_path(ctl->sp));
	dl = ctl->cc.dlog_path ? ctl->cc.dlog_path : path;
	ctl->dlog = dmta_dlog_open(dl, ctl->cc.dlog_max_size, ctl->cc.dlog_keep);
	if (ctl->dlog == NULL) {
		snprintf(err, errlen, "delivery log %s: %s", dl, strerror(errno));
		goto fail;
	}
	if (control_config(ctl, make, make_arg, err, errlen) != 0)
		goto fail;
	/* Last: what it accepts is delivered as soon as it is committed. */
	ctl->listen = dmta_listen_start(conf, ctl->sp, err, errlen);
	if (ctl->listen == NULL)
		goto fail;
	return ctl;
fail:
	dmta_control_free(ctl);
	return NULL;
}

static int control_timeout_ms(struct dmta_control *ctl)
{
	int t = 1000, x;
	uint64_t due = queue_ctl_next_due(ctl->qc), now = dmta_wall_ns();

	if (queue_ctl_pending(ctl->qc))
		return 0;
	if (due != UINT64_MAX) {
		uint64_t ms = due <= now ? 0 : (due - now) / DMTA_NS_PER_MS + 1;

		if (ms < (uint64_t)t)
			t = (int)ms;
	}
	x = dns_resolver_next_timeout_ms(ctl->dns);
	if (x >= 0 && x < t)
		t = x;
	x = ctl->be->next_timeout_ms(ctl->be->be);
	if (x >= 0 && x < t)
		t = x;
	if (ctl->stats_ms != 0) {
		uint64_t mono = dmta_now_ns();
		uint64_t ms = ctl->next_stats_ns <= mono
				  ? 0
				  : (ctl->next_stats_ns - mono) / DMTA_NS_PER_MS + 1;

		if (ms < (uint64_t)t)
			t = (int)ms;
	}
	return t;
}

struct stop_flag {
	bool stop;
	bool reload;
};

/* stop_fd: SIGHUP asks for a reload, anything else (or a non-signalfd) to stop. */
static void on_stop(void *arg, int fd, uint32_t events)
{
	struct stop_flag *f = arg;
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo == SIGHUP)
		f->reload = true;
	else
		f->stop = true;
}

/*
 * Commit what this turn changed: handed to the queue's committer thread
 * (the loop goes on while the disk syncs), or with @p wait in this thread
 * (shutdown). Each commit that ended since the last call goes into the
 * histogram, timed from handover to durable; the one taken back in
 * queue_ctl_on_wake() is counted here, at the end of the same turn.
 */
static void timed_commit(struct dmta_control *ctl, bool wait)
{
	struct queue_ctl_stats q;

	/* The events of this turn are durable before the changes they report. */
	if (ctl->events != NULL)
		(void)dmta_events_sync(ctl->events);
	if (wait)
		(void)queue_ctl_commit(ctl->qc, dmta_wall_ns());
	else
		(void)queue_ctl_commit_async(ctl->qc, dmta_wall_ns());
	queue_ctl_get_stats(ctl->qc, &q);
	/* One a call but for a synchronous commit that also took a batch back
	 * (two): the last one's time stands for both. */
	for (; ctl->commits_seen < q.commits + q.commit_errors; ctl->commits_seen++)
		dmta_metrics_hist_observe(&ctl->ops.commit, (double)q.last_commit_ns / 1e9);
}

static void control_turn(struct dmta_control *ctl, int timeout_ms)
{
	int rc = dmta_loop_once(ctl->loop, timeout_ms);

	if (rc < 0)
		dmta_err("control loop: %s", strerror(-rc));
	dns_resolver_tick(ctl->dns);
	ctl->be->tick(ctl->be->be);
	schedule(ctl);
	(void)dmta_dlog_flush(ctl->dlog); /* the turn's lines, in one write */
	timed_commit(ctl, false);
	if (ctl->stats_ms != 0 && dmta_now_ns() >= ctl->next_stats_ns) {
		stats_publish(ctl);
		ctl->next_stats_ns = dmta_now_ns() + ctl->stats_ms * DMTA_NS_PER_MS;
	}
}

int dmta_control_run(struct dmta_control *ctl, int stop_fd)
{
	struct stop_flag f = {false};
	uint64_t deadline;

	if (dmta_loop_add(ctl->loop, stop_fd, EPOLLIN, on_stop, &f) != 0)
		return -EINVAL;
	dmta_info("control: spool %s, backend %s, helo %s", spool_path(ctl->sp), ctl->be->name,
		  ctl->helo);
	while (!f.stop) {
		control_turn(ctl, control_timeout_ms(ctl));
		if (f.reload) {
			f.reload = false;
			(void)dmta_control_reload(ctl);
		}
	}
	dmta_loop_del(ctl->loop, stop_fd);

	/* Let what is in flight finish, for a while. */
	ctl->stopping = true;
	ctl->be->drain(ctl->be->be);
	deadline = dmta_now_ns() + ctl->stop_timeout_ms * DMTA_NS_PER_MS;
	while ((ctl->be->busy(ctl->be->be) > 0 || ctl->waits != NULL) && dmta_now_ns() < deadline) {
		int t = control_timeout_ms(ctl);

		control_turn(ctl, t > 100 ? 100 : t);
	}
	(void)dmta_dlog_flush(ctl->dlog);
	timed_commit(ctl, true);
	if (ctl->stats_ms != 0)
		stats_publish(ctl); /* the last word, read while we free */
	return 0;
}

/* ---- reload ---- */

/* [log] delivery: a new file (or new rotation limits) only when they changed. */
static void reload_dlog(struct dmta_control *ctl, const struct dmta_control_conf *cc)
{
	char path[4096];
	const char *dl;
	struct dmta_dlog *n;

	if (same_str(cc->dlog_path, ctl->cc.dlog_path) &&
	    cc->dlog_max_size == ctl->cc.dlog_max_size && cc->dlog_keep == ctl->cc.dlog_keep)
		return;
	snprintf(path, sizeof(path), "%s/delivery.log", spool_path(ctl->sp));
	dl = cc->dlog_path ? cc->dlog_path : path;
	n = dmta_dlog_open(dl, cc->dlog_max_size, cc->dlog_keep);
	if (n == NULL) {
		dmta_warn("reload: delivery log %s: %s; writing on to the old one", dl,
			  strerror(errno));
		return;
	}
	dmta_dlog_close(ctl->dlog);
	queue_rules_free(ctl->rules);
	ctl->dlog = n;
}

int dmta_control_reload(struct dmta_control *ctl)
{
	const char *path = dmta_conf_source(ctl->conf);
	struct dmta_reload *r;
	char err[512] = "", fixed[512];
	int nfixed;

	if (strcmp(path, "(defaults)") == 0)
		path = DMTA_CONF_DEFAULT_PATH;
	r = dmta_reload_read(path, ctl->boot_conf, err, sizeof(err));
	if (r == NULL) {
		dmta_err("reload refused: %s: %s; the running configuration stays", path, err);
		ctl->ops.reloads_refused++;
		return -EINVAL;
	}
	nfixed = dmta_reload_fixed(ctl->boot_conf, r->conf, dmta_reload_fixed_list,
				   dmta_reload_nfixed, fixed, sizeof(fixed));
	if (nfixed > 0)
		dmta_warn("reload: %s cannot change while dmtad runs: kept as they were until a "
			  "restart",
			  fixed);

	/* The resolver reads its configuration through &ctl->dnscfg: the new
	 * routes and relay go in, and the rest of [dns], which made the
	 * resolver, stays; the old routes retire (lookups under way use them). */
	{
		struct dns_config *o = &ctl->dnscfg, *n = &r->dns, t = *o;

		o->routes = n->routes;
		o->n_routes = n->n_routes;
		o->relay = n->relay;
		n->routes = t.routes;
		n->n_routes = t.n_routes;
		n->relay = t.relay;
	}
	routes_forget(ctl);
	queue_sched_reconfigure(ctl->sched, &r->sc);
	reload_dlog(ctl, &r->cc);
	{
		/* Rule names live in the rules; the scheduler keeps copies. */
		struct queue_rules *t = ctl->rules;

		ctl->rules = r->rules;
		r->rules = t;
	}
	{
		/* The relay's credentials: the old ones retire with the rest. */
		char *u = ctl->relay_user, *p = ctl->relay_pass;

		ctl->relay_user = r->relay_user;
		ctl->relay_pass = r->relay_pass;
		r->relay_user = u;
		r->relay_pass = p;
	}
	ctl->cc = r->cc;
	policy_set(ctl);
	ctl->stats_ms = ctl->cc.stats_interval_ms;
	if (ctl->metrics != NULL && (ctl->stats_ms == 0 || ctl->stats_ms > 1000))
		ctl->stats_ms = 1000;
	{
		/* r now holds what was replaced (the configuration too, unless
		 * it was the caller's); the new one is ours. */
		struct dmta_conf *old = ctl->own_conf;

		ctl->own_conf = r->conf;
		ctl->conf = r->conf;
		r->conf = old;
		r->next = ctl->retired;
		ctl->retired = r;
	}
	ctl->ops.reloads++;
	dmta_info("reload: %s applied (routes, relay, limits, TLS policy, log)%s", path,
		  nfixed > 0 ? "; see above for what was kept" : "");
	return 0;
}

void dmta_control_get_stats(const struct dmta_control *ctl, struct dmta_control_stats *st)
{
	*st = ctl->st;
	queue_ctl_get_stats(ctl->qc, &st->queue);
}

void dmta_control_free(struct dmta_control *ctl)
{
	if (ctl == NULL)
		return;
	ctl->stopping = true;
	/* Nothing new comes in; what it acknowledged is in the spool. */
	dmta_listen_stop(ctl->listen);
	ctl->listen = NULL;
	/* Outstanding lookups end (their jobs are deferred), then the backend
	 * gives back what it holds, and those outcomes are written. */
	if (ctl->dns != NULL)
		dns_resolver_free(ctl->dns);
	ctl->dns = NULL;
	routes_forget(ctl);
	if (ctl->be != NULL)
		ctl->be->free(ctl->be->be);
	ctl->be = NULL;
	if (ctl->qc != NULL)
		timed_commit(ctl, true);
	/* Its poster ends once the post under way has its answer. */
	dmta_events_close(ctl->events);
	ctl->events = NULL;
	if (ctl->dnscfg_loaded)
		dns_config_release(&ctl->dnscfg);
	dmta_dlog_close(ctl->dlog);
	queue_rules_free(ctl->rules);
	smtp_tls_ctx_free(ctl->tls_ctx);
	/* The view goes before the lock: nobody reads a file of ours as live
	 * after we are gone. */
	if (ctl->lock_fd >= 0) {
		dmta_stats_unpublish(spool_path(ctl->sp));
		close(ctl->lock_fd);
	}
	dmta_metrics_stop(ctl->metrics);
	free(ctl->snap);
	queue_ctl_close(ctl->qc);
	dmta_loop_free(ctl->loop);
	dmta_reload_free(ctl->retired);
	dmta_conf_free(ctl->own_conf);
	free(ctl->relay_user);
	if (ctl->relay_pass != NULL) {
		explicit_bzero(ctl->relay_pass, strlen(ctl->relay_pass));
		free(ctl->relay_pass);
	}
	free(ctl);
}
