/*
 * queue_bounce.c - see queue_bounce.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/base/dmta_time.h"
#include "queue/queue_bounce.h"
#include "queue/spool.h"
#include "smtp/smtp_reply.h"

#define DEFAULT_MAX_RETURN 50000

const char *queue_bounce_status(const char *reply, char *buf)
{
	struct smtp_esc e;
	int rc = reply ? smtp_reply_status(reply, strlen(reply), &e) : -1;

	/* A code given counts when it is a failure's; else a 5xx reply is
	 * 5.0.0 and anything else 4.4.7, delivery time expired. */
	if (rc != 1 || (e.cls != 4 && e.cls != 5))
		e = rc >= 0 && e.cls == 5 ? (struct smtp_esc){5, 0, 0} : (struct smtp_esc){4, 4, 7};
	return smtp_esc_format(&e, buf, QUEUE_BOUNCE_STATUS_LEN);
}

static bool ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static void rfc5322_date(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / DMTA_NS_PER_S);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

#define ADD(s)                                                                                     \
	do {                                                                                       \
		if (queue_buf_adds(out, (s)) < 0)                                                  \
			return -ENOMEM;                                                            \
	} while (0)

static int addf(struct queue_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int addf(struct queue_buf *out, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return queue_buf_add(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

#define ADDF(...)                                                                                  \
	do {                                                                                       \
		if (addf(out, __VA_ARGS__) < 0)                                                    \
			return -ENOMEM;                                                            \
	} while (0)

/* A reply on one line with no CR/LF, for the report fields. */
static void oneline(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; in && *in && o + 1 < cap; in++)
		out[o++] = (*in == '\r' || *in == '\n' || (unsigned char)*in < 32) ? ' ' : *in;
	out[o] = 0;
}

int queue_bounce_build(const struct queue_env *env, const void *msg, size_t len,
		       const uint32_t *rcpt, uint32_t n, const struct queue_bounce_opts *bo,
		       struct queue_buf *out, struct queue_env *benv)
{
	/* Replies are cut so that no report line exceeds 998 octets. */
	char date[64], arrival[64], boundary[96], st[16], reply[600];
	const char *host = bo->hostname ? bo->hostname : "localhost";
	size_t max_return = bo->max_return ? bo->max_return : DEFAULT_MAX_RETURN;
	bool full = env->ret != QUEUE_RET_HDRS && len <= max_return && !bo->delayed;
	bool utf8 = env->flags & QUEUE_F_SMTPUTF8;
	const char *m = msg;
	size_t hlen = len;

	memset(benv, 0, sizeof(*benv));
	if (env->sender[0] == 0 || (env->flags & QUEUE_F_DSN) || n == 0)
		return -EINVAL;
	/* RFC 6533: an internationalised message gets the "global" report types. */
	for (uint32_t i = 0; i < n && !utf8; i++)
		utf8 = !ascii(env->rcpt[rcpt[i]].addr);
	rfc5322_date(bo->now_ns, date, sizeof(date));
	rfc5322_date(env->arrival_ns, arrival, sizeof(arrival));
	snprintf(boundary, sizeof(boundary), "%llX.%llX/%s", (unsigned long long)env->qid,
		 (unsigned long long)(bo->now_ns / 1000), host);
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(m + i, "\r\n\r\n", 4) == 0) {
			hlen = i + 2;
			break;
		}

	ADDF("From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	ADDF("To: <%s>\r\n", env->sender);
	ADD(bo->delayed ? "Subject: Delayed Mail (still being retried)\r\n"
			: "Subject: Undelivered Mail Returned to Sender\r\n");
	ADDF("Date: %s\r\n", date);
	ADDF("Message-ID: <%llX.%llX.dsn@%s>\r\n", (unsigned long long)env->qid,
	     (unsigned long long)(bo->now_ns / 1000), host);
	ADD("Auto-Submitted: auto-replied\r\n");
	ADD("MIME-Version: 1.0\r\n");
	ADDF("Content-Type: multipart/report; report-type=delivery-status;\r\n"
	     "\tboundary=\"%s\"\r\n",
	     boundary);
	ADD("\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for people. */
	ADDF("--%s\r\n", boundary);
	ADD("Content-Description: Notification\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\n\r\n");
	ADDF("This is the mail system at host %s.\r\n\r\n", host);
	if (bo->delayed)
		ADD("This is a warning only: your message has not been delivered to\r\n"
		    "the recipients below yet. Delivery is still being retried;\r\n"
		    "you do not need to send it again.\r\n\r\n");
	else
		ADD("I'm sorry to have to inform you that your message could not\r\n"
		    "be delivered to one or more recipients. The reasons are below.\r\n\r\n");
	for (uint32_t i = 0; i < n; i++) {
		const struct queue_rcpt *r = &env->rcpt[rcpt[i]];

		oneline(r->reply ? r->reply : "delivery failed", reply, sizeof(reply));
		ADDF("<%s>: %s\r\n", r->addr, reply);
	}
	ADD("\r\n");

	/* 2: for programs (RFC 3464). */
	ADDF("--%s\r\n", boundary);
	ADDF("Content-Description: Delivery report\r\nContent-Type: message/%s\r\n\r\n",
	     utf8 ? "global-delivery-status" : "delivery-status");
	ADDF("Reporting-MTA: dns; %s\r\n", host);
	if (env->envid)
		ADDF("Original-Envelope-Id: %s\r\n", env->envid);
	ADDF("Arrival-Date: %s\r\n", arrival);
	for (uint32_t i = 0; i < n; i++) {
		const struct queue_rcpt *r = &env->rcpt[rcpt[i]];
		char last[64];

		ADD("\r\n");
		ADDF("Final-Recipient: %s; %s\r\n", ascii(r->addr) ? "rfc822" : "utf-8", r->addr);
		if (r->orcpt)
			ADDF("Original-Recipient: %s\r\n", r->orcpt);
		ADD(bo->delayed ? "Action: delayed\r\n" : "Action: failed\r\n");
		ADDF("Status: %s\r\n", queue_bounce_status(r->reply, st));
		if (r->reply) {
			oneline(r->reply, reply, sizeof(reply));
			/* A reply from a server is smtp; our own reasons are x-dmta. */
			ADDF("Diagnostic-Code: %s; %s\r\n",
			     isdigit((unsigned char)reply[0]) ? "smtp" : "x-dmta", reply);
		}
		if (r->last_attempt_ns) {
			rfc5322_date(r->last_attempt_ns, last, sizeof(last));
			ADDF("Last-Attempt-Date: %s\r\n", last);
		}
		if (bo->delayed && bo->retry_until_ns) {
			rfc5322_date(bo->retry_until_ns, last, sizeof(last));
			ADDF("Will-Retry-Until: %s\r\n", last);
		}
	}
	ADD("\r\n");

	/* 3: the message, or its header. */
	ADDF("--%s\r\n", boundary);
	if (full) {
		ADDF("Content-Description: Undelivered Message\r\nContent-Type: %s\r\n\r\n",
		     utf8 ? "message/global" : "message/rfc822");
		if (queue_buf_add(out, m, len) < 0)
			return -ENOMEM;
	} else {
		ADDF("Content-Description: Undelivered Message Headers\r\nContent-Type: "
		     "%s\r\n\r\n",
		     utf8 ? "message/global-headers" : "text/rfc822-headers");
		if (queue_buf_add(out, m, hlen) < 0)
			return -ENOMEM;
	}
	if (out->len < 2 || memcmp(out->p + out->len - 2, "\r\n", 2) != 0)
		ADD("\r\n");
	ADDF("\r\n--%s--\r\n", boundary);

	/* Its envelope: from <>, to the sender, never bounced itself. */
	if (queue_env_set_sender(benv, "") < 0 ||
	    queue_env_add_rcpt(benv, env->sender, NULL, QUEUE_NOTIFY_NEVER) < 0) {
		queue_env_free(benv);
		return -ENOMEM;
	}
	benv->flags = QUEUE_F_DSN;
	if (full)
		benv->flags |= env->flags & (QUEUE_F_8BITMIME | QUEUE_F_SMTPUTF8);
	else if (env->flags & QUEUE_F_SMTPUTF8)
		benv->flags |= QUEUE_F_SMTPUTF8;
	return 0;
}

int queue_bounce_queue(struct spool_txn *t, const struct queue_env *env, const void *msg,
		       size_t len, const uint32_t *rcpt, uint32_t n,
		       const struct queue_bounce_opts *bo, uint64_t *qid)
{
	struct queue_buf out = {0};
	struct queue_env benv;
	int rc = queue_bounce_build(env, msg, len, rcpt, n, bo, &out, &benv);

	if (rc == 0) {
		rc = spool_put(t, &benv, out.p, out.len);
		if (rc == 0 && qid)
			*qid = benv.qid;
	}
	queue_env_free(&benv);
	queue_buf_free(&out);
	return rc;
}
