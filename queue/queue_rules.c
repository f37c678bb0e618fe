/*
 * queue_rules.c - see queue_rules.h.
 *
 * Both tables here are data: the class of a failure comes from class_rows
 * (first match wins), and the built-in throttle rules are rules-file text
 * read by the same parser as an operator's file, so the sample shipped in
 * tools/ is checked against it byte for byte by a unit test.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "queue/queue_rules.h"
#include "smtp/smtp_reply.h"

/* Longest rules-file line, size of a file, rules in a set. */
#define RULES_LINE_MAX	  1024
#define RULES_FILE_MAX	  (1024 * 1024)
#define RULES_MAX	  10000
#define RULE_NAME_MAX	  63
#define RULE_DURATION_MAX DMTA_CONF_DAY(30)
#define RULE_CONN_MAX	  100000

static const char *const class_names[QUEUE_CLASS_N] = {
    [QUEUE_CLASS_NONE] = "",
    [QUEUE_CLASS_BAD_MAILBOX] = "bad-mailbox",
    [QUEUE_CLASS_INACTIVE_MAILBOX] = "inactive-mailbox",
    [QUEUE_CLASS_QUOTA] = "quota",
    [QUEUE_CLASS_SPAM_BLOCK] = "spam-block",
    [QUEUE_CLASS_POLICY] = "policy",
    [QUEUE_CLASS_CONTENT] = "content",
    [QUEUE_CLASS_DNS] = "dns",
    [QUEUE_CLASS_ROUTING] = "routing",
    [QUEUE_CLASS_PROTOCOL] = "protocol",
    [QUEUE_CLASS_TLS] = "tls",
    [QUEUE_CLASS_OTHER] = "other",
};

const char *queue_class_name(unsigned cls)
{
	return cls < QUEUE_CLASS_N ? class_names[cls] : "";
}

int queue_class_parse(const char *name)
{
	for (unsigned i = 1; name != NULL && i < QUEUE_CLASS_N; i++)
		if (strcmp(name, class_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *queue_rule_act_name(unsigned act)
{
	static const char *const names[] = {"suspend", "throttle", "bounce"};

	return act < sizeof(names) / sizeof(names[0]) ? names[act] : "?";
}

/*
 * Enhanced status code patterns. One part of a pattern, "5.1.1", "x.1.1"
 * (any class), "5.7" or "5" (a prefix of whole parts), is read by smtp/'s
 * parser of enhanced codes once the missing parts are filled in with
 * zeros; a range "4.7.500..4.7.699" is two exact codes of one class and
 * subject.
 */
static int esc_pat_one(const char *s, size_t len, struct queue_esc_pat *p)
{
	char buf[SMTP_ESC_STRLEN + 4];
	struct smtp_esc e;
	unsigned parts = 1;
	bool any = false;
	size_t n;

	if (len == 0 || len >= SMTP_ESC_STRLEN)
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (buf[0] == 'x' || buf[0] == 'X') {
		buf[0] = '5';
		any = true;
	}
	for (size_t i = 0; i < len; i++)
		parts += buf[i] == '.';
	if (parts > 3)
		return -1;
	strcat(buf, parts == 1 ? ".0.0" : parts == 2 ? ".0" : "");
	n = strlen(buf);
	if (smtp_esc_parse(buf, n, &e) != (int)n || e.cls == 2)
		return -1;
	p->cls = any ? 0 : e.cls;
	p->lo = parts == 1 ? 0 : e.subject * 1000 + (parts == 2 ? 0 : e.detail);
	p->hi = parts == 1 ? 999999 : parts == 2 ? p->lo + 999 : p->lo;
	return 0;
}

static int esc_pat_parse(const char *s, struct queue_esc_pat *p)
{
	const char *dots = strstr(s, "..");
	struct queue_esc_pat a, b;

	if (dots == NULL)
		return esc_pat_one(s, strlen(s), p);
	if (esc_pat_one(s, (size_t)(dots - s), &a) != 0 ||
	    esc_pat_one(dots + 2, strlen(dots + 2), &b) != 0)
		return -1;
	/* Both ends exact, one class and subject, in order. */
	if (a.lo != a.hi || b.lo != b.hi || a.cls != b.cls || a.lo / 1000 != b.lo / 1000 ||
	    a.lo > b.lo)
		return -1;
	*p = (struct queue_esc_pat){.cls = a.cls, .lo = a.lo, .hi = b.hi};
	return 0;
}

/*
 * What a reply says about itself: its class and enhanced code, if any, and
 * its text in lower case. Phrases are kept in lower case, so each is one
 * strstr() over the folded text rather than a case-folding search: a
 * reply is folded once, not once per phrase. Replies dmta keeps are far
 * shorter than REPLY_FOLD_MAX; past it, the rest is not searched.
 */
#define REPLY_FOLD_MAX SMTP_REPLY_LINE_MAX

struct reply_status {
	int code;     /* as given, 0: unknown */
	int ccls;     /* 2..5, or 0 when nothing tells */
	bool has_esc; /* esc is the reply's enhanced code */
	struct smtp_esc esc;
	const char *lower; /* the text folded to lower case, or NULL */
	char buf[REPLY_FOLD_MAX + 1];
};

static void reply_status(int code, const char *text, struct reply_status *st)
{
	int rc = text ? smtp_reply_status(text, strlen(text), &st->esc) : -1;
	size_t i = 0;

	st->code = code;
	st->has_esc = rc == 1;
	st->ccls = code ? code / 100 : rc >= 0 ? st->esc.cls : 0;
	st->lower = NULL;
	if (text == NULL)
		return;
	for (; text[i] && i < REPLY_FOLD_MAX; i++)
		st->buf[i] = (char)tolower((unsigned char)text[i]);
	st->buf[i] = 0;
	st->lower = st->buf;
}

/* Whether the reply holds @p phrase (lower case). */
static bool reply_has(const struct reply_status *st, const char *phrase)
{
	return st->lower != NULL && strstr(st->lower, phrase) != NULL;
}

static bool esc_match(const struct queue_esc_pat *p, const struct reply_status *st)
{
	int v = st->esc.subject * 1000 + st->esc.detail;

	return st->has_esc && (p->cls == 0 || p->cls == st->esc.cls) && v >= p->lo && v <= p->hi;
}

/*
 * Bounce classes, first matching row wins. A row matches when the reply's
 * enhanced code fits its pattern (NULL: any, with or without a code) and
 * the text holds its phrase (case-insensitive; NULL: any). Three blocks:
 *  1. enhanced codes that settle the class (RFC 3463, RFC 5248, RFC 7505
 *     and the providers' documented uses), with the exceptions known to
 *     reuse them placed before them;
 *  2. phrases, for replies without a code or with a vague one (x.0.0,
 *     x.5.0, x.7.1, ...), the more specific before the general;
 *  3. the subject of the enhanced code alone.
 * To add a provider's reply: a row in block 1 if its code is specific to
 * the meaning, else a phrase in block 2 above any broader phrase it
 * contains, and a line in tests/unit/queue/test_rules.c's table.
 */
struct class_row {
	const char *esc;
	const char *text;
	enum queue_class cls;
};

#define ESC(p, c)                                                                                  \
	{                                                                                          \
		p, NULL, QUEUE_CLASS_##c                                                           \
	}
#define ESC_TEXT(p, t, c)                                                                          \
	{                                                                                          \
		p, t, QUEUE_CLASS_##c                                                              \
	}
#define TEXT(t, c)                                                                                 \
	{                                                                                          \
		NULL, t, QUEUE_CLASS_##c                                                           \
	}

static const struct class_row class_rows[] = {
    /* 1. Codes. Microsoft answers 5.1.10 for an unknown recipient
     * (RESOLVER.ADR.RecipientNotFound); for RFC 7505 it is a null MX. */
    ESC_TEXT("x.1.10", "recipientnotfound", BAD_MAILBOX),
    ESC_TEXT("x.1.10", "recipient not found", BAD_MAILBOX),
    ESC("x.1.10", DNS),
    ESC("x.1.1", BAD_MAILBOX),
    ESC("x.1.2", DNS), /* bad destination system: dmta's own NXDOMAIN */
    ESC("x.1.3", BAD_MAILBOX),
    ESC("x.1.4", BAD_MAILBOX),
    ESC("x.1.6", INACTIVE_MAILBOX), /* moved, no forwarding address */
    ESC("x.1.7", POLICY),	    /* the sender's address */
    ESC("x.1.8", POLICY),
    /* Gmail: "450-4.2.1 The user you are trying to contact is receiving
     * mail at a rate that prevents additional messages from being
     * delivered": a throttle on one mailbox, not a disabled one. */
    ESC_TEXT("x.2.1", "receiving mail at a rate", POLICY),
    ESC_TEXT("x.2.1", "receiving mail too quickly", POLICY),
    ESC("x.2.1", INACTIVE_MAILBOX),
    ESC("x.2.2", QUOTA),
    ESC("x.2.3", CONTENT), /* message length exceeds an administrative limit */
    ESC("x.3.4", CONTENT), /* message too big for the system */
    ESC("x.4.3", DNS),
    ESC("x.4.4", DNS),
    ESC("x.4.6", ROUTING), /* routing loop */
    ESC("x.6", CONTENT),
    ESC("x.7.10", TLS),			 /* encryption needed */
    ESC("x.7.11", TLS),			 /* encryption required for the AUTH mechanism */
    ESC("x.7.13", INACTIVE_MAILBOX),	 /* user account disabled */
    ESC("x.7.17", INACTIVE_MAILBOX),	 /* mailbox owner has changed */
    ESC("x.7.18", INACTIVE_MAILBOX),	 /* domain owner has changed */
    ESC("x.7.23..x.7.27", POLICY),	 /* SPF, DKIM, DMARC, PTR: authentication */
    ESC("4.7.28", POLICY),		 /* Gmail: rate limited, unusual rate */
    ESC("5.7.28", SPAM_BLOCK),		 /* Gmail: unusual rate of unsolicited mail */
    ESC("5.7.606..5.7.649", SPAM_BLOCK), /* Microsoft: banned sending IP */
    ESC("5.7.708", SPAM_BLOCK),		 /* Microsoft: traffic not accepted from this IP */
    ESC("5.7.750", POLICY),		 /* Microsoft: sending from unregistered domains */
    ESC("4.7.500..4.7.699", POLICY),	 /* Microsoft: server busy, throttled */

    /* 2. Phrases. TLS first: dmta's own "454 4.7.0 TLS failed", and
     * "530 5.7.0 Must issue a STARTTLS command first". */
    TEXT("starttls", TLS),
    TEXT("tls", TLS),
    TEXT("ssl", TLS),
    TEXT("certificate", TLS),
    TEXT("encryption required", TLS),
    /* Authentication of the sender: before "dns" (reverse DNS) and
     * "blocked" (Yahoo: "blocked because the sender is unauthenticated"). */
    TEXT("unauthenticated", POLICY),
    TEXT("authenticat", POLICY),
    TEXT("spf", POLICY),
    TEXT("dkim", POLICY),
    TEXT("dmarc", POLICY),
    TEXT("ptr record", POLICY),
    TEXT("reverse dns", POLICY),
    TEXT("rdns", POLICY),
    /* DNS: before "does not exist" (a domain, not a mailbox). */
    TEXT("nxdomain", DNS),
    TEXT("domain not found", DNS),
    TEXT("domain does not exist", DNS),
    TEXT("host not found", DNS),
    TEXT("name service error", DNS),
    TEXT("null mx", DNS),
    TEXT("dns", DNS),
    /* Quota, inactive, then bad mailboxes. */
    TEXT("over quota", QUOTA),
    TEXT("quota exceeded", QUOTA),
    TEXT("exceeded storage", QUOTA),
    TEXT("mailbox full", QUOTA),
    TEXT("mailbox is full", QUOTA),
    TEXT("insufficient storage", QUOTA),
    TEXT("quota", QUOTA),
    TEXT("account disabled", INACTIVE_MAILBOX),
    TEXT("account is disabled", INACTIVE_MAILBOX),
    TEXT("account has been disabled", INACTIVE_MAILBOX),
    TEXT("mailbox disabled", INACTIVE_MAILBOX),
    TEXT("mailbox is disabled", INACTIVE_MAILBOX),
    TEXT("account suspended", INACTIVE_MAILBOX),
    TEXT("account has been suspended", INACTIVE_MAILBOX),
    TEXT("inactive", INACTIVE_MAILBOX),
    TEXT("deactivated", INACTIVE_MAILBOX),
    TEXT("no longer active", INACTIVE_MAILBOX),
    TEXT("user unknown", BAD_MAILBOX),
    TEXT("unknown user", BAD_MAILBOX),
    TEXT("no such user", BAD_MAILBOX),
    TEXT("no such mailbox", BAD_MAILBOX),
    TEXT("no such recipient", BAD_MAILBOX),
    TEXT("mailbox not found", BAD_MAILBOX),
    TEXT("mailbox unavailable", BAD_MAILBOX), /* Microsoft: 550 5.5.0 */
    TEXT("recipient not found", BAD_MAILBOX),
    TEXT("unknown recipient", BAD_MAILBOX),
    TEXT("invalid recipient", BAD_MAILBOX),
    TEXT("invalid mailbox", BAD_MAILBOX),
    TEXT("recipient address rejected: access denied", BAD_MAILBOX), /* Microsoft: 5.4.1 */
    TEXT("this user doesn't have", BAD_MAILBOX), /* Yahoo: "... a yahoo.com account" */
    TEXT("does not exist", BAD_MAILBOX),
    /* Throttling: before the blocklist words, since a throttle's text
     * often gives its reason ("unusual rate of unsolicited mail ... has
     * been temporarily rate limited"). Yahoo's [TS03] is permanent. */
    TEXT("[ts03]", SPAM_BLOCK),
    TEXT("permanently deferred", SPAM_BLOCK),
    TEXT("rate limit", POLICY),
    TEXT("unusual rate", POLICY),
    TEXT("too many connections", POLICY),
    TEXT("too many concurrent", POLICY),
    TEXT("maximum number of concurrent", POLICY),
    TEXT("too many messages", POLICY),
    TEXT("temporarily deferred", POLICY), /* Yahoo: [TS01], [TS02], [TSS04] */
    TEXT("server busy", POLICY),
    TEXT("greylist", POLICY),
    TEXT("graylist", POLICY),
    /* Content the receiver objects to, before "blocked" (Gmail: "blocked
     * because its content presents a potential security issue"). */
    TEXT("message too large", CONTENT),
    TEXT("message too big", CONTENT),
    TEXT("size exceeds", CONTENT),
    TEXT("exceeds size limit", CONTENT),
    TEXT("message size", CONTENT),
    TEXT("content presents", CONTENT),
    TEXT("attachment", CONTENT),
    TEXT("virus", CONTENT),
    TEXT("malware", CONTENT),
    TEXT("rfc 5322", CONTENT),
    TEXT("rfc5322", CONTENT),
    TEXT("header", CONTENT), /* Gmail: "missing a valid address in From: header" */
    /* Blocklists and spam. */
    TEXT("spamhaus", SPAM_BLOCK),
    TEXT("spamcop", SPAM_BLOCK),
    TEXT("barracuda", SPAM_BLOCK),
    TEXT("s3150", SPAM_BLOCK), /* Microsoft: the network is on our block list */
    TEXT("s3140", SPAM_BLOCK),
    TEXT("[bl2", SPAM_BLOCK), /* Yahoo: [BL21], [BL22], [BL23] */
    TEXT("blocklist", SPAM_BLOCK),
    TEXT("block list", SPAM_BLOCK),
    TEXT("blacklist", SPAM_BLOCK),
    TEXT("black list", SPAM_BLOCK),
    TEXT("listed in", SPAM_BLOCK),
    TEXT("banned", SPAM_BLOCK),
    TEXT("reputation", SPAM_BLOCK),
    TEXT("unsolicited", SPAM_BLOCK),
    TEXT("spam", SPAM_BLOCK),
    TEXT("junk", SPAM_BLOCK),
    TEXT("blocked", SPAM_BLOCK),
    TEXT("content", CONTENT),
    /* Policy in general. */
    TEXT("relay access denied", POLICY),
    TEXT("relaying denied", POLICY),
    TEXT("not authorized", POLICY),
    TEXT("policy", POLICY),
    TEXT("access denied", POLICY),
    TEXT("prohibited", POLICY),
    /* The path to the receiver: dmta's own "host[addr]: connect: ...". */
    TEXT("connect:", ROUTING),
    TEXT("connection refused", ROUTING),
    TEXT("connection failed", ROUTING),
    TEXT("connection reset", ROUTING),
    TEXT("lost connection", ROUTING),
    TEXT("timed out", ROUTING),
    TEXT("timeout", ROUTING),
    TEXT("no route to host", ROUTING),
    TEXT("unreachable", ROUTING),
    TEXT("hop count", ROUTING),
    TEXT("loop", ROUTING),
    /* The conversation itself. */
    TEXT("protocol error", PROTOCOL),
    TEXT("syntax error", PROTOCOL),
    TEXT("command not recognized", PROTOCOL),
    TEXT("command unrecognized", PROTOCOL),
    TEXT("bad sequence", PROTOCOL),
    TEXT("unexpected reply", PROTOCOL),
    TEXT("line too long", PROTOCOL),
    TEXT("too many recipients", PROTOCOL),

    /* 3. The subject of the code alone (RFC 3463 section 3). x.2.x
     * (mailbox) and x.3.x (mail system) stay "other": too broad. */
    ESC("x.1", BAD_MAILBOX),
    ESC("x.4.5", POLICY), /* congestion: Gmail's relay limits */
    ESC("x.4.7", OTHER),  /* delivery time expired */
    ESC("x.4", ROUTING),
    ESC("x.5", PROTOCOL),
    ESC("x.7", POLICY),
};

#define NCLASS_ROWS (sizeof(class_rows) / sizeof(class_rows[0]))

static struct queue_esc_pat class_pats[NCLASS_ROWS];
static pthread_once_t class_once = PTHREAD_ONCE_INIT;

static void class_rows_compile(void)
{
	for (size_t i = 0; i < NCLASS_ROWS; i++) {
		const char *t = class_rows[i].text;

		if (class_rows[i].esc && esc_pat_parse(class_rows[i].esc, &class_pats[i]) != 0)
			dmta_panic("queue_rules: class row %zu: bad pattern \"%s\"", i,
				   class_rows[i].esc);
		for (; t && *t; t++)
			if (isupper((unsigned char)*t))
				dmta_panic("queue_rules: class row %zu: \"%s\" not in lower case",
					   i, class_rows[i].text);
	}
}

static enum queue_class classify(const struct reply_status *st)
{
	if (st->ccls == 2 || st->ccls == 3)
		return QUEUE_CLASS_NONE;
	pthread_once(&class_once, class_rows_compile);
	for (size_t i = 0; i < NCLASS_ROWS; i++) {
		const struct class_row *r = &class_rows[i];

		if (r->esc && !esc_match(&class_pats[i], st))
			continue;
		if (r->text && !reply_has(st, r->text))
			continue;
		return r->cls;
	}
	return QUEUE_CLASS_OTHER;
}

enum queue_class queue_class_of(int code, const char *text)
{
	struct reply_status st;

	reply_status(code, text, &st);
	return classify(&st);
}

/*
 * Rules files.
 */
struct queue_rules {
	struct queue_rule *v;
	size_t n, cap;
};

void queue_rules_free(struct queue_rules *rules)
{
	if (rules == NULL)
		return;
	for (size_t i = 0; i < rules->n; i++) {
		free((char *)rules->v[i].name);
		free((char *)rules->v[i].text);
	}
	free(rules->v);
	free(rules);
}

size_t queue_rules_count(const struct queue_rules *rules)
{
	return rules ? rules->n : 0;
}

const struct queue_rule *queue_rules_at(const struct queue_rules *rules, size_t i)
{
	return rules && i < rules->n ? &rules->v[i] : NULL;
}

/* The state of one line being read. */
struct rule_line {
	const char *file;
	unsigned line;
	char *err;
	size_t errlen;
};

static int line_err(const struct rule_line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int line_err(const struct rule_line *l, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(l->err, l->errlen, "%s:%u: %s", l->file, l->line, what);
	return -EINVAL;
}

/*
 * The next word of a line at *p: blanks skipped, a word ends at a blank;
 * a value in double quotes after '=' may hold blanks (the quotes are
 * dropped). Returns the word (NUL-terminated in place), NULL at the end of
 * the line or a comment, or sets *bad on an unterminated quote.
 */
static char *next_word(char **p, bool *bad)
{
	char *s = *p, *w, *o;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == 0 || *s == '#')
		return NULL;
	w = o = s;
	while (*s && *s != ' ' && *s != '\t') {
		if (*s == '"' && s > w && s[-1] == '=') {
			char *q = strchr(s + 1, '"');

			if (q == NULL) {
				*bad = true;
				return NULL;
			}
			memmove(o, s + 1, (size_t)(q - s - 1));
			o += q - s - 1;
			s = q + 1;
			continue;
		}
		*o++ = *s++;
	}
	if (*s)
		s++;
	*o = 0;
	*p = s;
	return w;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RULE_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

static int parse_code(const char *v, int *code)
{
	if (strlen(v) != 3 || (v[0] != '4' && v[0] != '5'))
		return -EINVAL;
	if ((v[1] == 'x' || v[1] == 'X') && (v[2] == 'x' || v[2] == 'X')) {
		*code = v[0] - '0';
		return 0;
	}
	if (!isdigit((unsigned char)v[1]) || !isdigit((unsigned char)v[2]))
		return -EINVAL;
	*code = atoi(v);
	return 0;
}

static int parse_duration(const struct rule_line *l, const char *v, uint64_t *ms)
{
	if (dmta_parse_duration_ms(v, ms) != 0 || *ms == 0 || *ms > RULE_DURATION_MAX)
		return line_err(l, "bad duration \"%s\" (want e.g. 90s, 10m, 2h; at most 30d)", v);
	return 0;
}

/* The keys of a rule, in the order of rule_keys[]. */
enum rule_key { K_CODE, K_ESC, K_TEXT, K_CLASS, K_ACTION, K_FOR, K_RATE, K_CONN, K_N };

static const char *const rule_keys[K_N] = {"code",   "esc", "text", "class",
					   "action", "for", "rate", "connections"};

/* The value @p v of key @p k into @p r; 0, or -EINVAL with l's err set. */
static int parse_value(const struct rule_line *l, enum rule_key k, char *v, struct queue_rule *r)
{
	uint64_t n;

	switch (k) {
	case K_CODE:
		if (parse_code(v, &r->code) != 0)
			return line_err(l, "bad code \"%s\" (want e.g. 421, 4xx or 5xx)", v);
		return 0;
	case K_ESC:
		if (esc_pat_parse(v, &r->esc) != 0)
			return line_err(l,
					"bad enhanced code \"%s\" (want e.g. 4.7.28, 4.7 or "
					"4.7.500..4.7.699; class 4, 5 or x)",
					v);
		r->has_esc = 1;
		return 0;
	case K_TEXT:
		/* Compared with the reply folded to lower case. */
		for (char *c = v; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		r->text = v;
		return 0;
	case K_CLASS:
		r->cls = queue_class_parse(v);
		if (r->cls < 0)
			return line_err(l, "unknown class \"%s\" (see dmta-rules(5))", v);
		return 0;
	case K_ACTION:
		if (strcmp(v, "suspend") == 0)
			r->act = QUEUE_ACT_SUSPEND;
		else if (strcmp(v, "throttle") == 0)
			r->act = QUEUE_ACT_THROTTLE;
		else if (strcmp(v, "bounce") == 0)
			r->act = QUEUE_ACT_BOUNCE;
		else
			return line_err(
			    l, "unknown action \"%s\" (want suspend, throttle or bounce)", v);
		return 0;
	case K_FOR:
		return parse_duration(l, v, &r->duration_ms);
	case K_RATE:
		/* As dmta.conf writes rates: one parser for both. */
		if (dmta_parse_rate(v, &r->rate_per_day) != 0 || r->rate_per_day == 0)
			return line_err(l, "bad rate \"%s\" (want N/s, N/min, N/h or N/day, N > 0)",
					v);
		r->rate_per_s = (double)r->rate_per_day / 86400;
		return 0;
	case K_CONN:
		if (dmta_parse_u64(v, &n) != 0 || n == 0 || n > RULE_CONN_MAX)
			return line_err(l, "bad connections \"%s\" (want 1 to %d)", v,
					RULE_CONN_MAX);
		r->max_connections = (uint32_t)n;
		return 0;
	default:
		dmta_panic("queue_rules: key %d", k);
	}
}

/* What each action needs and refuses, once the whole line is read. */
static int check_rule(const struct rule_line *l, const bool *seen, const struct queue_rule *r)
{
	if (!seen[K_ACTION])
		return line_err(l, "rule %s has no action= (suspend, throttle or bounce)", r->name);
	if (!seen[K_CODE] && !seen[K_ESC] && !seen[K_TEXT] && !seen[K_CLASS])
		return line_err(
		    l, "rule %s matches nothing: give code=, esc=, text= or class=", r->name);
	switch (r->act) {
	case QUEUE_ACT_SUSPEND:
		if (seen[K_RATE] || seen[K_CONN])
			return line_err(l,
					"rule %s: suspend takes no rate= or connections=", r->name);
		if (!seen[K_FOR])
			return line_err(l, "rule %s: suspend needs a duration (e.g. suspend 10m)",
					r->name);
		return 0;
	case QUEUE_ACT_THROTTLE:
		if (!seen[K_RATE] && !seen[K_CONN])
			return line_err(l,
					"rule %s: throttle needs rate= or connections=", r->name);
		if (!seen[K_FOR])
			return line_err(l, "rule %s: throttle needs for=DURATION", r->name);
		return 0;
	case QUEUE_ACT_BOUNCE:
		if (seen[K_FOR] || seen[K_RATE] || seen[K_CONN])
			return line_err(
			    l, "rule %s: bounce takes no duration, rate= or connections=", r->name);
		return 0;
	default:
		dmta_panic("queue_rules: action %d", r->act);
	}
}

/* One rule from the words of line @p s; 0, or -EINVAL with l's err set. */
static int parse_rule(const struct rule_line *l, char *s, struct queue_rule *r)
{
	bool seen[K_N] = {false};
	bool bad = false, after_suspend = false;
	char *w = next_word(&s, &bad);

	*r = (struct queue_rule){.cls = -1, .line = l->line};
	if (w == NULL)
		return line_err(l, "a quoted value has no closing '\"'");
	if (strchr(w, '=') || !name_ok(w))
		return line_err(l,
				"\"%s\": a rule starts with its name (letters, digits, '.', '_', "
				"'-'; at most %d)",
				w, RULE_NAME_MAX);
	r->name = w;
	while ((w = next_word(&s, &bad)) != NULL) {
		char *v = strchr(w, '=');
		unsigned k;

		/* "action=suspend 10m": the duration may follow bare. */
		if (v == NULL && after_suspend && !seen[K_FOR]) {
			if (parse_duration(l, w, &r->duration_ms) != 0)
				return -EINVAL;
			seen[K_FOR] = true;
			after_suspend = false;
			continue;
		}
		if (v == NULL)
			return line_err(l, "\"%s\": want KEY=VALUE", w);
		*v++ = 0;
		for (k = 0; k < K_N; k++)
			if (strcmp(w, rule_keys[k]) == 0)
				break;
		if (k == K_N)
			return line_err(
			    l,
			    "unknown key \"%s\" (known: code, esc, text, class, action, "
			    "for, rate, connections)",
			    w);
		if (seen[k])
			return line_err(l, "%s= given twice", w);
		if (*v == 0)
			return line_err(l, "%s= needs a value", w);
		if (parse_value(l, k, v, r) != 0)
			return -EINVAL;
		seen[k] = true;
		after_suspend = k == K_ACTION && r->act == QUEUE_ACT_SUSPEND;
	}
	if (bad)
		return line_err(l, "a quoted value has no closing '\"'");
	return check_rule(l, seen, r);
}

static int rules_add(struct queue_rules *rs, const struct queue_rule *r)
{
	struct queue_rule *c;

	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;
		struct queue_rule *v = realloc(rs->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	c = &rs->v[rs->n];
	*c = *r;
	c->name = strdup(r->name);
	c->text = r->text ? strdup(r->text) : NULL;
	if (c->name == NULL || (r->text && c->text == NULL)) {
		free((char *)c->name);
		free((char *)c->text);
		return -ENOMEM;
	}
	rs->n++;
	return 0;
}

/* Parse the rules in @p text (NUL-terminated) named @p file in errors. */
static int rules_parse(const char *text, const char *file, struct queue_rules *rs, char *err,
		       size_t errlen)
{
	struct rule_line l = {.file = file, .err = err, .errlen = errlen};
	char buf[RULES_LINE_MAX + 2];

	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		struct queue_rule r;
		int rc;

		l.line++;
		if (n > RULES_LINE_MAX)
			return line_err(&l, "longer than %d characters", RULES_LINE_MAX);
		memcpy(buf, p, n);
		buf[n] = 0;
		p += n + (p[n] == '\n');
		if (n && buf[n - 1] == '\r')
			buf[n - 1] = 0;
		for (size_t i = 0; buf[i]; i++)
			if ((unsigned char)buf[i] < 32 && buf[i] != '\t')
				return line_err(&l, "control character 0x%02x",
						(unsigned char)buf[i]);
		if (buf[strspn(buf, " \t")] == 0 || buf[strspn(buf, " \t")] == '#')
			continue; /* blank or a comment */
		if (rs->n == RULES_MAX)
			return line_err(&l, "more than %d rules", RULES_MAX);
		if (parse_rule(&l, buf, &r) != 0)
			return -EINVAL;
		for (size_t i = 0; i < rs->n; i++)
			if (strcmp(rs->v[i].name, r.name) == 0)
				return line_err(&l, "rule %s is already on line %u", r.name,
						rs->v[i].line);
		rc = rules_add(rs, &r);
		if (rc != 0) {
			snprintf(err, errlen, "%s: out of memory", file);
			return rc;
		}
	}
	return 0;
}

/*
 * The built-in rules: the large providers' documented throttling replies,
 * with durations on the cautious side (a provider that throttles wants
 * less traffic for a while; sending into it burns reputation). This text
 * is tools/dmta-rules.sample, byte for byte (a unit test compares them).
 */
static const char default_rules[] =
    "# dmta throttle rules: one rule a line, the first that matches a reply wins.\n"
    "# See dmta-rules(5). These are dmta's built-in rules, used when dmta.conf has\n"
    "# no [rules] file; copy this file to change them.\n"
    "#\n"
    "# NAME MATCHERS... action=suspend DURATION\n"
    "#                  action=throttle [rate=N/UNIT] [connections=N] for=DURATION\n"
    "#                  action=bounce\n"
    "\n"
    "# Gmail: \"421-4.7.28 ... an unusual rate of unsolicited mail originating from\n"
    "# your IP address ... has been temporarily rate limited\", and the 4.7.0 forms:\n"
    "# \"... very low reputation of the sending IP address ... temporarily rate\n"
    "# limited\", \"... unusual rate ...\".\n"
    "gmail-unusual-rate   code=4xx esc=4.7.28                      action=suspend 30m\n"
    "gmail-rate-limited   code=4xx esc=4.7.0 text=\"rate limited\"   action=suspend 30m\n"
    "gmail-unusual        code=4xx esc=4.7.0 text=\"unusual rate\"   action=suspend 30m\n"
    "\n"
    "# Microsoft (Outlook.com, Exchange Online): \"451 4.7.500 Server busy. Please\n"
    "# try again later from [IP]. (S77719)\", and the rest of 4.7.500-4.7.699\n"
    "# (4.7.650: rate limited due to IP reputation, ...).\n"
    "microsoft-s77719     code=4xx text=\"S77719\"                   action=throttle rate=10/min "
    "connections=2 for=30m\n"
    "microsoft-throttle   code=4xx esc=4.7.500..4.7.699            action=throttle rate=10/min "
    "connections=2 for=30m\n"
    "microsoft-busy       code=4xx text=\"server busy\"              action=throttle "
    "connections=2 for=15m\n"
    "\n"
    "# Yahoo: \"421 4.7.0 [TS01] Messages from IP temporarily deferred due to user\n"
    "# complaints\", [TS02] likewise, \"421 4.7.1 [TS03] All messages from IP\n"
    "# permanently deferred\", and the newer [TSS02] (complaints, or an unverified\n"
    "# sender) and [TSS04] \"... due to unexpected volume or user complaints\".\n"
    "yahoo-ts01           code=421 text=\"[TS01]\"                   action=suspend 1h\n"
    "yahoo-ts02           code=421 text=\"[TS02]\"                   action=suspend 2h\n"
    "yahoo-ts03           code=421 text=\"[TS03]\"                   action=suspend 4h\n"
    "yahoo-tss02          code=421 text=\"[TSS02]\"                  action=suspend 2h\n"
    "yahoo-tss04          code=421 text=\"[TSS04]\"                  action=throttle rate=60/h "
    "connections=1 for=1h\n"
    "\n"
    "# Anyone: \"421 Too many connections\", \"452 Too many concurrent SMTP\n"
    "# connections\", \"451 Rate limit exceeded\".\n"
    "too-many-connections code=4xx text=\"too many connections\"     action=throttle "
    "connections=1 for=15m\n"
    "too-many-concurrent  code=4xx text=\"too many concurrent\"      action=throttle "
    "connections=1 for=15m\n"
    "rate-limit           code=4xx text=\"rate limit\"               action=suspend 10m\n";

const char *queue_rules_default_text(void)
{
	return default_rules;
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	buf = malloc(RULES_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	n = fread(buf, 1, RULES_FILE_MAX + 1, f);
	if (ferror(f) || n > RULES_FILE_MAX) {
		int e = ferror(f) ? EIO : EFBIG;

		snprintf(err, errlen, "%s: %s", path,
			 e == EIO ? "read error" : "larger than 1 MiB");
		fclose(f);
		free(buf);
		return -e;
	}
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
}

int queue_rules_load_text(const char *text, size_t len, const char *name, struct queue_rules **out,
			  char *err, size_t errlen)
{
	struct queue_rules *rs;
	char *copy;
	int rc;

	*out = NULL;
	if (memchr(text, 0, len) != NULL) {
		snprintf(err, errlen, "%s: holds a NUL byte: not a rules file", name);
		return -EINVAL;
	}
	rs = calloc(1, sizeof(*rs));
	copy = malloc(len + 1);
	if (rs == NULL || copy == NULL) {
		free(rs);
		free(copy);
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	memcpy(copy, text, len);
	copy[len] = 0;
	rc = rules_parse(copy, name, rs, err, errlen);
	free(copy);
	if (rc != 0) {
		queue_rules_free(rs);
		return rc;
	}
	*out = rs;
	return 0;
}

int queue_rules_load(const char *path, struct queue_rules **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (path == NULL)
		return queue_rules_load_text(default_rules, sizeof(default_rules) - 1,
					     "(built-in rules)", out, err, errlen);
	rc = read_file(path, &text, &len, err, errlen);
	if (rc != 0)
		return rc;
	rc = queue_rules_load_text(text, len, path, out, err, errlen);
	free(text);
	return rc;
}

struct rules_keys {
	const char *file;
};

static const struct dmta_conf_key rules_keys[] = {
    {.name = "file",
     .type = DMTA_CONF_STR,
     .example = "/etc/dmta/rules",
     DMTA_CONF_AT(struct rules_keys, file),
     .help = "Automatic throttling: rules that suspend or slow a destination, or bounce\n"
	     "a recipient at once, by the reply's code, enhanced code and text (see\n"
	     "dmta-rules(5)). Without a file dmta's built-in rules for the large\n"
	     "providers apply (the same as dmta-rules.sample)."},
};

const struct dmta_conf_section queue_rules_conf_section = {
    .name = "rules",
    .keys = rules_keys,
    .nkeys = DMTA_CONF_NKEYS(rules_keys),
};

int queue_rules_load_conf(const struct dmta_conf *conf, struct queue_rules **out, char *err,
			  size_t errlen)
{
	struct rules_keys k = {0};

	/* A string key cannot be invalid: the result can be ignored. */
	(void)dmta_conf_read(conf, &queue_rules_conf_section, &k);
	return queue_rules_load(k.file && k.file[0] ? k.file : NULL, out, err, errlen);
}

static bool rule_match(const struct queue_rule *r, const struct reply_status *st, int *cls)
{
	if (r->code >= 100 ? r->code != st->code : r->code != 0 && r->code != st->ccls)
		return false;
	if (r->has_esc && !esc_match(&r->esc, st))
		return false;
	if (r->text && !reply_has(st, r->text))
		return false;
	if (r->cls >= 0) {
		if (*cls < 0)
			*cls = (int)classify(st);
		if (*cls != r->cls)
			return false;
	}
	return true;
}

const struct queue_rule *queue_rules_match(const struct queue_rules *rules, int code,
					   const char *text)
{
	struct reply_status st;
	int cls = -1;

	if (rules == NULL)
		return NULL;
	reply_status(code, text, &st);
	if (st.ccls == 2 || st.ccls == 3)
		return NULL;
	for (size_t i = 0; i < rules->n; i++)
		if (rule_match(&rules->v[i], &st, &cls))
			return &rules->v[i];
	return NULL;
}
