/*
 * dmta_dlog.c - see dmta_dlog.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/dmta_json.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_str.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_dlog.h"
#include "queue/queue_env.h"

struct dmta_dlog {
	char *path;
	int fd;
	uint64_t size, max_bytes;
	unsigned keep;
	bool warned;
	/* The time of the last line, to the second: formatting it is a sixth
	 * of the line's cost, and lines come many to a second. */
	time_t ts_sec;
	char ts[24]; /* "2026-12-02T01:02:03" */
	/* Whole lines not yet written (dmta_dlog_flush). */
	char *out;
	size_t out_len;
};

/* Lines kept before a write: a turn of the control loop's worth, usually. */
#define DLOG_BUF_BYTES (64 * 1024)

static int dlog_reopen(struct dmta_dlog *dl)
{
	struct stat st;

	if (dl->fd >= 0)
		close(dl->fd);
	/* Never through a symbolic link: the log's name may be in the spool,
	 * a directory other programs write to. */
	dl->fd = open(dl->path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (dl->fd < 0)
		return -errno;
	dl->size = fstat(dl->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

struct dmta_dlog *dmta_dlog_open(const char *path, uint64_t max_bytes, unsigned keep)
{
	struct dmta_dlog *dl = calloc(1, sizeof(*dl));
	int rc;

	if (dl == NULL)
		return NULL;
	dl->fd = -1;
	dl->max_bytes = max_bytes;
	dl->keep = keep;
	dl->path = strdup(path);
	dl->out = malloc(DLOG_BUF_BYTES);
	if (dl->path == NULL || dl->out == NULL) {
		free(dl->path);
		free(dl->out);
		free(dl);
		errno = ENOMEM;
		return NULL;
	}
	rc = dlog_reopen(dl);
	if (rc != 0) {
		free(dl->path);
		free(dl->out);
		free(dl);
		errno = -rc;
		return NULL;
	}
	return dl;
}

static void dlog_rotate(struct dmta_dlog *dl)
{
	char from[4096], to[4096];

	for (unsigned i = dl->keep; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%u", dl->path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", dl->path, i);
		rename(from, to);
	}
	if (dl->keep > 0) {
		snprintf(to, sizeof(to), "%s.1", dl->path);
		rename(dl->path, to);
	} else {
		unlink(dl->path);
	}
	dlog_reopen(dl);
}

/* Longest line written, its newline included. */
#define DLOG_LINE_MAX 4096

/* A string field; the log writes "" for none, so every line has every key.
 * The keys are literals: copied, not scanned for escapes. */
static void field_n(struct dmta_json *j, const char *key, size_t kn, const char *val)
{
	dmta_json_kstr_plain(j, key, kn, val ? val : "");
}
#define field(j, key, val) field_n((j), "" key, sizeof(key) - 1, (val))
#define key_lit(j, k)	   dmta_json_key_plain((j), "" k, sizeof(k) - 1)

/* One record into buf, its reply cut to reply_len bytes. Returns the length
 * or -errno; *need is what the whole record takes. */
static int dlog_format(struct dmta_dlog *dl, const struct dmta_dlog_rec *r, uint64_t now,
		       size_t reply_len, char *buf, size_t cap, size_t *need)
{
	char id[17], when[48];
	time_t sec = (time_t)(now / DMTA_NS_PER_S);
	unsigned ms = (unsigned)(now % DMTA_NS_PER_S / DMTA_NS_PER_MS);
	struct dmta_json j;
	size_t n;

	if (sec != dl->ts_sec || dl->ts[0] == '\0') {
		struct tm tm;

		gmtime_r(&sec, &tm);
		strftime(dl->ts, sizeof(dl->ts), "%Y-%m-%dT%H:%M:%S", &tm);
		dl->ts_sec = sec;
	}
	n = dmta_str_copy(when, sizeof(dl->ts), dl->ts); /* when has room for ".mmmZ" after */
	when[n++] = '.';
	when[n++] = (char)('0' + ms / 100);
	when[n++] = (char)('0' + ms / 10 % 10);
	when[n++] = (char)('0' + ms % 10);
	when[n++] = 'Z';
	when[n] = '\0';
	dmta_json_init(&j, buf, cap);
	dmta_json_obj(&j);
	field(&j, "time", when);
	field(&j, "qid", queue_id_fmt(r->qid, id));
	field(&j, "from", r->from);
	field(&j, "to", r->to);
	field(&j, "domain", r->domain);
	field(&j, "mx", r->mx);
	field(&j, "ip", r->ip);
	field(&j, "tls", r->tls);
	key_lit(&j, "reply");
	dmta_json_strn(&j, r->reply ? r->reply : "", reply_len);
	field(&j, "status", r->status);
	key_lit(&j, "attempt");
	dmta_json_u64(&j, r->attempt);
	key_lit(&j, "delay_s");
	dmta_json_f64(&j, r->delay_s, 3);
	field(&j, "outcome", r->outcome);
	field(&j, "source", r->source);
	field(&j, "site", r->site);
	field(&j, "class", r->cls);
	field(&j, "priority", r->priority);
	field(&j, "tenant", r->tenant);
	dmta_json_obj_end(&j);
	*need = dmta_json_need(&j);
	return dmta_json_finish(&j);
}

int dmta_dlog_write(struct dmta_dlog *dl, const struct dmta_dlog_rec *r)
{
	/* The writer's room leaves a byte for the newline (its NUL goes there). */
	char buf[DLOG_LINE_MAX];
	uint64_t now = dmta_wall_ns();
	size_t room = sizeof(buf) - 2; /* the text, without NUL and newline */
	size_t rlen, need, need0, n;
	int rc;

	if (dl == NULL)
		return 0;
	rlen = r->reply ? strlen(r->reply) : 0;
	rc = dlog_format(dl, r, now, rlen, buf, sizeof(buf) - 1, &need);
	/* The reply comes from the network and is the one field that can be
	 * long: cut it to fit, never inside a UTF-8 character, so the line
	 * stays JSON. First in proportion to the room the other fields leave
	 * (escapes make the bytes of a reply take more room than one each),
	 * then by what is still too much: each byte cut takes one or more from
	 * the line, so that step always fits. */
	if (rc == -ENOSPC && rlen > 0 &&
	    dlog_format(dl, r, now, 0, buf, sizeof(buf) - 1, &need0) >= 0) {
		rlen = rlen * (room - need0) / (need - need0);
		for (;;) {
			while (rlen > 0 && ((unsigned char)r->reply[rlen] & 0xc0) == 0x80)
				rlen--;
			rc = dlog_format(dl, r, now, rlen, buf, sizeof(buf) - 1, &need);
			if (rc != -ENOSPC || rlen == 0)
				break;
			rlen = need - room < rlen ? rlen - (need - room) : 0;
		}
	}
	if (rc < 0) {
		dmta_warn("delivery log %s: a record for %s left out: %s", dl->path,
			  r->to ? r->to : "?", strerror(-rc));
		return rc;
	}
	n = (size_t)rc;
	buf[n++] = '\n';
	if (dl->max_bytes != 0 && dl->size + dl->out_len + n > dl->max_bytes &&
	    dl->size + dl->out_len > 0) {
		rc = dmta_dlog_flush(dl);
		dlog_rotate(dl);
	} else if (dl->out_len + n > DLOG_BUF_BYTES) {
		rc = dmta_dlog_flush(dl);
	} else {
		rc = 0;
	}
	memcpy(dl->out + dl->out_len, buf, n);
	dl->out_len += n;
	return rc;
}

int dmta_dlog_flush(struct dmta_dlog *dl)
{
	ssize_t w;

	if (dl == NULL || dl->out_len == 0)
		return 0;
	/* One write of whole lines: a reader never sees half a line. */
	w = dl->fd >= 0 ? write(dl->fd, dl->out, dl->out_len) : -1;
	if (w != (ssize_t)dl->out_len) {
		if (!dl->warned)
			dmta_warn("delivery log %s: cannot write: %s", dl->path,
				  strerror(w < 0 ? errno : EIO));
		dl->warned = true;
		dl->out_len = 0;
		return -EIO;
	}
	dl->size += dl->out_len;
	dl->out_len = 0;
	return 0;
}

void dmta_dlog_close(struct dmta_dlog *dl)
{
	if (dl == NULL)
		return;
	(void)dmta_dlog_flush(dl);
	if (dl->fd >= 0)
		close(dl->fd);
	free(dl->path);
	free(dl->out);
	free(dl);
}
