/*
 * test_smtp_client.c - transcript tests for the sans-I/O SMTP client.
 *
 * Each case is a scripted server (all its replies, in order), the commands
 * the client must send, and the events it must report. Every case is run
 * with the server's bytes fed whole, split in two at every byte, and one
 * byte at a time; the client's bytes and events must be the same each way.
 *
 * Event log notation: G<code> greeting, R ready, T tls needed,
 * r<i>:<k|t|p><code> recipient i ok/temp/perm, m:<k|t|p><ok>/<temp>/<perm>
 * message, E protocol error, X closed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_client.h"

#define OUT_MAX (512 * 1024)

struct h {
	struct smtp_client *c;
	char *out;
	size_t out_len;
	char ev[4096];
	size_t ev_len;
	unsigned writes;
	int tls_auto; /* call tls_started on T */
	char trace[8192];
	size_t trace_len;
};

static void trace_fn(void *arg, char dir, const char *line, size_t len)
{
	struct h *h = arg;
	int n = snprintf(h->trace + h->trace_len, sizeof(h->trace) - h->trace_len, "%c: %.*s\n",
			 dir, (int)len, line);

	if (n > 0 && (size_t)n < sizeof(h->trace) - h->trace_len)
		h->trace_len += (size_t)n;
}

static void __attribute__((format(printf, 2, 3))) evlog(struct h *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	h->ev_len += (size_t)vsnprintf(h->ev + h->ev_len, sizeof(h->ev) - h->ev_len, fmt, ap);
	va_end(ap);
	assert_true(h->ev_len < sizeof(h->ev));
}

static const char oc[] = {'k', 't', 'p'};

static void take_events(struct h *h)
{
	struct smtp_event e;

	while (smtp_client_event(h->c, &e)) {
		switch (e.type) {
		case SMTP_EV_GREETING:
			evlog(h, "G%d ", e.code);
			break;
		case SMTP_EV_READY:
			evlog(h, "R ");
			break;
		case SMTP_EV_TLS_NEEDED:
			evlog(h, "T ");
			if (h->tls_auto)
				smtp_client_tls_started(h->c);
			break;
		case SMTP_EV_RCPT:
			evlog(h, "r%zu:%c%d ", e.rcpt, oc[e.outcome], e.code);
			/* The reply text is the reply's, whole. */
			if (!e.local)
				assert_true(e.text_len >= 4 && e.text[e.text_len - 1] == '\n');
			break;
		case SMTP_EV_MSG:
			evlog(h, "m:%c%zu/%zu/%zu ", oc[e.outcome], e.n_ok, e.n_temp, e.n_perm);
			break;
		case SMTP_EV_PROTOCOL_ERROR:
			evlog(h, "E ");
			break;
		case SMTP_EV_CLOSED:
			evlog(h, "X ");
			break;
		}
	}
}

static void drain(struct h *h)
{
	struct iovec iov[8];
	size_t k;
	int wrote = 0;

	while ((k = smtp_client_tx_iov(h->c, iov, 8)) > 0) {
		size_t n = 0;

		for (size_t i = 0; i < k; i++) {
			assert_true(h->out_len + iov[i].iov_len <= OUT_MAX);
			memcpy(h->out + h->out_len, iov[i].iov_base, iov[i].iov_len);
			h->out_len += iov[i].iov_len;
			n += iov[i].iov_len;
		}
		smtp_client_tx_done(h->c, n);
		h->out[h->out_len] = '\0';
		wrote = 1;
	}
	h->writes += wrote;
}

static void feed(struct h *h, const char *s, size_t n)
{
	size_t done = 0;

	while (done < n && !smtp_client_closed(h->c)) {
		done += smtp_client_feed(h->c, s + done, n - done);
		take_events(h);
		drain(h);
	}
	take_events(h);
	drain(h);
	take_events(h);
}

/* Feed a script piece; "\001" marks where the TLS handshake happens, so
 * the bytes after it arrive in a later read. */
static void feed_script(struct h *h, const char *s, size_t n)
{
	while (n > 0) {
		const char *m = memchr(s, '\001', n);
		size_t k = m ? (size_t)(m - s) : n;

		if (k)
			feed(h, s, k);
		if (m == NULL)
			break;
		s += k + 1;
		n -= k + 1;
	}
}

/* ------------------------------------------------------------ messages */

static const char body_plain[] = "Subject: t\r\n\r\nhello\r\n";
static const char body_dots[] = "Subject: d\n\n.leading dot\r\n..two\nbare lf\rbare cr\r\nend";
static const char body_8bit[] = "Subject: h\r\n\r\nh\xc3\xa9llo\r\n";

static const struct smtp_rcpt rc3[] = {
    {"b@y.test", NULL, NULL}, {"c@y.test", NULL, NULL}, {"d@y.test", NULL, NULL}};
static const struct smtp_rcpt rc1[] = {{"b@y.test", NULL, NULL}};
static const struct smtp_rcpt rc_dsn[] = {{"b@y.test", "SUCCESS,FAILURE", "rfc822;b+x=@y.test"}};
static const struct smtp_rcpt rc_utf8[] = {{"b\xc3\xa9@y.test", NULL, NULL}};
static const struct smtp_rcpt rc5[] = {{"r0@y.test", NULL, NULL},
				       {"r1@y.test", NULL, NULL},
				       {"r2@y.test", NULL, NULL},
				       {"r3@y.test", NULL, NULL},
				       {"r4@y.test", NULL, NULL}};

static struct smtp_chunk ck_plain = {body_plain, sizeof(body_plain) - 1};
static struct smtp_chunk ck_dots = {body_dots, sizeof(body_dots) - 1};
static struct smtp_chunk ck_8bit = {body_8bit, sizeof(body_8bit) - 1};

enum { M_PLAIN3, M_PLAIN1, M_DOTS1, M_8BIT1, M_DSN, M_UTF8, M_FIVE, M_NULLSENDER, M_COUNT };

static struct smtp_msg msgs[M_COUNT];

static void init_msgs(void)
{
	msgs[M_PLAIN3] = (struct smtp_msg){"a@x.test", rc3, 3, &ck_plain, 1, NULL, 0, NULL};
	msgs[M_PLAIN1] = (struct smtp_msg){"a@x.test", rc1, 1, &ck_plain, 1, NULL, 0, NULL};
	msgs[M_DOTS1] = (struct smtp_msg){"a@x.test", rc1, 1, &ck_dots, 1, NULL, 0, NULL};
	msgs[M_8BIT1] = (struct smtp_msg){"a@x.test", rc1, 1, &ck_8bit, 1, NULL, 0, NULL};
	msgs[M_DSN] =
	    (struct smtp_msg){"a@x.test", rc_dsn, 1, &ck_plain, 1, "id 1+", SMTP_RET_HDRS, NULL};
	msgs[M_UTF8] = (struct smtp_msg){"a@x.test", rc_utf8, 1, &ck_plain, 1, NULL, 0, NULL};
	msgs[M_FIVE] = (struct smtp_msg){"a@x.test", rc5, 5, &ck_plain, 1, NULL, 0, NULL};
	msgs[M_NULLSENDER] = (struct smtp_msg){"", rc1, 1, &ck_plain, 1, NULL, 0, NULL};
}

/* --------------------------------------------------------------- cases */

#define EHLO_PIPE  "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000\r\n"
#define EHLO_CHUNK "250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
#define EHLO_CHNP  "250-mx.test\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
#define EHLO_BARE  "250 mx.test\r\n"
#define EHLO_TLS   "250-mx.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n"
#define EHLO_AUTH  "250-mx.test\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING\r\n"
#define EHLO_LOGIN "250-mx.test\r\n250-AUTH=LOGIN\r\n250-AUTH LOGIN\r\n250 PIPELINING\r\n"
#define EHLO_DSN   "250-mx.test\r\n250-DSN\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
#define G	   "220 mx.test ESMTP\r\n"
#define CE	   "EHLO client.test\r\n"
#define MAIL	   "MAIL FROM:<a@x.test>\r\n"
#define MAILS	   "MAIL FROM:<a@x.test> SIZE=21\r\n"
#define R3	   "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\n"
#define R1	   "RCPT TO:<b@y.test>\r\n"
#define BODY	   "Subject: t\r\n\r\nhello\r\n"
#define OK	   "250 2.0.0 ok\r\n"
#define BYE	   "221 bye\r\n"
#define TLS	   "\001" /* the TLS handshake happens here */

struct tcase {
	const char *name;
	int msgs[4]; /* M_*, ended by -1 */
	int quit;
	enum smtp_tls_policy tls;
	int auth; /* 1: user/pass set, 2: and plaintext allowed, 3: XOAUTH2 */
	unsigned max_rcpts;
	int no_pipelining;
	const char *server;
	const char *client;
	const char *events;
	int whole_only; /* splitting changes the meaning (TLS boundary) */
};

static const struct tcase cases[] = {
    {"pipelined DATA, three recipients, mixed outcomes",
     {M_PLAIN3, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAILS R3 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r1:p550 r0:k250 r2:k250 m:p2/0/1 X "},
    {"no PIPELINING: one command at a time",
     {M_PLAIN3, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAIL R3 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r1:t451 r0:k250 r2:k250 m:t2/1/0 X "},
    {"PIPELINING offered but not used",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     1,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAILS R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"CHUNKING and PIPELINING: BDAT in the first write",
     {M_PLAIN3, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_CHUNK "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n" OK BYE,
     CE MAIL R3 "BDAT 21 LAST\r\n" BODY "QUIT\r\n",
     "G220 R r0:k250 r1:k250 r2:k250 m:k3/0/0 X "},
    {"CHUNKING without PIPELINING",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_CHNP "250 ok\r\n250 ok\r\n" OK BYE,
     CE MAIL R1 "BDAT 21 LAST\r\n" BODY "QUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"BDAT: body rewritten to CRLF, no dot-stuffing",
     {M_DOTS1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_CHUNK "250 ok\r\n250 ok\r\n" OK BYE,
     CE MAIL R1 "BDAT 58 LAST\r\n"
		"Subject: d\r\n\r\n.leading dot\r\n..two\r\nbare lf\r\nbare cr\r\nend\r\n"
		"QUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"DATA: dot-stuffing and CRLF in one pass",
     {M_DOTS1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAIL R1 "DATA\r\n"
		"Subject: d\r\n\r\n..leading dot\r\n...two\r\nbare lf\r\nbare cr\r\nend\r\n.\r\n"
		"QUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"EHLO refused: HELO, then no 8BITMIME refuses an 8-bit body",
     {M_8BIT1, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G "502 5.5.1 no EHLO here\r\n"
       "250 hi\r\n"
       "250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE "HELO client.test\r\n" MAIL R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:p554 m:p0/0/1 r0:k250 m:k1/0/0 X "},
    {"8BITMIME offered: BODY=8BITMIME declared",
     {M_8BIT1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE "MAIL FROM:<a@x.test> SIZE=22 BODY=8BITMIME\r\n" R1 "DATA\r\n"
	"Subject: h\r\n\r\nh\xc3\xa9llo\r\n.\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"greeting 554: permanent, QUIT",
     {M_PLAIN1, -1},
     0,
     0,
     0,
     0,
     0,
     "554 5.7.1 go away\r\n" BYE,
     "QUIT\r\n",
     "G554 r0:p554 m:p0/0/1 X "},
    {"greeting 450: temporary, QUIT",
     {M_PLAIN1, -1},
     0,
     0,
     0,
     0,
     0,
     "450 busy\r\n" BYE,
     "QUIT\r\n",
     "G450 r0:t450 m:t0/1/0 X "},
    {"greeting 421: temporary, no QUIT",
     {M_PLAIN1, -1},
     0,
     0,
     0,
     0,
     0,
     "421 4.3.2 shutting down\r\n",
     "",
     "r0:t421 m:t0/1/0 X "},
    {"greeting multiline",
     {-1},
     1,
     0,
     0,
     0,
     0,
     "220-mx.test\r\n220-more\r\n220 ESMTP\r\n" EHLO_BARE BYE,
     CE "QUIT\r\n",
     "G220 R X "},
    {"EHLO 4xx: temporary",
     {M_PLAIN1, -1},
     0,
     0,
     0,
     0,
     0,
     G "454 4.3.0 later\r\n" BYE,
     CE "QUIT\r\n",
     "G220 r0:t454 m:t0/1/0 X "},
    {"EHLO 421",
     {M_PLAIN1, -1},
     0,
     0,
     0,
     0,
     0,
     G "421 4.3.0 closing\r\n",
     CE,
     "G220 r0:t421 m:t0/1/0 X "},
    {"HELO 5xx after EHLO 5xx",
     {M_PLAIN1, -1},
     0,
     0,
     0,
     0,
     0,
     G "500 what\r\n"
       "550 no\r\n" BYE,
     CE "HELO client.test\r\nQUIT\r\n",
     "G220 r0:p550 m:p0/0/1 X "},
    {"MAIL 5xx pipelined: every recipient gets it, next message goes on",
     {M_PLAIN3, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "553 5.1.8 bad sender\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n503 5.5.1 "
		 "need MAIL\r\n554 5.5.1 no valid rcpts\r\n"
		 "250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAILS R3 "DATA\r\n" MAILS R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:p553 r1:p553 r2:p553 m:p0/0/3 r0:k250 m:k1/0/0 X "},
    {"MAIL 4xx without pipelining stops the transaction",
     {M_PLAIN3, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "451 4.3.0 later\r\n" BYE,
     CE MAIL "QUIT\r\n",
     "G220 R r0:t451 r1:t451 r2:t451 m:t0/3/0 X "},
    {"every RCPT refused pipelined: DATA refused, RSET before the next MAIL",
     {M_PLAIN1, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"
		 "250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAILS R1 "DATA\r\nRSET\r\n" MAILS R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:p550 m:p0/0/1 r0:k250 m:k1/0/0 X "},
    {"every RCPT refused without pipelining: no DATA, RSET",
     {M_PLAIN1, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE
     "250 ok\r\n450 4.2.0 greylisted\r\n250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAIL R1 "RSET\r\n" MAIL R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:t450 m:t0/1/0 r0:k250 m:k1/0/0 X "},
    {"pipelined DATA answered 354 with no recipient: empty message, ignored",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n550 no\r\n354 go\r\n554 no valid recipients\r\n" BYE,
     CE MAILS R1 "DATA\r\n.\r\nQUIT\r\n",
     "G220 R r0:p550 m:p0/0/1 X "},
    {"DATA 4xx: accepted recipients get it, RSET next",
     {M_PLAIN3, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n451 4.3.0 data later\r\n"
		 "250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAILS R3 "DATA\r\nRSET\r\n" MAILS R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r1:p550 r0:t451 r2:t451 m:t0/2/1 r0:k250 m:k1/0/0 X "},
    {"DATA 5xx",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n554 5.7.1 no data\r\n250 reset\r\n" BYE,
     CE MAILS R1 "DATA\r\nQUIT\r\n",
     "G220 R r0:p554 m:p0/0/1 X "},
    {"end of data 4xx and 5xx, no RSET after '.'",
     {M_PLAIN1, M_PLAIN1, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n354 go\r\n452 4.3.1 disk full\r\n"
		 "250 ok\r\n250 ok\r\n354 go\r\n554 5.7.1 spam\r\n"
		 "250 ok\r\n250 ok\r\n354 go\r\n250-multi\r\n250 2.0.0 queued\r\n" BYE,
     CE MAILS R1 "DATA\r\n" BODY ".\r\n" MAILS R1 "DATA\r\n" BODY ".\r\n" MAILS R1 "DATA\r\n" BODY
		 ".\r\nQUIT\r\n",
     "G220 R r0:t452 m:t0/1/0 r0:p554 m:p0/0/1 r0:k250 m:k1/0/0 X "},
    {"BDAT 5xx: RSET before the next transaction",
     {M_PLAIN1, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_CHUNK "250 ok\r\n250 ok\r\n554 5.7.1 spam\r\n250 reset\r\n250 ok\r\n250 ok\r\n450 "
		  "4.3.0 later\r\n250 reset\r\n" BYE,
     CE MAIL R1 "BDAT 21 LAST\r\n" BODY "RSET\r\n" MAIL R1 "BDAT 21 LAST\r\n" BODY "QUIT\r\n",
     "G220 R r0:p554 m:p0/0/1 r0:t450 m:t0/1/0 X "},
    {"452 after some accepted: the rest in a new transaction",
     {M_FIVE, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n250 ok\r\n452 4.5.3 too many\r\n452 4.5.3 too many\r\n550 "
		 "no\r\n354 go\r\n" OK "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAILS "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\nRCPT "
	      "TO:<r3@y.test>\r\nRCPT TO:<r4@y.test>\r\nDATA\r\n" BODY ".\r\n" MAILS
	      "RCPT TO:<r2@y.test>\r\nRCPT TO:<r3@y.test>\r\nDATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r4:p550 r0:k250 r1:k250 r2:k250 r3:k250 m:p4/0/1 X "},
    {"452 with a second message pipelined behind: it finishes first",
     {M_FIVE, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n452 4.5.3 too many\r\n452 4.5.3 too "
		 "many\r\n354 go\r\n" OK "250 ok\r\n250 ok\r\n354 go\r\n" OK
		 "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAILS "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\nRCPT "
	      "TO:<r3@y.test>\r\nRCPT TO:<r4@y.test>\r\nDATA\r\n" BODY ".\r\n" MAILS R1
	      "DATA\r\n" BODY ".\r\n" MAILS
	      "RCPT TO:<r3@y.test>\r\nRCPT TO:<r4@y.test>\r\nDATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 r1:k250 r2:k250 r0:k250 m:k1/0/0 r3:k250 r4:k250 m:k5/0/0 X "},
    {"452 on the first recipient: temporary, no loop",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n452 4.5.3 too many\r\n554 no valid\r\n250 reset\r\n" BYE,
     CE MAILS R1 "DATA\r\nQUIT\r\n",
     "G220 R r0:t452 m:t0/1/0 X "},
    {"max_rcpts 2: five recipients in three transactions",
     {M_FIVE, -1},
     1,
     0,
     0,
     2,
     0,
     G EHLO_BARE "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK
		 "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK
		 "250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAIL "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n" BODY ".\r\n" MAIL
	     "RCPT TO:<r2@y.test>\r\nRCPT TO:<r3@y.test>\r\nDATA\r\n" BODY ".\r\n" MAIL
	     "RCPT TO:<r4@y.test>\r\nDATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 r1:k250 r2:k250 r3:k250 r4:k250 m:k5/0/0 X "},
    {"max_rcpts 2 pipelined: one message in three overlapping transactions",
     {M_FIVE, -1},
     1,
     0,
     0,
     2,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK
		 "250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n" OK
		 "250 ok\r\n451 later\r\n554 no valid recipients\r\n" BYE,
     CE MAILS "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n" BODY ".\r\n" MAILS
	      "RCPT TO:<r2@y.test>\r\nRCPT TO:<r3@y.test>\r\nDATA\r\n" BODY ".\r\n" MAILS
	      "RCPT TO:<r4@y.test>\r\nDATA\r\nQUIT\r\n",
     "G220 R r0:k250 r1:k250 r2:p550 r3:k250 r4:t451 m:t3/1/1 X "},
    {"SIZE limit: refused before MAIL",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G "250-mx.test\r\n250 SIZE 10\r\n" BYE,
     CE "QUIT\r\n",
     "G220 R r0:p552 m:p0/0/1 X "},
    {"SMTPUTF8 needed, not offered",
     {M_UTF8, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE BYE,
     CE "QUIT\r\n",
     "G220 R r0:p553 m:p0/0/1 X "},
    {"SMTPUTF8 and DSN offered: parameters passed on",
     {M_UTF8, M_DSN, M_NULLSENDER, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_DSN "250 ok\r\n250 ok\r\n354 go\r\n" OK "250 ok\r\n250 ok\r\n354 go\r\n" OK
		"250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE "MAIL FROM:<a@x.test> SMTPUTF8\r\nRCPT TO:<b\xc3\xa9@y.test>\r\nDATA\r\n" BODY ".\r\n"
	"MAIL FROM:<a@x.test> RET=HDRS ENVID=id+201+2B\r\nRCPT TO:<b@y.test> "
	"NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx+3D@y.test\r\nDATA\r\n" BODY ".\r\n"
	"MAIL FROM:<>\r\n" R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 r0:k250 m:k1/0/0 r0:k250 m:k1/0/0 X "},
    {"DSN not offered: no parameters",
     {M_DSN, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE MAIL R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"STARTTLS: re-EHLO, extensions learned again",
     {M_PLAIN1, -1},
     1,
     SMTP_TLS_OPPORTUNISTIC,
     0,
     0,
     0,
     G EHLO_TLS "220 2.0.0 go ahead\r\n" TLS EHLO_CHUNK "250 ok\r\n250 ok\r\n" OK BYE,
     CE "STARTTLS\r\n" CE MAIL R1 "BDAT 21 LAST\r\n" BODY "QUIT\r\n",
     "G220 T R r0:k250 m:k1/0/0 X "},
    {"STARTTLS refused, opportunistic: plaintext",
     {M_PLAIN1, -1},
     1,
     SMTP_TLS_OPPORTUNISTIC,
     0,
     0,
     0,
     G EHLO_TLS "454 4.7.0 TLS not available\r\n"
		"250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE "STARTTLS\r\n" MAIL R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"STARTTLS refused, required: temporary",
     {M_PLAIN1, -1},
     1,
     SMTP_TLS_REQUIRED,
     0,
     0,
     0,
     G EHLO_TLS "554 5.7.0 no TLS\r\n" BYE,
     CE "STARTTLS\r\nQUIT\r\n",
     "G220 r0:t554 m:t0/1/0 X "},
    {"STARTTLS not offered, required: temporary",
     {M_PLAIN1, -1},
     1,
     SMTP_TLS_REQUIRED,
     0,
     0,
     0,
     G EHLO_PIPE BYE,
     CE "QUIT\r\n",
     "G220 r0:t454 m:t0/1/0 X "},
    {"STARTTLS 220 with bytes behind it: refused",
     {M_PLAIN1, -1},
     1,
     SMTP_TLS_OPPORTUNISTIC,
     0,
     0,
     0,
     G EHLO_TLS "220 go ahead\r\n250 injected\r\n",
     CE "STARTTLS\r\n",
     "G220 E r0:t451 m:t0/1/0 X ",
     1},
    {"AUTH PLAIN over plaintext when allowed",
     {M_PLAIN1, -1},
     1,
     0,
     2,
     0,
     0,
     G EHLO_AUTH "235 2.7.0 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n" MAIL R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"AUTH LOGIN",
     {M_PLAIN1, -1},
     1,
     0,
     2,
     0,
     0,
     G EHLO_LOGIN
     "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE "AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n" MAIL R1 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"AUTH XOAUTH2",
     {M_PLAIN1, -1},
     1,
     0,
     3,
     0,
     0,
     G "250-mx.test\r\n250-AUTH PLAIN XOAUTH2\r\n250 PIPELINING\r\n"
       "235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n" OK BYE,
     CE "AUTH XOAUTH2 dXNlcj11c2VyAWF1dGg9QmVhcmVyIHNlY3JldAEB\r\n" MAIL R1 "DATA\r\n" BODY
	".\r\nQUIT\r\n",
     "G220 R r0:k250 m:k1/0/0 X "},
    {"AUTH XOAUTH2 refused: empty line, then 535",
     {M_PLAIN1, -1},
     1,
     0,
     3,
     0,
     0,
     G "250-mx.test\r\n250 AUTH XOAUTH2\r\n"
       "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n535 5.7.8 bad token\r\n" BYE,
     CE "AUTH XOAUTH2 dXNlcj11c2VyAWF1dGg9QmVhcmVyIHNlY3JldAEB\r\n\r\nQUIT\r\n",
     "G220 r0:t535 m:t0/1/0 X "},
    {"AUTH XOAUTH2 configured, not offered",
     {M_PLAIN1, -1},
     1,
     0,
     3,
     0,
     0,
     G EHLO_AUTH BYE,
     CE "QUIT\r\n",
     "G220 r0:t454 m:t0/1/0 X "},
    {"AUTH 535: temporary (sender's configuration)",
     {M_PLAIN1, -1},
     1,
     0,
     2,
     0,
     0,
     G EHLO_AUTH "535 5.7.8 bad credentials\r\n" BYE,
     CE "AUTH PLAIN AHVzZXIAc2VjcmV0\r\nQUIT\r\n",
     "G220 r0:t535 m:t0/1/0 X "},
    {"AUTH 454",
     {M_PLAIN1, -1},
     1,
     0,
     2,
     0,
     0,
     G EHLO_AUTH "454 4.7.0 temp\r\n" BYE,
     CE "AUTH PLAIN AHVzZXIAc2VjcmV0\r\nQUIT\r\n",
     "G220 r0:t454 m:t0/1/0 X "},
    {"AUTH over plaintext not allowed",
     {M_PLAIN1, -1},
     1,
     0,
     1,
     0,
     0,
     G EHLO_AUTH BYE,
     CE "QUIT\r\n",
     "G220 r0:t451 m:t0/1/0 X "},
    {"AUTH configured, not offered",
     {M_PLAIN1, -1},
     1,
     0,
     2,
     0,
     0,
     G EHLO_PIPE BYE,
     CE "QUIT\r\n",
     "G220 r0:t454 m:t0/1/0 X "},
    {"garbage greeting",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     "HTTP/1.1 400 Bad Request\r\n",
     "",
     "E r0:t451 m:t0/1/0 X "},
    {"garbage after EHLO",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G "250-mx.test\r\n251 mismatch\r\n",
     CE,
     "G220 E r0:t451 m:t0/1/0 X "},
    {"garbage to RCPT",
     {M_PLAIN3, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n2x0 what\r\n",
     CE MAILS R3 "DATA\r\n",
     "G220 R E r0:t451 r1:t451 r2:t451 m:t0/3/0 X "},
    {"3xx to MAIL: protocol error",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "354 what\r\n",
     CE MAIL,
     "G220 R E r0:t451 m:t0/1/0 X "},
    {"2xx to DATA: protocol error",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "250 ok\r\n250 ok\r\n250 what\r\n",
     CE MAIL R1 "DATA\r\n",
     "G220 R E r0:t451 m:t0/1/0 X "},
    {"3xx to RCPT: protocol error",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "250 ok\r\n334 what\r\n",
     CE MAIL R1,
     "G220 R E r0:t451 m:t0/1/0 X "},
    {"3xx to end of data: protocol error",
     {M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "250 ok\r\n250 ok\r\n354 go\r\n354 again\r\n",
     CE MAIL R1 "DATA\r\n" BODY ".\r\n",
     "G220 R E r0:t451 m:t0/1/0 X "},
    {"HELO 4xx after EHLO 5xx",
     {M_PLAIN1, -1},
     0,
     0,
     0,
     0,
     0,
     G "502 no\r\n"
       "450 later\r\n" BYE,
     CE "HELO client.test\r\nQUIT\r\n",
     "G220 r0:t450 m:t0/1/0 X "},
    {"RSET refused: temporary, QUIT",
     {M_PLAIN1, M_PLAIN1, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE
     "250 ok\r\n550 no\r\n554 no valid\r\n500 no RSET\r\n503 a\r\n503 b\r\n503 c\r\n" BYE,
     CE MAILS R1 "DATA\r\nRSET\r\n" MAILS R1 "DATA\r\nQUIT\r\n",
     "G220 R r0:p550 m:p0/0/1 r0:t500 m:t0/1/0 X "},
    {"multiline replies to RCPT and end of data",
     {M_PLAIN3, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE
     "250 ok\r\n250-first\r\n250 2.1.5 ok\r\n550-5.1.1 no\r\n550 5.1.1 really\r\n450-4.2.0 "
     "a\r\n450-4.2.0 b\r\n450 4.2.0 c\r\n354 go\r\n250-2.0.0 queued\r\n250 2.0.0 as X\r\n" BYE,
     CE MAILS R3 "DATA\r\n" BODY ".\r\nQUIT\r\n",
     "G220 R r1:p550 r2:t450 r0:k250 m:t1/1/1 X "},
    {"QUIT answered 421 or garbage-free close",
     {-1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_BARE "421 closing anyway\r\n",
     CE "QUIT\r\n",
     "G220 R X "},
    {"unsolicited reply when idle",
     {-1},
     0,
     0,
     0,
     0,
     0,
     G EHLO_BARE "250 surprise\r\n",
     CE,
     "G220 R E X "},
    {"unsolicited 421 when idle",
     {-1},
     0,
     0,
     0,
     0,
     0,
     G EHLO_BARE "421 idle timeout\r\n",
     CE,
     "G220 R X "},
    {"421 in the middle of pipelined replies",
     {M_PLAIN3, -1},
     1,
     0,
     0,
     0,
     0,
     G EHLO_PIPE "250 ok\r\n250 ok\r\n421 4.4.2 bye\r\n",
     CE MAILS R3 "DATA\r\n",
     "G220 R r0:t421 r1:t421 r2:t421 m:t0/3/0 X "},
};

static struct h *h_new(const struct tcase *tc)
{
	struct h *h = calloc(1, sizeof(*h));
	struct smtp_client_config cfg = {
	    .helo_name = "client.test",
	    .tls = tc->tls,
	    .max_rcpts = tc->max_rcpts,
	    .no_pipelining = tc->no_pipelining,
	};

	assert_non_null(h);
	h->out = calloc(1, OUT_MAX + 1);
	assert_non_null(h->out);
	if (tc->auth) {
		cfg.auth_user = "user";
		cfg.auth_pass = "secret";
		cfg.auth_plaintext_ok = tc->auth >= 2;
		cfg.auth_xoauth2 = tc->auth == 3;
	}
	cfg.trace = trace_fn;
	cfg.trace_arg = h;
	h->tls_auto = 1;
	h->c = smtp_client_new(&cfg);
	assert_non_null(h->c);
	for (int i = 0; i < 4 && tc->msgs[i] >= 0; i++)
		assert_int_equal(smtp_client_submit(h->c, &msgs[tc->msgs[i]]), 0);
	if (tc->quit)
		smtp_client_quit(h->c);
	take_events(h);
	drain(h);
	return h;
}

static void h_free(struct h *h)
{
	smtp_client_free(h->c);
	free(h->out);
	free(h);
}

static void check(const struct tcase *tc, struct h *h, const char *how)
{
	size_t want = strlen(tc->client);

	if (h->out_len != want || memcmp(h->out, tc->client, want) != 0)
		fail_msg("%s (%s): client sent\n%.*s\nwant\n%s", tc->name, how, (int)h->out_len,
			 h->out, tc->client);
	if (strcmp(h->ev, tc->events) != 0)
		fail_msg("%s (%s): events\n  got  %s\n  want %s", tc->name, how, h->ev, tc->events);
	if (strstr(h->trace, "secret") || strstr(h->trace, "AHVzZXIAc2VjcmV0") ||
	    strstr(h->trace, "c2VjcmV0") ||
	    strstr(h->trace, "dXNlcj11c2VyAWF1dGg9QmVhcmVyIHNlY3JldAEB"))
		fail_msg("%s: a secret reached the trace:\n%s", tc->name, h->trace);
}

static void test_transcripts(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *tc = &cases[i];
		size_t n = strlen(tc->server);
		struct h *h;
		char how[64];

		/* Whole. */
		h = h_new(tc);
		feed_script(h, tc->server, n);
		check(tc, h, "whole");
		h_free(h);
		if (tc->whole_only)
			continue;

		/* Split in two at every byte. */
		for (size_t k = 1; k < n; k++) {
			h = h_new(tc);
			feed_script(h, tc->server, k);
			feed_script(h, tc->server + k, n - k);
			snprintf(how, sizeof(how), "split at %zu", k);
			check(tc, h, how);
			h_free(h);
		}

		/* One byte at a time. */
		h = h_new(tc);
		for (size_t k = 0; k < n; k++)
			feed_script(h, tc->server + k, 1);
		check(tc, h, "byte by byte");
		h_free(h);
	}
}

/* With PIPELINING, MAIL + 3 RCPT + DATA go in one write and their replies
 * are read in one go: one round trip before the body. */
static void test_round_trips(void **state)
{
	const struct tcase tc = {"rt", {M_PLAIN3, -1}, 0, 0, 0, 0, 0, "", "", ""};
	struct h *h = h_new(&tc);
	const char *rep;

	feed(h, G, strlen(G));
	assert_int_equal(h->writes, 1); /* EHLO */
	feed(h, EHLO_PIPE, strlen(EHLO_PIPE));
	assert_int_equal(h->writes, 2);
	assert_string_equal(strstr(h->out, "MAIL"), MAILS R3 "DATA\r\n");
	rep = "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n";
	uint64_t replies = smtp_client_stats(h->c)->replies;
	feed(h, rep, strlen(rep));
	/* One round trip: five replies in, one write (the body) out. */
	assert_int_equal(smtp_client_stats(h->c)->replies - replies, 5);
	assert_int_equal(h->writes, 3);
	feed(h, OK, strlen(OK));
	assert_non_null(strstr(h->ev, "m:k3/0/0"));
	h_free(h);

	/* The same with CHUNKING: the body goes in that same write. */
	h = h_new(&tc);
	feed(h, G, strlen(G));
	feed(h, EHLO_CHUNK, strlen(EHLO_CHUNK));
	assert_int_equal(h->writes, 2);
	assert_string_equal(strstr(h->out, "MAIL"), MAIL R3 "BDAT 21 LAST\r\n" BODY);
	rep = "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n";
	feed(h, rep, strlen(rep));
	assert_int_equal(h->writes, 2);
	assert_non_null(strstr(h->ev, "m:k3/0/0"));
	h_free(h);

	/* Several messages with DATA: the next MAIL, RCPT and DATA ride in
	 * the same write as the body and "." of the one before, so each
	 * message after the first costs one round trip. */
	const struct tcase tc2 = {"rt2", {M_PLAIN1, M_PLAIN1, M_PLAIN1, -1}, 0, 0, 0, 0, 0, "", "",
				  ""};
	h = h_new(&tc2);
	feed(h, G, strlen(G));
	feed(h, EHLO_PIPE, strlen(EHLO_PIPE));
	assert_int_equal(h->writes, 2);
	size_t mark = h->out_len;
	feed(h, "250 ok\r\n250 ok\r\n354 go\r\n", 24);
	assert_int_equal(h->writes, 3);
	assert_string_equal(h->out + mark, BODY ".\r\n" MAILS R1 "DATA\r\n");
	mark = h->out_len;
	feed(h, OK "250 ok\r\n250 ok\r\n354 go\r\n", strlen(OK) + 24);
	assert_int_equal(h->writes, 4);
	assert_string_equal(h->out + mark, BODY ".\r\n" MAILS R1 "DATA\r\n");
	mark = h->out_len;
	feed(h, OK "250 ok\r\n250 ok\r\n354 go\r\n", strlen(OK) + 24);
	assert_int_equal(h->writes, 5);
	assert_string_equal(h->out + mark, BODY ".\r\n");
	feed(h, OK, strlen(OK));
	assert_string_equal(h->ev, "G220 R r0:k250 m:k1/0/0 r0:k250 m:k1/0/0 r0:k250 m:k1/0/0 ");
	h_free(h);

	/* Without PIPELINING: a write per command. */
	h = h_new(&tc);
	feed(h, G, strlen(G));
	feed(h, EHLO_BARE, strlen(EHLO_BARE));
	for (int i = 0; i < 4; i++)
		feed(h, "250 ok\r\n", 8);
	feed(h, "354 go\r\n", 8);
	assert_int_equal(h->writes, 2 + 5);
	h_free(h);
}

/* The deadline follows the command awaited (RFC 5321 4.5.3.2). */
static void test_deadlines(void **state)
{
	const struct tcase tc = {"dl", {M_PLAIN1, -1}, 1, 0, 0, 0, 1, "", "", ""};
	struct h *h = h_new(&tc);
	uint64_t ms;

	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_GREETING);
	assert_int_equal(ms, 300000);
	feed(h, G, strlen(G));
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_OTHER);
	feed(h, EHLO_BARE, strlen(EHLO_BARE));
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_MAIL);
	feed(h, "250 ok\r\n", 8);
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_RCPT);
	feed(h, "250 ok\r\n", 8);
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_DATA_INIT);
	assert_int_equal(ms, 120000);
	smtp_client_feed(h->c, "354 go\r\n", 8);
	take_events(h);
	/* Body queued, not yet written. */
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_DATA_BLOCK);
	assert_int_equal(ms, 180000);
	drain(h);
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_DATA_END);
	assert_int_equal(ms, 600000);
	feed(h, OK, strlen(OK));
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_OTHER); /* QUIT */
	feed(h, BYE, strlen(BYE));
	assert_int_equal(smtp_client_deadline(h->c, &ms), SMTP_DL_NONE);
	assert_true(smtp_client_closed(h->c));
	h_free(h);
}

static void test_eof_timeout(void **state)
{
	const struct tcase tc = {"eof", {M_PLAIN3, -1}, 0, 0, 0, 0, 0, "", "", ""};
	struct h *h = h_new(&tc);

	feed(h, G EHLO_PIPE "250 ok\r\n250 ok\r\n", strlen(G EHLO_PIPE) + 16);
	smtp_client_eof(h->c);
	take_events(h);
	assert_string_equal(h->ev, "G220 R r0:t451 r1:t451 r2:t451 m:t0/3/0 X ");
	assert_int_equal(smtp_client_submit(h->c, &msgs[M_PLAIN1]), -EPIPE);
	h_free(h);

	h = h_new(&tc);
	feed(h, G, strlen(G));
	smtp_client_timeout(h->c);
	take_events(h);
	assert_string_equal(h->ev, "G220 r0:t451 r1:t451 r2:t451 m:t0/3/0 X ");
	h_free(h);
}

/* A reply line longer than the limit ends the session, whole or in bits. */
static void test_long_line(void **state)
{
	const struct tcase tc = {"long", {M_PLAIN1, -1}, 0, 0, 0, 0, 0, "", "", ""};
	size_t n = 5000;
	char *s = malloc(n);

	assert_non_null(s);
	memcpy(s, "250-", 4);
	memset(s + 4, 'x', n - 4);
	for (size_t step = 1; step <= n; step *= 7) {
		struct h *h = h_new(&tc);

		feed(h, G, strlen(G));
		for (size_t k = 0; k < n && !smtp_client_closed(h->c); k += step)
			feed(h, s + k, k + step > n ? n - k : step);
		assert_string_equal(h->ev, "G220 E r0:t451 m:t0/1/0 X ");
		assert_int_equal(smtp_client_stats(h->c)->malformed, 1);
		h_free(h);
	}
	free(s);
}

static void test_bad_submit(void **state)
{
	const struct tcase tc = {"sub", {-1}, 0, 0, 0, 0, 0, "", "", ""};
	struct h *h = h_new(&tc);
	struct smtp_rcpt bad[] = {{"b@y.test\r\nDATA", NULL, NULL}};
	struct smtp_msg m = {"a@x.test", bad, 1, &ck_plain, 1, NULL, 0, NULL};

	assert_int_equal(smtp_client_submit(h->c, &m), -EINVAL);
	m.rcpts = rc1;
	m.from = "a@x>";
	assert_int_equal(smtp_client_submit(h->c, &m), -EINVAL);
	m.from = "a@x.test";
	m.nrcpts = 0;
	assert_int_equal(smtp_client_submit(h->c, &m), -EINVAL);
	struct smtp_client_config cfg = {.helo_name = "a\r\nb"};
	assert_null(smtp_client_new(&cfg));
	h_free(h);
}

/* Reference rewrite, byte at a time. */
static size_t ref_encode(const uint8_t *in, size_t n, uint8_t *out, int dot)
{
	size_t o = 0;
	int bol = 1, cr = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t ch = in[i];
		if (ch == '\r') {
			out[o++] = '\r';
			out[o++] = '\n';
			cr = bol = 1;
		} else if (ch == '\n') {
			if (!cr) {
				out[o++] = '\r';
				out[o++] = '\n';
			}
			cr = 0;
			bol = 1;
		} else {
			if (bol && ch == '.' && dot)
				out[o++] = '.';
			out[o++] = ch;
			cr = bol = 0;
		}
	}
	if (!bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	if (dot) {
		memcpy(out + o, ".\r\n", 3);
		o += 3;
	}
	return o;
}

/* Body rewriting: the body split into two chunks at every point gives the
 * reference output, for DATA and for BDAT, and a body larger than one
 * rewrite slice comes out whole. */
static void test_body_chunks(void **state)
{
	static const char *const bodies[] = {
	    "a\r\n.b\n..c\r.d\r\n\r\n.\r\n.", "\n\n\r\r.\r\n", ".", "", "x\r", "\r\n.\r\n",
	    "ab\ncd\re",
	    /* Longer than the sixteen-byte steps of the scan:
	     * line ends on and across step boundaries. */
	    ("0123456789abcd\r\n0123456789abcdef\r\n0123456789abcde\r\n"
	     "0123456789abcdefg\r\nend\r\n"),
	    "0123456789abcdef\n0123456789abcdef\r\n0123456789abcdef",
	    "0123456789abcde\r0123456789abcdef\r\n0123456789abcdef\r\n",
	    "0123456789abcdef0123456789abcde\r\n.0123456789abcdef\r\n\r",
	    "\r\n0123456789abcdef\r\n0123456789abcd\r\n\n"};
	uint8_t want[512];

	for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
		size_t n = strlen(bodies[b]);

		for (int bdat = 0; bdat < 2; bdat++) {
			size_t wl = ref_encode((const uint8_t *)bodies[b], n, want, !bdat);

			for (size_t k = 0; k <= n; k++) {
				struct smtp_chunk ck[2] = {{bodies[b], k}, {bodies[b] + k, n - k}};
				struct smtp_msg m = {"a@x.test", rc1, 1, ck, 2, NULL, 0, NULL};
				const struct tcase tc = {"body", {-1}, 0, 0, 0, 0, 0, "", "", ""};
				struct h *h = h_new(&tc);
				const char *e = bdat ? EHLO_CHUNK : EHLO_PIPE;
				char pre[256];

				feed(h, G, strlen(G));
				feed(h, e, strlen(e));
				assert_int_equal(smtp_client_submit(h->c, &m), 0);
				drain(h);
				if (!bdat)
					feed(h, "250 ok\r\n250 ok\r\n354 go\r\n", 24);
				size_t sz = bdat ? wl : wl - 3;
				/* The MAIL SIZE and BDAT count are the rewritten size
				 * (without dot-stuffing). */
				size_t undotted =
				    ref_encode((const uint8_t *)bodies[b], n, want + 256, 0);
				snprintf(pre, sizeof(pre),
					 bdat ? CE MAIL R1 "BDAT %zu LAST\r\n"
					      : CE "MAIL FROM:<a@x.test> SIZE=%zu\r\n" R1
						   "DATA\r\n",
					 undotted);
				size_t pl = strlen(pre);
				(void)sz;
				if (h->out_len != pl + wl || memcmp(h->out, pre, pl) != 0 ||
				    memcmp(h->out + pl, want, wl) != 0)
					fail_msg("body %zu split %zu bdat %d: got %.*s", b, k, bdat,
						 (int)h->out_len, h->out);
				h_free(h);
			}
		}
	}

	/* 200 KiB of short lines starting with dots, bare LFs, in odd chunks. */
	size_t big = 200 * 1024;
	uint8_t *in = malloc(big), *ref = malloc(3 * big);
	assert_non_null(in);
	assert_non_null(ref);
	for (size_t i = 0; i < big; i++)
		in[i] = (i % 37 == 0) ? '\n' : (i % 37 == 1) ? '.' : (uint8_t)('a' + i % 26);
	size_t rl = ref_encode(in, big, ref, 1);
	struct smtp_chunk ck[3] = {{in, 1000}, {in + 1000, 100000}, {in + 101000, big - 101000}};
	struct smtp_msg m = {"a@x.test", rc1, 1, ck, 3, NULL, 0, NULL};
	const struct tcase tc = {"big", {-1}, 0, 0, 0, 0, 0, "", "", ""};
	struct h *h = h_new(&tc);
	feed(h, G EHLO_BARE, strlen(G EHLO_BARE));
	assert_int_equal(smtp_client_submit(h->c, &m), 0);
	feed(h, "250 ok\r\n250 ok\r\n354 go\r\n", 24);
	const char *pre = CE MAIL R1 "DATA\r\n";
	assert_int_equal(h->out_len, strlen(pre) + rl);
	assert_memory_equal(h->out + strlen(pre), ref, rl);
	h_free(h);
	free(in);
	free(ref);
}

/* BDAT with a body already in CRLF form sends the caller's bytes. */
static void test_bdat_zero_copy(void **state)
{
	const struct tcase tc = {"zc", {M_PLAIN1, -1}, 0, 0, 0, 0, 0, "", "", ""};
	struct h *h = h_new(&tc);
	struct iovec iov[8];
	size_t k;
	int found = 0;

	smtp_client_feed(h->c, G, strlen(G));
	take_events(h);
	drain(h);
	smtp_client_feed(h->c, EHLO_CHUNK, strlen(EHLO_CHUNK));
	take_events(h);
	k = smtp_client_tx_iov(h->c, iov, 8);
	for (size_t i = 0; i < k; i++)
		found |= iov[i].iov_base == (void *)body_plain;
	assert_true(found);
	h_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_transcripts),	   cmocka_unit_test(test_round_trips),
	    cmocka_unit_test(test_deadlines),	   cmocka_unit_test(test_eof_timeout),
	    cmocka_unit_test(test_bad_submit),	   cmocka_unit_test(test_body_chunks),
	    cmocka_unit_test(test_bdat_zero_copy), cmocka_unit_test(test_long_line),
	};

	init_msgs();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
