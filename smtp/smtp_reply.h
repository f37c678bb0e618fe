/*
 * smtp_reply.h - SMTP reply parser (RFC 5321 section 4.2), picohttpparser shape.
 *
 * SYNOPSIS
 *	struct smtp_reply r;
 *	int n = smtp_reply_parse(buf, len, &r, last_len);
 *	size_t off = 0; const char *t; size_t tl;
 *	while (smtp_reply_next_line(&r, &off, &t, &tl)) ...
 *
 * DESCRIPTION
 *	smtp_reply_parse() looks for one complete reply (one or more lines
 *	"ddd-text" ended by "ddd text" or "ddd") at the start of buf. It never
 *	copies and never allocates: every pointer in struct smtp_reply points
 *	into buf. It returns the number of bytes the reply takes (the caller
 *	drops them once it is done with the reply), -2 when buf holds only the
 *	start of a reply, or -1 when the bytes cannot be a reply.
 *
 *	last_len is the length of buf at the previous call that returned -2 for
 *	the same reply (0 the first time). The bytes before it are not examined
 *	again, except for the line they end in, so feeding a reply one byte at a
 *	time costs time linear in its length.
 *
 *	Malformed (-1): a line that does not start with a code [2-5][0-5][0-9]
 *	followed by SP, '-' or the end of the line; lines of one reply with
 *	different codes; NUL, or CR anywhere but before LF; a line longer than
 *	SMTP_REPLY_LINE_MAX or a reply longer than SMTP_REPLY_MAX bytes; more
 *	than SMTP_REPLY_MAX_LINES lines. Lines may end in CRLF or a bare LF
 *	(some servers send those; being lenient costs nothing here).
 *
 *	Enhanced status codes (RFC 3463) at the start of the first line's text
 *	are recognised when their class matches the reply's first digit.
 */
#ifndef SMTP_REPLY_H
#define SMTP_REPLY_H

#include <stddef.h>

/** Longest line accepted, ending included (RFC 5321 says 512; servers exceed it). */
#define SMTP_REPLY_LINE_MAX 2048
/** Longest reply accepted, all lines together. */
#define SMTP_REPLY_MAX 16384
/** Most lines in one reply. */
#define SMTP_REPLY_MAX_LINES 256

struct smtp_reply {
	int code;	  /**< 200..559 */
	unsigned nlines;  /**< lines in the reply, >= 1 */
	const char *raw;  /**< the whole reply, line endings included */
	size_t raw_len;	  /**< bytes of raw (what smtp_reply_parse() returned) */
	const char *text; /**< first line's text, after "ddd " (ESC included) */
	size_t text_len;  /**< without the line ending */
	/** Enhanced status code of the first line, or esc_class == 0. */
	int esc_class, esc_subject, esc_detail;
	const char *esc; /**< the code as written ("5.1.1"), inside text */
	size_t esc_len;
};

/** Parse one reply at the start of buf; see the file comment. */
int smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *r, size_t last_len);

/**
 * Iterate over the text of each line of a parsed reply (after "ddd-" or
 * "ddd ", without the line ending). *off starts at 0. Returns 1 and sets
 * *text, *text_len for the next line, or 0 when there are no more lines.
 */
int smtp_reply_next_line(const struct smtp_reply *r, size_t *off, const char **text,
			 size_t *text_len);

/** 2, 3, 4 or 5: the class of a reply code. */
static inline int smtp_reply_class(int code)
{
	return code / 100;
}

#endif
