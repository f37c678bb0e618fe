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
#include <stdint.h>
#include <string.h>

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

/* Parse "c.s.d" at the start of text (RFC 3463: class 1 digit, subject and
 * detail 1-3 digits), followed by SP or the end of text. */
static void parse_esc(struct smtp_reply *r)
{
	const char *p = r->text, *end = r->text + r->text_len;
	int v[3] = {0, 0, 0};
	int maxd[3] = {1, 3, 3};

	for (int f = 0; f < 3; f++) {
		int nd = 0;

		while (p < end && *p >= '0' && *p <= '9' && nd < maxd[f]) {
			v[f] = v[f] * 10 + (*p - '0');
			p++;
			nd++;
		}
		if (nd == 0)
			return;
		if (f < 2) {
			if (p >= end || *p != '.')
				return;
			p++;
		}
	}
	if (p < end && *p != ' ')
		return;
	if (v[0] != smtp_reply_class(r->code))
		return;
	r->esc_class = v[0];
	r->esc_subject = v[1];
	r->esc_detail = v[2];
	r->esc = r->text;
	r->esc_len = (size_t)(p - r->text);
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
