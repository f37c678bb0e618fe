/*
 * fuzz_reply.c - fuzz target for the SMTP reply parser.
 *
 * Parses the input as a stream of replies, whole and again in two pieces
 * split at a point taken from the input, and aborts if the two disagree,
 * if a result points outside the input, or if the line iterator does not
 * find the counted lines. The enhanced status code parser and the status
 * of a reply text get the same input: their results must be in RFC 3463's
 * range, inside the input, and read back the same once formatted.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct smtp_reply *r, const char *buf, size_t len, int rc)
{
	size_t off = 0, tl;
	const char *t;
	unsigned n = 0;

	if ((size_t)rc > len || r->raw != buf || r->raw_len != (size_t)rc)
		abort();
	if (r->code < 200 || r->code > 559 || r->nlines == 0)
		abort();
	if (r->text < buf || r->text + r->text_len > buf + len)
		abort();
	if (r->esc_class && (r->esc != r->text || r->esc_len > r->text_len))
		abort();
	while (smtp_reply_next_line(r, &off, &t, &tl)) {
		if (t < buf || t + tl > buf + rc)
			abort();
		n++;
	}
	if (n != r->nlines)
		abort();
}

static void check_esc(const struct smtp_esc *e, bool class_alone)
{
	char text[SMTP_ESC_STRLEN];
	struct smtp_esc back;
	size_t n;

	if (e->cls < 2 || e->cls > 5 || e->subject < 0 || e->subject > 999 || e->detail < 0 ||
	    e->detail > 999)
		abort();
	if (class_alone) {
		if (e->subject != 0 || e->detail != 0)
			abort();
		return;
	}
	if (e->cls == 3)
		abort();
	smtp_esc_format(e, text, sizeof(text));
	n = strlen(text);
	if (smtp_esc_parse(text, n, &back) != (int)n || back.cls != e->cls ||
	    back.subject != e->subject || back.detail != e->detail)
		abort();
}

static void fuzz_status(const char *buf, size_t len)
{
	struct smtp_esc e;
	int n = smtp_esc_parse(buf, len, &e);

	if (n >= 0) {
		if (n < 5 || n > 9 || (size_t)n > len)
			abort();
		check_esc(&e, false);
	}
	n = smtp_reply_status(buf, len, &e);
	if (n < -1 || n > 1)
		abort();
	if (n >= 0)
		check_esc(&e, n == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf;
	size_t len, split;

	if (size < 1)
		return 0;
	split = data[0];
	buf = (const char *)data + 1;
	len = size - 1;
	fuzz_status(buf, len);
	while (len > 0) {
		struct smtp_reply a, b;
		int ra = smtp_reply_parse(buf, len, &a, 0);
		size_t k = split % (len + 1);
		int rb = smtp_reply_parse(buf, k, &b, 0);

		/* A prefix is incomplete (and then the chained parse must
		 * agree), or already decides: complete or malformed. */
		if (rb == -2)
			rb = smtp_reply_parse(buf, len, &b, k);
		if (ra != rb)
			abort();
		if (ra < 0)
			break;
		check(&a, buf, len, ra);
		buf += ra;
		len -= (size_t)ra;
	}
	return 0;
}
