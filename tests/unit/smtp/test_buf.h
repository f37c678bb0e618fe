/*
 * test_buf.h - a growable byte buffer for smtp/ tests, kept NUL-terminated
 *	so that logs and transcripts compare as strings.
 */
#ifndef TEST_BUF_H
#define TEST_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static inline void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0'; /* so that logs compare as strings */
}

static inline void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static inline const char *buf_cstr(struct buf *b)
{
	if (b->p == NULL)
		buf_add(b, "", 0);
	return (const char *)b->p;
}

static inline void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

#endif
