/*
 * smtp_reply.h - SMTP reply parser (RFC 5321 section 4.2), picohttpparser shape.
 *
 * SYNOPSIS
 *	struct smtp_reply r;
 *	int n = smtp_reply_parse(buf, len, &r, last_len);
 *	size_t off = 0; const char *t; size_t tl;
 *	while (smtp_reply_next_line(&r, &off, &t, &tl)) ...
 *
 *	struct smtp_esc e;
 *	int n = smtp_esc_parse(s, len, &e);
 *	int rc = smtp_reply_status(text, len, &e);
 *	smtp_esc_format(&e, buf, sizeof(buf));
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
 *
 *	smtp_esc_parse() is the one parser of enhanced status codes in dmta:
 *	"class.subject.detail" at the start of s, the way RFC 3463 section 2
 *	writes it. It returns the bytes the code takes, or -1 when s does not
 *	start with one. Malformed (-1): s NULL or empty; a class other than 2,
 *	4 or 5; a subject or detail that is empty, longer than 3 digits (over
 *	999) or has a leading zero ("5.01.1"); a missing '.'; the code followed
 *	by anything but the end of s, SP, HTAB, CR or LF ("5.1.1x", "5.1.1.2").
 *
 *	smtp_reply_status() is the status of a reply text as dmta records it,
 *	for bounces and the delivery log; see its comment.
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

/** An enhanced status code (RFC 3463): class.subject.detail. */
struct smtp_esc {
	int cls;     /**< 2 (success), 4 (persistent transient), 5 (permanent) */
	int subject; /**< 0..999 */
	int detail;  /**< 0..999 */
};

/** Room for the longest code as text, "5.999.999", and its NUL. */
#define SMTP_ESC_STRLEN 10

/**
 * Parse the enhanced status code at the start of @p s (@p len bytes, no NUL
 * needed). Returns the bytes it takes and fills *out, or -1 when malformed
 * (see the file comment; *out is then untouched).
 */
int smtp_esc_parse(const char *s, size_t len, struct smtp_esc *out);

/**
 * The status of a reply text as dmta keeps it (the last reply of a
 * recipient, or dmta's own reason for a failure):
 *  - "550 5.1.1 text": a server's reply, code [2-5][0-9][0-9] followed by
 *    SP, '-', a line ending or the end. Its enhanced status code when
 *    there is one of the reply's class right after the code (returns 1),
 *    else the class alone, "5.0.0" (returns 0).
 *  - "4.4.7 text": a reason of dmta's own, starting with its code (returns 1).
 *  - "mx.example[192.0.2.1]: ...": a failure of a session rather than of a
 *    recipient names the host first; what follows the host is read as
 *    above. The caller knows whether that happened in a session and
 *    decides what class it gets.
 * Returns -1 when the text is none of these (*out is then untouched).
 */
int smtp_reply_status(const char *text, size_t len, struct smtp_esc *out);

/**
 * Write @p e as "c.s.d" into @p buf of @p cap bytes (SMTP_ESC_STRLEN is
 * always enough). Returns @p buf; an empty string when it does not fit.
 */
char *smtp_esc_format(const struct smtp_esc *e, char *buf, size_t cap);

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
