/*
 * queue_rules.h - what a failed delivery means: bounce classes, and the
 * throttle rules that react to a receiver's replies.
 *
 * SYNOPSIS
 *	enum queue_class c = queue_class_of(550, "550 5.1.1 <x@y>: user unknown");
 *	const char *name = queue_class_name(c);             ("bad-mailbox")
 *	int c = queue_class_parse("spam-block");
 *
 *	rc = queue_rules_load(path_or_NULL, &rules, err, sizeof(err));
 *	rc = queue_rules_load_conf(conf, &rules, err, sizeof(err));  ([rules] file)
 *	rc = queue_rules_load_text(text, len, name, &rules, err, sizeof(err));
 *	const struct queue_rule *r = queue_rules_match(rules, 421, text);
 *	queue_rules_free(rules);
 *
 * DESCRIPTION
 *	Bounce classes. queue_class_of() sorts a failure into one of the
 *	classes below from the reply as dmta keeps it: one line that may
 *	start with the code and an enhanced status code ("550 5.1.1 ..."),
 *	with dmta's own code ("4.4.3 ..."), or with the host a session
 *	failure happened on ("mx.example[192.0.2.1]: connect: refused"). The
 *	enhanced status code is read by smtp/'s parser (smtp_reply_status()).
 *	A table in queue_rules.c decides, first matching row wins: enhanced
 *	codes whose meaning is settled (RFC 3463, RFC 5248 and the large
 *	providers' documented uses), then text patterns the providers
 *	document ("user unknown", "over quota", "Spamhaus", "[TS01]", ...),
 *	then the subject of the enhanced code alone (x.7.x policy, x.5.x
 *	protocol, ...). What nothing matches is QUEUE_CLASS_OTHER. A success
 *	(2xx, 3xx) is QUEUE_CLASS_NONE.
 *
 *	Throttle rules. A rules file has one rule per line:
 *
 *	    NAME MATCHER... action=ACTION [ARG...]
 *
 *	NAME is letters, digits, '.', '_' or '-' (at most 63). Matchers, all
 *	of which must match (at least one is needed):
 *	    code=421 | code=4xx | code=5xx   the reply code, or its class
 *	    esc=4.7.28 | esc=4.7 | esc=4.7.500..4.7.699
 *	                                     the enhanced status code: exact,
 *	                                     a prefix of whole parts, or a
 *	                                     range (class and subject equal)
 *	    text="rate limited" | text=S3150 a case-insensitive substring
 *	    class=spam-block                 the bounce class (queue_class_of())
 *	Actions:
 *	    action=suspend DURATION (or for=DURATION)
 *	    action=throttle [rate=N/UNIT] [connections=N] for=DURATION
 *	                                     (at least one of rate, connections)
 *	    action=bounce                    the recipient fails for good now
 *	DURATION as in dmta.conf ("90s", "10m", "2h"; at most 30 days); a rate
 *	as in dmta.conf too (dmta_parse_rate(): N/s, N/min, N/h or N/day, a
 *	bare N per second; N > 0). '#' starts a comment where a word may
 *	start; blank lines are skipped. Rules are tried in file order and the
 *	first that matches a reply wins. Only failures (4xx, 5xx) match.
 *
 *	Without a file the built-in set (queue_rules_default_text(), shipped
 *	as tools/dmta-rules.sample) applies: the documented throttling
 *	replies of Gmail, Microsoft and Yahoo and the generic "too many
 *	connections" / "rate limit" replies, with conservative durations.
 *	What a rule's action does to a (source, site) is the scheduler's.
 *
 * DIAGNOSTICS
 *	queue_rules_load() returns 0, -EINVAL (a bad line: err says
 *	"FILE:LINE: what is wrong"), -errno when the file cannot be read or
 *	-EFBIG when it is over 1 MiB (err names the file), or -ENOMEM. Nothing
 *	is kept from a file that fails.
 */
#ifndef QUEUE_RULES_H
#define QUEUE_RULES_H

#include <stddef.h>
#include <stdint.h>

enum queue_class {
	QUEUE_CLASS_NONE = 0, /* delivered, or not a failure */
	QUEUE_CLASS_BAD_MAILBOX,
	QUEUE_CLASS_INACTIVE_MAILBOX,
	QUEUE_CLASS_QUOTA,
	QUEUE_CLASS_SPAM_BLOCK,
	QUEUE_CLASS_POLICY,
	QUEUE_CLASS_CONTENT,
	QUEUE_CLASS_DNS,
	QUEUE_CLASS_ROUTING,
	QUEUE_CLASS_PROTOCOL,
	QUEUE_CLASS_TLS,
	QUEUE_CLASS_OTHER,
	QUEUE_CLASS_N
};

/** "bad-mailbox", ..., "other"; "" for QUEUE_CLASS_NONE and unknown values. */
const char *queue_class_name(unsigned cls);

/** The class named @p name ("quota"), or -1. */
int queue_class_parse(const char *name);

/**
 * The class of a failure. @p code is the reply code (0 when there is none,
 * e.g. a connection failure); @p text is the reply as dmta keeps it (may be
 * NULL). 2xx and 3xx are QUEUE_CLASS_NONE; a failure nothing recognises is
 * QUEUE_CLASS_OTHER.
 */
enum queue_class queue_class_of(int code, const char *text);

enum queue_rule_act { QUEUE_ACT_SUSPEND, QUEUE_ACT_THROTTLE, QUEUE_ACT_BOUNCE };

/** An enhanced status code pattern: class (0: any) and subject*1000+detail in [lo, hi]. */
struct queue_esc_pat {
	int cls;
	int lo, hi;
};

struct queue_rule {
	const char *name;
	enum queue_rule_act act;
	uint64_t duration_ms;  /* suspend, throttle: how long; bounce: 0 */
	double rate_per_s;     /* throttle: the reduced rate; 0: keep */
	uint64_t rate_per_day; /* the same as dmta_parse_rate() reads it (struct queue_throttle) */
	uint32_t max_connections; /* throttle: the reduced limit; 0: keep */
	/* Matchers; every one given must match. */
	int code;		  /* 0: any; 4 or 5: the class; 400..599: exact */
	int has_esc;		  /* esc below is set */
	struct queue_esc_pat esc; /* matched against the reply's enhanced code */
	const char *text;	  /* a substring, in lower case (any case matches), or NULL */
	int cls;		  /* enum queue_class, or -1: any */
	unsigned line;		  /* where it was written */
};

struct queue_rules;
struct dmta_conf;
struct dmta_conf_section;

/** [rules] file = PATH; see dmta.conf(5). */
extern const struct dmta_conf_section queue_rules_conf_section;

/** The built-in rule set as rules-file text (what tools/dmta-rules.sample holds). */
const char *queue_rules_default_text(void);

/**
 * Load the rules of @p path, or the built-in set when @p path is NULL, into
 * a new *@p out (the caller frees it with queue_rules_free()). On failure
 * *@p out is NULL and @p err holds one line; see DIAGNOSTICS.
 */
int queue_rules_load(const char *path, struct queue_rules **out, char *err, size_t errlen);

/**
 * As queue_rules_load(), from the @p len bytes at @p text (no NUL needed;
 * one inside is an error), called @p name in errors.
 */
int queue_rules_load_text(const char *text, size_t len, const char *name, struct queue_rules **out,
			  char *err, size_t errlen);

/** As queue_rules_load(), with the path from [rules] file of @p conf (NULL: built-in). */
int queue_rules_load_conf(const struct dmta_conf *conf, struct queue_rules **out, char *err,
			  size_t errlen);

/** Free @p rules (NULL is fine); rules it returned are gone with it. */
void queue_rules_free(struct queue_rules *rules);

/** How many rules; the i-th, in file order (for listings). */
size_t queue_rules_count(const struct queue_rules *rules);
const struct queue_rule *queue_rules_at(const struct queue_rules *rules, size_t i);

/**
 * The first rule that matches a failure (reply @p code, 0 when unknown:
 * then code=4xx/5xx match the class the text's status shows, and exact
 * codes never match; @p text as for queue_class_of()), or NULL. The rule
 * lives as long as @p rules.
 */
const struct queue_rule *queue_rules_match(const struct queue_rules *rules, int code,
					   const char *text);

/** "suspend", "throttle", "bounce". */
const char *queue_rule_act_name(unsigned act);

#endif
