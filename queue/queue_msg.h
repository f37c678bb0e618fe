/*
 * queue_msg.h - turn what a program pipes into sendmail into a message that
 * is valid on the wire.
 *
 * SYNOPSIS
 *	struct queue_msg m;
 *	rc = queue_msg_parse(&m, in, len, ignore_dots, &why);
 *	h = queue_msg_find(&m, "To", 0);  v = queue_msg_value(h, &vlen);
 *	queue_msg_remove(&m, "Bcc");
 *	queue_msg_add(&m, "Date", "Mon, 1 Jan 2024 00:00:00 +0000");
 *	rc = queue_msg_render(&m, &out, &flags);
 *	queue_msg_free(&m);
 *
 * DESCRIPTION
 *	Parsing splits the input into header fields and body lines. Line ends
 *	may be CRLF, bare LF or bare CR; all become CRLF. A leading mbox
 *	"From " line is dropped. Without @p ignore_dots a line holding a
 *	single "." ends the message (sendmail without -i). Input that does
 *	not start with header fields is all body. NUL bytes are refused.
 *
 *	Rendering repairs what must go on the wire within RFC 5322 limits:
 *	header lines longer than 998 octets are folded at whitespace (or, with
 *	none, by inserting CRLF SP: a last resort that changes the text); a
 *	body with lines longer than 998 octets is re-encoded as
 *	quoted-printable when the message is not MIME (no MIME-Version,
 *	Content-Type or Content-Transfer-Encoding field), which keeps the text
 *	exact after decoding, and otherwise has its long lines broken with
 *	CRLF (XXX: changes the content, as other MTAs do).
 *
 *	The result holds CRLF line ends only, no line over 998 octets and no
 *	NUL; it is stored so, and the SMTP client only dot-stuffs it.
 *
 * DIAGNOSTICS
 *	0, -EBADMSG with *why set, or -ENOMEM.
 */
#ifndef QUEUE_MSG_H
#define QUEUE_MSG_H

#include <stdbool.h>
#include <stddef.h>

#define QUEUE_LINE_MAX 998

struct queue_buf {
	char *p;
	size_t len, cap;
};

int queue_buf_add(struct queue_buf *b, const void *p, size_t n);
int queue_buf_adds(struct queue_buf *b, const char *s);
void queue_buf_free(struct queue_buf *b);

struct queue_hdr {
	char *text;	 /* "Name: value" with CRLF between folded lines, no final CRLF */
	size_t len;	 /* of text */
	size_t name_len; /* the field name's length */
	bool removed;
};

struct queue_msg {
	struct queue_hdr *hdr;
	size_t nhdr, cap;
	struct queue_buf body; /* CRLF lines */
	size_t body_max_line;  /* longest body line, without CRLF */
	bool body_8bit;
	bool repaired_eol; /* a bare LF or CR was turned into CRLF */
};

#define QUEUE_MSG_8BIT_BODY 0x1
#define QUEUE_MSG_8BIT_HDR  0x2
#define QUEUE_MSG_FOLDED    0x4 /* a long line was folded or re-encoded */

int queue_msg_parse(struct queue_msg *m, const char *in, size_t len, bool ignore_dots,
		    const char **why);
/** The @p idx-th field named @p name (case-insensitive), or NULL. */
struct queue_hdr *queue_msg_find(struct queue_msg *m, const char *name, size_t idx);
/** The unfolded value of @p h (after the colon, CRLFs of folding removed), malloc'd. */
char *queue_msg_value(const struct queue_hdr *h);
/** Remove every field named @p name; returns how many. */
size_t queue_msg_remove(struct queue_msg *m, const char *name);
/** Append "name: value" to the header. 0 or -ENOMEM. */
int queue_msg_add(struct queue_msg *m, const char *name, const char *value);
/** Write the repaired message to @p out; *flags gets QUEUE_MSG_*. */
int queue_msg_render(struct queue_msg *m, struct queue_buf *out, unsigned *flags);
void queue_msg_free(struct queue_msg *m);

#endif
