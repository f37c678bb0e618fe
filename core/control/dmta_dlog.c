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

#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_dlog.h"
#include "queue/queue_env.h"

struct dmta_dlog {
	char *path;
	int fd;
	uint64_t size, max_bytes;
	unsigned keep;
	bool warned;
};

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
	if (dl->path == NULL) {
		free(dl);
		errno = ENOMEM;
		return NULL;
	}
	rc = dlog_reopen(dl);
	if (rc != 0) {
		free(dl->path);
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

/* Append a JSON string (quoted, escaped) to buf at *n. */
static void put_str(char *buf, size_t cap, size_t *n, const char *s)
{
	if (*n + 2 >= cap)
		return;
	buf[(*n)++] = '"';
	for (; s != NULL && *s != '\0' && *n + 8 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			*n += (size_t)snprintf(buf + *n, cap - *n, "\\u%04x", ch);
		} else {
			buf[(*n)++] = (char)ch;
		}
	}
	buf[(*n)++] = '"';
}

static void put_field(char *buf, size_t cap, size_t *n, const char *key, const char *val)
{
	/* A cut field leaves *n past the end: nothing more goes in then. */
	if (*n >= cap)
		return;
	*n += (size_t)snprintf(buf + *n, cap - *n, ",\"%s\":", key);
	if (*n >= cap)
		return;
	put_str(buf, cap, n, val ? val : "");
}

int dmta_dlog_write(struct dmta_dlog *dl, const struct dmta_dlog_rec *r)
{
	char buf[4096], id[17], ts[40];
	uint64_t now = dmta_wall_ns();
	time_t sec = (time_t)(now / DMTA_NS_PER_S);
	struct tm tm;
	size_t n = 0;
	ssize_t w;

	if (dl == NULL)
		return 0;
	gmtime_r(&sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf, sizeof(buf), "{\"time\":\"%s.%03uZ\"", ts,
			      (unsigned)(now % DMTA_NS_PER_S / DMTA_NS_PER_MS));
	put_field(buf, sizeof(buf), &n, "qid", queue_id_fmt(r->qid, id));
	put_field(buf, sizeof(buf), &n, "from", r->from);
	put_field(buf, sizeof(buf), &n, "to", r->to);
	put_field(buf, sizeof(buf), &n, "domain", r->domain);
	put_field(buf, sizeof(buf), &n, "mx", r->mx);
	put_field(buf, sizeof(buf), &n, "ip", r->ip);
	put_field(buf, sizeof(buf), &n, "tls", r->tls);
	put_field(buf, sizeof(buf), &n, "reply", r->reply);
	put_field(buf, sizeof(buf), &n, "status", r->status);
	if (n < sizeof(buf))
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"attempt\":%u,\"delay_s\":%.3f",
				      r->attempt, r->delay_s);
	put_field(buf, sizeof(buf), &n, "outcome", r->outcome);
	if (n + 2 >= sizeof(buf))
		n = sizeof(buf) - 3; /* cut: still one line, though not JSON */
	buf[n++] = '}';
	buf[n++] = '\n';
	if (dl->max_bytes != 0 && dl->size + n > dl->max_bytes && dl->size > 0)
		dlog_rotate(dl);
	w = dl->fd >= 0 ? write(dl->fd, buf, n) : -1;
	if (w != (ssize_t)n) {
		if (!dl->warned)
			dmta_warn("delivery log %s: cannot write: %s", dl->path,
				  strerror(w < 0 ? errno : EIO));
		dl->warned = true;
		return -EIO;
	}
	dl->size += n;
	return 0;
}

void dmta_dlog_close(struct dmta_dlog *dl)
{
	if (dl == NULL)
		return;
	if (dl->fd >= 0)
		close(dl->fd);
	free(dl->path);
	free(dl);
}
