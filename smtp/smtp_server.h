/*
 * smtp_server.h - sans-I/O SMTP server engine (RFC 5321 and extensions),
 *	the mirror of smtp_client.h.
 *
 * SYNOPSIS
 *	struct smtp_server *s = smtp_server_new(&cfg);	(greeting queued)
 *	loop:
 *	  n = smtp_server_rx_space(s, &p); n = recv(fd, p, n); smtp_server_rx_commit(s, n);
 *	    (or smtp_server_feed(s, buf, len), which copies)
 *	  while (smtp_server_event(s, &ev))
 *	    switch (ev.type) {
 *	    case SMTP_SEV_MAIL: case SMTP_SEV_RCPT: case SMTP_SEV_AUTH:
 *	      smtp_server_reply(s, 0, NULL);		(accept; or a refusal)
 *	      break;
 *	    case SMTP_SEV_BODY: append ev.data, ev.len; break;
 *	    case SMTP_SEV_DATA_END: write, fsync, then
 *	      smtp_server_reply(s, 250, NULL);		(now or later)
 *	    ...
 *	    }
 *	  k = smtp_server_tx_iov(s, iov, 8); sent = writev(fd, iov, k);
 *	  smtp_server_tx_done(s, sent);
 *	  arm the timer for smtp_server_deadline(s, &ms);
 *	smtp_server_free(s);
 *
 * DESCRIPTION
 *	The engine owns no socket and no timer; the caller moves bytes and
 *	arms the deadline the engine names (RFC 5321 section 4.5.3.2.7, the
 *	server's five minutes), calling smtp_server_timeout() when it expires.
 *
 *	It speaks RFC 5321 as a server: greeting, EHLO/HELO, MAIL, RCPT, DATA,
 *	RSET, NOOP, QUIT, HELP, VRFY (252, never verifies), with enhanced
 *	status codes (RFC 2034, 3463) on every reply but the greeting, and
 *	offers PIPELINING (RFC 2920), CHUNKING and BINARYMIME (RFC 3030), SIZE
 *	(RFC 1870), 8BITMIME, SMTPUTF8 (RFC 6531), DSN (RFC 3461; ENVID and
 *	ORCPT are xtext-decoded for the caller), ENHANCEDSTATUSCODES, STARTTLS
 *	(RFC 3207), AUTH PLAIN and LOGIN (RFC 4954; offered only under TLS
 *	unless auth_plaintext_ok) and REQUIRETLS (RFC 8689; only under TLS).
 *
 *	Decisions. The caller decides each sender (SMTP_SEV_MAIL), recipient
 *	(SMTP_SEV_RCPT), authentication (SMTP_SEV_AUTH) and message
 *	(SMTP_SEV_DATA_END) by calling smtp_server_reply() once per such
 *	event. Until it does, the engine reads no further command and sends
 *	no further reply (bytes that arrive stay buffered; when the buffer is
 *	full smtp_server_rx_space() gives 0 and the caller stops reading), so
 *	the answer may come at once or much later, e.g. after an fsync.
 *	smtp_server_reply() goes on with the buffered input: take events
 *	again after calling it. A message gets 250 only when the caller says
 *	so: it must be durable by then.
 *
 *	A transaction is SMTP_SEV_MAIL, SMTP_SEV_RCPT for each recipient, then
 *	SMTP_SEV_BODY events (the body, de-dot-stuffed, in pieces that point
 *	into the receive buffer whenever no byte has to be changed) and
 *	SMTP_SEV_DATA_END; or it ends early with SMTP_SEV_RESET (RSET, EHLO,
 *	STARTTLS, a message refused by the engine itself, the end of the
 *	session), after which the caller drops what it has of the message.
 *	Recipients beyond max_rcpts get 452 4.5.3 from the engine.
 *
 *	PIPELINING: rx_commit handles all it was given before it returns
 *	(up to a decision the caller owes), and every reply it makes goes into
 *	one buffer, which tx_iov gives as one piece. A caller that reads until
 *	its socket has nothing more and only then sends (RFC 2920 3.2: flush
 *	when the input is drained) answers a pipelined group in one write.
 *
 *	End of data is only CRLF "." CRLF. A bare LF or a bare CR in DATA
 *	never ends a line for that purpose ("\n.\n", "\r.\r\n", "\n.\r\n" and
 *	the like are body bytes; CVE-2023-51766 class). bare_eol says what
 *	else happens to them:
 *	  SMTP_BARE_EOL_REJECT (default)  the message is read to the real end
 *	                                  and refused, 554 5.6.0;
 *	  SMTP_BARE_EOL_NORMALISE         each becomes CRLF in the body given
 *	                                  to the caller (a '.' after it is
 *	                                  kept as it is, not un-stuffed).
 *	BDAT chunks are counted, never scanned, and given as they are.
 *
 *	STARTTLS: the engine replies 220 and emits SMTP_SEV_TLS_NEEDED; the
 *	caller sends what tx_iov gives in plaintext, puts TLS between the
 *	engine and the wire, and calls smtp_server_tls_started() once the
 *	handshake is done. Everything learned before (EHLO, AUTH, the
 *	transaction) is forgotten (RFC 3207 4.2). Commands pipelined after
 *	STARTTLS in the same plaintext read are refused: 554 5.5.0 and the
 *	session closes (CVE-2011-0411 class); so are plaintext bytes given to
 *	the engine while it waits for the handshake.
 *
 *	Limits: a command line of more than SMTP_SERVER_LINE_MAX octets gets
 *	500 5.5.2 (the rest of the line is skipped); a text line of more than
 *	text_line_max octets (default 1000, RFC 5321 4.5.3.1.6) or a message
 *	over size_limit has its message refused after the end of data (554
 *	5.6.0, 552 5.3.4); a path over 256 octets gets 501. Syntax errors
 *	(501), bad sequence (503), unknown commands (500 5.5.2) and commands
 *	not offered (502 5.5.1) count as errors; at max_errors the engine says
 *	421 4.7.0 and closes.
 *
 *	Ownership: event strings (address, HELO name, parameters, AUTH
 *	secrets) are the engine's and stay valid until smtp_server_reply() for
 *	events that wait for one, else until the next smtp_server_rx_space(),
 *	smtp_server_feed() or smtp_server_reply(). BODY pieces point into the
 *	receive buffer (or at constant strings) and stay valid while events
 *	are pending, as for the client. The config's strings are not copied.
 *
 * DIAGNOSTICS
 *	smtp_server_new() returns NULL and sets errno (EINVAL, ENOMEM).
 *	smtp_server_reply() returns -EINVAL for a code of the wrong class or
 *	text with CR, LF or NUL, and -EALREADY when no decision is awaited.
 *	Malformed input gets an error reply and counts in smtp_server_stats();
 *	it ends the session only at max_errors or as a STARTTLS injection.
 *	smtp_server_feed() also stops after the reply to STARTTLS: the bytes
 *	it did not take are for the TLS layer.
 */
#ifndef SMTP_SERVER_H
#define SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "smtp/smtp_client.h" /* smtp_trace_fn, enum smtp_deadline */

/** Longest command line, CRLF included: RFC 5321's 512 plus room for the
 *  parameters of SIZE, DSN and AUTH (RFC 1869 4.1.2 lets them raise it). */
#define SMTP_SERVER_LINE_MAX 2048
/** Longest path between the angle brackets (RFC 5321 4.5.3.1.3). */
#define SMTP_SERVER_PATH_MAX 256

enum smtp_bare_eol {
	SMTP_BARE_EOL_REJECT = 0,    /**< refuse the message: 554 5.6.0 */
	SMTP_BARE_EOL_NORMALISE = 1, /**< turn each into CRLF */
};

struct smtp_server_config {
	const char *hostname;	/**< in the greeting and the EHLO reply; required */
	const char *greeting;	/**< text after "220 hostname " (NULL: "ESMTP") */
	uint64_t size_limit;	/**< SIZE offered and enforced (0: SIZE without a limit) */
	unsigned max_rcpts;	/**< recipients per transaction (0: 100) */
	unsigned max_errors;	/**< errors before 421 (0: 20) */
	unsigned text_line_max; /**< DATA line limit, CRLF included (0: 1000) */
	enum smtp_bare_eol bare_eol;
	bool no_pipelining, no_chunking, no_8bitmime, no_smtputf8, no_dsn;
	bool tls_available;	/**< offer STARTTLS (the caller can run TLS) */
	bool tls_implicit;	/**< TLS from the first byte (465): it counts as up */
	bool auth;		/**< offer AUTH PLAIN LOGIN */
	bool auth_plaintext_ok; /**< ... also without TLS */
	bool requiretls;	/**< offer REQUIRETLS (under TLS only) */
	smtp_trace_fn *trace;	/**< 'C' client line, 'S' reply; AUTH data hidden */
	void *trace_arg;
};

enum smtp_server_event_type {
	SMTP_SEV_HELO = 1,   /**< EHLO/HELO taken: helo, esmtp (no reply wanted) */
	SMTP_SEV_AUTH,	     /**< AUTH: mech, authzid, user, pass; reply wanted */
	SMTP_SEV_MAIL,	     /**< MAIL FROM: addr and parameters; reply wanted */
	SMTP_SEV_RCPT,	     /**< RCPT TO: addr, notify, orcpt; reply wanted */
	SMTP_SEV_BODY,	     /**< a piece of the body: data, len */
	SMTP_SEV_DATA_END,   /**< the whole body was given: size; reply wanted */
	SMTP_SEV_RESET,	     /**< the transaction ended without a message */
	SMTP_SEV_TLS_NEEDED, /**< send the 220, start TLS, smtp_server_tls_started() */
	SMTP_SEV_CLOSED,     /**< the session is over: send what is queued, close */
};

enum smtp_body_type {
	SMTP_BODY_NONE = 0,
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME
};

struct smtp_server_event {
	enum smtp_server_event_type type;
	const char *helo; /**< HELO */
	bool esmtp;	  /**< HELO: it was EHLO */
	const char *addr; /**< MAIL, RCPT: without angle brackets ("" null sender) */
	/* MAIL parameters. */
	uint64_t size;		   /**< MAIL: SIZE= (0: not given); DATA_END: body bytes */
	enum smtp_body_type body;  /**< MAIL: BODY= */
	bool smtputf8, requiretls; /**< MAIL */
	enum smtp_dsn_ret ret;	   /**< MAIL: RET= */
	const char *envid;	   /**< MAIL: ENVID, xtext-decoded, or NULL */
	/* RCPT parameters. */
	const char *notify; /**< RCPT: NOTIFY value as given (validated), or NULL */
	const char *orcpt;  /**< RCPT: ORCPT "type;addr", xtext-decoded, or NULL */
	/* AUTH. */
	const char *mech; /**< "PLAIN" or "LOGIN" */
	const char *authzid, *user, *pass;
	/* BODY. */
	const void *data;
	size_t len;
	bool bdat; /**< DATA_END: the message came by BDAT */
};

struct smtp_server_stats {
	uint64_t commands;	/**< command lines read */
	uint64_t replies;	/**< replies queued */
	uint64_t flushes;	/**< times tx went from empty to non-empty */
	uint64_t errors;	/**< error replies for the client's mistakes */
	uint64_t malformed;	/**< lines too long, NUL or stray CR, bad syntax */
	uint64_t messages;	/**< messages accepted (2xx at end of data) */
	uint64_t refused;	/**< messages refused (by the caller or the engine) */
	uint64_t body_bytes;	/**< body bytes given to the caller */
	uint64_t bare_eol;	/**< bare CR or LF seen in DATA */
	uint64_t tls_injection; /**< plaintext pipelined after STARTTLS */
};

struct smtp_server;

/** A new session with the greeting queued. NULL + EINVAL/ENOMEM. */
struct smtp_server *smtp_server_new(const struct smtp_server_config *cfg);
void smtp_server_free(struct smtp_server *s);

/** Where to put received bytes: *p and the room there (0 while a decision
 *  is awaited and the buffer is full: stop reading until it comes). */
size_t smtp_server_rx_space(struct smtp_server *s, uint8_t **p);
/** n bytes were written at the place rx_space gave; process them. */
void smtp_server_rx_commit(struct smtp_server *s, size_t n);
/** Copying convenience: rx_space + memcpy + rx_commit while there is room.
 *  Returns bytes taken (fewer than len once closed or while full). */
size_t smtp_server_feed(struct smtp_server *s, const void *buf, size_t len);

/** Take the next event. 1 when *ev was filled, 0 when there is none. */
int smtp_server_event(struct smtp_server *s, struct smtp_server_event *ev);

/**
 * Answer the awaited decision (MAIL, RCPT, AUTH, DATA_END). code 0 takes
 * the engine's acceptance ("250 2.1.0 Ok" and the like); otherwise code is
 * the reply code and text what follows it, enhanced status code first
 * ("5.7.1 Relaying denied"; NULL: a default for the code). MAIL and RCPT
 * take 2xx, 4xx or 5xx; AUTH 235, 4xx or 5xx; DATA_END 2xx only when the
 * message is durable. Processing of buffered input goes on: take events
 * again afterwards. 0 / -EINVAL / -EALREADY.
 */
int smtp_server_reply(struct smtp_server *s, int code, const char *text);
/** True while a decision is awaited. */
bool smtp_server_waiting(const struct smtp_server *s);

/** Bytes to send, as up to max iovecs; returns the count (0: nothing). */
size_t smtp_server_tx_iov(struct smtp_server *s, struct iovec *iov, size_t max);
/** n bytes from the front of what tx_iov gave were sent. */
void smtp_server_tx_done(struct smtp_server *s, size_t n);
size_t smtp_server_tx_pending(const struct smtp_server *s);

/** The deadline that applies now (SMTP_DL_NONE while the caller decides or
 *  once closed), and its length in *ms. */
enum smtp_deadline smtp_server_deadline(const struct smtp_server *s, uint64_t *ms);

/** The TLS handshake after SMTP_SEV_TLS_NEEDED is done. */
void smtp_server_tls_started(struct smtp_server *s);
/** The peer closed the connection (or it broke). */
void smtp_server_eof(struct smtp_server *s);
/** The deadline expired: 421 4.4.2 queued, then closed. */
void smtp_server_timeout(struct smtp_server *s);

bool smtp_server_closed(const struct smtp_server *s);
bool smtp_server_tls_active(const struct smtp_server *s);
/** The user of the accepted AUTH, or NULL. */
const char *smtp_server_auth_user(const struct smtp_server *s);
const struct smtp_server_stats *smtp_server_stats(const struct smtp_server *s);
const char *smtp_server_event_name(enum smtp_server_event_type t);

#endif
