/*
 * queue_bounce.h - RFC 3464 delivery status notifications.
 *
 * SYNOPSIS
 *	rc = queue_bounce_build(&orig_env, msg, len, rcpt, n, &bo, &out, &benv);
 *	rc = queue_bounce_queue(txn, &orig_env, msg, len, rcpt, n, &bo, &qid);
 *	st = queue_bounce_status(reply, buf);
 *
 * DESCRIPTION
 *	One multipart/report (report-type=delivery-status) message for the
 *	recipients @p rcpt[0..n) of a message, addressed to its envelope
 *	sender from the null sender <>, with a human-readable part, a
 *	message/delivery-status part (Reporting-MTA, Original-Envelope-Id,
 *	Arrival-Date; per recipient Final-Recipient, Original-Recipient,
 *	Action: failed, Status, Diagnostic-Code, Last-Attempt-Date), and the
 *	returned message: whole (message/rfc822) unless RET=HDRS or it is
 *	larger than bo->max_return, then its header only
 *	(text/rfc822-headers). The DSN's envelope carries QUEUE_F_DSN so it is
 *	itself never bounced.
 *
 *	With bo->delayed it is a delay warning instead: Action: delayed,
 *	Will-Retry-Until, the returned message's header only.
 *
 *	The part for people is a template: dmta's own words, or the
 *	operator's file per kind (bo->tmpl_failed, bo->tmpl_delayed; see
 *	queue_bounce_template_check()). A template is UTF-8 text whose first
 *	line is the DSN's "Subject: ..." and whose second line is empty; the
 *	rest is the notice, where ${hostname}, ${sender}, ${queue_id},
 *	${arrival_date}, ${retry_until}, ${recipients} (a paragraph per
 *	recipient: the address, what happened, the server's last reply and,
 *	in a failure DSN, its class, "Reason class: bad-mailbox", from
 *	queue_class_of() in queue/queue_rules.h) and
 *	${returned} (a sentence on what is attached) are filled in. The
 *	RFC 3464 parts do not depend on the template.
 *
 *	Each recipient's Status comes from the enhanced status code in its
 *	last reply when there is one of the right class, else 5.0.0 for a
 *	5xx reply and 4.4.7 (delivery time expired) otherwise. The reply is
 *	read by smtp/'s parser (smtp_reply_status() in smtp/smtp_reply.h),
 *	the one place that knows what a reply and its code look like; that
 *	parser is a library of its own that needs nothing but libc, so queue/
 *	uses it without taking on the SMTP engine or OpenSSL.
 *
 * DIAGNOSTICS
 *	0, -EINVAL (null sender or a DSN: no bounce is due), -ENOMEM, or a
 *	spool error.
 */
#ifndef QUEUE_BOUNCE_H
#define QUEUE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue_env.h"
#include "queue/queue_msg.h"

struct spool_txn;

struct queue_bounce_opts {
	const char *hostname;	  /* Reporting-MTA and MAILER-DAEMON@hostname */
	uint64_t now_ns;	  /* wall clock, for Date */
	size_t max_return;	  /* return only the header above this size (default 50000) */
	bool delayed;		  /* a delay warning (Action: delayed, header only) */
	uint64_t retry_until_ns;  /* for a delay warning: Will-Retry-Until, 0 = none */
	const char *tmpl_failed;  /* the notice of a failure, NUL-terminated (NULL: built in) */
	const char *tmpl_delayed; /* the notice of a delay (NULL: built in) */
};

#define QUEUE_BOUNCE_TEMPLATE_MAX 16384

/**
 * Check an operator's template (@p len bytes, NUL-terminated) before it is
 * used: the Subject line, the blank line after it, no control characters,
 * lines of at most 900 characters, known variables only. 0, or -EINVAL
 * with "line N: reason" in @p err.
 */
int queue_bounce_template_check(const char *text, size_t len, char *err, size_t errlen);

/** Room for what queue_bounce_status() writes, NUL included. */
#define QUEUE_BOUNCE_STATUS_LEN 16

/** The status code ("5.1.1") for a reply, written into @p buf (QUEUE_BOUNCE_STATUS_LEN bytes). */
const char *queue_bounce_status(const char *reply, char *buf);

int queue_bounce_build(const struct queue_env *env, const void *msg, size_t len,
		       const uint32_t *rcpt, uint32_t n, const struct queue_bounce_opts *bo,
		       struct queue_buf *out, struct queue_env *benv);

/** Build and spool it; *qid gets the DSN's queue id. */
int queue_bounce_queue(struct spool_txn *t, const struct queue_env *env, const void *msg,
		       size_t len, const uint32_t *rcpt, uint32_t n,
		       const struct queue_bounce_opts *bo, uint64_t *qid);

#endif
