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
#include "queue/queue_rules.h"
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

/*
 * dmta's own words for people, used when no template file is configured.
 * They say what happened, to whom, what the receiving server said and
 * whether dmta goes on trying, in language a sender without technical
 * knowledge can act on.
 */
static const char failed_text[] =
    "Subject: Your message could not be delivered\n"
    "\n"
    "Your message could not be delivered to the recipients listed below.\n"
    "The mail server ${hostname} has stopped trying: this message will\n"
    "not be delivered to them.\n"
    "\n"
    "${recipients}"
    "If an address above is mistyped, correct it and send your message\n"
    "again. Otherwise the reply of the receiving server may help the\n"
    "recipient's mail administrator to find the cause.\n"
    "\n"
    "${returned}\n";

static const char delayed_text[] =
    "Subject: Your message has not been delivered yet\n"
    "\n"
    "Your message has not yet reached the recipients listed below. The\n"
    "mail server ${hostname} is still trying and will go on until\n"
    "${retry_until}.\n"
    "\n"
    "${recipients}"
    "You do not need to do anything or to send your message again. You\n"
    "will hear from us again only if delivery fails for good.\n"
    "\n"
    "${returned}\n";

/* The variables a template may use; anything else in ${...} is an error. */
static const char *const tmpl_vars[] = {"hostname",    "sender",     "queue_id", "arrival_date",
					"retry_until", "recipients", "returned", NULL};

static size_t tmpl_var(const char *p, const char **name)
{
	/* p points at "${"; returns the length of "${name}" or 0. */
	for (int i = 0; tmpl_vars[i] != NULL; i++) {
		size_t n = strlen(tmpl_vars[i]);

		if (strncmp(p + 2, tmpl_vars[i], n) == 0 && p[2 + n] == '}') {
			*name = tmpl_vars[i];
			return n + 3;
		}
	}
	return 0;
}

int queue_bounce_template_check(const char *text, size_t len, char *err, size_t errlen)
{
	size_t line = 1, col = 0;

	if (len > QUEUE_BOUNCE_TEMPLATE_MAX) {
		snprintf(err, errlen, "larger than %u bytes", QUEUE_BOUNCE_TEMPLATE_MAX);
		return -EINVAL;
	}
	if (strncmp(text, "Subject:", 8) != 0) {
		snprintf(err, errlen, "line 1: the first line must be \"Subject: ...\"");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		const char *name;
		unsigned char c = (unsigned char)text[i];

		if (c == '\n') {
			line++;
			col = 0;
			if (line == 2 &&
			    (i + 1 >= len || (text[i + 1] != '\n' && text[i + 1] != '\r'))) {
				snprintf(err, errlen,
					 "line 2: must be empty (after the Subject line)");
				return -EINVAL;
			}
			continue;
		}
		if (c == '\r' && i + 1 < len && text[i + 1] == '\n')
			continue;
		if (c == 0 || (c < 32 && c != '\t')) {
			snprintf(err, errlen, "line %zu: control character 0x%02x", line, c);
			return -EINVAL;
		}
		if (++col > 900) {
			snprintf(err, errlen, "line %zu: longer than 900 characters", line);
			return -EINVAL;
		}
		if (c == '$' && i + 1 < len && text[i + 1] == '{' &&
		    tmpl_var(text + i, &name) == 0) {
			snprintf(err, errlen,
				 "line %zu: unknown variable \"%.*s\" (known: ${hostname}, "
				 "${sender}, ${queue_id}, ${arrival_date}, ${retry_until}, "
				 "${recipients}, ${returned})",
				 line, (int)strcspn(text + i, "}\n") + 1, text + i);
			return -EINVAL;
		}
	}
	return 0;
}

/* A reply on one line with no CR/LF, for the report fields. */
static void oneline(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; in && *in && o + 1 < cap; in++)
		out[o++] = (*in == '\r' || *in == '\n' || (unsigned char)*in < 32) ? ' ' : *in;
	out[o] = 0;
}

/* One recipient's paragraph: who, what happened, what the server said. */
static int add_rcpt_story(struct queue_buf *out, const struct queue_rcpt *r, bool delayed)
{
	char reply[600], st[QUEUE_BOUNCE_STATUS_LEN];
	bool server;

	oneline(r->reply, reply, sizeof(reply));
	server = isdigit((unsigned char)reply[0]);
	ADDF("  <%s>\r\n", r->addr);
	if (delayed && server)
		ADD("    Not delivered yet: the receiving mail server asked to be tried again "
		    "later.\r\n");
	else if (delayed)
		ADD("    Not delivered yet: the receiving mail server could not be reached.\r\n");
	else if (server && reply[0] == '5')
		ADD("    The receiving mail server refused the message.\r\n");
	else if (strcmp(queue_bounce_status(r->reply, st), "4.4.7") == 0)
		ADD("    Delivery kept failing until the time allowed for it ran out.\r\n");
	else
		ADD("    The message could not be delivered.\r\n");
	if (reply[0] == 0)
		ADD("    No reason was recorded.\r\n");
	else if (server)
		ADDF("    The receiving server said: %s\r\n", reply);
	else
		ADDF("    Reason: %s\r\n", reply);
	/* What kind of failure, in the words the delivery log uses; the
	 * RFC 3464 part keeps to its own fields. */
	if (!delayed)
		ADDF("    Reason class: %s\r\n", queue_class_name(queue_class_of(0, r->reply)));
	ADD("\r\n");
	return 0;
}

/* The template with its variables filled in, CRLF line ends; Subject apart. */
static int add_notice(struct queue_buf *out, const char *tmpl, const struct queue_env *env,
		      const uint32_t *rcpt, uint32_t n, const struct queue_bounce_opts *bo,
		      const char *host, bool full)
{
	char date[64], id[17];
	const char *p = strchr(tmpl, '\n');

	/* The Subject line was used by the caller; the blank line after it too. */
	p = p ? p + 1 : tmpl + strlen(tmpl);
	if (*p == '\r')
		p++;
	if (*p == '\n')
		p++;
	for (; *p; p++) {
		const char *name;
		size_t k = (p[0] == '$' && p[1] == '{') ? tmpl_var(p, &name) : 0;

		if (k == 0) {
			if (*p == '\n' && (p == tmpl || p[-1] != '\r'))
				ADD("\r\n");
			else if (queue_buf_add(out, p, 1) < 0)
				return -ENOMEM;
			continue;
		}
		p += k - 1;
		if (strcmp(name, "hostname") == 0) {
			ADD(host);
		} else if (strcmp(name, "sender") == 0) {
			ADD(env->sender);
		} else if (strcmp(name, "queue_id") == 0) {
			ADD(queue_id_fmt(env->qid, id));
		} else if (strcmp(name, "arrival_date") == 0) {
			rfc5322_date(env->arrival_ns, date, sizeof(date));
			ADD(date);
		} else if (strcmp(name, "retry_until") == 0) {
			if (bo->retry_until_ns == 0)
				ADD("the message's time runs out");
			rfc5322_date(bo->retry_until_ns, date, sizeof(date));
			if (bo->retry_until_ns != 0)
				ADD(date);
		} else if (strcmp(name, "recipients") == 0) {
			for (uint32_t i = 0; i < n; i++)
				if (add_rcpt_story(out, &env->rcpt[rcpt[i]], bo->delayed) < 0)
					return -ENOMEM;
		} else if (strcmp(name, "returned") == 0) {
			ADD(full ? "A copy of your message is attached below."
				 : "The header of your message is attached below.");
		}
	}
	if (out->len < 2 || memcmp(out->p + out->len - 2, "\r\n", 2) != 0)
		ADD("\r\n");
	return 0;
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
	const char *tmpl = bo->delayed ? (bo->tmpl_delayed ? bo->tmpl_delayed : delayed_text)
				       : (bo->tmpl_failed ? bo->tmpl_failed : failed_text);
	const char *m = msg;
	size_t hlen = len;
	int rc;

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
	/* The template's first line; non-ASCII would need RFC 2047 words. */
	ADDF("%.*s\r\n", (int)strcspn(tmpl, "\r\n"), tmpl);
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
	rc = add_notice(out, tmpl, env, rcpt, n, bo, host, full);
	if (rc < 0)
		return rc;
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
