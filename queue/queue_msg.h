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
 *	n = queue_msg_take_fields(out.p, &out.len, &env, &why);
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
 *	Taking dmta's own fields: every way in (dmta-sendmail and its -bs,
 *	the maildrop pickup, dmtad's SMTP listeners) hands the message to
 *	queue_msg_take_fields() before it is DKIM-signed and stored. It
 *	reads X-Dmta-Pool, X-Dmta-Priority and X-Dmta-Tenant into the
 *	envelope and removes them, so that they never leave dmta and never
 *	fall under a signature. Only the header section counts (a body line
 *	that looks like one stays); every occurrence goes, folded lines
 *	included. Values are unfolded and trimmed; several occurrences of
 *	one field must agree. A value in a field overrides what the envelope
 *	held (the caller puts the [user NAME] defaults there first): the
 *	submitter chose it for this message.
 *
 * DIAGNOSTICS
 *	0, -EBADMSG with *why set, or -ENOMEM.
 */
#ifndef QUEUE_MSG_H
#define QUEUE_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include "queue/queue_env.h"

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

/** The fields queue_msg_take_fields() takes. */
#define QUEUE_MSG_F_POOL     "X-Dmta-Pool"
#define QUEUE_MSG_F_PRIORITY "X-Dmta-Priority"
#define QUEUE_MSG_F_TENANT   "X-Dmta-Tenant"

/**
 * Read X-Dmta-Pool, X-Dmta-Priority and X-Dmta-Tenant from the header
 * section of @p msg (*@p len bytes of CRLF or LF text; it need not be
 * NUL-terminated) into @p env (an owning envelope), and remove them from
 * @p msg in place (*@p len shrinks). Returns how many fields were
 * removed, -EBADMSG with *@p why set (a static "X-Dmta-Pool: reason")
 * when a value is bad or two occurrences disagree (then @p msg and the
 * envelope fields are unspecified: refuse the message), or -ENOMEM.
 */
long queue_msg_take_fields(char *msg, size_t *len, struct queue_env *env, const char **why);

#endif
