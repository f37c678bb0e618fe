/*
 * dmta_json.c - see dmta_json.h.
 *
 * Everything goes out through put(), one piece at a time (a run of plain
 * bytes, one escape, one number, one punctuation mark), so a caller's
 * buffer that fills up holds whole pieces only, and "need" counts on past
 * the end as snprintf() does.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/base/dmta_json.h"
#include "core/base/dmta_str.h"

static void fail(struct dmta_json *j, int err)
{
	if (j->err == 0)
		j->err = err;
}

/* Make room for n more bytes and a NUL in a growing buffer. */
static int grow(struct dmta_json *j, size_t n)
{
	size_t cap = j->cap ? j->cap : 256;
	char *p;

	while (cap - j->len <= n) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	p = realloc(j->buf, cap);
	if (p == NULL)
		return -ENOMEM;
	j->buf = p;
	j->cap = cap;
	return 0;
}

static void put_slow(struct dmta_json *j, const char *p, size_t n)
{
	if (j->err != 0 || n == 0)
		return;
	if (j->f != NULL) {
		if (fwrite(p, 1, n, j->f) != n)
			fail(j, -EIO);
		else
			j->len += n;
		return;
	}
	if (j->cap - j->len <= n) {
		if (!j->grow) {
			fail(j, -ENOSPC);
			return;
		}
		if (grow(j, n) < 0) {
			fail(j, -ENOMEM);
			return;
		}
	}
	memcpy(j->buf + j->len, p, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

/* Most pieces are a few bytes (punctuation, keys, short values) going into
 * a buffer with room: those are copied here without a call. */
static inline void put(struct dmta_json *j, const char *p, size_t n)
{
	j->need += n;
	if (n <= 16 && j->err == 0 && j->f == NULL && n < j->cap - j->len) {
		char *d = j->buf + j->len;

		for (size_t i = 0; i < n; i++)
			d[i] = p[i];
		d[n] = '\0';
		j->len += n;
		return;
	}
	put_slow(j, p, n);
}

/* Bytes that go into a string as they are: printable ASCII but '"' and
 * '\\', and every byte of 0x80 and above (UTF-8 goes as it is). */
static const bool plain_byte[256] = {
    [0x20 ... 0x21] = true,
    [0x23 ... 0x5b] = true,
    [0x5d ... 0x7e] = true,
    [0x80 ... 0xff] = true,
};

#ifdef __SSE2__
/* A bit for each of the sixteen bytes of @p v that is not plain_byte. */
static unsigned escape_mask(__m128i v)
{
	const __m128i sp = _mm_set1_epi8(0x20), q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
		      del = _mm_set1_epi8(0x7f);
	/* v < 0x20 unsigned: max(v, 0x20) != v */
	__m128i ctl = _mm_xor_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, sp), v), _mm_set1_epi8(-1));
	__m128i bad = _mm_or_si128(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, q)),
				   _mm_or_si128(_mm_cmpeq_epi8(v, bs), _mm_cmpeq_epi8(v, del)));

	return (unsigned)_mm_movemask_epi8(bad);
}
#endif

/* The length of the run at s[0..n) that needs no escape (plain_byte).
 * Sixteen bytes a step: the delivery log writes one line per recipient,
 * and a byte at a time this was a sixth of the control thread's cost per
 * message. */
static size_t plain_run(const char *s, size_t n)
{
	size_t i = 0;

#ifdef __SSE2__
	for (; i + 16 <= n; i += 16) {
		unsigned m = escape_mask(_mm_loadu_si128((const __m128i *)(s + i)));

		if (m != 0)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	while (i < n && plain_byte[(unsigned char)s[i]])
		i++;
	return i;
}

/* One escaped byte (not plain_byte) at d; its length. */
static size_t escape_byte(char *d, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	if (c == '"' || c == '\\') {
		d[0] = '\\';
		d[1] = (char)c;
		return 2;
	}
	memcpy(d, "\\u00", 4);
	d[4] = hex[c >> 4];
	d[5] = hex[c & 15];
	return 6;
}

/*
 * s[0..n) escaped at d, which has room for 6 * n bytes; the end. Sixteen
 * bytes a step are stored whole, escape or not (with sixteen bytes of s to
 * go there are at least 96 of room), and the rest copied as they are
 * checked: most strings are short, and a memcpy() call per run was a good
 * part of their cost.
 */
static char *escape_into(char *d, const char *s, size_t n)
{
	size_t i = 0;

#ifdef __SSE2__
	while (i + 16 <= n) {
		__m128i v = _mm_loadu_si128((const __m128i *)(s + i));
		unsigned m = escape_mask(v), k;

		_mm_storeu_si128((__m128i *)d, v);
		if (m == 0) {
			d += 16;
			i += 16;
			continue;
		}
		k = (unsigned)__builtin_ctz(m);
		d += k;
		i += k;
		d += escape_byte(d, (unsigned char)s[i++]);
	}
#endif
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (plain_byte[c])
			*d++ = (char)c;
		else
			d += escape_byte(d, c);
	}
	return d;
}

/* Room in a buffer for @p worst more bytes and a NUL, with nothing gone wrong. */
static bool room_for(const struct dmta_json *j, size_t worst)
{
	return j->err == 0 && j->f == NULL && worst < j->cap - j->len;
}

static void put_string(struct dmta_json *j, const char *s, size_t n)
{
	size_t i = 0;

	/* A buffer with room for the string at its longest (every byte a
	 * six-byte escape, the quotes) takes it straight, in runs: the
	 * delivery log's and the metrics' case. */
	if (n <= SIZE_MAX / 8 && room_for(j, 6 * n + 2)) {
		char *d0 = j->buf + j->len, *d = d0;

		*d++ = '"';
		d = escape_into(d, s, n);
		*d++ = '"';
		*d = '\0';
		j->len += (size_t)(d - d0);
		j->need += (size_t)(d - d0);
		return;
	}
	/* Else a piece at a time, so that a buffer that fills up holds whole
	 * pieces and "need" counts on. */
	put(j, "\"", 1);
	for (;;) {
		size_t run = plain_run(s + i, n - i);
		char e[6];

		put(j, s + i, run);
		i += run;
		if (i >= n)
			break;
		put(j, e, escape_byte(e, (unsigned char)s[i++]));
	}
	put(j, "\"", 1);
}

/* Before any value: the comma, and the check that a value may come here. */
static void value_begin(struct dmta_json *j)
{
	if (j->depth > 0) {
		unsigned d = j->depth - 1;

		if (j->is_obj[d] && !j->after_key) {
			fail(j, -EINVAL);
			return;
		}
		if (!j->is_obj[d] && j->nonempty[d])
			put(j, ",", 1);
		j->nonempty[d] = true;
	}
	j->after_key = false;
}

static void init(struct dmta_json *j)
{
	memset(j, 0, sizeof(*j));
}

void dmta_json_init(struct dmta_json *j, char *buf, size_t cap)
{
	init(j);
	j->buf = buf;
	j->cap = cap;
	if (cap == 0)
		j->err = -ENOSPC;
	else
		buf[0] = '\0';
}

void dmta_json_init_grow(struct dmta_json *j)
{
	init(j);
	j->grow = true;
}

void dmta_json_init_file(struct dmta_json *j, FILE *f)
{
	init(j);
	j->f = f;
}

static void open_container(struct dmta_json *j, bool obj)
{
	value_begin(j);
	if (j->depth >= DMTA_JSON_MAX_DEPTH) {
		fail(j, -EINVAL);
		return;
	}
	j->is_obj[j->depth] = obj;
	j->nonempty[j->depth] = false;
	j->depth++;
	put(j, obj ? "{" : "[", 1);
}

static void close_container(struct dmta_json *j, bool obj)
{
	if (j->depth == 0 || j->is_obj[j->depth - 1] != obj || j->after_key) {
		fail(j, -EINVAL);
		return;
	}
	j->depth--;
	put(j, obj ? "}" : "]", 1);
}

void dmta_json_obj(struct dmta_json *j)
{
	open_container(j, true);
}

void dmta_json_obj_end(struct dmta_json *j)
{
	close_container(j, true);
}

void dmta_json_arr(struct dmta_json *j)
{
	open_container(j, false);
}

void dmta_json_arr_end(struct dmta_json *j)
{
	close_container(j, false);
}

/* Before a key: the check that one may come here, and the comma. */
static bool key_begin(struct dmta_json *j, const char *key)
{
	if (j->depth == 0 || !j->is_obj[j->depth - 1] || j->after_key || key == NULL) {
		fail(j, -EINVAL);
		return false;
	}
	if (j->nonempty[j->depth - 1])
		put(j, ",", 1);
	j->nonempty[j->depth - 1] = true;
	j->after_key = true;
	return true;
}

void dmta_json_key(struct dmta_json *j, const char *key)
{
	if (!key_begin(j, key))
		return;
	put_string(j, key, strlen(key));
	put(j, ":", 1);
}

void dmta_json_key_plain(struct dmta_json *j, const char *key, size_t kn)
{
	if (!key_begin(j, key))
		return;
	put(j, "\"", 1);
	put(j, key, kn);
	put(j, "\":", 2);
}

void dmta_json_strn(struct dmta_json *j, const char *s, size_t n)
{
	value_begin(j);
	put_string(j, s, n);
}

void dmta_json_str(struct dmta_json *j, const char *s)
{
	if (s == NULL)
		dmta_json_null(j);
	else
		dmta_json_strn(j, s, strlen(s));
}

static void put_number(struct dmta_json *j, const char *text, int n)
{
	value_begin(j);
	if (n < 0) {
		fail(j, -EINVAL);
		return;
	}
	put(j, text, (size_t)n);
}

void dmta_json_u64(struct dmta_json *j, uint64_t v)
{
	char t[24], *p = dmta_str_u64(t + sizeof(t), v);

	put_number(j, p, (int)(t + 24 - p));
}

void dmta_json_i64(struct dmta_json *j, int64_t v)
{
	char t[24], *p = dmta_str_u64(t + sizeof(t), v < 0 ? 0 - (uint64_t)v : (uint64_t)v);

	if (v < 0)
		*--p = '-';
	put_number(j, p, (int)(t + 24 - p));
}

void dmta_json_f64(struct dmta_json *j, double v, int decimals)
{
	/* DBL_MAX has 309 digits before the point; 17 after are all there is. */
	char t[352];

	if (!isfinite(v)) {
		dmta_json_null(j);
		return;
	}
	if (decimals < 0)
		decimals = 0;
	if (decimals > 17)
		decimals = 17;
	/* Delays and rates: small, few decimals, written per log line. In
	 * integers when the scaled value is exact enough, as printf rounds. */
	static const double scale[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
	double x = fabs(v) * (decimals <= 6 ? scale[decimals] : 0);
	uint64_t u = (uint64_t)x;

	/* Near a tie, the scaled double may have rounded either way: printf,
	 * which rounds the exact binary value, decides there. */
	if (decimals <= 6 && fabs(v) < 1e9 && fabs(x - (double)u - 0.5) > 1e-6) {
		char u24[24], *p, *q = t + sizeof(t);
		uint64_t f;

		if (x - (double)u > 0.5)
			u++;
		f = u;
		for (int k = 0; k < decimals; k++, f /= 10)
			*--q = (char)('0' + f % 10);
		if (decimals > 0)
			*--q = '.';
		p = dmta_str_u64(u24 + sizeof(u24), f);
		q -= u24 + 24 - p;
		memcpy(q, p, (size_t)(u24 + 24 - p));
		if (signbit(v))
			*--q = '-';
		put_number(j, q, (int)(t + sizeof(t) - q));
		return;
	}
	put_number(j, t, snprintf(t, sizeof(t), "%.*f", decimals, v));
}

void dmta_json_bool(struct dmta_json *j, bool v)
{
	value_begin(j);
	put(j, v ? "true" : "false", v ? 4 : 5);
}

void dmta_json_null(struct dmta_json *j)
{
	value_begin(j);
	put(j, "null", 4);
}

/*
 * A member of an object with room for it at its longest, in one go: the
 * delivery log writes a dozen a line. A key from the caller's literal
 * (@p key_plain) is copied, not scanned for escapes. False when it takes
 * the slow way.
 */
static bool member_str(struct dmta_json *j, const char *key, size_t kn, bool key_plain,
		       const char *s)
{
	size_t n;
	char *d0, *d;

	if (key == NULL || s == NULL || j->depth == 0 || !j->is_obj[j->depth - 1] || j->after_key)
		return false;
	n = strlen(s);
	if (kn > SIZE_MAX / 16 || n > SIZE_MAX / 16 || !room_for(j, 6 * (kn + n) + 6))
		return false;
	d0 = j->buf + j->len;
	d = d0;
	if (j->nonempty[j->depth - 1])
		*d++ = ',';
	j->nonempty[j->depth - 1] = true;
	*d++ = '"';
	if (key_plain) {
		memcpy(d, key, kn);
		d += kn;
	} else {
		d = escape_into(d, key, kn);
	}
	memcpy(d, "\":\"", 3);
	d = escape_into(d + 3, s, n);
	*d++ = '"';
	*d = '\0';
	j->len += (size_t)(d - d0);
	j->need += (size_t)(d - d0);
	return true;
}

void dmta_json_kstr(struct dmta_json *j, const char *key, const char *s)
{
	if (member_str(j, key, key != NULL ? strlen(key) : 0, false, s))
		return;
	dmta_json_key(j, key);
	dmta_json_str(j, s);
}

void dmta_json_kstr_plain(struct dmta_json *j, const char *key, size_t kn, const char *s)
{
	if (member_str(j, key, kn, true, s))
		return;
	dmta_json_key(j, key);
	dmta_json_str(j, s);
}

void dmta_json_ku64(struct dmta_json *j, const char *key, uint64_t v)
{
	dmta_json_key(j, key);
	dmta_json_u64(j, v);
}

void dmta_json_kbool(struct dmta_json *j, const char *key, bool v)
{
	dmta_json_key(j, key);
	dmta_json_bool(j, v);
}

int dmta_json_finish(struct dmta_json *j)
{
	if (j->err != 0)
		return j->err;
	if (j->depth != 0 || j->after_key)
		return -EINVAL;
	if (j->len > INT_MAX)
		return -EOVERFLOW;
	return (int)j->len;
}

void dmta_json_free(struct dmta_json *j)
{
	if (!j->grow)
		return;
	free(j->buf);
	j->buf = NULL;
	j->cap = 0;
	j->len = 0;
}
