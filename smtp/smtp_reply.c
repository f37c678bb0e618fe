/*
 * smtp_reply.c - SMTP reply parser.
 *
 * DESCRIPTION
 *	See smtp_reply.h. The scan is split in two: while a reply is incomplete
 *	each call checks only the lines that completed since the last call (and
 *	the start of the partial line, so that garbage is refused at its first
 *	byte rather than after 2 KiB); once the last line is there, one more pass
 *	over the first line fills in the result.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/base/dmta_str.h"
#include "smtp/smtp_reply.h"

/* Check the code and separator of a line (or of its first bytes when n is
 * short). Returns the separator (' ', '-', or '\n' for "ddd" alone), 0 when
 * more bytes are needed, -1 when malformed. */
static int line_head(const char *p, size_t n)
{
	static const char lo[3] = {'2', '0', '0'}, hi[3] = {'5', '5', '9'};

	for (size_t i = 0; i < 3; i++) {
		if (i >= n)
			return 0;
		if (p[i] < lo[i] || p[i] > hi[i])
			return -1;
	}
	if (n < 4)
		return 0;
	switch (p[3]) {
	case ' ':
	case '-':
		return p[3];
	case '\n':
		return '\n';
	case '\r':
		if (n < 5)
			return 0;
		return p[4] == '\n' ? '\n' : -1;
	default:
		return -1;
	}
}

/* Text bytes: no NUL, CR only right before LF. [p, end) excludes the LF. */
static int text_ok(const char *p, const char *end)
{
	if (end > p && end[-1] == '\r')
		end--;
	for (; p < end; p++)
		if (*p == '\0' || *p == '\r')
			return 0;
	return 1;
}

/* A subject or detail: 1 to 3 digits, without a leading zero unless it is
 * 0 (RFC 3463: "0" / %x31-39 0*2digit). Returns the digits it takes, 0 when
 * there is no such number at p. */
static size_t esc_number(const char *p, const char *end, int *v)
{
	size_t n = 0;
	int x = 0;

	while (p + n < end && p[n] >= '0' && p[n] <= '9') {
		if (n == 3)
			return 0;
		x = x * 10 + (p[n] - '0');
		n++;
	}
	if (n == 0 || (n > 1 && p[0] == '0'))
		return 0;
	*v = x;
	return n;
}

int smtp_esc_parse(const char *s, size_t len, struct smtp_esc *out)
{
	const char *p, *end;
	struct smtp_esc e;
	size_t n;

	if (s == NULL || len < 5)
		return -1;
	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return -1;
	e.cls = s[0] - '0';
	p = s + 2;
	end = s + len;
	if ((n = esc_number(p, end, &e.subject)) == 0)
		return -1;
	p += n;
	if (p >= end || *p != '.')
		return -1;
	p++;
	if ((n = esc_number(p, end, &e.detail)) == 0)
		return -1;
	p += n;
	if (p < end && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
		return -1;
	*out = e;
	return (int)(p - s);
}

char *smtp_esc_format(const struct smtp_esc *e, char *buf, size_t cap)
{
	int n;

	/* The status of every logged recipient: by hand when each part is in
	 * RFC 3463's range (a format costs a thousand instructions). */
	if (cap >= SMTP_ESC_STRLEN && e->cls >= 0 && e->cls <= 9 && e->subject >= 0 &&
	    e->subject <= 999 && e->detail >= 0 && e->detail <= 999) {
		char t[24], *p = t + sizeof(t);

		*--p = '\0';
		p = dmta_str_u64(p, (uint64_t)e->detail);
		*--p = '.';
		p = dmta_str_u64(p, (uint64_t)e->subject);
		*--p = '.';
		*--p = (char)('0' + e->cls);
		memcpy(buf, p, (size_t)(t + sizeof(t) - p));
		return buf;
	}
	n = snprintf(buf, cap, "%d.%d.%d", e->cls, e->subject, e->detail);

	if ((n < 0 || (size_t)n >= cap) && cap > 0)
		buf[0] = '\0';
	return buf;
}

/* A reply code at the start of t: [2-5][0-9][0-9], then SP, '-', a line
 * ending or the end. */
static bool reply_code(const char *t, size_t len)
{
	if (len < 3 || t[0] < '2' || t[0] > '5' || t[1] < '0' || t[1] > '9' || t[2] < '0' ||
	    t[2] > '9')
		return false;
	return len == 3 || t[3] == ' ' || t[3] == '-' || t[3] == '\r' || t[3] == '\n';
}

/* Step over "name[addr]: ", the host a session-level failure names first.
 * Neither part may be empty or hold SP or brackets. */
static bool skip_host(const char **t, size_t *len)
{
	const char *p = *t, *end = *t + *len;
	const char *open = NULL;

	for (; p < end; p++) {
		if (*p == ' ')
			return false;
		if (*p == '[') {
			if (open != NULL || p == *t)
				return false;
			open = p;
		} else if (*p == ']') {
			break;
		}
	}
	if (open == NULL || p == open + 1 || end - p < 3 || p[1] != ':' || p[2] != ' ')
		return false;
	*len -= (size_t)(p + 3 - *t);
	*t = p + 3;
	return true;
}

int smtp_reply_status(const char *text, size_t len, struct smtp_esc *out)
{
	struct smtp_esc e;

	if (text == NULL)
		return -1;
	for (int after_host = 0; after_host < 2; after_host++) {
		if (reply_code(text, len)) {
			if (len > 4 && text[3] != '\r' && text[3] != '\n' &&
			    smtp_esc_parse(text + 4, len - 4, &e) > 0 && e.cls == text[0] - '0') {
				*out = e;
				return 1;
			}
			*out = (struct smtp_esc){.cls = text[0] - '0'};
			return 0;
		}
		if (smtp_esc_parse(text, len, out) > 0)
			return 1;
		if (after_host || !skip_host(&text, &len))
			break;
	}
	return -1;
}

/* The enhanced status code at the start of a reply's text counts only when
 * its class is the reply's. */
static void parse_esc(struct smtp_reply *r)
{
	struct smtp_esc e;
	int n = smtp_esc_parse(r->text, r->text_len, &e);

	if (n < 0 || e.cls != smtp_reply_class(r->code))
		return;
	r->esc_class = e.cls;
	r->esc_subject = e.subject;
	r->esc_detail = e.detail;
	r->esc = r->text;
	r->esc_len = (size_t)n;
}

int smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *r, size_t last_len)
{
	size_t pos = 0, from = 0;
	unsigned nlines = 0;

	if (last_len > len)
		last_len = len;
	if (last_len > 0) {
		/* Lines that ended before last_len were checked already and
		 * were all continuation lines; restart at the line last_len
		 * falls into. The backward walk is bounded by a line. */
		pos = last_len;
		while (pos > 0 && buf[pos - 1] != '\n')
			pos--;
		from = last_len;
		nlines = UINT32_MAX; /* unknown; recounted at the end */
	}
	for (;;) {
		const char *nl;
		int sep;

		if (from < pos)
			from = pos;
		nl = memchr(buf + from, '\n', len - from);
		if (nl == NULL) {
			if (len - pos >= SMTP_REPLY_LINE_MAX || len >= SMTP_REPLY_MAX)
				return -1;
			if (line_head(buf + pos, len - pos) < 0)
				return -1;
			if (pos > 0 && len - pos >= 3 && memcmp(buf + pos, buf, 3) != 0)
				return -1;
			/* Only the bytes new since the last call (and the
			 * one before, which may be a CR) need a look. */
			size_t t = last_len > pos + 1 ? last_len - 1 : pos;

			if (!text_ok(buf + t, buf + len))
				return -1;
			return -2;
		}
		size_t end = (size_t)(nl - buf) + 1;

		if (end - pos > SMTP_REPLY_LINE_MAX || end > SMTP_REPLY_MAX)
			return -1;
		sep = line_head(buf + pos, end - pos);
		if (sep <= 0)
			return -1;
		if (pos > 0 && memcmp(buf + pos, buf, 3) != 0)
			return -1;
		if (!text_ok(buf + pos + 3, nl))
			return -1;
		if (nlines != UINT32_MAX && ++nlines > SMTP_REPLY_MAX_LINES)
			return -1;
		pos = end;
		if (sep == '-')
			continue;
		break;
	}

	/* Complete: fill in the result from the first line. */
	const char *nl = memchr(buf, '\n', pos);
	size_t l1 = (size_t)(nl - buf);

	if (l1 > 0 && buf[l1 - 1] == '\r')
		l1--;
	memset(r, 0, sizeof(*r));
	r->code = (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
	r->raw = buf;
	r->raw_len = pos;
	r->text = buf + (l1 > 3 ? 4 : 3);
	r->text_len = l1 > 3 ? l1 - 4 : 0;
	if (nlines == UINT32_MAX) {
		nlines = 0;
		for (const char *p = buf; p < buf + pos; p++)
			nlines += *p == '\n';
		if (nlines > SMTP_REPLY_MAX_LINES)
			return -1;
	}
	r->nlines = nlines;
	parse_esc(r);
	return (int)pos;
}

int smtp_reply_next_line(const struct smtp_reply *r, size_t *off, const char **text,
			 size_t *text_len)
{
	const char *p, *nl;
	size_t l;

	if (*off >= r->raw_len)
		return 0;
	p = r->raw + *off;
	nl = memchr(p, '\n', r->raw_len - *off);
	if (nl == NULL)
		return 0;
	l = (size_t)(nl - p);
	*off += l + 1;
	if (l > 0 && p[l - 1] == '\r')
		l--;
	*text = p + (l > 3 ? 4 : 3);
	*text_len = l > 3 ? l - 4 : 0;
	return 1;
}
