/*
 * dmta_metrics.c - see dmta_metrics.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_log.h"
#include "core/control/dmta_metrics.h"
#include "core/control/dmta_stats.h"
#include "queue/queue_sched.h"

static const struct dmta_conf_key metrics_keys[] = {
    {.name = "listen",
     .type = DMTA_CONF_STR,
     .example = "127.0.0.1:9465",
     DMTA_CONF_AT(struct dmta_metrics_conf, listen),
     .help = "Serve GET /metrics (Prometheus text format) on ADDR:PORT; unset: off.\n"
	     "Keep it on the management side: it answers anyone who can reach it."},
};

const struct dmta_conf_section dmta_metrics_conf_section = {
    .name = "metrics",
    .help = "Prometheus metrics.",
    .keys = metrics_keys,
    .nkeys = DMTA_CONF_NKEYS(metrics_keys),
};

int dmta_metrics_conf_load(const struct dmta_conf *conf, struct dmta_metrics_conf *mc)
{
	memset(mc, 0, sizeof(*mc));
	return dmta_conf_read(conf, &dmta_metrics_conf_section, mc);
}

/* ---- histograms ---- */

const double dmta_metrics_hist_bounds[DMTA_METRICS_HIST_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

void dmta_metrics_hist_observe(struct dmta_metrics_hist *h, double seconds)
{
	unsigned i;

	for (i = 0; i < DMTA_METRICS_HIST_BUCKETS; i++)
		if (seconds <= dmta_metrics_hist_bounds[i])
			break;
	if (i < DMTA_METRICS_HIST_BUCKETS)
		h->bucket[i]++;
	else
		h->inf++;
	h->count++;
	h->sum += seconds;
}

const char *const dmta_metrics_age_names[DMTA_METRICS_AGES] = {"1m", "5m", "1h",
							       "6h", "1d", "older"};
const uint64_t dmta_metrics_age_bounds_s[DMTA_METRICS_AGES - 1] = {60, 300, 3600, 21600, 86400};

void dmta_metrics_count_age(struct dmta_metrics_extra *x, uint64_t age_s)
{
	unsigned i = 0;

	while (i < DMTA_METRICS_AGES - 1 && age_s >= dmta_metrics_age_bounds_s[i])
		i++;
	x->queue_age[i]++;
}

/*
 * XXX O(messages) once per view, like queue_sched_get_stats(); a few ms
 * at a million queued messages.
 */
void dmta_metrics_census(struct dmta_metrics_extra *x, const struct queue_sched *s,
			 uint64_t messages, uint64_t now_ns)
{
	size_t n = (size_t)messages + 1;
	uint64_t *ids;

	x->queue_bytes = x->queue_rcpts_pending = x->queue_rcpts_deferred = 0;
	memset(x->queue_age, 0, sizeof(x->queue_age));
	ids = malloc(n * sizeof(*ids));
	if (ids == NULL)
		return;
	n = queue_sched_ids(s, ids, n);
	for (size_t i = 0; i < n; i++) {
		const struct queue_env *env = queue_sched_env(s, ids[i]);

		if (env == NULL)
			continue;
		x->queue_bytes += env->size;
		for (uint32_t k = 0; k < env->nrcpt; k++) {
			x->queue_rcpts_pending += env->rcpt[k].state == QUEUE_RCPT_PENDING;
			x->queue_rcpts_deferred += env->rcpt[k].state == QUEUE_RCPT_DEFERRED;
		}
		dmta_metrics_count_age(
		    x, now_ns > env->arrival_ns ? (now_ns - env->arrival_ns) / 1000000000ULL : 0);
	}
	free(ids);
}

void dmta_metrics_count_status(uint64_t *by, const char *status)
{
	/* "4.7.1": the subject is the digit after the first dot. */
	if (status != NULL && status[0] != '\0' && status[1] == '.' && status[2] >= '0' &&
	    status[2] < '0' + DMTA_METRICS_SUBJECTS)
		by[status[2] - '0']++;
	else
		by[0]++;
}

/* ---- the text format ---- */

void dmta_metrics_family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void dmta_metrics_sample(FILE *out, const char *name, const char *labels, uint64_t v)
{
	if (labels != NULL && labels[0] != '\0')
		fprintf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		fprintf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void one(FILE *out, const char *name, const char *type, const char *help, uint64_t v)
{
	dmta_metrics_family(out, name, type, help);
	dmta_metrics_sample(out, name, NULL, v);
}

static void one_f(FILE *out, const char *name, const char *help, double v)
{
	dmta_metrics_family(out, name, "gauge", help);
	fprintf(out, "%s %.6g\n", name, v);
}

static void hist(FILE *out, const char *name, const char *help, const struct dmta_metrics_hist *h)
{
	uint64_t cum = 0;

	dmta_metrics_family(out, name, "histogram", help);
	for (unsigned i = 0; i < DMTA_METRICS_HIST_BUCKETS; i++) {
		cum += h->bucket[i];
		fprintf(out, "%s_bucket{le=\"%g\"} %llu\n", name, dmta_metrics_hist_bounds[i],
			(unsigned long long)cum);
	}
	fprintf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)(cum + h->inf));
	fprintf(out, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
		(unsigned long long)h->count);
}

static const char *const route_names[3] = {"mx", "route", "relay"};

/* Recipients by outcome, each by the kind of route that was taken. */
static void recipients(FILE *out, const struct dmta_stats *s, const struct dmta_metrics_extra *x)
{
	static const char name[] = "dmta_recipients_total";
	struct {
		const char *outcome;
		const uint64_t *by;
	} o[] = {{"delivered", x->delivered_by_route},
		 {"deferred", x->deferred_by_route},
		 {"bounced", x->bounced_by_route}};
	char labels[96];

	dmta_metrics_family(out, name, "counter",
			    "Recipient attempts by outcome and route (mx, route, relay); expired "
			    "recipients had no attempt.");
	for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
		for (unsigned r = 0; r < 3; r++) {
			snprintf(labels, sizeof(labels), "outcome=\"%s\",route=\"%s\"",
				 o[i].outcome, route_names[r]);
			dmta_metrics_sample(out, name, labels, o[i].by[r]);
		}
	dmta_metrics_sample(out, name, "outcome=\"expired\",route=\"none\"", s->expired);
}

static void by_subject(FILE *out, const char *name, const char *help, char cls, const uint64_t *by)
{
	char labels[48];

	dmta_metrics_family(out, name, "counter", help);
	for (unsigned k = 0; k < DMTA_METRICS_SUBJECTS; k++) {
		snprintf(labels, sizeof(labels), "status_class=\"%c.%u\"", cls, k);
		dmta_metrics_sample(out, name, labels, by[k]);
	}
}

/* One family per worker counter, a sample per worker. */
static void workers(FILE *out, const struct dmta_stats *s)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} w[] = {
#define W(m) offsetof(struct dmta_stats_worker, m)
	    {"dmta_worker_jobs", "gauge", "Jobs the worker holds now.", W(jobs)},
	    {"dmta_worker_sessions", "gauge",
	     "SMTP connections open (connecting, in SMTP, closing).", W(sessions)},
	    {"dmta_worker_sessions_connecting", "gauge", "Connections being opened.",
	     W(connecting)},
	    {"dmta_worker_sessions_idle", "gauge", "Connections idle, waiting for a job.", W(idle)},
	    {"dmta_worker_connections_opened_total", "counter", "Connections started.", W(opened)},
	    {"dmta_worker_connect_failures_total", "counter", "Connection attempts that failed.",
	     W(connect_failed)},
	    {"dmta_worker_tcp_retransmits_total", "counter", "TCP segments sent again.",
	     W(retransmits)},
#undef W
	};
	char labels[32];

	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		bool any = false;

		for (unsigned k = 0; k < s->nworkers; k++) {
			uint64_t v = *(const uint64_t *)((const char *)&s->workers[k] + w[i].off);

			if (v == DMTA_STATS_NA)
				continue; /* does not apply: no sample rather than a lie */
			if (!any)
				dmta_metrics_family(out, w[i].name, w[i].type, w[i].help);
			any = true;
			snprintf(labels, sizeof(labels), "worker=\"%u\"", k);
			dmta_metrics_sample(out, w[i].name, labels, v);
		}
	}
}

/* Transactions per worker, with TLS and without. */
static void tls(FILE *out, const struct dmta_metrics_extra *x)
{
	static const char name[] = "dmta_worker_smtp_transactions_total";
	char labels[48];

	if (x->nworkers == 0)
		return;
	dmta_metrics_family(out, name, "counter",
			    "SMTP transactions (jobs that reached a server) by worker, with TLS or "
			    "in plaintext.");
	for (unsigned k = 0; k < x->nworkers && k < DMTA_METRICS_MAX_WORKERS; k++)
		for (unsigned t = 0; t < 2; t++) {
			snprintf(labels, sizeof(labels), "worker=\"%u\",tls=\"%s\"", k,
				 t ? "yes" : "no");
			dmta_metrics_sample(out, name, labels, x->tls_by_worker[k][t]);
		}
}

void dmta_metrics_write(FILE *out, const struct dmta_stats *s, const struct dmta_metrics_extra *x)
{
	char labels[64];

	dmta_metrics_family(out, "dmta_info", "gauge", "Always 1; the backend in a label.");
	snprintf(labels, sizeof(labels), "backend=\"%s\"", s->backend);
	dmta_metrics_sample(out, "dmta_info", labels, 1);
	one(out, "dmta_start_time_seconds", "gauge", "When dmtad started (Unix time).",
	    s->started_ms / 1000);

	dmta_metrics_family(out, "dmta_queue_messages", "gauge",
			    "Messages the scheduler tracks, by state.");
	dmta_metrics_sample(out, "dmta_queue_messages", "state=\"waiting\"", s->waiting);
	dmta_metrics_sample(out, "dmta_queue_messages", "state=\"ready\"", s->ready);
	dmta_metrics_sample(out, "dmta_queue_messages", "state=\"in_flight\"", s->in_flight);
	dmta_metrics_sample(out, "dmta_queue_messages", "state=\"held\"", s->held);
	dmta_metrics_family(
	    out, "dmta_queue_messages_by_age", "gauge",
	    "Queued messages by age: younger than the label (older: a day or more).");
	for (unsigned i = 0; i < DMTA_METRICS_AGES; i++) {
		snprintf(labels, sizeof(labels), "age=\"%s\"", dmta_metrics_age_names[i]);
		dmta_metrics_sample(out, "dmta_queue_messages_by_age", labels, x->queue_age[i]);
	}
	dmta_metrics_family(out, "dmta_queue_recipients", "gauge",
			    "Recipients still to deliver, by state.");
	dmta_metrics_sample(out, "dmta_queue_recipients", "state=\"pending\"",
			    x->queue_rcpts_pending);
	dmta_metrics_sample(out, "dmta_queue_recipients", "state=\"deferred\"",
			    x->queue_rcpts_deferred);
	one(out, "dmta_queue_bytes", "gauge", "Bytes of the queued messages.", x->queue_bytes);
	one(out, "dmta_queue_destinations", "gauge", "Destinations with a queue.", s->dests);
	one(out, "dmta_queue_destinations_suspended", "gauge",
	    "Destinations suspended after connection failures.", s->suspended);
	dmta_metrics_family(out, "dmta_jobs", "gauge",
			    "Jobs out: with the delivery backend, or waiting for DNS.");
	dmta_metrics_sample(out, "dmta_jobs", "where=\"backend\"", s->jobs_busy);
	dmta_metrics_sample(out, "dmta_jobs", "where=\"dns\"", s->jobs_dns);

	one(out, "dmta_recipient_attempts_total", "counter",
	    "Recipient attempts: delivered, deferred or bounced (the delivery log's lines).",
	    s->attempts);
	recipients(out, s, x);
	by_subject(out, "dmta_deferrals_by_status_total",
		   "Deferred recipient attempts by the reply's status class and subject.", '4',
		   x->deferred_by);
	by_subject(out, "dmta_bounces_by_status_total",
		   "Recipients refused for good by an attempt, by status class and subject.", '5',
		   x->bounced_by);
	one_f(out, "dmta_delivery_rate_10s", "Recipients delivered per second, the last 10 s.",
	      s->rate_10s);
	one_f(out, "dmta_delivery_rate", "Recipients delivered per second since start.", s->rate);
	dmta_metrics_family(out, "dmta_dsns_total", "counter", "DSNs generated, by kind.");
	dmta_metrics_sample(out, "dmta_dsns_total", "kind=\"failure\"", s->bounces);
	dmta_metrics_sample(out, "dmta_dsns_total", "kind=\"delay\"", s->delay_dsns);

	one(out, "dmta_spool_messages_loaded_total", "counter",
	    "Messages taken from the spool into the scheduler (injected, DSNs, at start).",
	    s->loaded);
	one(out, "dmta_spool_commits_total", "counter", "Spool write transactions.", s->commits);
	one(out, "dmta_spool_commit_errors_total", "counter", "Spool commits that failed.",
	    s->commit_errors);
	hist(out, "dmta_spool_commit_duration_seconds",
	     "How long a group commit took, fsync included.", &x->commit);

	one(out, "dmta_dns_cache_hits_total", "counter", "DNS cache hits.", s->dns_hits);
	one(out, "dmta_dns_cache_misses_total", "counter", "DNS cache misses.", s->dns_misses);
	one(out, "dmta_dns_cache_entries", "gauge", "DNS cache entries.", s->dns_entries);
	one(out, "dmta_dns_cache_negative_entries", "gauge", "Negative DNS cache entries.",
	    s->dns_negative);
	one(out, "dmta_dns_queries_total", "counter", "DNS queries sent.", s->dns_queries);
	one(out, "dmta_dns_failures_total", "counter", "DNS lookups that failed.", s->dns_failures);
	one(out, "dmta_dns_queries_in_flight", "gauge", "DNS queries waiting for an answer.",
	    s->dns_in_flight);

	workers(out, s);
	tls(out, x);

	dmta_metrics_family(out, "dmta_reloads_total", "counter",
			    "Configuration reloads (SIGHUP), by result.");
	dmta_metrics_sample(out, "dmta_reloads_total", "result=\"applied\"", x->reloads);
	dmta_metrics_sample(out, "dmta_reloads_total", "result=\"refused\"", x->reloads_refused);

	one(out, "dmta_events_queued_total", "counter", "Delivery events written to the backlog.",
	    x->events_queued);
	one(out, "dmta_events_posted_total", "counter", "Delivery events the webhook accepted.",
	    x->events_posted);
	one(out, "dmta_events_dropped_total", "counter",
	    "Delivery events dropped because the backlog was full.", x->events_dropped);
	one(out, "dmta_events_post_failures_total", "counter",
	    "Webhook posts that failed (each retried later).", x->events_post_failures);
	one(out, "dmta_events_backlog", "gauge", "Delivery events not yet accepted by the webhook.",
	    x->events_backlog);
}

/* ---- the server ---- */

struct dmta_metrics {
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock;
	char *text; /* the last view, formatted; NULL before the first */
	size_t len;
	uint64_t scrapes;
};

static struct MHD_Response *text_response(struct dmta_metrics *m)
{
	char *copy;
	size_t len;

	pthread_mutex_lock(&m->lock);
	len = m->len;
	copy = malloc(len ? len : 1);
	if (copy != NULL && len)
		memcpy(copy, m->text, len);
	pthread_mutex_unlock(&m->lock);
	if (copy == NULL)
		return NULL;
	return MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **state)
{
	static const char not_found[] = "not found: GET /metrics\n";
	static const char not_allowed[] = "method not allowed\n";
	struct dmta_metrics *m = cls;
	struct MHD_Response *r;
	unsigned status;
	enum MHD_Result rc;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		r = MHD_create_response_from_buffer(sizeof(not_allowed) - 1, (void *)not_allowed,
						    MHD_RESPMEM_PERSISTENT);
	} else if (strcmp(url, "/metrics") != 0) {
		status = MHD_HTTP_NOT_FOUND;
		r = MHD_create_response_from_buffer(sizeof(not_found) - 1, (void *)not_found,
						    MHD_RESPMEM_PERSISTENT);
	} else {
		status = MHD_HTTP_OK;
		r = text_response(m);
		__atomic_fetch_add(&m->scrapes, 1, __ATOMIC_RELAXED);
	}
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
						      : "text/plain");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static int parse_listen(const char *s, struct sockaddr_in *sin)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	uint64_t port;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host) ||
	    dmta_parse_u64(colon + 1, &port) != 0 || port > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

struct dmta_metrics *dmta_metrics_start(const char *listen, char *err, size_t errlen)
{
	struct dmta_metrics *m;
	struct sockaddr_in sin;

	if (parse_listen(listen, &sin) != 0) {
		snprintf(err, errlen, "[metrics] listen %s: want IPV4-ADDRESS:PORT", listen);
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	/* One thread of its own, polling its sockets; a handful of
	 * connections is all a scraper needs. */
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				  answer, m, MHD_OPTION_SOCK_ADDR, &sin,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (m->mhd == NULL) {
		snprintf(err, errlen, "[metrics] listen %s: cannot serve there (%s)", listen,
			 strerror(errno ? errno : EADDRINUSE));
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	return m;
}

void dmta_metrics_publish(struct dmta_metrics *m, char *text, size_t len)
{
	char *old;

	pthread_mutex_lock(&m->lock);
	old = m->text;
	m->text = text;
	m->len = len;
	pthread_mutex_unlock(&m->lock);
	free(old);
}

uint16_t dmta_metrics_port(const struct dmta_metrics *m)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);

	return i != NULL ? i->port : 0;
}

uint64_t dmta_metrics_scrapes(const struct dmta_metrics *m)
{
	return __atomic_load_n(&m->scrapes, __ATOMIC_RELAXED);
}

void dmta_metrics_stop(struct dmta_metrics *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->mhd);
	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
}
