/*
 * test_msg.c - address checks, address lists and message repair.
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

#include "queue/queue_addr.h"
#include "queue/queue_msg.h"

static void test_addr_check(void **state)
{
	static const char *good[] = {
	    "user@example.org",	   "a.b+c@x.y",	       "\"john doe\"@example.org",
	    "\"a@b\"@example.org", "user@[192.0.2.1]", "user@[IPv6:2001:db8::1]",
	    "üser@exämple.org",	   "root@localhost",   "x@a-b.c",
	};
	static const char *bad[] = {
	    "",
	    "user",
	    "@example.org",
	    "user@",
	    "us er@example.org",
	    "user@exa mple.org",
	    ".user@x.org",
	    "us..er@x.org",
	    "user.@x.org",
	    "user@-x.org",
	    "user@x-.org",
	    "user@x..org",
	    "user@[1.2.3]",
	    "a\r\nb@x.org",
	    "a@x.org\r\nBcc: v",
	    "\"unterminated@x.org",
	    "a@b@c",
	    "user@x_y.org",
	    "\xff@x.org",
	    "\xc0\xaf@x.org",
	    /* Legal in RFC 5321's quoted-string, but no SMTP engine of ours (nor
	     * many servers) can send them: refused at the door, not at delivery. */
	    "\"x>y\"@example.org",
	    "\"x<y\"@example.org",
	    "\"x\\>y\"@example.org",
	};
	char longlocal[80], longaddr[300];
	const char *why;
	bool utf8;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (queue_addr_check(good[i], strlen(good[i]), &utf8, &why) != 0)
			fail_msg("got reject (%s) for %s, want accept", why, good[i]);
	}
	assert_int_equal(queue_addr_check("üser@x.org", strlen("üser@x.org"), &utf8, &why), 0);
	assert_true(utf8);
	assert_int_equal(queue_addr_check("user@x.org", 10, &utf8, &why), 0);
	assert_false(utf8);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (queue_addr_check(bad[i], strlen(bad[i]), &utf8, &why) != -EINVAL)
			fail_msg("got accept for \"%s\", want reject", bad[i]);
		assert_non_null(why);
	}
	memset(longlocal, 'a', 65);
	strcpy(longlocal + 65, "@x.org");
	assert_int_equal(queue_addr_check(longlocal, strlen(longlocal), &utf8, &why), -EINVAL);
	memset(longaddr, 'a', 250);
	strcpy(longaddr + 30, "@");
	memset(longaddr + 31, 'b', 240);
	strcpy(longaddr + 271, ".org");
	assert_int_equal(queue_addr_check(longaddr, strlen(longaddr), &utf8, &why), -EINVAL);
}

struct collect {
	char out[1024];
};

static int collect_cb(const char *a, size_t n, void *arg)
{
	struct collect *c = arg;

	strncat(c->out, a, n);
	strcat(c->out, "|");
	return 0;
}

static void test_addr_list(void **state)
{
	static const struct {
		const char *in, *want;
		int n;
	} cases[] = {
	    {"a@b.c", "a@b.c|", 1},
	    {" John Doe <j@d.e>, x@y.z (comment)", "j@d.e|x@y.z|", 2},
	    {"\"Doe, John\" <j@d.e>", "j@d.e|", 1},
	    {"undisclosed-recipients:;", "", 0},
	    {"team: a@b.c, d@e.f;, g@h.i", "a@b.c|d@e.f|g@h.i|", 3},
	    {"<@relay.example:u@d.e>", "u@d.e|", 1},
	    {"a@b.c,\r\n\tc@d.e", "a@b.c|c@d.e|", 2},
	    {"x@[IPv6:::1]", "x@[IPv6:::1]|", 1},
	    {"(nested (comment)) a@b.c", "a@b.c|", 1},
	};
	struct collect c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n;

		memset(&c, 0, sizeof(c));
		n = queue_addr_list(cases[i].in, strlen(cases[i].in), collect_cb, &c);
		if (n != cases[i].n || strcmp(c.out, cases[i].want) != 0)
			fail_msg("%s: got %d \"%s\", want %d \"%s\"", cases[i].in, n, c.out,
				 cases[i].n, cases[i].want);
	}
	assert_int_equal(queue_addr_list("\"open <a@b.c>", 13, collect_cb, &c), -EBADMSG);
	assert_int_equal(queue_addr_list("x <a@b.c", 8, collect_cb, &c), -EBADMSG);
	assert_int_equal(queue_addr_list("(open a@b.c", 11, collect_cb, &c), -EBADMSG);
}

/* Valid on the wire: CRLF only, lines <= 998 octets, no NUL. */
static void assert_wire_valid(const char *p, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == 0)
			fail_msg("NUL at %zu", i);
		if (p[i] == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				fail_msg("bare CR at %zu", i);
			i++;
			col = 0;
			continue;
		}
		if (p[i] == '\n')
			fail_msg("bare LF at %zu", i);
		if (++col > QUEUE_LINE_MAX)
			fail_msg("line longer than 998 at %zu", i);
	}
	if (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n')
		fail_msg("no final CRLF");
}

static char *render(const char *in, size_t len, bool dots, unsigned *flags, size_t *outlen)
{
	struct queue_msg m;
	struct queue_buf out = {0};
	const char *why;

	assert_int_equal(queue_msg_parse(&m, in, len, dots, &why), 0);
	assert_int_equal(queue_msg_render(&m, &out, flags), 0);
	queue_msg_free(&m);
	assert_wire_valid(out.p, out.len);
	*outlen = out.len;
	return out.p;
}

#define RENDER(lit, ...) render(lit, sizeof(lit) - 1, __VA_ARGS__)

static void test_msg_repair(void **state)
{
	unsigned flags;
	size_t n;
	char *out, *in;
	struct queue_msg m;
	const char *why;

	/* bare LF and bare CR become CRLF */
	out = RENDER("Subject: x\nTo: a@b.c\r\n\r\nline1\rline2\nline3", true, &flags, &n);
	assert_string_equal(out, "Subject: x\r\nTo: a@b.c\r\n\r\nline1\r\nline2\r\nline3\r\n");
	free(out);

	/* empty message: an empty header and body */
	out = render("", 0, true, &flags, &n);
	free(out);

	/* a body with no header at all */
	out = RENDER("hello world\n", true, &flags, &n);
	assert_string_equal(out, "\r\nhello world\r\n");
	free(out);

	/* mbox From_ line dropped; lone dot ends the message without -i */
	out = RENDER("From foo Mon\nSubject: s\n\nA\n.\nB\n", false, &flags, &n);
	assert_string_equal(out, "Subject: s\r\n\r\nA\r\n");
	free(out);
	out = RENDER("Subject: s\n\nA\n.\nB\n", true, &flags, &n);
	assert_string_equal(out, "Subject: s\r\n\r\nA\r\n.\r\nB\r\n");
	free(out);

	/* long header folded at blanks, long unbroken header broken */
	in = malloc(5000);
	strcpy(in, "Subject:");
	for (int i = 0; i < 400; i++)
		strcat(in, " word");
	strcat(in, "\nX-Long: ");
	memset(in + strlen(in), 'x', 2500);
	in[strlen("Subject:") + 400 * 5 + 9 + 2500] = 0;
	strcat(in, "\n\nbody\n");
	out = render(in, strlen(in), true, &flags, &n);
	assert_true(flags & QUEUE_MSG_FOLDED);
	free(out);

	/* long body line, not MIME: quoted-printable, exact after decoding */
	strcpy(in, "Subject: q\n\n");
	for (int i = 0; i < 3000; i++)
		strcat(in, i % 7 ? "a" : (i % 5 ? "=" : " "));
	strcat(in, " \n");
	out = render(in, strlen(in), true, &flags, &n);
	assert_non_null(strstr(out, "Content-Transfer-Encoding: quoted-printable\r\n"));
	{
		/* decode the body back */
		char *b = strstr(out, "\r\n\r\n") + 4, *dec = malloc(n), *d = dec;

		for (char *p = b; *p;) {
			if (p[0] == '=' && p[1] == '\r') {
				p += 3;
			} else if (p[0] == '=') {
				unsigned v;

				sscanf(p + 1, "%2X", &v);
				*d++ = (char)v;
				p += 3;
			} else if (p[0] == '\r') {
				*d++ = '\n';
				p += 2;
			} else {
				*d++ = *p++;
			}
		}
		*d = 0;
		assert_string_equal(dec, in + strlen("Subject: q\n\n"));
		free(dec);
	}
	free(out);

	/* long body line in a MIME message: broken */
	strcpy(in, "MIME-Version: 1.0\n\n");
	memset(in + strlen(in), 'z', 2100);
	in[19 + 2100] = 0;
	out = render(in, strlen(in), true, &flags, &n);
	assert_true(flags & QUEUE_MSG_FOLDED);
	free(out);
	free(in);

	/* NUL refused */
	assert_int_equal(queue_msg_parse(&m, "a\0b", 3, true, &why), -EBADMSG);
	assert_non_null(why);

	/* 8-bit body and header flags */
	out = RENDER("Subject: caf\xc3\xa9\n\nna\xc3\xafve\n", true, &flags, &n);
	assert_true(flags & QUEUE_MSG_8BIT_BODY);
	assert_true(flags & QUEUE_MSG_8BIT_HDR);
	free(out);
}

static void test_msg_headers(void **state)
{
	struct queue_msg m;
	struct queue_buf out = {0};
	const char *why;
	unsigned flags;
	char *v;

	assert_int_equal(
	    queue_msg_parse(&m, "To: a@b.c,\n c@d.e\nBcc: s@e.c\nCC: x@y.z\n\nb\n", 42, true, &why),
	    0);
	v = queue_msg_value(queue_msg_find(&m, "to", 0));
	assert_string_equal(v, " a@b.c, c@d.e");
	free(v);
	assert_non_null(queue_msg_find(&m, "Cc", 0));
	assert_int_equal(queue_msg_remove(&m, "bcc"), 1);
	assert_int_equal(queue_msg_add(&m, "Date", "now"), 0);
	assert_int_equal(queue_msg_render(&m, &out, &flags), 0);
	assert_string_equal(out.p, "To: a@b.c,\r\n c@d.e\r\nCC: x@y.z\r\nDate: now\r\n\r\nb\r\n");
	queue_buf_free(&out);
	queue_msg_free(&m);
}

/* Run queue_msg_take_fields() on @p in (copied to the end of a heap block,
 * so that an over-read is caught); the result must be @p want. */
static long take(const char *in, const char *want, struct queue_env *env, const char **why)
{
	size_t n = strlen(in), len = n;
	char *buf = malloc(n ? n : 1);
	long rc;

	memcpy(buf, in, n);
	*why = NULL;
	rc = queue_msg_take_fields(buf, &len, env, why);
	if (rc >= 0 && want != NULL && (len != strlen(want) || memcmp(buf, want, len) != 0))
		fail_msg("got \"%.*s\", want \"%s\"", (int)len, buf, want);
	free(buf);
	return rc;
}

static void test_take_fields(void **state)
{
	struct queue_env env = {0};
	const char *why;

	(void)state;
	/* Anywhere in the header, any case; a body line that looks like one stays. */
	assert_int_equal(take("Received: by x\r\n"
			      "X-Dmta-Pool: p1\r\n"
			      "Subject: s\r\n"
			      "x-dmta-priority:HIGH \r\n"
			      "X-DMTA-TENANT: \tt.1\r\n"
			      "\r\n"
			      "X-Dmta-Pool: body\r\n",
			      "Received: by x\r\n"
			      "Subject: s\r\n"
			      "\r\n"
			      "X-Dmta-Pool: body\r\n",
			      &env, &why),
			 3);
	assert_string_equal(env.pool, "p1");
	assert_string_equal(env.tenant, "t.1");
	assert_int_equal(env.priority, QUEUE_PRIO_HIGH);
	queue_env_free(&env);

	/* Folded, and the last field of the header. */
	assert_int_equal(take("Subject: a\r\n"
			      " b\r\n"
			      "X-Dmta-Tenant:\r\n"
			      "   shop-1\r\n"
			      "\t\r\n"
			      "\r\n"
			      "body\r\n",
			      "Subject: a\r\n"
			      " b\r\n"
			      "\r\n"
			      "body\r\n",
			      &env, &why),
			 1);
	assert_string_equal(env.tenant, "shop-1");
	queue_env_free(&env);

	/* The message's last line, without a line end; no body at all. */
	assert_int_equal(take("Subject: a\r\nX-Dmta-Priority: bulk", "Subject: a\r\n", &env, &why),
			 1);
	assert_int_equal(env.priority, QUEUE_PRIO_BULK);
	queue_env_free(&env);

	/* Bare LF line ends (as SMTP never sends them, but files may). */
	assert_int_equal(
	    take("X-Dmta-Pool: lf\nSubject: a\n\nb\n", "Subject: a\n\nb\n", &env, &why), 1);
	assert_string_equal(env.pool, "lf");
	queue_env_free(&env);

	/* Every occurrence goes; agreeing ones are fine. */
	assert_int_equal(take("X-Dmta-Pool: p\r\nX-Dmta-Pool:  p\r\n\r\n", "\r\n", &env, &why), 2);
	assert_string_equal(env.pool, "p");
	queue_env_free(&env);

	/* A header that ends without its empty line ends the search there. */
	assert_int_equal(take("Subject: a\r\nnot a field\r\nX-Dmta-Pool: y\r\n",
			      "Subject: a\r\nnot a field\r\nX-Dmta-Pool: y\r\n", &env, &why),
			 0);
	assert_null(env.pool);
	/* Only these names: a longer one stays, as does a message without any. */
	assert_int_equal(take("X-Dmta-Pools: x\r\nX-Dmta: y\r\n\r\n",
			      "X-Dmta-Pools: x\r\nX-Dmta: y\r\n\r\n", &env, &why),
			 0);
	assert_int_equal(take("", "", &env, &why), 0);
	assert_int_equal(take("\r\nX-Dmta-Pool: x\r\n", "\r\nX-Dmta-Pool: x\r\n", &env, &why), 0);
	assert_null(env.pool);

	/* A field overrides what the envelope held (a [user] default). */
	assert_int_equal(queue_env_set_pool(&env, "default"), 0);
	env.priority = QUEUE_PRIO_BULK;
	assert_int_equal(
	    take("X-Dmta-Pool: mine\r\nX-Dmta-Priority: normal\r\n\r\n", "\r\n", &env, &why), 2);
	assert_string_equal(env.pool, "mine");
	assert_int_equal(env.priority, QUEUE_PRIO_NORMAL);
	queue_env_free(&env);
}

static void test_take_fields_bad(void **state)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"X-Dmta-Priority: urgent\r\n\r\n", "X-Dmta-Priority: want normal, high or bulk"},
	    {"X-Dmta-Priority:\r\n\r\n", "X-Dmta-Priority: want normal, high or bulk"},
	    {"X-Dmta-Pool: two words\r\n\r\n",
	     "X-Dmta-Pool: want 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"X-Dmta-Pool: a/b\r\n\r\n",
	     "X-Dmta-Pool: want 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"X-Dmta-Tenant: \r\n \r\n\r\n",
	     "X-Dmta-Tenant: want 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"X-Dmta-Tenant: "
	     "x12345678901234567890123456789012345678901234567890123456789012345\r\n\r\n",
	     "X-Dmta-Tenant: want 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"X-Dmta-Tenant: sh\r\n op\r\n\r\n",
	     "X-Dmta-Tenant: want 1 to 64 characters of A-Z a-z 0-9 . _ -"},
	    {"X-Dmta-Pool: a\r\nSubject: s\r\nX-Dmta-Pool: b\r\n\r\n",
	     "X-Dmta-Pool: given twice with different values"},
	    {"X-Dmta-Priority: high\r\nX-Dmta-Priority: HIGH\r\nX-Dmta-Priority: bulk\r\n\r\n",
	     "X-Dmta-Priority: given twice with different values"},
	};
	struct queue_env env = {0};
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long rc = take(bad[i].in, NULL, &env, &why);

		if (rc != -EBADMSG || why == NULL || strcmp(why, bad[i].why) != 0)
			fail_msg("%zu: got %ld \"%s\", want -EBADMSG \"%s\"", i, rc,
				 why ? why : "(null)", bad[i].why);
		queue_env_free(&env);
	}
	/* A NUL inside a value (SMTP may carry one) is no name. */
	{
		char in[] = "X-Dmta-Pool: a\0b\r\n\r\n";
		size_t len = sizeof(in) - 1;

		assert_int_equal(queue_msg_take_fields(in, &len, &env, &why), -EBADMSG);
		queue_env_free(&env);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr_check),	cmocka_unit_test(test_addr_list),
	    cmocka_unit_test(test_msg_repair),	cmocka_unit_test(test_msg_headers),
	    cmocka_unit_test(test_take_fields), cmocka_unit_test(test_take_fields_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
