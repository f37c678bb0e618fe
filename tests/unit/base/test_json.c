/*
 * test_json.c - the JSON writer: escaping byte by byte, nesting and its
 *	commas, numbers, a caller's buffer that fills up, a growing buffer, a
 *	FILE, and misuse caught as -EINVAL.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/base/dmta_json.h"

/* Finish @p j and compare with @p want, exactly. */
static void expect(struct dmta_json *j, const char *want)
{
	int n = dmta_json_finish(j);

	if (n < 0)
		fail_msg("got error %d, want \"%s\"", n, want);
	if ((size_t)n != strlen(want) || memcmp(j->buf, want, (size_t)n) != 0)
		fail_msg("got \"%.*s\", want \"%s\"", n, j->buf, want);
	if (j->buf[n] != '\0')
		fail_msg("got no NUL after \"%s\"", want);
}

struct esc_case {
	const char *in;
	size_t len; /* 0: strlen */
	const char *want;
};

static const struct esc_case escs[] = {
    {"", 0, "\"\""},
    {"plain text", 0, "\"plain text\""},
    {"a\"b", 0, "\"a\\\"b\""},
    {"a\\b", 0, "\"a\\\\b\""},
    {"/", 0, "\"/\""},
    {"\n", 0, "\"\\u000a\""},
    {"\r\n\t", 0, "\"\\u000d\\u000a\\u0009\""},
    {"\x01\x1f", 0, "\"\\u0001\\u001f\""},
    {"\x7f", 0, "\"\\u007f\""},
    {"\x20~", 0, "\" ~\""},
    {"a\0b", 3, "\"a\\u0000b\""},
    /* UTF-8 goes through as it is, never as \u00xx per byte. */
    {"\xc3\xa9t\xc3\xa9", 0, "\"\xc3\xa9t\xc3\xa9\""},
    {"\xf0\x9f\x98\x80", 0, "\"\xf0\x9f\x98\x80\""},
    {"\xe2\x80\xa8", 0, "\"\xe2\x80\xa8\""},
    /* Not UTF-8: copied all the same. */
    {"\x80\xff", 0, "\"\x80\xff\""},
    {"\"\\\"", 0, "\"\\\"\\\\\\\"\""},
};

static void test_escaping(void **state)
{
	char buf[128];

	for (size_t i = 0; i < sizeof(escs) / sizeof(escs[0]); i++) {
		struct dmta_json j;

		dmta_json_init(&j, buf, sizeof(buf));
		dmta_json_strn(&j, escs[i].in, escs[i].len ? escs[i].len : strlen(escs[i].in));
		expect(&j, escs[i].want);
	}
}

/* Every byte value on its own: escaped exactly when JSON says it must be
 * (and DEL, kept out of terminals). */
static void test_every_byte(void **state)
{
	char buf[16], want[16];

	for (int c = 1; c < 256; c++) {
		struct dmta_json j;
		char in = (char)c;

		if (c < 0x20 || c == 0x7f)
			snprintf(want, sizeof(want), "\"\\u%04x\"", c);
		else if (c == '"' || c == '\\')
			snprintf(want, sizeof(want), "\"\\%c\"", c);
		else
			snprintf(want, sizeof(want), "\"%c\"", c);
		dmta_json_init(&j, buf, sizeof(buf));
		dmta_json_strn(&j, &in, 1);
		expect(&j, want);
	}
}

/* Every byte value at every place of a string longer than the writer's
 * sixteen-byte steps, and two of them in one step; into a buffer that has
 * room for the string however escaped (written in one go) and into one
 * that may not (a piece at a time). */
static void test_every_byte_anywhere(void **state)
{
	char in[40], buf[300], want[128];

	for (size_t cap = 128; cap <= sizeof(buf); cap += sizeof(buf) - 128)
		for (int c = 1; c < 256; c++)
			for (size_t k = 0; k < sizeof(in); k++) {
				struct dmta_json j;
				char esc[8];
				int n;

				memset(in, 'a', sizeof(in));
				in[k] = (char)c;
				in[(k + 17) % sizeof(in)] = '"';
				if (c < 0x20 || c == 0x7f)
					snprintf(esc, sizeof(esc), "\\u%04x", c);
				else if (c == '"' || c == '\\')
					snprintf(esc, sizeof(esc), "\\%c", c);
				else
					snprintf(esc, sizeof(esc), "%c", c);
				n = snprintf(want, sizeof(want), "\"");
				for (size_t i = 0; i < sizeof(in); i++) {
					if (i == k)
						n += snprintf(want + n, sizeof(want) - (size_t)n,
							      "%s", esc);
					else if (in[i] == '"')
						n += snprintf(want + n, sizeof(want) - (size_t)n,
							      "\\\"");
					else
						want[n++] = in[i];
				}
				snprintf(want + n, sizeof(want) - (size_t)n, "\"");
				dmta_json_init(&j, buf, cap);
				dmta_json_strn(&j, in, sizeof(in));
				expect(&j, want);
			}
}

/* Decimals are written without printf where that is exact: the same text
 * as "%.*f" for many values, ties and near-ties included. */
static void test_f64_as_printf(void **state)
{
	uint64_t r = 88172645463325252ULL;
	char buf[400], want[400];

	for (int i = 0; i < 200000; i++) {
		struct dmta_json j;
		double v;
		int d;

		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		d = (int)(r % 8);
		switch ((r >> 8) % 4) {
		case 0:
			v = (double)(r >> 11) / (double)(1ULL << 53) * 10;
			break;
		case 1:
			v = (double)((r >> 16) % 100000) / 1000.0; /* ties at d = 2 */
			break;
		case 2:
			v = -(double)(r >> 11) / (double)(1ULL << 53) * 1e6;
			break;
		default:
			v = (double)((r >> 16) % 1000) / 8.0;
			break;
		}
		dmta_json_init(&j, buf, sizeof(buf));
		dmta_json_f64(&j, v, d);
		snprintf(want, sizeof(want), "%.*f", d, v);
		expect(&j, want);
	}
}

static void test_nesting(void **state)
{
	char buf[256];
	struct dmta_json j;

	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_obj(&j);
	dmta_json_key(&j, "a");
	dmta_json_arr(&j);
	dmta_json_u64(&j, 1);
	dmta_json_obj(&j);
	dmta_json_obj_end(&j);
	dmta_json_arr(&j);
	dmta_json_arr_end(&j);
	dmta_json_str(&j, "x");
	dmta_json_null(&j);
	dmta_json_arr_end(&j);
	dmta_json_key(&j, "b");
	dmta_json_obj(&j);
	dmta_json_key(&j, "c\"");
	dmta_json_bool(&j, true);
	dmta_json_key(&j, "d");
	dmta_json_bool(&j, false);
	dmta_json_obj_end(&j);
	dmta_json_key(&j, "e");
	dmta_json_str(&j, NULL);
	dmta_json_kstr(&j, "f", "g");
	dmta_json_ku64(&j, "h", 9);
	dmta_json_kbool(&j, "i", false);
	dmta_json_obj_end(&j);
	expect(&j, "{\"a\":[1,{},[],\"x\",null],\"b\":{\"c\\\"\":true,\"d\":false},\"e\":null,"
		   "\"f\":\"g\",\"h\":9,\"i\":false}");

	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_arr(&j);
	dmta_json_arr_end(&j);
	expect(&j, "[]");

	/* As deep as allowed, and one more is misuse. */
	dmta_json_init(&j, buf, sizeof(buf));
	for (int i = 0; i < DMTA_JSON_MAX_DEPTH; i++)
		dmta_json_arr(&j);
	for (int i = 0; i < DMTA_JSON_MAX_DEPTH; i++)
		dmta_json_arr_end(&j);
	assert_int_equal(dmta_json_finish(&j), 2 * DMTA_JSON_MAX_DEPTH);
	dmta_json_init(&j, buf, sizeof(buf));
	for (int i = 0; i <= DMTA_JSON_MAX_DEPTH; i++)
		dmta_json_arr(&j);
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
}

static void test_numbers(void **state)
{
	char buf[512];
	struct dmta_json j;

	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_arr(&j);
	dmta_json_u64(&j, 0);
	dmta_json_u64(&j, UINT64_MAX);
	dmta_json_i64(&j, INT64_MIN);
	dmta_json_i64(&j, -1);
	dmta_json_f64(&j, 0.1325, 3);
	dmta_json_f64(&j, -2.5, 1);
	dmta_json_f64(&j, 7, 0);
	dmta_json_f64(&j, NAN, 3);
	dmta_json_f64(&j, INFINITY, 3);
	dmta_json_f64(&j, -INFINITY, 3);
	dmta_json_arr_end(&j);
	expect(&j, "[0,18446744073709551615,-9223372036854775808,-1,0.133,-2.5,7,null,null,null]");

	/* The largest double, in full, fits. */
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_f64(&j, 1.7976931348623157e308, 17);
	assert_int_equal(dmta_json_finish(&j), 309 + 1 + 17);
}

/* A buffer too small: whole pieces only, a NUL always, -ENOSPC, and
 * need counts what the whole text takes. */
/* Every buffer size, from none to more than the text takes at its longest;
 * a member written as key and value, and in one call (kstr, and kstr_plain
 * and key_plain with the key copied as it is). */
static void test_overflow(void **state)
{
	const char *want = "{\"k\":\"a\\u000ab\",\"n\":12345}";
	size_t full = strlen(want);

	for (size_t cap = 0; cap <= 2 * full + 64; cap++) {
		char *buf = malloc(cap ? cap : 1);
		struct dmta_json j;
		int n;

		assert_non_null(buf);
		dmta_json_init(&j, cap ? buf : NULL, cap);
		dmta_json_obj(&j);
		if (cap % 4 == 1) {
			dmta_json_kstr(&j, "k", "a\nb");
		} else if (cap % 4 == 2) {
			dmta_json_kstr_plain(&j, "k", 1, "a\nb");
		} else if (cap % 4 == 3) {
			dmta_json_key_plain(&j, "k", 1);
			dmta_json_str(&j, "a\nb");
		} else {
			dmta_json_key(&j, "k");
			dmta_json_str(&j, "a\nb");
		}
		dmta_json_key(&j, "n");
		dmta_json_u64(&j, 12345);
		dmta_json_obj_end(&j);
		n = dmta_json_finish(&j);
		if (dmta_json_need(&j) != full)
			fail_msg("cap %zu: need %zu, want %zu", cap, dmta_json_need(&j), full);
		if (cap > full) {
			if (n != (int)full)
				fail_msg("cap %zu: got %d, want %zu", cap, n, full);
			assert_memory_equal(buf, want, full + 1);
		} else {
			if (n != -ENOSPC)
				fail_msg("cap %zu: got %d, want -ENOSPC", cap, n);
			if (cap > 0) {
				size_t l = strlen(buf);

				/* A prefix that ends between pieces: never inside the escape. */
				if (l >= cap || memcmp(buf, want, l) != 0)
					fail_msg("cap %zu: got \"%s\", not a prefix", cap, buf);
				if (l > 7 && l < 13)
					fail_msg("cap %zu: got \"%s\", cut inside a piece", cap,
						 buf);
			}
		}
		free(buf);
	}
}

static void test_grow(void **state)
{
	struct dmta_json j;
	char *want = malloc(100000 * 6 + 3);
	char *big = malloc(100000);
	size_t w = 0;

	assert_non_null(want);
	assert_non_null(big);
	memset(big, '\n', 100000);
	want[w++] = '"';
	for (int i = 0; i < 100000; i++) {
		memcpy(want + w, "\\u000a", 6);
		w += 6;
	}
	want[w++] = '"';
	want[w] = '\0';
	dmta_json_init_grow(&j);
	dmta_json_strn(&j, big, 100000);
	expect(&j, want);
	dmta_json_free(&j);
	assert_null(j.buf);
	free(big);
	free(want);
}

static void test_file(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct dmta_json j;

	assert_non_null(f);
	dmta_json_init_file(&j, f);
	dmta_json_obj(&j);
	dmta_json_key(&j, "to");
	dmta_json_str(&j, "b@\xc3\xa9.test");
	dmta_json_key(&j, "n");
	dmta_json_i64(&j, -3);
	dmta_json_obj_end(&j);
	assert_int_equal(dmta_json_finish(&j), 25);
	fclose(f);
	assert_string_equal(text, "{\"to\":\"b@\xc3\xa9.test\",\"n\":-3}");
	free(text);
}

static void test_misuse(void **state)
{
	char buf[64];
	struct dmta_json j;

	/* A value where a key is due. */
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_obj(&j);
	dmta_json_u64(&j, 1);
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	/* A key outside an object, in an array, or twice. */
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_key(&j, "a");
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_arr(&j);
	dmta_json_key(&j, "a");
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_obj(&j);
	dmta_json_key(&j, "a");
	dmta_json_key(&j, "b");
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	/* Ends that do not match, or come too soon. */
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_obj(&j);
	dmta_json_arr_end(&j);
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_arr_end(&j);
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_obj(&j);
	dmta_json_key(&j, "a");
	dmta_json_obj_end(&j);
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	/* Unclosed. */
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_obj(&j);
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	/* The error is sticky: nothing is written after it. */
	dmta_json_init(&j, buf, sizeof(buf));
	dmta_json_arr(&j);
	dmta_json_arr_end(&j);
	dmta_json_arr_end(&j);
	dmta_json_str(&j, "more");
	assert_int_equal(dmta_json_finish(&j), -EINVAL);
	assert_string_equal(buf, "[]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_every_byte),
	    cmocka_unit_test(test_every_byte_anywhere),
	    cmocka_unit_test(test_f64_as_printf),
	    cmocka_unit_test(test_nesting),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_overflow),
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_file),
	    cmocka_unit_test(test_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
