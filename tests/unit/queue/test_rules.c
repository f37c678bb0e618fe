/*
 * test_rules.c - bounce classes and throttle rules (queue/queue_rules.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_conf.h"
#include "queue/queue_rules.h"

#define C(x) QUEUE_CLASS_##x

/*
 * Replies as the large providers document them (Gmail's SMTP error
 * reference, Microsoft's Exchange Online NDR and Outlook.com pages,
 * Yahoo's sender hub error codes), as other common MTAs write them
 * (Postfix, Spamhaus-using sites), and as dmta writes its own reasons.
 */
static const struct {
	int code;
	const char *text;
	enum queue_class want;
} replies[] = {
    /* Gmail */
    {550,
     "550-5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos or unnecessary spaces.",
     C(BAD_MAILBOX)},
    {550, "550-5.2.1 The email account that you tried to reach is disabled.", C(INACTIVE_MAILBOX)},
    {452,
     "452-4.2.2 The email account that you tried to reach is over quota. Please direct the "
     "recipient to https://support.google.com/mail/?p=OverQuotaTemp",
     C(QUOTA)},
    {552, "552-5.2.2 The email account that you tried to reach is over quota and inactive.",
     C(QUOTA)},
    {450,
     "450-4.2.1 The user you are trying to contact is receiving mail too quickly. Please "
     "resend your message at a later time.",
     C(POLICY)},
    {550,
     "550-5.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
     "additional messages from being delivered.",
     C(POLICY)},
    {421,
     "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating "
     "from your IP address. To protect our users from spam, mail sent from your IP address "
     "has been temporarily rate limited.",
     C(POLICY)},
    {421,
     "421-4.7.0 This message is suspicious due to the very low reputation of the sending IP "
     "address. To protect our users from spam, mail sent from your IP address has been "
     "temporarily rate limited.",
     C(POLICY)},
    {550,
     "550-5.7.1 Our system has detected that this message is likely unsolicited mail. To "
     "reduce the amount of spam sent to Gmail, this message has been blocked.",
     C(SPAM_BLOCK)},
    {550,
     "550-5.7.1 This message is likely suspicious due to the very low reputation of the "
     "sending domain. To best protect our users from spam, the message has been blocked.",
     C(SPAM_BLOCK)},
    {550,
     "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail "
     "requires all senders to authenticate with either SPF or DKIM.",
     C(POLICY)},
    {550,
     "550-5.7.25 The IP address sending this message does not have a PTR record setup, or the "
     "corresponding forward DNS entry does not point to the sending IP.",
     C(POLICY)},
    {550,
     "550-5.7.27 Your email has been blocked because the sender is unauthenticated. Gmail "
     "requires all senders to authenticate with SPF.",
     C(POLICY)},
    {552,
     "552-5.7.0 This message was blocked because its content presents a potential security "
     "issue.",
     C(CONTENT)},
    {552, "552-5.2.3 Your message exceeded Google's message size limits.", C(CONTENT)},
    {550,
     "550-5.7.1 The user or domain that you are sending to (or from) has a policy that "
     "prohibited the mail that you sent.",
     C(POLICY)},
    {550,
     "550-5.7.1 [192.0.2.1] The IP you're using to send mail is not authorized to send email "
     "directly to our servers. Please use the SMTP relay at your service provider instead.",
     C(POLICY)},
    {550,
     "550-5.7.1 Messages missing a valid address in From: header, or having no From: header, "
     "are not accepted.",
     C(CONTENT)},
    {421, "421-4.7.0 Try again later, closing connection.", C(POLICY)},
    {421,
     "421 4.7.0 [192.0.2.1] Our system has detected that this message is suspicious due to the "
     "very low reputation of the sending domain. To best protect our users from spam, the "
     "message has been blocked.",
     C(SPAM_BLOCK)},
    /* a multi-line reply's first line only */
    {421, "421-4.7.28 [192.0.2.1] Our system has detected an unusual rate of", C(POLICY)},
    {554, "554-5.4.6 Message exceeded 50 hops, this may indicate a mail loop.", C(ROUTING)},
    {421, "421-4.3.0 Temporary System Problem. Try again later.", C(OTHER)},
    {452, "452-4.5.3 Your message has too many recipients.", C(PROTOCOL)},
    {550, "550-5.4.5 Daily SMTP relay limit exceeded for user.", C(POLICY)},
    /* Microsoft */
    {550, "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302).",
     C(BAD_MAILBOX)},
    {550,
     "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
     "[BN3NAM04FT007.eop-NAM04.prod.protection.outlook.com]",
     C(BAD_MAILBOX)},
    {550,
     "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3150).",
     C(SPAM_BLOCK)},
    {550,
     "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3140).",
     C(SPAM_BLOCK)},
    {451,
     "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719) "
     "[Name=Protocol Filter Agent]",
     C(POLICY)},
    {451,
     "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
     "reputation.",
     C(POLICY)},
    {550, "550 5.7.606 Access denied, banned sending IP [192.0.2.1].", C(SPAM_BLOCK)},
    {550, "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
     C(SPAM_BLOCK)},
    {550, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     C(BAD_MAILBOX)},
    {550, "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found", C(BAD_MAILBOX)},
    {554, "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException", C(QUOTA)},
    {550,
     "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification "
     "and has a DMARC policy of reject.",
     C(POLICY)},
    {550, "550 5.7.520 Access denied, Your organization does not allow external forwarding.",
     C(POLICY)},
    {552, "552 5.3.4 Message size exceeds fixed maximum message size", C(CONTENT)},
    {421,
     "421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, "
     "closing transmission channel",
     C(POLICY)},
    {554, "554 5.6.211 Invalid MIME content", C(CONTENT)},
    {550, "550 5.4.316 Message expired, connection refused(Socket error code 10061)", C(ROUTING)},
    {550, "550 5.7.750 Service unavailable. Client blocked from sending from unregistered domains.",
     C(POLICY)},
    {530, "530 5.7.57 Client not authenticated to send mail.", C(POLICY)},
    /* Yahoo */
    {421,
     "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints - "
     "4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     C(POLICY)},
    {421,
     "421 4.7.0 [TS02] Messages from 192.0.2.1 temporarily deferred due to user complaints - "
     "4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     C(POLICY)},
    {421, "421 4.7.1 [TS03] All messages from 192.0.2.1 permanently deferred", C(SPAM_BLOCK)},
    {421,
     "421 4.7.0 [TSS02] Messages from 192.0.2.1 temporarily deferred due to user complaints or "
     "because the IP/domain is in the unverified category.",
     C(POLICY)},
    {421,
     "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
     "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     C(POLICY)},
    {553,
     "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in "
     "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
     C(SPAM_BLOCK)},
    {554,
     "554 5.7.9 Message not accepted for policy reasons.  See "
     "https://postmaster.yahooinc.com/error-codes",
     C(POLICY)},
    {554,
     "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) "
     "[0] - mta1234.mail.ne1.yahoo.com",
     C(BAD_MAILBOX)},
    {554,
     "554 delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This "
     "mailbox is disabled (554.30). - mta1234.mail.ne1.yahoo.com",
     C(INACTIVE_MAILBOX)},
    {552, "552 1 Requested mail action aborted, mailbox not found", C(BAD_MAILBOX)},
    {554, "554 30 Sorry, your message size exceeds 41943040 bytes.", C(CONTENT)},
    {550,
     "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo "
     "requires all senders to authenticate with either SPF or DKIM.",
     C(POLICY)},
    /* Postfix, blocklists, generic servers */
    {550,
     "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in virtual mailbox "
     "table",
     C(BAD_MAILBOX)},
    {554,
     "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.1",
     C(SPAM_BLOCK)},
    {554, "554 5.7.1 Mail from 192.0.2.1 listed in bl.spamcop.net", C(SPAM_BLOCK)},
    {554, "554 5.7.1 <x@example.org>: Relay access denied", C(POLICY)},
    {450,
     "450 4.2.0 <x@example.org>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.org.html",
     C(POLICY)},
    {550, "550 5.7.1 Message rejected as spam by Content Filtering.", C(SPAM_BLOCK)},
    {550, "550 5.2.1 Mailbox disabled, not accepting messages", C(INACTIVE_MAILBOX)},
    {552, "552 Mailbox is full", C(QUOTA)},
    {550, "550 No such user here", C(BAD_MAILBOX)},
    {550, "550 User unknown", C(BAD_MAILBOX)},
    {421, "421 Too many connections from your IP, try again later", C(POLICY)},
    {451, "451 Rate limit exceeded, try again later", C(POLICY)},
    {454, "454 4.7.0 TLS not available due to local problem", C(TLS)},
    {530, "530 5.7.0 Must issue a STARTTLS command first", C(TLS)},
    {500, "500 5.5.2 Error: command not recognized", C(PROTOCOL)},
    {451, "451 4.3.0 Error: queue file write error", C(OTHER)},
    {554, "554 5.7.0 Reject, id=12345 - something we never heard of", C(POLICY)},
    {550, "550 Go away", C(OTHER)},
    /* dmta's own reasons */
    {451, "451 4.4.3 example.org: DNS temporary failure", C(DNS)},
    {421, "421 4.4.2 connection timed out", C(ROUTING)},
    {550, "550 5.1.2 nx.example: domain not found (NXDOMAIN)", C(DNS)},
    {550, "550 5.1.10 null.example does not accept mail (null MX, RFC 7505)", C(DNS)},
    {550, "550 5.4.4 no MX host of example.org has an address", C(DNS)},
    {0, "mx.example[198.18.1.10]: connect: Connection refused", C(ROUTING)},
    {0, "mx.example[198.18.1.10]: 454 4.7.0 TLS failed: certificate verify failed", C(TLS)},
    {451, "451 4.5.0 Protocol error: malformed or unexpected reply", C(PROTOCOL)},
    {451, "451 4.4.2 Lost connection with the server", C(ROUTING)},
    {0, "4.4.7 delivery time expired", C(OTHER)},
    {0, NULL, C(OTHER)},
    /* not failures */
    {250, "250 2.0.0 Ok: queued as 4D3A1", C(NONE)},
    {0, "250 2.1.5 Ok", C(NONE)},
};

static void test_class_table(void **state)
{
	unsigned bad = 0, n = sizeof(replies) / sizeof(replies[0]);

	assert_true(n >= 40);
	for (unsigned i = 0; i < n; i++) {
		enum queue_class got = queue_class_of(replies[i].code, replies[i].text);

		if (got != replies[i].want) {
			printf("%d \"%s\": got %s, want %s\n", replies[i].code,
			       replies[i].text ? replies[i].text : "(null)", queue_class_name(got),
			       queue_class_name(replies[i].want));
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void test_class_names(void **state)
{
	static const char *const names[] = {
	    "",	       "bad-mailbox", "inactive-mailbox", "quota",    "spam-block", "policy",
	    "content", "dns",	      "routing",	  "protocol", "tls",	    "other"};

	assert_int_equal(sizeof(names) / sizeof(names[0]), QUEUE_CLASS_N);
	for (unsigned i = 0; i < QUEUE_CLASS_N; i++) {
		assert_string_equal(queue_class_name(i), names[i]);
		assert_int_equal(queue_class_parse(names[i]), i == 0 ? -1 : (int)i);
	}
	assert_string_equal(queue_class_name(QUEUE_CLASS_N), "");
	assert_string_equal(queue_class_name(9999), "");
	assert_int_equal(queue_class_parse("Quota"), -1);
	assert_int_equal(queue_class_parse(NULL), -1);
	assert_string_equal(queue_rule_act_name(QUEUE_ACT_THROTTLE), "throttle");
}

/* Rules from @p text, through a file as an operator would give them. */
static int load_text(const char *text, struct queue_rules **out, char *err, size_t errlen)
{
	char path[] = "/tmp/dmta-test-rules-XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	rc = queue_rules_load(path, out, err, errlen);
	/* Errors name the file: check that, then drop it from err. */
	if (rc != 0) {
		assert_int_equal(strncmp(err, path, strlen(path)), 0);
		memmove(err, err + strlen(path), strlen(err + strlen(path)) + 1);
	}
	unlink(path);
	return rc;
}

static void test_rules_good(void **state)
{
	struct queue_rules *rs;
	const struct queue_rule *r;
	char err[512] = "";

	assert_int_equal(
	    load_text("# a comment\n"
		      "\n"
		      "gmail-rate  code=421 esc=4.7.28  text=\"rate limited\"  action=suspend 10m\n"
		      "  ms-throttle\tesc=4.7.500..4.7.699 action=throttle rate=10/min "
		      "connections=2 for=30m   # trailing comment\n"
		      "blocked     code=5xx text=\"S3150\" action=bounce\r\n"
		      "by-class    class=quota code=4xx action=suspend for=1h\n"
		      "prefix      esc=x.7 text=hourly action=throttle rate=3600/h for=2h\n"
		      "daily       esc=5 action=throttle rate=86400/day connections=1 for=1d",
		      &rs, err, sizeof(err)),
	    0);
	assert_int_equal(queue_rules_count(rs), 6);

	r = queue_rules_at(rs, 0);
	assert_string_equal(r->name, "gmail-rate");
	assert_int_equal(r->act, QUEUE_ACT_SUSPEND);
	assert_int_equal(r->duration_ms, 600000);
	assert_int_equal(r->code, 421);
	assert_true(r->has_esc);
	assert_string_equal(r->text, "rate limited");
	assert_int_equal(r->cls, -1);
	assert_int_equal(r->line, 3);

	r = queue_rules_at(rs, 1);
	assert_string_equal(r->name, "ms-throttle");
	assert_int_equal(r->act, QUEUE_ACT_THROTTLE);
	assert_true(r->rate_per_s > 10.0 / 60 - 1e-9 && r->rate_per_s < 10.0 / 60 + 1e-9);
	assert_int_equal(r->rate_per_day, 14400);
	assert_int_equal(r->max_connections, 2);
	assert_int_equal(r->duration_ms, 30 * 60000);
	assert_int_equal(r->code, 0);
	assert_null(r->text);

	r = queue_rules_at(rs, 2);
	assert_int_equal(r->act, QUEUE_ACT_BOUNCE);
	assert_int_equal(r->duration_ms, 0);
	assert_int_equal(r->code, 5);
	assert_int_equal(r->line, 5);

	r = queue_rules_at(rs, 3);
	assert_int_equal(r->cls, QUEUE_CLASS_QUOTA);
	assert_int_equal(r->duration_ms, 3600000);
	assert_true(queue_rules_at(rs, 4)->rate_per_s > 0.999 &&
		    queue_rules_at(rs, 4)->rate_per_s < 1.001);
	assert_true(queue_rules_at(rs, 5)->rate_per_s > 0.999 &&
		    queue_rules_at(rs, 5)->rate_per_s < 1.001);
	assert_int_equal(queue_rules_at(rs, 4)->rate_per_day, 86400);
	assert_int_equal(queue_rules_at(rs, 5)->rate_per_day, 86400);
	assert_null(queue_rules_at(rs, 6));

	/* Matching: every matcher must hold; code exact or its class. */
	r = queue_rules_match(rs, 421, "421 4.7.28 you are RATE LIMITED");
	assert_non_null(r);
	assert_string_equal(r->name, "gmail-rate");
	assert_null(queue_rules_match(rs, 450, "450 4.7.28 you are rate limited"));
	assert_null(queue_rules_match(rs, 421, "421 4.7.28 slow down"));
	/* the range, both ends included, and nothing outside it */
	assert_string_equal(queue_rules_match(rs, 451, "451 4.7.500 Server busy")->name,
			    "ms-throttle");
	assert_string_equal(queue_rules_match(rs, 451, "451 4.7.699 x")->name, "ms-throttle");
	assert_null(queue_rules_match(rs, 451, "451 4.7.700 x"));
	assert_null(queue_rules_match(rs, 451, "451 4.7.499 x"));
	/* another class: not ms-throttle, but "daily" (esc=5) */
	assert_string_equal(queue_rules_match(rs, 551, "551 5.7.500 x")->name, "daily");
	/* text is case-insensitive; code=5xx is the class */
	assert_string_equal(queue_rules_match(rs, 550, "550 5.7.1 block list (s3150)")->name,
			    "blocked");
	assert_null(queue_rules_match(rs, 450, "450 4.7.1 block list (S3150)"));
	/* class= uses the bounce classes */
	assert_string_equal(queue_rules_match(rs, 452, "452 4.2.2 over quota")->name, "by-class");
	assert_null(queue_rules_match(rs, 452, "452 4.2.1 mailbox disabled"));
	/* a prefix of whole parts, any class */
	assert_string_equal(queue_rules_match(rs, 450, "450 4.7.1 hourly limit")->name, "prefix");
	assert_string_equal(queue_rules_match(rs, 550, "550 5.7.255 hourly limit")->name, "prefix");
	assert_null(queue_rules_match(rs, 450, "450 4.6.1 hourly limit"));
	assert_string_equal(queue_rules_match(rs, 550, "550 5.6.1 hourly limit")->name, "daily");
	/* code 0: the class comes from the text's status; exact codes never match */
	assert_string_equal(queue_rules_match(rs, 0, "mx[192.0.2.1]: 550 5.1.1 Bad (S3150)")->name,
			    "blocked");
	assert_null(queue_rules_match(rs, 0, "421 4.7.28 rate limited"));
	/* never a success, never without rules */
	assert_null(queue_rules_match(rs, 250, "250 2.0.0 S3150 ok"));
	assert_null(queue_rules_match(NULL, 550, "550 S3150"));
	assert_null(queue_rules_match(rs, 550, NULL));
	queue_rules_free(rs);

	/* An empty file is no rules at all. */
	assert_int_equal(load_text("# nothing\n\n   \n", &rs, err, sizeof(err)), 0);
	assert_int_equal(queue_rules_count(rs), 0);
	assert_null(queue_rules_match(rs, 421, "421 4.7.28 rate limited"));
	queue_rules_free(rs);
	queue_rules_free(NULL);
}

/* The first rule that matches wins, whatever comes after it. */
static void test_rules_order(void **state)
{
	struct queue_rules *rs;
	char err[512];

	assert_int_equal(load_text("broad   code=4xx action=suspend 1m\n"
				   "narrow  code=421 text=busy action=suspend 1h\n",
				   &rs, err, sizeof(err)),
			 0);
	assert_string_equal(queue_rules_match(rs, 421, "421 busy")->name, "broad");
	queue_rules_free(rs);
	assert_int_equal(load_text("narrow  code=421 text=busy action=suspend 1h\n"
				   "broad   code=4xx action=suspend 1m\n",
				   &rs, err, sizeof(err)),
			 0);
	assert_string_equal(queue_rules_match(rs, 421, "421 busy")->name, "narrow");
	assert_string_equal(queue_rules_match(rs, 451, "451 busy")->name, "broad");
	queue_rules_free(rs);
}

static void test_rules_errors(void **state)
{
	static const struct {
		const char *line, *want;
	} bad[] = {
	    {"bad!name code=421 action=bounce", "a rule starts with its name"},
	    {"code=421 action=bounce", "a rule starts with its name"},
	    {"r code=421", "has no action="},
	    {"r action=bounce", "matches nothing"},
	    {"r code=499x action=bounce", "bad code \"499x\""},
	    {"r code=2xx action=bounce", "bad code"},
	    {"r code=600 action=bounce", "bad code"},
	    {"r esc=4.7.x action=bounce", "bad enhanced code \"4.7.x\""},
	    {"r esc=2.0.0 action=bounce", "bad enhanced code"},
	    {"r esc=4.07.1 action=bounce", "bad enhanced code"},
	    {"r esc=4.7.1.2 action=bounce", "bad enhanced code"},
	    {"r esc=4.7.600..4.7.500 action=bounce", "bad enhanced code"},
	    {"r esc=4.7.500..5.7.600 action=bounce", "bad enhanced code"},
	    {"r esc=4.7..4.8.1 action=bounce", "bad enhanced code"},
	    {"r text=\"unterminated action=bounce", "no closing '\"'"},
	    {"r class=nope action=bounce", "unknown class \"nope\""},
	    {"r code=421 action=explode", "unknown action \"explode\""},
	    {"r code=421 action=suspend", "suspend needs a duration"},
	    {"r code=421 action=suspend 0s", "bad duration \"0s\""},
	    {"r code=421 action=suspend 31d", "bad duration \"31d\""},
	    {"r code=421 action=suspend soon", "bad duration \"soon\""},
	    {"r code=421 action=suspend 10m for=1h", "for= given twice"},
	    {"r code=421 action=suspend 10m rate=1/s", "suspend takes no rate="},
	    {"r code=421 action=throttle for=10m", "throttle needs rate= or connections="},
	    {"r code=421 action=throttle rate=5/min", "throttle needs for=DURATION"},
	    {"r code=421 action=throttle rate=5/week for=1m", "bad rate \"5/week\""},
	    {"r code=421 action=throttle rate=0/s for=1m", "bad rate"},
	    {"r code=421 action=throttle rate=-1 for=1m", "bad rate"},
	    {"r code=421 action=throttle rate=1.5/s for=1m", "bad rate \"1.5/s\""},
	    {"r code=421 action=throttle connections=0 for=1m", "bad connections \"0\""},
	    {"r code=421 action=throttle connections=lots for=1m", "bad connections"},
	    {"r code=421 action=bounce for=1m", "bounce takes no duration"},
	    {"r code=421 code=5xx action=bounce", "code= given twice"},
	    {"r colour=red action=bounce", "unknown key \"colour\""},
	    {"r code=421 stray action=bounce", "\"stray\": want KEY=VALUE"},
	    {"r text= action=bounce", "text= needs a value"},
	    {"r code=421 action=bounce\x01", "control character 0x01"},
	    {"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd code=421 "
	     "action=bounce",
	     "a rule starts with its name"},
	};
	struct queue_rules *rs = (void *)1;
	char text[2048], err[512], want[600];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Good lines first, so the line number is not 1. */
		snprintf(text, sizeof(text), "# rules\nok code=421 action=suspend 1m\n\n%s\n",
			 bad[i].line);
		assert_int_equal(load_text(text, &rs, err, sizeof(err)), -EINVAL);
		assert_null(rs);
		snprintf(want, sizeof(want), ":4: ");
		if (strncmp(err, want, strlen(want)) != 0 || strstr(err, bad[i].want) == NULL) {
			printf("\"%s\": got \"%s\", want \"%s...%s\"\n", bad[i].line, err, want,
			       bad[i].want);
			fail();
		}
	}

	assert_int_equal(load_text("a code=421 action=bounce\nb code=421 action=bounce\n"
				   "a code=5xx action=bounce\n",
				   &rs, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, ":3: rule a is already on line 1");

	{
		char *big = malloc(3000);

		memset(big, ' ', 2999);
		big[2999] = 0;
		memcpy(big, "\nlong code=421 action=bounce", 28);
		assert_int_equal(load_text(big, &rs, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, ":2: longer than 1024 characters");
		free(big);
	}

	/* Text of a given length: a NUL inside is refused, the length is kept. */
	assert_int_equal(
	    queue_rules_load_text("a code=421 action=bounce\0b", 26, "t", &rs, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "t: holds a NUL byte: not a rules file");
	assert_int_equal(
	    queue_rules_load_text("a code=421 action=bounce", 10, "t", &rs, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "t:1: rule a has no action= (suspend, throttle or bounce)");
	assert_null(rs);

	assert_int_equal(queue_rules_load("/nonexistent/dmta-rules", &rs, err, sizeof(err)),
			 -ENOENT);
	assert_null(rs);
	assert_string_equal(err, "/nonexistent/dmta-rules: No such file or directory");
}

/* The built-in set: loads, and stops the big providers' throttling replies. */
static void test_rules_builtin(void **state)
{
	static const struct {
		int code;
		const char *text, *want; /* want: a rule's name, or NULL */
		enum queue_rule_act act;
	} cases[] = {
	    {421,
	     "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating "
	     "from your IP address. To protect our users from spam, mail sent from your IP address "
	     "has been temporarily rate limited.",
	     "gmail-unusual-rate", QUEUE_ACT_SUSPEND},
	    {421,
	     "421-4.7.0 This message is suspicious due to the very low reputation of the sending "
	     "IP address. To protect our users from spam, mail sent from your IP address has been "
	     "temporarily rate limited.",
	     "gmail-rate-limited", QUEUE_ACT_SUSPEND},
	    {451,
	     "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719) "
	     "[Name=Protocol Filter Agent]",
	     "microsoft-s77719", QUEUE_ACT_THROTTLE},
	    {451,
	     "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
	     "reputation.",
	     "microsoft-throttle", QUEUE_ACT_THROTTLE},
	    {421,
	     "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints "
	     "- 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
	     "yahoo-ts01", QUEUE_ACT_SUSPEND},
	    {421,
	     "421 4.7.0 [TS02] Messages from 192.0.2.1 temporarily deferred due to user complaints "
	     "- 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
	     "yahoo-ts02", QUEUE_ACT_SUSPEND},
	    {421, "421 4.7.1 [TS03] All messages from 192.0.2.1 permanently deferred", "yahoo-ts03",
	     QUEUE_ACT_SUSPEND},
	    {421,
	     "421 4.7.0 [TSS02] Messages from 192.0.2.1 temporarily deferred due to user "
	     "complaints or because the IP/domain is in the unverified category.",
	     "yahoo-tss02", QUEUE_ACT_SUSPEND},
	    {421,
	     "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
	     "volume or user complaints - 4.16.55.1; see "
	     "https://postmaster.yahooinc.com/error-codes",
	     "yahoo-tss04", QUEUE_ACT_THROTTLE},
	    {421, "421-4.7.28 [192.0.2.1] Our system has detected an unusual rate of",
	     "gmail-unusual-rate", QUEUE_ACT_SUSPEND},
	    {421, "421 4.7.0 Too many connections from your IP", "too-many-connections",
	     QUEUE_ACT_THROTTLE},
	    {452, "452 Too many concurrent SMTP connections; please try again later.",
	     "too-many-concurrent", QUEUE_ACT_THROTTLE},
	    {450, "450 4.7.1 Rate limit exceeded", "rate-limit", QUEUE_ACT_SUSPEND},
	    /* what must not slow a site down */
	    {550, "550-5.1.1 The email account that you tried to reach does not exist.", NULL, 0},
	    {452, "452-4.2.2 The email account that you tried to reach is over quota.", NULL, 0},
	    {451, "451 4.3.0 Error: queue file write error", NULL, 0},
	    {550, "550 5.7.28 unusual rate of unsolicited mail", NULL, 0},
	};
	struct queue_rules *rs;
	char err[512];

	assert_int_equal(queue_rules_load(NULL, &rs, err, sizeof(err)), 0);
	assert_true(queue_rules_count(rs) >= 10);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct queue_rule *r = queue_rules_match(rs, cases[i].code, cases[i].text);

		if (cases[i].want == NULL) {
			if (r != NULL)
				printf("\"%s\": got %s, want none\n", cases[i].text, r->name);
			assert_null(r);
			continue;
		}
		if (r == NULL || strcmp(r->name, cases[i].want) != 0)
			printf("\"%s\": got %s, want %s\n", cases[i].text, r ? r->name : "none",
			       cases[i].want);
		assert_non_null(r);
		assert_string_equal(r->name, cases[i].want);
		assert_int_equal(r->act, cases[i].act);
		assert_true(r->duration_ms >= 60000);
	}
	queue_rules_free(rs);

	/* [rules] file: unset is the built-in set; set is that file. */
	{
		struct dmta_conf *conf = dmta_conf_new();

		assert_int_equal(queue_rules_load_conf(conf, &rs, err, sizeof(err)), 0);
		assert_non_null(queue_rules_match(rs, 421, "421 4.7.28 rate limited"));
		queue_rules_free(rs);
		assert_int_equal(dmta_conf_set(conf, "rules", "file", "/nonexistent/rules"), 0);
		assert_int_equal(queue_rules_load_conf(conf, &rs, err, sizeof(err)), -ENOENT);
		assert_null(rs);
		dmta_conf_free(conf);
	}
}

/* tools/dmta-rules.sample is the built-in set, byte for byte. */
static void test_rules_sample(void **state)
{
	const char *path = getenv("DMTA_RULES_SAMPLE");
	const char *want = queue_rules_default_text();
	struct queue_rules *rs;
	char err[512], *got;
	FILE *f;
	size_t n;

	assert_non_null(path);
	f = fopen(path, "r");
	assert_non_null(f);
	got = calloc(1, 65536);
	n = fread(got, 1, 65535, f);
	fclose(f);
	if (n != strlen(want) || memcmp(got, want, n) != 0)
		printf("%s differs from the built-in rules (queue_rules_default_text())\n", path);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(got, want, n);
	free(got);
	/* and it loads as a file, to the same rules */
	assert_int_equal(queue_rules_load(path, &rs, err, sizeof(err)), 0);
	assert_string_equal(queue_rules_at(rs, 0)->name, "gmail-unusual-rate");
	queue_rules_free(rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_class_table),	 cmocka_unit_test(test_class_names),
	    cmocka_unit_test(test_rules_good),	 cmocka_unit_test(test_rules_order),
	    cmocka_unit_test(test_rules_errors), cmocka_unit_test(test_rules_builtin),
	    cmocka_unit_test(test_rules_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
