/*
 * test_dlog.c - the delivery log: one JSON line per record, whatever the
 *	peer's reply holds.
 *
 * DESCRIPTION
 *	A server's reply is the longest field and comes from the network;
 *	records that do not fit the line buffer have their reply cut, never
 *	inside an escape or a UTF-8 character, so the line stays JSON.
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

#include "core/control/dmta_dlog.h"

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 1 << 16);

	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	return buf;
}

/* Write one record whose reply is @p reply and return the line (to free). */
static char *write_rec(const char *reply, size_t *len)
{
	const char *tail = "\"delay_s\":0.000,\"outcome\":\"delivered\",\"source\":\"198.18.0.10\","
			   "\"site\":\"mx.example.test\","
			   "\"class\":\"\",\"priority\":\"normal\",\"tenant\":\"acme\"}\n";
	char dir[] = "/tmp/dmta-dlog-XXXXXX", path[64];
	struct dmta_dlog *dl;
	char *out;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/delivery.log", dir);
	dl = dmta_dlog_open(path, 0, 0);
	assert_non_null(dl);
	struct dmta_dlog_rec r = {
	    .qid = 1,
	    .from = "a@example.test",
	    .to = "b@example.test",
	    .domain = "example.test",
	    .mx = "mx.example.test",
	    .ip = "198.18.1.10",
	    .tls = "",
	    .reply = reply,
	    .status = "2.0.0",
	    .attempt = 1,
	    .outcome = "delivered",
	    .source = "198.18.0.10",
	    .site = "mx.example.test",
	    .cls = "",
	    .priority = "normal",
	    .tenant = "acme",
	};
	assert_int_equal(dmta_dlog_write(dl, &r), 0);
	dmta_dlog_close(dl);
	out = read_all(path, len);
	/* One line, whatever was cut, and all of the record's end. */
	assert_true(*len > 0 && *len <= 4096);
	assert_int_equal(out[*len - 1], '\n');
	assert_null(memchr(out, '\n', *len - 1));
	if (*len < strlen(tail) || strcmp(out + *len - strlen(tail), tail) != 0)
		fail_msg("got \"%s\", want it to end in the outcome", out);
	unlink(path);
	rmdir(dir);
	return out;
}

/* The reply as the line holds it, between its quotes. */
static const char *reply_in(const char *line, size_t *n)
{
	const char *p = strstr(line, "\"reply\":\"");
	const char *e = p ? strstr(p, "\",\"status\":") : NULL;

	assert_non_null(e);
	p += strlen("\"reply\":\"");
	*n = (size_t)(e - p);
	return p;
}

static void write_with_reply(size_t reply_len)
{
	char *reply = malloc(reply_len + 1);
	const char *in;
	size_t len, n;
	char *out;

	assert_non_null(reply);
	memset(reply, 'x', reply_len);
	memcpy(reply, "250 ", 4);
	reply[reply_len] = '\0';
	out = write_rec(reply, &len);
	in = reply_in(out, &n);
	/* Cut only when it had to be, and then to a prefix of the reply. */
	if (n > reply_len || memcmp(in, reply, n) != 0)
		fail_msg("reply of %zu: got %zu bytes that are not its prefix", reply_len, n);
	if (n < reply_len && len < 4000)
		fail_msg("reply of %zu: cut to %zu in a line of only %zu", reply_len, n, len);
	free(out);
	free(reply);
}

static void test_exact_line(void **state)
{
	size_t len;
	char *out = write_rec("250 ok\n\"\xc3\xa9\"", &len);
	const char *want =
	    "\"qid\":\"000000000001\",\"from\":\"a@example.test\",\"to\":\"b@example.test\","
	    "\"domain\":\"example.test\",\"mx\":\"mx.example.test\",\"ip\":\"198.18.1.10\","
	    "\"tls\":\"\",\"reply\":\"250 ok\\u000a\\\"\xc3\xa9\\\"\",\"status\":\"2.0.0\","
	    "\"attempt\":1,\"delay_s\":0.000,\"outcome\":\"delivered\",\"source\":\"198.18.0.10\","
	    "\"site\":\"mx.example.test\",\"class\":\"\",\"priority\":\"normal\",\"tenant\":"
	    "\"acme\"}\n";
	const char *q = strstr(out, "\"qid\"");

	/* {"time":"2026-11-23T18:40:00.123Z", then the rest. */
	if (strncmp(out, "{\"time\":\"", 9) != 0 || out[32] != 'Z' || q != out + 35 ||
	    strcmp(q, want) != 0)
		fail_msg("got \"%s\", want {\"time\":\"...Z\",%s", out, want);
	free(out);
}

/* A long reply of UTF-8 and escapes is cut between characters and escapes,
 * wherever the cut falls, and no shorter than it has to be. */
static void test_cut_utf8(void **state)
{
	for (size_t k = 0; k < 12; k++) {
		char *reply = malloc(8000);
		const char *in;
		size_t len, n, i;
		char *out;

		assert_non_null(reply);
		memcpy(reply, "550 ", 4);
		memset(reply + 4, 'x', k);
		for (i = 4 + k; i + 11 < 8000; i += 10)
			memcpy(reply + i, "\xc3\xa9\n\xe2\x82\xac\xc3\xa9\n\n", 10);
		reply[i] = '\0';
		out = write_rec(reply, &len);
		in = reply_in(out, &n);
		if (len < 4096 - 64)
			fail_msg("cut %zu: got a line of %zu bytes, want nearly 4096", k, len);
		for (size_t p = 0; p < n; p++) {
			unsigned char c = (unsigned char)in[p];
			size_t l = c == '\\' ? 6 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

			if (p + l > n || (c == '\\' && memcmp(in + p, "\\u000a", 6) != 0))
				fail_msg("cut %zu: got a broken escape or character at %zu", k, p);
			for (size_t b = 1; c != '\\' && b < l; b++)
				if (((unsigned char)in[p + b] & 0xc0) != 0x80)
					fail_msg("cut %zu: got half a character at %zu", k, p);
			if (c >= 0x80 && c < 0xc0)
				fail_msg("cut %zu: got a character's tail alone at %zu", k, p);
			p += l - 1;
		}
		free(out);
		free(reply);
	}
}

static void test_short_reply(void **state)
{
	(void)state;
	write_with_reply(40);
}

/* Replies around the buffer's size: each field boundary near the end. */
static void test_long_replies(void **state)
{
	(void)state;
	for (size_t n = 3900; n < 4200; n++)
		write_with_reply(n);
	write_with_reply(20000);
}

/* The delivery log is never opened through a link. */
static void test_no_follow(void **state)
{
	char dir[] = "/tmp/dmta-test-dlog-XXXXXX", path[256], victim[256];
	struct dmta_dlog *dl;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(path, sizeof(path), "%s/delivery.log", dir);
	assert_int_equal(symlink(victim, path), 0);
	dl = dmta_dlog_open(path, 1 << 20, 2);
	if (dl != NULL)
		fail_msg("delivery log opened through a link, want ELOOP");
	assert_int_equal(errno, ELOOP);
	if (access(victim, F_OK) == 0)
		fail_msg("the link's target was created, want nothing there");
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/*
 * Lines kept between flushes and rotation: with max_bytes a few lines
 * long, every file holds whole lines, no more than max_bytes unless one
 * line is longer, and the newest file the newest lines, in order.
 */
static void test_rotation(void **state)
{
	char dir[] = "/tmp/dmta-dlog-XXXXXX", path[64], name[80];
	unsigned last = 0;
	struct dmta_dlog *dl;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/delivery.log", dir);
	dl = dmta_dlog_open(path, 1000, 2);
	assert_non_null(dl);
	for (unsigned i = 1; i <= 40; i++) {
		struct dmta_dlog_rec r = {.qid = i,
					  .from = "a@x.test",
					  .to = "b@y.test",
					  .domain = "y.test",
					  .reply = "250 ok",
					  .outcome = "delivered"};

		assert_int_equal(dmta_dlog_write(dl, &r), 0);
		if (i % 7 == 0)
			assert_int_equal(dmta_dlog_flush(dl), 0);
	}
	dmta_dlog_close(dl);
	/* Oldest first: PATH.2, PATH.1, PATH. */
	for (int k = 2; k >= 0; k--) {
		size_t len;
		char *text, *p;

		if (k > 0)
			snprintf(name, sizeof(name), "%s.%d", path, k);
		else
			snprintf(name, sizeof(name), "%s", path);
		text = read_all(name, &len);
		if (len == 0 || len > 1000 || text[len - 1] != '\n')
			fail_msg("%s: %zu bytes, want whole lines, at most 1000", name, len);
		for (p = text; p < text + len; p = strchr(p, '\n') + 1) {
			unsigned q = (unsigned)strtoul(strstr(p, "\"qid\":\"") + 7, NULL, 16);

			if (last != 0 && q != last + 1)
				fail_msg("%s: got record %u after %u, want %u", name, q, last,
					 last + 1);
			last = q;
		}
		free(text);
		unlink(name);
	}
	if (last != 40)
		fail_msg("the newest line is record %u, want 40", last);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_short_reply),	 cmocka_unit_test(test_no_follow),
	    cmocka_unit_test(test_long_replies), cmocka_unit_test(test_exact_line),
	    cmocka_unit_test(test_cut_utf8),	 cmocka_unit_test(test_rotation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
