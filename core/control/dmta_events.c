/*
 * dmta_events.c - see dmta_events.h.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/dmta_json.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_events.h"
#include "queue/queue_addr.h"

#define EV_DIR	     "events"
#define EV_CURSOR    "cursor"
#define EV_SEG_MAX   (4u << 20) /* a new segment past this size */
#define EV_READ_MAX  (1u << 20) /* bytes read for one batch */
#define EV_MSGID_MAX 256

#define EC(m) DMTA_CONF_AT(struct dmta_events_conf, m)

static const struct dmta_conf_key events_keys[] = {
    {.name = "url",
     .type = DMTA_CONF_STR,
     .example = "http://127.0.0.1:8080/dmta-events",
     EC(url),
     .help = "POST delivery events here, in batches (a JSON array of objects); unset: off.\n"
	     "Kept in SPOOL/events until the URL answers 2xx, so none is lost."},
    {.name = "batch",
     .type = DMTA_CONF_U64,
     .def = "100",
     .min = 1,
     .max = 10000,
     EC(batch),
     .help = "Events per post, at most."},
    {.name = "max_backlog",
     .type = DMTA_CONF_SIZE,
     .def = "0",
     EC(max_backlog),
     .help = "Events not yet posted may take this much disk; past it new events are\n"
	     "dropped and counted (dmta_events_dropped_total). 0: no limit."},
    {.name = "retry_min",
     .type = DMTA_CONF_DURATION,
     .def = "1s",
     .min = 10,
     .max = DMTA_CONF_HOUR(1),
     EC(retry_min_ms),
     .help = "After a failed post, wait this long, doubling each time up to retry_max."},
    {.name = "retry_max",
     .type = DMTA_CONF_DURATION,
     .def = "5m",
     .min = 10,
     .max = DMTA_CONF_HOUR(1),
     EC(retry_max_ms)},
    {.name = "timeout",
     .type = DMTA_CONF_DURATION,
     .def = "10s",
     .min = 100,
     .max = DMTA_CONF_MIN(10),
     EC(timeout_ms),
     .help = "A post that takes longer has failed."},
};

const struct dmta_conf_section dmta_events_conf_section = {
    .name = "events",
    .help = "Delivery events pushed to a webhook.",
    .keys = events_keys,
    .nkeys = DMTA_CONF_NKEYS(events_keys),
};

int dmta_events_conf_load(const struct dmta_conf *conf, struct dmta_events_conf *ec)
{
	memset(ec, 0, sizeof(*ec));
	return dmta_conf_read(conf, &dmta_events_conf_section, ec);
}

struct dmta_events {
	struct dmta_events_conf c;
	char *url;
	int dfd; /* SPOOL/events */

	/* The writer: the control thread's. */
	uint64_t seg; /* the segment written */
	int fd;
	uint64_t size; /* its synced length */
	char *pend;    /* lines of this turn, not yet written */
	size_t plen, pcap;
	uint64_t npend;
	uint64_t max_rx_qid; /* the last message whose reception was recorded */
	bool warned;

	/* Between the writer and the poster. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t synced_seg, synced_off; /* durable up to here */
	bool stop;
	pthread_t thread;
	bool started;

	/* Counters (relaxed atomics: written by one thread, read by another). */
	uint64_t written_bytes, acked_bytes; /* since open, the initial backlog included */
	uint64_t written_lines, acked_lines;
	uint64_t queued, dropped, post_failures;

	/* The poster's. */
	uint64_t cur_seg, cur_off, cur_max_qid;
	CURL *curl;
};

/* ---- files ---- */

static void seg_name(uint64_t seg, char *buf, size_t cap)
{
	snprintf(buf, cap, "%016llx.jsonl", (unsigned long long)seg);
}

static int seg_open(struct dmta_events *ev, uint64_t seg, int flags)
{
	char name[32];

	seg_name(seg, name, sizeof(name));
	return openat(ev->dfd, name, flags | O_CLOEXEC, 0600);
}

/* The cursor: "SEGMENT OFFSET LAST-RECEPTION-QID", all hex. 0, or -errno. */
static int cursor_read(struct dmta_events *ev, uint64_t *seg, uint64_t *off, uint64_t *qid)
{
	char buf[128];
	ssize_t n;
	unsigned long long a, b, c;
	int fd = openat(ev->dfd, EV_CURSOR, O_RDONLY | O_CLOEXEC);

	*seg = *off = *qid = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (sscanf(buf, "%llx %llx %llx", &a, &b, &c) != 3)
		return -EINVAL;
	*seg = a;
	*off = b;
	*qid = c;
	return 0;
}

static int cursor_write(struct dmta_events *ev)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "%llx %llx %llx\n", (unsigned long long)ev->cur_seg,
			 (unsigned long long)ev->cur_off, (unsigned long long)ev->cur_max_qid);
	int fd = openat(ev->dfd, EV_CURSOR ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(ev->dfd, EV_CURSOR ".tmp", ev->dfd, EV_CURSOR) != 0)
		rc = -errno;
	if (rc == 0 && fsync(ev->dfd) != 0)
		rc = -errno;
	return rc;
}

/* The qid of a reception line, 0 for other events. */
static uint64_t line_reception_qid(const char *line, size_t len)
{
	static const char tag[] = "\"event\":\"reception\",\"time\":";
	const char *p = memmem(line, len, tag, sizeof(tag) - 1);
	const char *q;
	char id[32];
	uint64_t qid;

	if (p == NULL || (q = memmem(p, len - (size_t)(p - line), "\"qid\":\"", 7)) == NULL)
		return 0;
	q += 7;
	snprintf(id, sizeof(id), "%.*s", (int)strcspn(q, "\""), q);
	return queue_id_parse(id, &qid) == 0 ? qid : 0;
}

/*
 * Count what the segments hold past the cursor: lines, bytes and the
 * receptions recorded. Cuts a torn last line (a crash in a write) off
 * the newest segment.
 */
static int scan_backlog(struct dmta_events *ev, uint64_t last)
{
	for (uint64_t s = ev->cur_seg; s <= last; s++) {
		int fd = seg_open(ev, s, O_RDONLY);
		struct stat st;
		char *buf;
		size_t from = s == ev->cur_seg ? ev->cur_off : 0, end = 0;

		if (fd < 0)
			continue; /* a gap: nothing was written there */
		if (fstat(fd, &st) != 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL) {
			close(fd);
			return -ENOMEM;
		}
		if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
			free(buf);
			close(fd);
			return -EIO;
		}
		close(fd);
		for (size_t i = 0; i < (size_t)st.st_size; i++)
			if (buf[i] == '\n') {
				size_t start = end;

				end = i + 1;
				if (start >= from) {
					uint64_t q = line_reception_qid(buf + start, end - start);

					ev->written_lines++;
					ev->written_bytes += end - start;
					if (q > ev->max_rx_qid)
						ev->max_rx_qid = q;
				}
			}
		free(buf);
		if (end != (size_t)st.st_size && s == last) {
			int wfd = seg_open(ev, s, O_WRONLY);

			dmta_warn("events: cutting a torn last line off segment %llx",
				  (unsigned long long)s);
			if (wfd < 0 || ftruncate(wfd, (off_t)end) != 0) {
				if (wfd >= 0)
					close(wfd);
				return -EIO;
			}
			close(wfd);
		}
	}
	return 0;
}

/* ---- the writer ---- */

static const char *bounce_class(const char *status, const char *outcome)
{
	static const char *const subjects[] = {"other",	  "address",  "mailbox", "mail-system",
					       "routing", "protocol", "content", "policy"};

	if (strcmp(outcome, "expired") == 0)
		return "expired";
	if (status != NULL && status[0] != '\0' && status[1] == '.' && status[2] >= '0' &&
	    status[2] <= '7')
		return subjects[status[2] - '0'];
	return "other";
}

const char *dmta_events_message_id(const void *msg, size_t len, char *buf, size_t cap)
{
	const char *p = msg, *end = p + len;

	while (p != NULL && p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((eol ? eol : end) - p);

		if (n == 0 || (n == 1 && p[0] == '\r'))
			return NULL; /* the end of the header */
		if (n > 11 && strncasecmp(p, "Message-ID:", 11) == 0) {
			const char *v = p + 11;

			while (v < p + n && (*v == ' ' || *v == '\t'))
				v++;
			n = (size_t)(p + n - v);
			while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == ' '))
				n--;
			snprintf(buf, cap, "%.*s", (int)n, v);
			return buf;
		}
		p = eol ? eol + 1 : NULL;
	}
	return NULL;
}

/* The start of an event: its id (where it will be in the file), type, time. */
static void ev_begin(struct dmta_events *ev, struct dmta_json *j, const char *type)
{
	char id[48];

	snprintf(id, sizeof(id), "%llx.%llx", (unsigned long long)ev->seg,
		 (unsigned long long)(ev->size + ev->plen));
	dmta_json_init_grow(j);
	dmta_json_obj(j);
	dmta_json_kstr(j, "id", id);
	dmta_json_kstr(j, "event", type);
	dmta_json_key(j, "time");
	dmta_json_f64(j, (double)dmta_wall_ns() / 1e9, 3);
}

static void kstr_opt(struct dmta_json *j, const char *key, const char *v)
{
	if (v != NULL && v[0] != '\0')
		dmta_json_kstr(j, key, v);
}

/* Close the object and add the line to this turn's, unless the backlog is full. */
static void ev_end(struct dmta_events *ev, struct dmta_json *j)
{
	int n;

	dmta_json_obj_end(j);
	n = dmta_json_finish(j);
	if (n < 0) {
		__atomic_fetch_add(&ev->dropped, 1, __ATOMIC_RELAXED);
		dmta_json_free(j);
		return;
	}
	if (ev->c.max_backlog != 0 && __atomic_load_n(&ev->written_bytes, __ATOMIC_RELAXED) +
					      ev->plen + (size_t)n + 1 -
					      __atomic_load_n(&ev->acked_bytes, __ATOMIC_RELAXED) >
					  ev->c.max_backlog) {
		__atomic_fetch_add(&ev->dropped, 1, __ATOMIC_RELAXED);
		dmta_json_free(j);
		return;
	}
	if (ev->plen + (size_t)n + 1 > ev->pcap) {
		size_t cap = ev->pcap ? ev->pcap : 4096;
		char *p;

		while (cap < ev->plen + (size_t)n + 1)
			cap *= 2;
		p = realloc(ev->pend, cap);
		if (p == NULL) {
			__atomic_fetch_add(&ev->dropped, 1, __ATOMIC_RELAXED);
			dmta_json_free(j);
			return;
		}
		ev->pend = p;
		ev->pcap = cap;
	}
	memcpy(ev->pend + ev->plen, j->buf, (size_t)n);
	ev->plen += (size_t)n;
	ev->pend[ev->plen++] = '\n';
	ev->npend++;
	dmta_json_free(j);
}

static void ev_message(struct dmta_json *j, uint64_t qid, const void *msg, size_t len,
		       const char *sender)
{
	char id[17], mid[EV_MSGID_MAX];

	dmta_json_kstr(j, "qid", queue_id_fmt(qid, id));
	kstr_opt(j, "message_id", msg ? dmta_events_message_id(msg, len, mid, sizeof(mid)) : NULL);
	dmta_json_kstr(j, "sender", sender);
}

void dmta_events_reception(struct dmta_events *ev, const struct queue_env *env, const void *msg,
			   size_t len)
{
	struct dmta_json j;

	if (env->qid <= ev->max_rx_qid)
		return;
	ev->max_rx_qid = env->qid;
	ev_begin(ev, &j, "reception");
	ev_message(&j, env->qid, msg, len, env->sender);
	dmta_json_key(&j, "recipients");
	dmta_json_arr(&j);
	for (uint32_t i = 0; i < env->nrcpt; i++)
		dmta_json_str(&j, env->rcpt[i].addr);
	dmta_json_arr_end(&j);
	dmta_json_ku64(&j, "size", env->size);
	ev_end(ev, &j);
}

void dmta_events_attempt(struct dmta_events *ev, const struct dmta_dlog_rec *r, const void *msg,
			 size_t len, double attempt_s)
{
	const char *type = strcmp(r->outcome, "delivered") == 0	 ? "delivery"
			   : strcmp(r->outcome, "deferred") == 0 ? "transient_failure"
								 : "bounce";
	struct dmta_json j;

	ev_begin(ev, &j, type);
	ev_message(&j, r->qid, msg, len, r->from);
	dmta_json_kstr(&j, "recipient", r->to);
	kstr_opt(&j, "domain", r->domain);
	kstr_opt(&j, "mx", r->mx);
	kstr_opt(&j, "ip", r->ip);
	kstr_opt(&j, "tls", r->tls);
	kstr_opt(&j, "reply", r->reply);
	kstr_opt(&j, "status", r->status);
	if (strcmp(type, "bounce") == 0)
		dmta_json_kstr(&j, "bounce_class", bounce_class(r->status, r->outcome));
	dmta_json_ku64(&j, "attempt", r->attempt);
	dmta_json_key(&j, "delay_s");
	dmta_json_f64(&j, r->delay_s, 3);
	if (attempt_s >= 0) {
		dmta_json_key(&j, "attempt_s");
		dmta_json_f64(&j, attempt_s, 3);
	}
	ev_end(ev, &j);
}

void dmta_events_delay(struct dmta_events *ev, const struct queue_env *env, const uint32_t *rcpt,
		       uint32_t n)
{
	uint64_t now = dmta_wall_ns();

	for (uint32_t i = 0; i < n; i++) {
		const struct queue_rcpt *r = &env->rcpt[rcpt[i]];
		struct dmta_json j;

		ev_begin(ev, &j, "delay_warning");
		ev_message(&j, env->qid, NULL, 0, env->sender);
		dmta_json_kstr(&j, "recipient", r->addr);
		dmta_json_kstr(&j, "domain", queue_addr_domain(r->addr));
		kstr_opt(&j, "reply", r->reply);
		dmta_json_ku64(&j, "attempt", r->attempts);
		dmta_json_key(&j, "delay_s");
		dmta_json_f64(&j, now > env->arrival_ns ? (double)(now - env->arrival_ns) / 1e9 : 0,
			      3);
		ev_end(ev, &j);
	}
}

/* Past EV_SEG_MAX: a new segment; the poster moves on once it has read the old one. */
static void seg_roll(struct dmta_events *ev)
{
	int fd = seg_open(ev, ev->seg + 1, O_WRONLY | O_CREAT | O_APPEND);

	if (fd < 0 || fsync(ev->dfd) != 0) {
		if (fd >= 0)
			close(fd);
		return; /* the old one grows on; tried again next turn */
	}
	close(ev->fd);
	ev->fd = fd;
	ev->seg++;
	ev->size = 0;
}

int dmta_events_sync(struct dmta_events *ev)
{
	size_t done = 0;
	int rc = 0;

	if (ev->plen == 0)
		return 0;
	while (done < ev->plen) {
		ssize_t n = write(ev->fd, ev->pend + done, ev->plen - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (rc == 0 && fdatasync(ev->fd) != 0)
		rc = -errno;
	if (rc != 0) {
		/* Take back what was half written: the file holds whole lines. */
		if (ftruncate(ev->fd, (off_t)ev->size) != 0)
			dmta_err("events: segment %llx: cannot cut a failed write: %s",
				 (unsigned long long)ev->seg, strerror(errno));
		if (!ev->warned)
			dmta_err("events: cannot write %s/%016llx.jsonl: %s (%llu events dropped; "
				 "said once)",
				 EV_DIR, (unsigned long long)ev->seg, strerror(-rc),
				 (unsigned long long)ev->npend);
		ev->warned = true;
		__atomic_fetch_add(&ev->dropped, ev->npend, __ATOMIC_RELAXED);
		ev->plen = 0;
		ev->npend = 0;
		return rc;
	}
	ev->size += ev->plen;
	__atomic_fetch_add(&ev->written_bytes, ev->plen, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ev->written_lines, ev->npend, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ev->queued, ev->npend, __ATOMIC_RELAXED);
	ev->plen = 0;
	ev->npend = 0;
	if (ev->size >= EV_SEG_MAX)
		seg_roll(ev);
	pthread_mutex_lock(&ev->lock);
	ev->synced_seg = ev->seg;
	ev->synced_off = ev->size;
	pthread_cond_signal(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
	return 0;
}

void dmta_events_counters(struct dmta_events *ev, struct dmta_metrics_extra *x)
{
	uint64_t w = __atomic_load_n(&ev->written_lines, __ATOMIC_RELAXED);
	uint64_t a = __atomic_load_n(&ev->acked_lines, __ATOMIC_RELAXED);

	x->events_queued = __atomic_load_n(&ev->queued, __ATOMIC_RELAXED);
	x->events_posted = a;
	x->events_dropped = __atomic_load_n(&ev->dropped, __ATOMIC_RELAXED);
	x->events_post_failures = __atomic_load_n(&ev->post_failures, __ATOMIC_RELAXED);
	x->events_backlog = w > a ? w - a : 0;
}

/* ---- the poster ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* POST @p body; 0 on a 2xx answer. */
static int post(struct dmta_events *ev, const char *body, size_t len)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	long code = 0;
	CURLcode rc;

	curl_easy_setopt(ev->curl, CURLOPT_URL, ev->url);
	curl_easy_setopt(ev->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(ev->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(ev->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ev->curl, CURLOPT_TIMEOUT_MS, (long)ev->c.timeout_ms);
	curl_easy_setopt(ev->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ev->curl, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(ev->curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(ev->curl, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	if (rc != CURLE_OK || code < 200 || code > 299) {
		dmta_debug("events: post of %zu bytes: %s %ld", len,
			   rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP", code);
		return -EIO;
	}
	return 0;
}

/* Wait until there is something past the cursor, or stop. False: stop. */
static bool wait_work(struct dmta_events *ev, uint64_t *seg, uint64_t *off)
{
	bool go;

	pthread_mutex_lock(&ev->lock);
	while (!ev->stop && ev->synced_seg == ev->cur_seg && ev->synced_off <= ev->cur_off)
		pthread_cond_wait(&ev->cond, &ev->lock);
	go = !ev->stop;
	*seg = ev->synced_seg;
	*off = ev->synced_off;
	pthread_mutex_unlock(&ev->lock);
	return go;
}

/* Sleep @p ms or until stopped. False: stop. */
static bool wait_ms(struct dmta_events *ev, uint64_t ms)
{
	struct timespec ts;
	bool go;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ev->lock);
	while (!ev->stop && pthread_cond_timedwait(&ev->cond, &ev->lock, &ts) != ETIMEDOUT)
		;
	go = !ev->stop;
	pthread_mutex_unlock(&ev->lock);
	return go;
}

/*
 * One batch from the cursor: up to batch whole lines of the current
 * segment, below @p limit when it is the segment being written. Builds
 * the JSON array in @p body; returns the bytes of the file it covers (0:
 * the segment has nothing more), or -errno.
 */
static ssize_t batch_read(struct dmta_events *ev, uint64_t limit, bool finished, char **body,
			  size_t *blen, uint64_t *lines, uint64_t *max_qid)
{
	int fd = seg_open(ev, ev->cur_seg, O_RDONLY);
	size_t want, used = 0, b = 0;
	char *buf, *out;
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT && finished ? 0 : -errno;
	if (finished) {
		struct stat st;

		if (fstat(fd, &st) != 0) {
			close(fd);
			return -errno;
		}
		limit = (uint64_t)st.st_size;
	}
	if (limit <= ev->cur_off) {
		close(fd);
		return 0;
	}
	want = limit - ev->cur_off > EV_READ_MAX ? EV_READ_MAX : (size_t)(limit - ev->cur_off);
	buf = malloc(want);
	out = malloc(want + 2);
	if (buf == NULL || out == NULL) {
		free(buf);
		free(out);
		close(fd);
		return -ENOMEM;
	}
	n = pread(fd, buf, want, (off_t)ev->cur_off);
	close(fd);
	if (n < 0) {
		free(buf);
		free(out);
		return -errno;
	}
	*lines = 0;
	out[b++] = '[';
	while (used < (size_t)n && *lines < ev->c.batch) {
		char *nl = memchr(buf + used, '\n', (size_t)n - used);
		size_t len;
		uint64_t q;

		if (nl == NULL)
			break;
		len = (size_t)(nl - (buf + used));
		if (*lines > 0)
			out[b++] = ',';
		memcpy(out + b, buf + used, len);
		b += len;
		q = line_reception_qid(buf + used, len);
		if (q > *max_qid)
			*max_qid = q;
		used += len + 1;
		(*lines)++;
	}
	out[b++] = ']';
	free(buf);
	if (*lines == 0) {
		free(out);
		return 0;
	}
	*body = out;
	*blen = b;
	return (ssize_t)used;
}

static void *poster(void *arg)
{
	struct dmta_events *ev = arg;
	uint64_t backoff = ev->c.retry_min_ms;
	uint64_t seg, off;

	while (wait_work(ev, &seg, &off)) {
		bool finished = seg > ev->cur_seg;
		uint64_t lines = 0, max_qid = ev->cur_max_qid;
		char *body = NULL;
		size_t blen = 0;
		ssize_t got = batch_read(ev, off, finished, &body, &blen, &lines, &max_qid);
		int rc;

		if (got == 0 && finished) {
			/* Read to its end: on to the next segment, then forget this one. */
			char name[32];
			uint64_t old = ev->cur_seg;

			ev->cur_seg++;
			ev->cur_off = 0;
			if (cursor_write(ev) != 0) {
				ev->cur_seg = old;
				if (!wait_ms(ev, backoff))
					break;
				continue;
			}
			seg_name(old, name, sizeof(name));
			(void)unlinkat(ev->dfd, name, 0);
			continue;
		}
		if (got <= 0) {
			if (got < 0)
				dmta_err("events: segment %llx: %s",
					 (unsigned long long)ev->cur_seg, strerror((int)-got));
			if (!wait_ms(ev, backoff))
				break;
			continue;
		}
		rc = post(ev, body, blen);
		free(body);
		if (rc != 0) {
			__atomic_fetch_add(&ev->post_failures, 1, __ATOMIC_RELAXED);
			if (!wait_ms(ev, backoff))
				break;
			backoff =
			    backoff * 2 > ev->c.retry_max_ms ? ev->c.retry_max_ms : backoff * 2;
			continue;
		}
		backoff = ev->c.retry_min_ms;
		ev->cur_off += (uint64_t)got;
		ev->cur_max_qid = max_qid;
		if (cursor_write(ev) != 0)
			dmta_err("events: cannot write the cursor: %s (the batch may be posted "
				 "again after a restart)",
				 strerror(errno));
		__atomic_fetch_add(&ev->acked_bytes, (uint64_t)got, __ATOMIC_RELAXED);
		__atomic_fetch_add(&ev->acked_lines, lines, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* ---- life cycle ---- */

/* The highest segment number in the directory (0 if none). */
static uint64_t seg_last(struct dmta_events *ev, uint64_t first)
{
	int fd = dup(ev->dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint64_t last = first;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return last;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned long long s;
		char tail[8];

		if (sscanf(de->d_name, "%16llx.%7s", &s, tail) == 2 && strcmp(tail, "jsonl") == 0) {
			if (s < first) /* passed, its removal cut short */
				(void)unlinkat(ev->dfd, de->d_name, 0);
			else if (s > last)
				last = s;
		}
	}
	closedir(d);
	return last;
}

struct dmta_events *dmta_events_open(const struct dmta_events_conf *ec, const char *spool_path,
				     char *err, size_t errlen)
{
	struct dmta_events *ev = calloc(1, sizeof(*ev));
	char dir[4096];
	struct stat st;
	int rc;

	if (ev == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ev->c = *ec;
	ev->fd = -1;
	ev->dfd = -1;
	pthread_mutex_init(&ev->lock, NULL);
	pthread_cond_init(&ev->cond, NULL);
	ev->url = strdup(ec->url);
	snprintf(dir, sizeof(dir), "%s/%s", spool_path, EV_DIR);
	if (ev->url == NULL || (mkdir(dir, 0700) != 0 && errno != EEXIST) ||
	    (ev->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "events: %s: %s", dir, strerror(errno));
		goto fail;
	}
	rc = cursor_read(ev, &ev->cur_seg, &ev->cur_off, &ev->cur_max_qid);
	if (rc != 0) {
		snprintf(err, errlen, "events: %s/%s: %s", dir, EV_CURSOR,
			 rc == -EINVAL ? "unreadable" : strerror(-rc));
		goto fail;
	}
	ev->max_rx_qid = ev->cur_max_qid;
	ev->seg = seg_last(ev, ev->cur_seg);
	if (scan_backlog(ev, ev->seg) != 0) {
		snprintf(err, errlen, "events: cannot read the segments in %s", dir);
		goto fail;
	}
	ev->fd = seg_open(ev, ev->seg, O_WRONLY | O_CREAT | O_APPEND);
	if (ev->fd < 0 || fstat(ev->fd, &st) != 0) {
		snprintf(err, errlen, "events: %s: %s", dir, strerror(errno));
		goto fail;
	}
	ev->size = (uint64_t)st.st_size;
	ev->synced_seg = ev->seg;
	ev->synced_off = ev->size;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (ev->curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "events: libcurl will not start");
		goto fail;
	}
	if (pthread_create(&ev->thread, NULL, poster, ev) != 0) {
		snprintf(err, errlen, "events: cannot start the posting thread");
		goto fail;
	}
	ev->started = true;
	if (ev->written_lines > 0)
		dmta_info("events: %llu events from before wait to be posted",
			  (unsigned long long)ev->written_lines);
	return ev;
fail:
	dmta_events_close(ev);
	return NULL;
}

void dmta_events_close(struct dmta_events *ev)
{
	if (ev == NULL)
		return;
	if (ev->fd >= 0)
		(void)dmta_events_sync(ev);
	if (ev->started) {
		pthread_mutex_lock(&ev->lock);
		ev->stop = true;
		pthread_cond_broadcast(&ev->cond);
		pthread_mutex_unlock(&ev->lock);
		pthread_join(ev->thread, NULL);
	}
	if (ev->curl != NULL) {
		curl_easy_cleanup(ev->curl);
		curl_global_cleanup();
	}
	if (ev->fd >= 0)
		close(ev->fd);
	if (ev->dfd >= 0)
		close(ev->dfd);
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->lock);
	free(ev->pend);
	free(ev->url);
	free(ev);
}
