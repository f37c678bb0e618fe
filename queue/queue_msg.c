/*
 * queue_msg.c - see queue_msg.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/queue_msg.h"

int queue_buf_add(struct queue_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *q;

		while (cap < b->len + n + 1)
			cap *= 2;
		q = realloc(b->p, cap);
		if (q == NULL)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

int queue_buf_adds(struct queue_buf *b, const char *s)
{
	return queue_buf_add(b, s, strlen(s));
}

void queue_buf_free(struct queue_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void queue_msg_free(struct queue_msg *m)
{
	for (size_t i = 0; i < m->nhdr; i++)
		free(m->hdr[i].text);
	free(m->hdr);
	queue_buf_free(&m->body);
	memset(m, 0, sizeof(*m));
}

static int hdr_push(struct queue_msg *m, const char *text, size_t len, size_t name_len)
{
	struct queue_hdr *h;

	if (m->nhdr == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct queue_hdr *v = realloc(m->hdr, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		m->hdr = v;
		m->cap = cap;
	}
	h = &m->hdr[m->nhdr];
	h->text = malloc(len + 1);
	if (h->text == NULL)
		return -ENOMEM;
	memcpy(h->text, text, len);
	h->text[len] = 0;
	h->len = len;
	h->name_len = name_len;
	h->removed = false;
	m->nhdr++;
	return 0;
}

/* Append a continuation line to the last field. */
static int hdr_continue(struct queue_msg *m, const char *line, size_t len)
{
	struct queue_hdr *h = &m->hdr[m->nhdr - 1];
	char *t = realloc(h->text, h->len + 2 + len + 1);

	if (t == NULL)
		return -ENOMEM;
	memcpy(t + h->len, "\r\n", 2);
	memcpy(t + h->len + 2, line, len);
	h->len += 2 + len;
	t[h->len] = 0;
	h->text = t;
	return 0;
}

/* Length of the field name if @p line starts a header field, else 0. */
static size_t field_name(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && (unsigned char)line[i] > 32 && (unsigned char)line[i] < 127 &&
	       line[i] != ':')
		i++;
	if (i == 0)
		return 0;
	{
		size_t name = i;

		/* obs-optional: blanks before the colon */
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		return i < len && line[i] == ':' ? name : 0;
	}
}

/* Any octet >= 0x80? Eight bytes at a time. */
static bool has_8bit(const char *p, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if (w & 0x8080808080808080ULL)
			return true;
	}
	for (; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

int queue_msg_parse(struct queue_msg *m, const char *in, size_t len, bool ignore_dots,
		    const char **why)
{
	size_t pos = 0;
	bool in_hdr = true, first = true;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	*why = NULL;
	if (memchr(in, 0, len) != NULL) {
		*why = "message contains a NUL byte";
		return -EBADMSG;
	}
	while (pos < len) {
		const char *line = in + pos;
		size_t n = 0, eol;

		{
			/* Line ends found with memchr: much cheaper than a byte loop. */
			const char *lf = memchr(line, '\n', len - pos);
			size_t lim = lf ? (size_t)(lf - line) : len - pos;
			const char *cr = memchr(line, '\r', lim);

			n = cr ? (size_t)(cr - line) : lim;
		}
		if (pos + n == len)
			eol = 0;
		else if (line[n] == '\r' && pos + n + 1 < len && line[n + 1] == '\n')
			eol = 2;
		else {
			eol = 1;
			m->repaired_eol = true;
		}
		pos += n + eol;
		if (first && n >= 5 && memcmp(line, "From ", 5) == 0) {
			first = false;
			continue; /* an mbox separator, not part of the message */
		}
		first = false;
		if (!ignore_dots && n == 1 && line[0] == '.')
			break;
		if (in_hdr) {
			size_t name;

			if (n == 0) {
				in_hdr = false;
				continue;
			}
			if ((line[0] == ' ' || line[0] == '\t') && m->nhdr > 0) {
				rc = hdr_continue(m, line, n);
				if (rc < 0)
					goto fail;
				continue;
			}
			name = field_name(line, n);
			if (name > 0) {
				rc = hdr_push(m, line, n, name);
				if (rc < 0)
					goto fail;
				continue;
			}
			/* Not a header field: the header ended without its empty line. */
			in_hdr = false;
		}
		if (n > m->body_max_line)
			m->body_max_line = n;
		if (!m->body_8bit)
			m->body_8bit = has_8bit(line, n);
		if ((rc = queue_buf_add(&m->body, line, n)) < 0 ||
		    (rc = queue_buf_add(&m->body, "\r\n", 2)) < 0)
			goto fail;
	}
	return 0;
fail:
	queue_msg_free(m);
	return rc;
}

struct queue_hdr *queue_msg_find(struct queue_msg *m, const char *name, size_t idx)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < m->nhdr; i++) {
		struct queue_hdr *h = &m->hdr[i];

		if (!h->removed && h->name_len == nl && strncasecmp(h->text, name, nl) == 0 &&
		    idx-- == 0)
			return h;
	}
	return NULL;
}

char *queue_msg_value(const struct queue_hdr *h)
{
	const char *v = memchr(h->text, ':', h->len);
	char *out, *o;

	v = v ? v + 1 : h->text + h->len;
	out = malloc((size_t)(h->text + h->len - v) + 1);
	if (out == NULL)
		return NULL;
	for (o = out; v < h->text + h->len; v++)
		if (*v != '\r' && *v != '\n')
			*o++ = *v;
	*o = 0;
	return out;
}

size_t queue_msg_remove(struct queue_msg *m, const char *name)
{
	struct queue_hdr *h;
	size_t n = 0;

	while ((h = queue_msg_find(m, name, 0)) != NULL) {
		h->removed = true;
		n++;
	}
	return n;
}

int queue_msg_add(struct queue_msg *m, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char *t = malloc(nl + 2 + vl + 1);
	int rc;

	if (t == NULL)
		return -ENOMEM;
	memcpy(t, name, nl);
	memcpy(t + nl, ": ", 2);
	memcpy(t + nl + 2, value, vl + 1);
	rc = hdr_push(m, t, nl + 2 + vl, nl);
	free(t);
	return rc;
}

/* Emit one physical header line, folding it when it is too long. */
static int fold_line(struct queue_buf *out, const char *p, size_t n, unsigned *flags)
{
	size_t lead = 0; /* octets already on the output line (the SP we inserted) */
	int rc;

	while (lead + n > QUEUE_LINE_MAX) {
		size_t room = QUEUE_LINE_MAX - lead, cut = room;

		/* Fold before the last blank that fits; the blank begins the next line. */
		while (cut > 1 && p[cut] != ' ' && p[cut] != '\t')
			cut--;
		*flags |= QUEUE_MSG_FOLDED;
		if (cut > 1) {
			rc = queue_buf_add(out, p, cut);
			if (rc == 0)
				rc = queue_buf_add(out, "\r\n", 2);
			lead = 0;
		} else {
			/* No blank at all: break the token (XXX: alters it). */
			cut = room;
			rc = queue_buf_add(out, p, cut);
			if (rc == 0)
				rc = queue_buf_add(out, "\r\n ", 3);
			lead = 1;
		}
		if (rc < 0)
			return rc;
		p += cut;
		n -= cut;
	}
	if ((rc = queue_buf_add(out, p, n)) < 0)
		return rc;
	return queue_buf_add(out, "\r\n", 2);
}

static int qp_body(struct queue_buf *out, const char *b, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char line[80];
	size_t col = 0;
	int rc;

	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)b[i];
		char enc[3];
		size_t el;

		if (c == '\r' && i + 1 < len && b[i + 1] == '\n') {
			/* A hard line break; blanks before it must be encoded. */
			if (col > 0 && (line[col - 1] == ' ' || line[col - 1] == '\t')) {
				unsigned char w = (unsigned char)line[col - 1];

				col--;
				line[col++] = '=';
				line[col++] = hex[w >> 4];
				line[col++] = hex[w & 15];
			}
			if ((rc = queue_buf_add(out, line, col)) < 0 ||
			    (rc = queue_buf_add(out, "\r\n", 2)) < 0)
				return rc;
			col = 0;
			i += 2;
			continue;
		}
		if ((c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t') {
			enc[0] = (char)c;
			el = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			el = 3;
		}
		if (col + el > 75) {
			/* A soft break keeps lines within 76 octets. */
			line[col++] = '=';
			if ((rc = queue_buf_add(out, line, col)) < 0 ||
			    (rc = queue_buf_add(out, "\r\n", 2)) < 0)
				return rc;
			col = 0;
		}
		memcpy(line + col, enc, el);
		col += el;
		i++;
	}
	return col ? queue_buf_add(out, line, col) : 0;
}

int queue_msg_render(struct queue_msg *m, struct queue_buf *out, unsigned *flags)
{
	bool mime = queue_msg_find(m, "MIME-Version", 0) || queue_msg_find(m, "Content-Type", 0) ||
		    queue_msg_find(m, "Content-Transfer-Encoding", 0);
	bool qp = m->body_max_line > QUEUE_LINE_MAX && !mime;
	int rc;

	*flags = 0;
	if (qp) {
		if ((rc = queue_msg_add(m, "MIME-Version", "1.0")) < 0 ||
		    (rc = queue_msg_add(m, "Content-Type",
					m->body_8bit ? "text/plain; charset=utf-8"
						     : "text/plain; charset=us-ascii")) < 0 ||
		    (rc = queue_msg_add(m, "Content-Transfer-Encoding", "quoted-printable")) < 0)
			return rc;
		*flags |= QUEUE_MSG_FOLDED;
	}
	for (size_t i = 0; i < m->nhdr; i++) {
		const struct queue_hdr *h = &m->hdr[i];
		const char *p = h->text, *end = h->text + h->len;

		if (h->removed)
			continue;
		for (const char *q = p; q < end; q++)
			if ((unsigned char)*q >= 0x80)
				*flags |= QUEUE_MSG_8BIT_HDR;
		while (p <= end) {
			const char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

			if ((rc = fold_line(out, p, n, flags)) < 0)
				return rc;
			if (nl == NULL)
				break;
			p = nl + 2;
		}
	}
	if ((rc = queue_buf_add(out, "\r\n", 2)) < 0)
		return rc;
	if (qp)
		return qp_body(out, m->body.p, m->body.len);
	if (m->body_8bit)
		*flags |= QUEUE_MSG_8BIT_BODY;
	if (m->body_max_line <= QUEUE_LINE_MAX)
		return queue_buf_add(out, m->body.p ? m->body.p : "", m->body.len);
	/* MIME with long lines: break them (see the XXX in queue_msg.h). */
	*flags |= QUEUE_MSG_FOLDED;
	for (size_t i = 0; i < m->body.len;) {
		const char *line = m->body.p + i;
		const char *crlf = memmem(line, m->body.len - i, "\r\n", 2);
		size_t n = (size_t)(crlf - line);

		i += n + 2;
		while (n > QUEUE_LINE_MAX) {
			if ((rc = queue_buf_add(out, line, QUEUE_LINE_MAX)) < 0 ||
			    (rc = queue_buf_add(out, "\r\n", 2)) < 0)
				return rc;
			line += QUEUE_LINE_MAX;
			n -= QUEUE_LINE_MAX;
		}
		if ((rc = queue_buf_add(out, line, n)) < 0 ||
		    (rc = queue_buf_add(out, "\r\n", 2)) < 0)
			return rc;
	}
	return 0;
}

/* ---- dmta's own fields ---- */

enum { TAKE_POOL, TAKE_PRIORITY, TAKE_TENANT, NTAKE };

static const struct take_field {
	const char *name;
	const char *bad, *conflict;
} take_fields[NTAKE] = {
    [TAKE_POOL] = {QUEUE_MSG_F_POOL,
		   QUEUE_MSG_F_POOL ": want 1 to 64 characters of A-Z a-z 0-9 . _ -",
		   QUEUE_MSG_F_POOL ": given twice with different values"},
    [TAKE_PRIORITY] = {QUEUE_MSG_F_PRIORITY, QUEUE_MSG_F_PRIORITY ": want normal, high or bulk",
		       QUEUE_MSG_F_PRIORITY ": given twice with different values"},
    [TAKE_TENANT] = {QUEUE_MSG_F_TENANT,
		     QUEUE_MSG_F_TENANT ": want 1 to 64 characters of A-Z a-z 0-9 . _ -",
		     QUEUE_MSG_F_TENANT ": given twice with different values"},
};

/* Where the line at @p pos ends: returns the next line's start; *text is
 * the line's length without its LF and a CR before it. */
static size_t next_line(const char *m, size_t n, size_t pos, size_t *text)
{
	const char *lf = memchr(m + pos, '\n', n - pos);
	size_t end = lf ? (size_t)(lf - m) : n;

	*text = end - pos;
	if (lf && *text > 0 && m[end - 1] == '\r')
		(*text)--;
	return lf ? end + 1 : n;
}

/* The value of field @p p (@p n bytes, name included): after the colon,
 * unfolded, blanks trimmed, into @p v; false when it does not fit in
 * @p cap or holds a NUL. */
static bool field_value(const char *p, size_t n, char *v, size_t cap)
{
	const char *c = memchr(p, ':', n), *end = p + n;
	size_t o = 0;

	for (c = c + 1; c < end; c++) {
		if (*c == '\r' || *c == '\n' || (o == 0 && (*c == ' ' || *c == '\t')))
			continue;
		if (*c == '\0' || o + 1 >= cap)
			return false;
		v[o++] = *c;
	}
	while (o > 0 && (v[o - 1] == ' ' || v[o - 1] == '\t'))
		o--;
	v[o] = '\0';
	return true;
}

/* Check one occurrence of take_fields[k] and keep its value in @p seen[k]. */
static int take_one(unsigned k, const char *p, size_t n, char seen[][QUEUE_TAG_MAX + 1],
		    const char **why)
{
	char v[QUEUE_TAG_MAX + 1];
	const char *w;

	if (!field_value(p, n, v, sizeof(v)))
		goto bad;
	if (k == TAKE_PRIORITY) {
		int prio = queue_prio_parse(v);

		if (prio < 0)
			goto bad;
		snprintf(v, sizeof(v), "%s", queue_prio_name((unsigned)prio));
	} else if (queue_tag_check(v, &w) < 0) {
		goto bad;
	}
	if (seen[k][0] != '\0' && strcmp(seen[k], v) != 0) {
		*why = take_fields[k].conflict;
		return -EBADMSG;
	}
	memcpy(seen[k], v, sizeof(v));
	return 0;
bad:
	*why = take_fields[k].bad;
	return -EBADMSG;
}

long queue_msg_take_fields(char *msg, size_t *len, struct queue_env *env, const char **why)
{
	char seen[NTAKE][QUEUE_TAG_MAX + 1];
	size_t n = *len, pos = 0, w = 0, text;
	long taken = 0;
	int rc;

	memset(seen, 0, sizeof(seen));
	/* The header ends at the empty line, or (as queue_msg_parse() reads
	 * it) at the first line that is neither a field nor a continuation. */
	while (pos < n) {
		size_t next = next_line(msg, n, pos, &text), end = next, name;
		unsigned k;

		if (text == 0 || (name = field_name(msg + pos, text)) == 0)
			break;
		while (end < n && (msg[end] == ' ' || msg[end] == '\t'))
			end = next_line(msg, n, end, &text);
		for (k = 0; k < NTAKE; k++)
			if (strlen(take_fields[k].name) == name &&
			    strncasecmp(msg + pos, take_fields[k].name, name) == 0)
				break;
		if (k == NTAKE) {
			memmove(msg + w, msg + pos, end - pos);
			w += end - pos;
		} else {
			if ((rc = take_one(k, msg + pos, end - pos, seen, why)) < 0)
				return rc;
			taken++;
		}
		pos = end;
	}
	memmove(msg + w, msg + pos, n - pos);
	*len = w + n - pos;
	if (taken == 0)
		return 0;
	if ((seen[TAKE_POOL][0] && queue_env_set_pool(env, seen[TAKE_POOL]) < 0) ||
	    (seen[TAKE_TENANT][0] && queue_env_set_tenant(env, seen[TAKE_TENANT]) < 0)) {
		*why = "out of memory";
		return -ENOMEM;
	}
	if (seen[TAKE_PRIORITY][0])
		env->priority = (uint8_t)queue_prio_parse(seen[TAKE_PRIORITY]);
	return taken;
}
