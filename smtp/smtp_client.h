/*
 * smtp_client.h - sans-I/O SMTP client engine (RFC 5321 and extensions).
 *
 * SYNOPSIS
 *	struct smtp_client *c = smtp_client_new(&cfg);
 *	smtp_client_submit(c, &msg);	(any time; messages go in order)
 *	loop:
 *	  n = smtp_client_rx_space(c, &p); n = recv(fd, p, n); smtp_client_rx_commit(c, n);
 *	    (or smtp_client_feed(c, buf, len), which copies)
 *	  while (smtp_client_event(c, &ev)) ...;
 *	  k = smtp_client_tx_iov(c, iov, 8); sent = writev(fd, iov, k);
 *	  smtp_client_tx_done(c, sent);
 *	  arm the timer for smtp_client_deadline(c, &ms);
 *	smtp_client_quit(c);  ...  smtp_client_free(c);
 *
 * DESCRIPTION
 *	The engine owns no socket and no timer. The caller moves bytes between
 *	the engine and the wire (a kernel socket, the userspace TCP stack, a TLS
 *	layer, or an in-memory peer), reads events, and arms the deadline the
 *	engine names (RFC 5321 section 4.5.3.2); when it expires the caller
 *	calls smtp_client_timeout().
 *
 *	The engine speaks EHLO (HELO when EHLO is refused), reads the server's
 *	extensions and uses PIPELINING (RFC 2920: MAIL, every RCPT and DATA or
 *	BDAT in one write, replies checked in order), CHUNKING (RFC 3030: one
 *	BDAT LAST, no dot-stuffing, no 354 round trip), SIZE, 8BITMIME,
 *	SMTPUTF8, DSN, ENHANCEDSTATUSCODES, STARTTLS and AUTH PLAIN, LOGIN or
 *	XOAUTH2. It
 *	sends several messages per connection (RSET when a transaction is left
 *	open; with PIPELINING the next MAIL, RCPTs and DATA follow the previous
 *	message's "." in the same write), reports an outcome for every
 *	recipient and every message, puts
 *	recipients refused with 452 into a new transaction, and dot-stuffs and
 *	turns bare LF and bare CR into CRLF in one pass over the body.
 *
 *	Ownership: struct smtp_msg and everything it points to (addresses, body
 *	chunks) belong to the caller and must stay unchanged from
 *	smtp_client_submit() until the SMTP_EV_MSG event for that message (or
 *	smtp_client_free()). Body chunks are sent straight from the caller's
 *	memory when no rewriting is needed (BDAT with CRLF line ends).
 *
 *	Event text points into the engine's receive buffer, or at a constant
 *	string for reasons the engine makes up (ev.local is then true). It
 *	stays valid while events are pending; once smtp_client_event() has
 *	returned 0, the next smtp_client_rx_space() or smtp_client_feed() may
 *	move the bytes. Bytes queued to send stay queued after SMTP_EV_CLOSED
 *	(the caller stops sending then).
 *
 *	TLS: with policy SMTP_TLS_OPPORTUNISTIC or SMTP_TLS_REQUIRED the engine
 *	sends STARTTLS when offered and, on 220, emits SMTP_EV_TLS_NEEDED: the
 *	caller puts a TLS layer between the engine and the wire and calls
 *	smtp_client_tls_started(); the engine forgets what it learned before
 *	and sends EHLO again. Bytes that arrive after the 220 in the same read
 *	are refused (a plaintext injection). With SMTP_TLS_IMPLICIT the caller
 *	runs TLS from the first byte (port 465).
 *
 * DIAGNOSTICS
 *	Constructors return NULL and set errno. smtp_client_submit() returns
 *	-EINVAL for an address with CR, LF, NUL or angle brackets, an empty
 *	recipient list, and -EPIPE once the connection is closing. A malformed
 *	reply ends the session with SMTP_EV_PROTOCOL_ERROR, fails what is
 *	pending with a temporary error, and counts in smtp_client_stats().
 */
#ifndef SMTP_CLIENT_H
#define SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum smtp_tls_policy {
	SMTP_TLS_NONE = 0,	    /**< never STARTTLS */
	SMTP_TLS_OPPORTUNISTIC = 1, /**< STARTTLS when offered, else plaintext */
	SMTP_TLS_REQUIRED = 2,	    /**< STARTTLS or fail (temporary) */
	SMTP_TLS_IMPLICIT = 3,	    /**< TLS from the first byte (465) */
};

/** A trace line: dir 'C' (client sent) or 'S' (server replied). AUTH secrets
 *  are replaced by "<hidden>" before this is called. */
typedef void smtp_trace_fn(void *arg, char dir, const char *line, size_t len);

struct smtp_client_config {
	const char *helo_name; /**< EHLO/HELO argument; required */
	enum smtp_tls_policy tls;
	const char *auth_user;	/**< NULL: no AUTH */
	const char *auth_pass;	/**< not copied; never traced */
	bool auth_plaintext_ok; /**< allow AUTH without TLS (tests, trusted links) */
	bool auth_xoauth2;	/**< auth_pass is an OAuth 2.0 bearer token: AUTH XOAUTH2 */
	unsigned max_rcpts;	/**< recipients per transaction (0: 100) */
	bool no_pipelining;	/**< do not use PIPELINING even when offered */
	bool no_chunking;	/**< do not use BDAT even when offered */
	smtp_trace_fn *trace;
	void *trace_arg;
};

/** One piece of a message body. */
struct smtp_chunk {
	const void *p;
	size_t len;
};

enum smtp_dsn_ret { SMTP_RET_DEFAULT = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

struct smtp_rcpt {
	const char *addr;   /**< without angle brackets */
	const char *notify; /**< DSN NOTIFY value ("SUCCESS,FAILURE", "NEVER") or NULL */
	const char *orcpt;  /**< DSN original recipient "rfc822;addr" (not xtext yet) or NULL */
};

struct smtp_msg {
	const char *from; /**< "" for the null sender */
	const struct smtp_rcpt *rcpts;
	size_t nrcpts;
	const struct smtp_chunk *body; /**< RFC 5322 message, any line ends */
	size_t nbody;
	const char *envid; /**< DSN ENVID (not xtext yet) or NULL */
	enum smtp_dsn_ret ret;
	void *user; /**< the caller's */
};

enum smtp_event_type {
	SMTP_EV_GREETING = 1,	/**< the server's greeting (code, text) */
	SMTP_EV_READY,		/**< EHLO (and TLS, AUTH) done; idle */
	SMTP_EV_TLS_NEEDED,	/**< start TLS now, then smtp_client_tls_started() */
	SMTP_EV_RCPT,		/**< final outcome for msg->rcpts[rcpt] */
	SMTP_EV_MSG,		/**< every recipient of msg has its outcome */
	SMTP_EV_PROTOCOL_ERROR, /**< malformed or unexpected reply */
	SMTP_EV_CLOSED,		/**< the session is over; close the wire */
};

enum smtp_outcome { SMTP_OK = 0, SMTP_TEMPFAIL = 1, SMTP_PERMFAIL = 2 };

struct smtp_event {
	enum smtp_event_type type;
	enum smtp_outcome outcome;
	const struct smtp_msg *msg; /**< RCPT, MSG */
	size_t rcpt;		    /**< RCPT: index into msg->rcpts */
	int code;		    /**< reply code (made-up ones too) */
	const char *text;	    /**< whole reply as received, or a reason */
	size_t text_len;
	bool local; /**< the engine made the reply up (no server said it) */
	/** MSG: recipients per outcome. */
	size_t n_ok, n_temp, n_perm;
};

/** RFC 5321 section 4.5.3.2 timeouts. */
enum smtp_deadline {
	SMTP_DL_NONE = 0,   /**< nothing awaited: idle */
	SMTP_DL_GREETING,   /**< 5 min */
	SMTP_DL_MAIL,	    /**< 5 min */
	SMTP_DL_RCPT,	    /**< 5 min */
	SMTP_DL_DATA_INIT,  /**< 2 min, DATA's 354 */
	SMTP_DL_DATA_BLOCK, /**< 3 min, per write of body bytes */
	SMTP_DL_DATA_END,   /**< 10 min, reply to "." or BDAT LAST */
	SMTP_DL_OTHER,	    /**< 5 min: EHLO, STARTTLS, AUTH, RSET, QUIT */
	SMTP_DL_TLS,	    /**< 5 min: the caller's TLS handshake */
};

/** Extensions the server offered (after the last EHLO). */
enum {
	SMTP_EXT_PIPELINING = 1u << 0,
	SMTP_EXT_SIZE = 1u << 1,
	SMTP_EXT_8BITMIME = 1u << 2,
	SMTP_EXT_SMTPUTF8 = 1u << 3,
	SMTP_EXT_CHUNKING = 1u << 4,
	SMTP_EXT_STARTTLS = 1u << 5,
	SMTP_EXT_AUTH = 1u << 6,
	SMTP_EXT_ENHANCEDSTATUSCODES = 1u << 7,
	SMTP_EXT_DSN = 1u << 8,
	SMTP_EXT_ESMTP = 1u << 9, /**< EHLO accepted at all */
};
enum { SMTP_AUTH_PLAIN = 1u << 0, SMTP_AUTH_LOGIN = 1u << 1, SMTP_AUTH_XOAUTH2 = 1u << 2 };

struct smtp_client_stats {
	uint64_t replies;      /**< replies parsed */
	uint64_t malformed;    /**< malformed replies (each ends a session) */
	uint64_t commands;     /**< command lines sent */
	uint64_t writes_ready; /**< times tx went from empty to non-empty */
	uint64_t transactions; /**< MAIL commands sent */
	uint64_t body_bytes;   /**< body bytes queued (after rewriting) */
};

struct smtp_client;

/** A new session, waiting for the greeting. NULL + EINVAL/ENOMEM. */
struct smtp_client *smtp_client_new(const struct smtp_client_config *cfg);
void smtp_client_free(struct smtp_client *c);

/** Whether submit() would take @p r: an address (and NOTIFY, ORCPT) that
 *  can go on a RCPT line (no control characters, '<' or '>', not too long). */
bool smtp_client_rcpt_ok(const struct smtp_rcpt *r);
/** Whether submit() would take @p m's envelope apart from its recipients
 *  (a usable sender, an ENVID of at most 100 bytes, a body). */
bool smtp_client_envelope_ok(const struct smtp_msg *m);
/** Queue a message for this session; see Ownership above. 0 / -errno. */
int smtp_client_submit(struct smtp_client *c, const struct smtp_msg *m);
/** Send QUIT once every submitted message is done. */
void smtp_client_quit(struct smtp_client *c);

/** Where to put received bytes: *p and the room there (0 if the buffer is
 *  full, which cannot happen with a well-behaved server). */
size_t smtp_client_rx_space(struct smtp_client *c, uint8_t **p);
/** n bytes were written at the place rx_space gave; process them. */
void smtp_client_rx_commit(struct smtp_client *c, size_t n);
/** Copying convenience: rx_space + memcpy + rx_commit until all is taken.
 *  Returns bytes taken: less than len when the session ended, or when the
 *  buffer is full of replies whose events were not taken yet. */
size_t smtp_client_feed(struct smtp_client *c, const void *buf, size_t len);

/** Take the next event. 1 when *ev was filled, 0 when there is none. */
int smtp_client_event(struct smtp_client *c, struct smtp_event *ev);

/** Bytes to send, as up to max iovecs; returns the count (0: nothing). */
size_t smtp_client_tx_iov(struct smtp_client *c, struct iovec *iov, size_t max);
/** n bytes from the front of what tx_iov gave were sent. */
void smtp_client_tx_done(struct smtp_client *c, size_t n);
/** Bytes queued to send (body bytes not yet rendered excluded). */
size_t smtp_client_tx_pending(const struct smtp_client *c);

/** The deadline that applies now, and its length in *ms. */
enum smtp_deadline smtp_client_deadline(const struct smtp_client *c, uint64_t *ms);

/** The caller finished the TLS handshake after SMTP_EV_TLS_NEEDED (or before
 *  the greeting, for SMTP_TLS_IMPLICIT). */
void smtp_client_tls_started(struct smtp_client *c);
/** The TLS handshake failed: fail what is pending (temporary) and close. */
void smtp_client_tls_failed(struct smtp_client *c, const char *why);
/** The peer closed the connection. */
void smtp_client_eof(struct smtp_client *c);
/** The deadline expired. */
void smtp_client_timeout(struct smtp_client *c);

/** True once SMTP_EV_CLOSED was emitted (or is queued). */
bool smtp_client_closed(const struct smtp_client *c);
/** SMTP_EXT_* offered by the server, and its SIZE limit (0: none given). */
unsigned smtp_client_extensions(const struct smtp_client *c, uint64_t *size_limit);
bool smtp_client_tls_active(const struct smtp_client *c);
const struct smtp_client_stats *smtp_client_stats(const struct smtp_client *c);

const char *smtp_event_name(enum smtp_event_type t);
const char *smtp_deadline_name(enum smtp_deadline d);

#endif
