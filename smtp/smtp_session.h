/*
 * smtp_session.h - one SMTP connection as the wire sees it: the client
 *	engine, with TLS in between when STARTTLS or implicit TLS is used.
 *
 * SYNOPSIS
 *	s = smtp_session_new(&cfg);
 *	smtp_session_submit(s, &msg);
 *	loop:
 *	  taken = smtp_session_rx(s, bytes, n);      (bytes from the wire)
 *	  while (smtp_session_event(s, &ev)) ...;
 *	  k = smtp_session_tx_iov(s, iov, 8);        (bytes for the wire)
 *	  smtp_session_tx_done(s, sent);
 *	  arm smtp_session_deadline(s, &ms); on expiry smtp_session_timeout(s);
 *	smtp_session_free(s);
 *
 * DESCRIPTION
 *	The engine (smtp_client.h) speaks plaintext SMTP and asks for TLS with
 *	SMTP_EV_TLS_NEEDED; this layer answers that itself: it makes the TLS
 *	connection (SNI, verification and session resumption per the config),
 *	drives the handshake with the bytes the caller moves, then encrypts what
 *	the engine sends and decrypts what it receives. With SMTP_TLS_IMPLICIT
 *	(port 465) the handshake starts before the greeting. The caller sees
 *	only wire bytes and the engine's events, never SMTP_EV_TLS_NEEDED.
 *
 *	Like the engine it owns no socket and no timer, so the same code runs
 *	over kernel sockets and over the userspace TCP stack.
 *
 *	Ownership: as for smtp_client_submit(). The TLS context in the config
 *	is not owned and must outlive the session; strings in the config are
 *	copied.
 *
 * DIAGNOSTICS
 *	smtp_session_new() returns NULL and sets errno (EINVAL: TLS wanted
 *	without a context; ENOMEM). A TLS failure fails what is pending with a
 *	temporary error and closes the session (SMTP_EV_CLOSED), with the
 *	reason in the events' text.
 */
#ifndef SMTP_SESSION_H
#define SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "smtp/smtp_client.h"
#include "smtp/smtp_tls.h"

struct smtp_session_config {
	struct smtp_client_config client; /**< the engine's; .tls is the policy */
	struct smtp_tls_ctx *tls_ctx;	  /**< required unless the policy is NONE */
	const char *tls_sni;		  /**< server name for SNI and verification */
	const char *tls_dest_key;	  /**< session cache key ("host:port"), or NULL */
	bool tls_verify;		  /**< check chain and name (relay), or not (MX) */
};

struct smtp_session;

struct smtp_session *smtp_session_new(const struct smtp_session_config *cfg);
void smtp_session_free(struct smtp_session *s);

/** See smtp_client_submit(). */
int smtp_session_submit(struct smtp_session *s, const struct smtp_msg *m);
/** See smtp_client_quit(). */
void smtp_session_quit(struct smtp_session *s);

/**
 * Bytes received from the wire. Returns how many were taken: fewer than
 * @p n when events are waiting to be taken (take them, then offer the rest
 * again) or when the session has ended (drop the rest).
 */
size_t smtp_session_rx(struct smtp_session *s, const void *p, size_t n);

/** The next event, as smtp_client_event(). 1 when *ev was filled, else 0. */
int smtp_session_event(struct smtp_session *s, struct smtp_event *ev);

/** Bytes to send, as up to @p max iovecs; returns the count (0: nothing). */
size_t smtp_session_tx_iov(struct smtp_session *s, struct iovec *iov, size_t max);
/** @p n bytes from the front of what tx_iov gave were sent. */
void smtp_session_tx_done(struct smtp_session *s, size_t n);

/** The deadline that applies now (SMTP_DL_TLS during a handshake). */
enum smtp_deadline smtp_session_deadline(const struct smtp_session *s, uint64_t *ms);
void smtp_session_timeout(struct smtp_session *s);
/** The peer closed the connection (or it broke). */
void smtp_session_eof(struct smtp_session *s);

bool smtp_session_closed(const struct smtp_session *s);
/** True once the session is idle: greeted, set up, and no message pending. */
bool smtp_session_ready(const struct smtp_session *s);
/** "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" without TLS. */
const char *smtp_session_tls(const struct smtp_session *s);
/** True when the session ended because TLS failed (handshake, verification). */
bool smtp_session_tls_failed(const struct smtp_session *s);
/** The engine, for its stats and extensions. */
struct smtp_client *smtp_session_client(struct smtp_session *s);

#endif
