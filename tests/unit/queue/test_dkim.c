/*
 * test_dkim.c - DKIM canonicalisation vectors, the signature field's form,
 * the choice of signing domain, bad input and bad keys.
 *
 * That signatures verify is proved by independent verifiers (dkimpy and
 * OpenDKIM) in tests/lab/dkim; here the canonical forms are checked octet
 * by octet, and the signature field against what RFC 6376 requires of it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/base/dmta_conf.h"
#include "queue/queue_dkim.h"
#include "queue/queue_msg.h"

static char tmpdir[] = "/tmp/dmta-test-dkim.XXXXXX";

/* Compare, printing both with escapes when they differ. */
static void expect_bytes(const char *what, const char *got, size_t glen, const char *want,
			 size_t wlen)
{
	if (glen == wlen && memcmp(got, want, wlen) == 0)
		return;
	fprintf(stderr, "%s:\n  got  \"", what);
	for (size_t i = 0; i < glen && i < 300; i++)
		fprintf(stderr, (unsigned char)got[i] < 32 ? "\\x%02x" : "%c",
			(unsigned char)got[i]);
	fprintf(stderr, "\" (%zu octets)\n  want \"", glen);
	for (size_t i = 0; i < wlen && i < 300; i++)
		fprintf(stderr, (unsigned char)want[i] < 32 ? "\\x%02x" : "%c",
			(unsigned char)want[i]);
	fprintf(stderr, "\" (%zu octets)\n", wlen);
	fail();
}

static void body(bool relaxed, const char *in, size_t len, const char *want, size_t wlen)
{
	struct queue_buf out = {0};

	assert_int_equal(queue_dkim_canon_body(relaxed, in, len, &out), 0);
	expect_bytes(relaxed ? "relaxed body" : "simple body", out.p ? out.p : "", out.len, want,
		     wlen);
	queue_buf_free(&out);
}

#define BODY(rel, in, want) body(rel, in, sizeof(in) - 1, want, sizeof(want) - 1)

static void header(bool relaxed, const char *in, const char *want)
{
	struct queue_buf out = {0};

	assert_int_equal(queue_dkim_canon_header(relaxed, in, strlen(in), &out), 0);
	expect_bytes(relaxed ? "relaxed header" : "simple header", out.p ? out.p : "", out.len,
		     want, strlen(want));
	queue_buf_free(&out);
}

/* RFC 6376 section 3.4.5, both canonicalisations. */
static void test_rfc6376_example(void **state)
{
	(void)state;
	header(true, "A: X", "a:X\r\n");
	header(true, "B : Y\t\r\n\tZ  ", "b:Y Z\r\n");
	header(false, "A: X", "A: X\r\n");
	header(false, "B : Y\t\r\n\tZ  ", "B : Y\t\r\n\tZ  \r\n");
	BODY(true, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
	BODY(false, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n");
}

static void test_headers(void **state)
{
	(void)state;
	/* Folded over several lines; blanks before the colon; an empty value. */
	header(true, "Subject:  a\r\n  long\r\n\tsubject \t ", "subject:a long subject\r\n");
	header(true, "X-Empty:", "x-empty:\r\n");
	header(true, "X-Empty: \t ", "x-empty:\r\n");
	header(true, "MiXeD-CaSe \t: Value With  CAPS", "mixed-case:Value With CAPS\r\n");
	/* 8-bit octets pass untouched. */
	header(true, "Subject: h\xc3\xa9llo   w\xc3\xb6rld",
	       "subject:h\xc3\xa9llo w\xc3\xb6rld\r\n");
}

static void test_bodies(void **state)
{
	(void)state;
	/* Empty bodies: relaxed is empty, simple is one CRLF. */
	BODY(true, "", "");
	BODY(false, "", "\r\n");
	BODY(true, "\r\n\r\n\r\n", "");
	BODY(false, "\r\n\r\n\r\n", "\r\n");
	/* Trailing blank lines go; blank lines inside stay. */
	BODY(true, "a\r\n\r\nb\r\n\r\n\r\n", "a\r\n\r\nb\r\n");
	BODY(false, "a\r\n\r\nb\r\n\r\n\r\n", "a\r\n\r\nb\r\n");
	/* Lines of blanks only count as empty in relaxed, not in simple. */
	BODY(true, "x\r\n \t\r\ny\r\n \r\n\t\r\n", "x\r\n\r\ny\r\n");
	BODY(false, "x\r\n \r\n", "x\r\n \r\n");
	/* Whitespace runs, leading blanks (kept as one SP), trailing blanks. */
	BODY(true, "  a \t  b\t\r\n", " a b\r\n");
	/* A last line without CRLF gets one. */
	BODY(true, "abc", "abc\r\n");
	BODY(false, "abc", "abc\r\n");
	BODY(false, "abc\r\n\r\nd", "abc\r\n\r\nd\r\n");
	/* 8-bit text is hashed as is. */
	BODY(true, "h\xc3\xa9llo  w\xc3\xb6rld \xe2\x82\xac \r\n",
	     "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\r\n");
}

/* Lines far longer than the 4 KiB staging buffer, runs across its edges. */
static void test_long_lines(void **state)
{
	struct queue_buf in = {0}, want = {0};

	(void)state;
	for (int i = 0; i < 3000; i++) {
		assert_int_equal(queue_buf_adds(&in, "ab \t "), 0);
		assert_int_equal(queue_buf_adds(&want, i ? " ab" : "ab"), 0);
	}
	assert_int_equal(queue_buf_adds(&in, "\r\n"), 0);
	assert_int_equal(queue_buf_adds(&want, "\r\n"), 0);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(queue_buf_adds(&in, "line\r\n"), 0);
		assert_int_equal(queue_buf_adds(&want, "line\r\n"), 0);
	}
	body(true, in.p, in.len, want.p, want.len);
	body(false, in.p, in.len, in.p, in.len);
	queue_buf_free(&in);
	queue_buf_free(&want);
}

/*
 * The canonical body as RFC 6376 3.4.3 and 3.4.4 say it, written the plain
 * way: split at CRLF, rewrite each line, drop empty lines at the end.
 */
static void reference_body(bool relaxed, const char *in, size_t len, struct queue_buf *out)
{
	size_t pos = 0, keep = 0;
	struct queue_buf lines = {0};

	while (pos < len) {
		const char *nl = memmem(in + pos, len - pos, "\r\n", 2);
		size_t n = nl ? (size_t)(nl - (in + pos)) : len - pos;
		size_t start = lines.len;

		for (size_t i = 0; i < n; i++) {
			char c = in[pos + i];

			if (relaxed && (c == ' ' || c == '\t')) {
				if (lines.len == start || lines.p[lines.len - 1] != ' ')
					assert_int_equal(queue_buf_add(&lines, " ", 1), 0);
				continue;
			}
			assert_int_equal(queue_buf_add(&lines, &c, 1), 0);
		}
		if (relaxed && lines.len > start && lines.p[lines.len - 1] == ' ')
			lines.len--;
		if (lines.len > start)
			keep = lines.len + 2; /* up to here is not trailing emptiness */
		assert_int_equal(queue_buf_add(&lines, "\r\n", 2), 0);
		pos += n + (nl ? 2 : 0);
	}
	if (keep > 0)
		assert_int_equal(queue_buf_add(out, lines.p, keep), 0);
	else if (!relaxed)
		assert_int_equal(queue_buf_add(out, "\r\n", 2), 0);
	queue_buf_free(&lines);
}

/* Random bodies of blanks, tabs, stray CR and LF, 8-bit octets: both ways agree. */
static void test_bodies_random(void **state)
{
	static const char alphabet[] = "ab  \t\t\r\n\r\n!\x80 \x21";
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		char in[400];
		size_t len;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = (size_t)(x % sizeof(in));
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* mostly CRLF line ends, so that there are lines */
			if (x % 11 == 0 && i + 1 < len) {
				in[i++] = '\r';
				in[i] = '\n';
			} else {
				in[i] = alphabet[x % (sizeof(alphabet) - 1)];
			}
		}
		for (int relaxed = 0; relaxed < 2; relaxed++) {
			struct queue_buf want = {0}, got = {0};

			reference_body(relaxed, in, len, &want);
			assert_int_equal(queue_dkim_canon_body(relaxed, in, len, &got), 0);
			expect_bytes(relaxed ? "random relaxed body" : "random simple body",
				     got.p ? got.p : "", got.len, want.p ? want.p : "", want.len);
			queue_buf_free(&want);
			queue_buf_free(&got);
		}
	}
}

/* Write a key made here as PEM, mode @p mode; returns its path (static). */
static const char *write_key(const char *name, EVP_PKEY *k, mode_t mode)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	EVP_PKEY_free(k);
	return path;
}

static const char msg1[] = "From: Alice <alice@mail.example.org>\r\n"
			   "To: bob@example.net\r\n"
			   "Subject: a folded\r\n"
			   " subject\r\n"
			   "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
			   "X-Unsigned: 1\r\n"
			   "\r\n"
			   "Hello  world \r\n"
			   "\r\n";

/* A signature field without any whitespace (folds may be anywhere in b=). */
static char *unfold(const char *f, size_t n)
{
	char *o = malloc(n + 1), *p = o;

	for (size_t i = 0; i < n; i++)
		if (f[i] != '\r' && f[i] != '\n' && f[i] != ' ' && f[i] != '\t')
			*p++ = f[i];
	*p = 0;
	return o;
}

static void test_sign_form(void **state)
{
	struct queue_dkim *d = queue_dkim_new();
	struct queue_buf sigs = {0};
	char err[512], keys[600], *u, want[128];
	const char *why, *line;
	int n;

	(void)state;
	snprintf(keys, sizeof(keys), "ed:%s",
		 write_key("ed.key", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), 0600));
	n = queue_dkim_add(d, "Example.ORG", keys, NULL, NULL, 3600, err, sizeof(err));
	if (n < 0)
		fail_msg("queue_dkim_add: got %d (%s), want 0", n, err);
	n = queue_dkim_sign(d, msg1, sizeof(msg1) - 1, 1700000000, &sigs, &why);
	if (n != 1)
		fail_msg("sign: got %d (%s), want 1 signature", n, why ? why : "");
	/* Folded at 78 columns, continuation lines start with a blank, CRLF. */
	for (line = sigs.p; line < sigs.p + sigs.len;) {
		const char *e = strstr(line, "\r\n");

		assert_non_null(e);
		if (e - line > 78)
			fail_msg("signature line of %d columns, want <= 78: %.*s", (int)(e - line),
				 (int)(e - line), line);
		if (line != sigs.p && line[0] != ' ')
			fail_msg("continuation line starts with '%c', want a blank", line[0]);
		line = e + 2;
	}
	u = unfold(sigs.p, sigs.len);
	/* d= is the section's domain (a parent of the From domain), t= and x=. */
	assert_non_null(strstr(u, "DKIM-Signature:v=1;a=ed25519-sha256;"));
	assert_non_null(strstr(u, ";c=relaxed/relaxed;"));
	assert_non_null(strstr(u, ";d=example.org;"));
	assert_non_null(strstr(u, ";s=ed;"));
	assert_non_null(strstr(u, ";t=1700000000;"));
	assert_non_null(strstr(u, ";x=1700003600;"));
	assert_null(strstr(u, ";l="));
	/* Present fields of the list, From over-signed, absent ones left out. */
	snprintf(want, sizeof(want), "h=from:from:subject:date:to;");
	if (strstr(u, want) == NULL)
		fail_msg("got \"%s\", want it to contain \"%s\"", u, want);
	/* bh= of the relaxed body "Hello world\r\n". */
	{
		unsigned char h[32];
		char b[64];

		EVP_Digest("Hello world\r\n", 13, h, NULL, EVP_sha256(), NULL);
		EVP_EncodeBlock((unsigned char *)b, h, 32);
		snprintf(want, sizeof(want), "bh=%s;", b);
		if (strstr(u, want) == NULL)
			fail_msg("got \"%s\", want it to contain \"%s\"", u, want);
	}
	free(u);
	queue_buf_free(&sigs);

	/* A message with signatures put at its top keeps its own bytes. */
	{
		struct queue_buf m = {0};

		assert_int_equal(queue_buf_add(&m, msg1, sizeof(msg1) - 1), 0);
		assert_int_equal(queue_dkim_sign_msg(d, &m, 1700000000, &why), 1);
		assert_true(m.len > sizeof(msg1) - 1);
		assert_memory_equal(m.p + m.len - (sizeof(msg1) - 1), msg1, sizeof(msg1) - 1);
		assert_memory_equal(m.p, "DKIM-Signature: ", 16);
		queue_buf_free(&m);
	}
	queue_dkim_free(d);
}

static void test_sign_choice(void **state)
{
	struct queue_dkim *d = queue_dkim_new();
	struct queue_buf sigs = {0};
	char err[512], keys[1200];
	const char *why;
	int n;
	static const struct {
		const char *msg;
		int want;
	} cases[] = {
	    {"From: a@example.org\r\n\r\nx\r\n", 2},
	    {"From: a@deep.sub.example.org\r\n\r\nx\r\n", 2},
	    {"From: \"A, B\" <a@EXAMPLE.org>\r\n\r\nx\r\n", 2},
	    {"From: a@example.org.\r\n\r\nx\r\n", -EBADMSG},
	    {"From: a@notexample.org\r\n\r\nx\r\n", 0},
	    {"From: a@example.net\r\n\r\nx\r\n", 0},
	    {"From: a@[192.0.2.1]\r\n\r\nx\r\n", 0},
	    {"To: a@example.org\r\n\r\nx\r\n", -EBADMSG},
	    {"From: a@example.org\r\nFrom: b@example.org\r\n\r\nx\r\n", -EBADMSG},
	    {"From: a@example.org, b@example.org\r\n\r\nx\r\n", -EBADMSG},
	    {"From: Alice\r\n\r\nx\r\n", -EBADMSG},
	    {"From: <a@example.org\r\n\r\nx\r\n", -EBADMSG},
	    {"From: undisclosed:;\r\n\r\nx\r\n", -EBADMSG},
	};

	(void)state;
	snprintf(keys, sizeof(keys), "ed:%s",
		 write_key("ed2.key", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), 0600));
	{
		size_t l = strlen(keys);

		snprintf(
		    keys + l, sizeof(keys) - l, ", rsa:%s",
		    write_key("rsa.key", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), 0600));
	}
	n = queue_dkim_add(d, "example.org", keys, "Subject:To", "simple", 0, err, sizeof(err));
	if (n < 0)
		fail_msg("queue_dkim_add: got %d (%s), want 0", n, err);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sigs.len = 0;
		why = NULL;
		n = queue_dkim_sign(d, cases[i].msg, strlen(cases[i].msg), 1, &sigs, &why);
		if (n != cases[i].want)
			fail_msg("%s: got %d (%s), want %d", cases[i].msg, n, why ? why : "-",
				 cases[i].want);
		if (n == -EBADMSG && why == NULL)
			fail_msg("%s: refused without a reason", cases[i].msg);
		if (n > 0) {
			char *u = unfold(sigs.p, sigs.len);

			/* "headers" without From still signs From, over-signed. */
			if (strstr(u, "h=from:from:subject:to;") == NULL &&
			    strstr(u, "h=from:from;") == NULL)
				fail_msg("got \"%s\", want h=from:from first", u);
			assert_non_null(strstr(u, "c=simple/simple;"));
			assert_non_null(strstr(u, "a=rsa-sha256;"));
			assert_non_null(strstr(u, "a=ed25519-sha256;"));
			assert_non_null(strstr(u, "d=example.org;"));
			free(u);
		}
	}
	queue_buf_free(&sigs);
	queue_dkim_free(d);
}

static void test_bad_config(void **state)
{
	char err[512], keys[600];
	struct queue_dkim *d = queue_dkim_new();
	static const struct {
		const char *domain, *keys, *canon, *want;
	} cases[] = {
	    {"example.org", "", NULL, "no SELECTOR:PATH"},
	    {"example.org", "nocolon", NULL, "SELECTOR:PATH"},
	    {"example.org", "s:/nonexistent/key", NULL, "cannot read key"},
	    {"exa mple.org", "s:/x", NULL, "not a domain name"},
	    {"example.org", "bad sel:/x", NULL, "bad selector"},
	    {"example.org", "s:/x", "loose/relaxed", "canonicalization"},
	};
	char longname[200];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = 0;
		if (queue_dkim_add(d, cases[i].domain, cases[i].keys, NULL, cases[i].canon, 0, err,
				   sizeof(err)) != -EINVAL ||
		    strstr(err, cases[i].want) == NULL)
			fail_msg("%s %s: got \"%s\", want -EINVAL and \"%s\"", cases[i].domain,
				 cases[i].keys, err, cases[i].want);
	}
	memset(longname, 'X', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	if (queue_dkim_add(d, "example.org", "s:/x", longname, NULL, 0, err, sizeof(err)) !=
		-EINVAL ||
	    strstr(err, "longer than 128 octets") == NULL)
		fail_msg("a 199-octet field name: got \"%s\", want -EINVAL, \"longer than 128\"",
			 err);
	/* A key open to others; an RSA key too small; a key of another type. */
	snprintf(keys, sizeof(keys), "s:%s",
		 write_key("open.key", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), 0640));
	assert_int_equal(queue_dkim_add(d, "example.org", keys, NULL, NULL, 0, err, sizeof(err)),
			 -EINVAL);
	if (strstr(err, "mode 0640") == NULL)
		fail_msg("got \"%s\", want a complaint about mode 0640", err);
	snprintf(keys, sizeof(keys), "s:%s",
		 write_key("small.key", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), 0600));
	assert_int_equal(queue_dkim_add(d, "example.org", keys, NULL, NULL, 0, err, sizeof(err)),
			 -EINVAL);
	if (strstr(err, "1024 bits") == NULL)
		fail_msg("got \"%s\", want a complaint about 1024 bits", err);
	snprintf(keys, sizeof(keys), "s:%s",
		 write_key("ec.key", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), 0600));
	assert_int_equal(queue_dkim_add(d, "example.org", keys, NULL, NULL, 0, err, sizeof(err)),
			 -EINVAL);
	if (strstr(err, "RSA or Ed25519") == NULL)
		fail_msg("got \"%s\", want \"RSA or Ed25519\"", err);
	assert_false(queue_dkim_active(d));
	queue_dkim_free(d);
}

/* Sign a one-line message from @p from; the unfolded signature fields. */
static char *sign_from(const struct queue_dkim *d, const char *from, int want)
{
	struct queue_buf sigs = {0};
	char msg[256];
	const char *why;
	char *u;
	int n;

	snprintf(msg, sizeof(msg), "From: %s\r\nSubject: x\r\n\r\nbody\r\n", from);
	n = queue_dkim_sign(d, msg, strlen(msg), 1000, &sigs, &why);
	if (n != want)
		fail_msg("From %s: got %d signatures (%s), want %d", from, n, why ? why : "-",
			 want);
	u = unfold(sigs.p ? sigs.p : "", sigs.len);
	queue_buf_free(&sigs);
	return u;
}

/* [dkim DOMAIN] sections read from a file: the most specific one signs. */
static void test_conf_load(void **state)
{
	char path[256], err[512], *u;
	const char *key;
	struct dmta_conf *conf;
	struct queue_dkim *d;
	FILE *f;

	(void)state;
	key = write_key("conf.key", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), 0600);
	snprintf(path, sizeof(path), "%s/dmta.conf", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"[spool]\npath = /nonexistent\n[dkim example.org]\nkeys = a:%s\nexpire = 1d\n"
		"[dkim sub.example.org]\nkeys = b:%s\ncanonicalization = simple\n",
		key, key);
	fclose(f);
	conf = dmta_conf_load(path, err, sizeof(err));
	assert_non_null(conf);
	d = queue_dkim_conf_load(conf, err, sizeof(err));
	if (d == NULL)
		fail_msg("queue_dkim_conf_load: got NULL (%s), want a signer", err);
	u = sign_from(d, "a@x.sub.example.org", 1);
	if (strstr(u, ";d=sub.example.org;s=b;") == NULL || strstr(u, "c=simple/simple;") == NULL ||
	    strstr(u, ";x=") != NULL)
		fail_msg("got \"%s\", want d=sub.example.org, s=b, c=simple/simple, no x=", u);
	free(u);
	u = sign_from(d, "a@example.org", 1);
	if (strstr(u, ";d=example.org;s=a;") == NULL || strstr(u, ";x=87400;") == NULL)
		fail_msg("got \"%s\", want d=example.org, s=a, x=87400", u);
	free(u);
	queue_dkim_free(d);
	dmta_conf_free(conf);

	/* A section without keys: the file and section are named. */
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[dkim bad.example]\nheaders = From:To\n");
	fclose(f);
	conf = dmta_conf_load(path, err, sizeof(err));
	assert_non_null(conf);
	assert_null(queue_dkim_conf_load(conf, err, sizeof(err)));
	if (strstr(err, "[dkim bad.example] keys: no SELECTOR:PATH given") == NULL ||
	    strstr(err, path) == NULL)
		fail_msg("got \"%s\", want the file, the section and \"keys: no SELECTOR:PATH\"",
			 err);
	dmta_conf_free(conf);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6376_example), cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_bodies),	    cmocka_unit_test(test_bodies_random),
	    cmocka_unit_test(test_long_lines),	    cmocka_unit_test(test_sign_form),
	    cmocka_unit_test(test_sign_choice),	    cmocka_unit_test(test_bad_config),
	    cmocka_unit_test(test_conf_load),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
