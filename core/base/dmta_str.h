/*
 * dmta_str.h - small string helpers the base offers every folder.
 *
 * SYNOPSIS
 *	n = dmta_str_copy(dst, sizeof(dst), src);
 *	p = dmta_str_u64(buf + sizeof(buf), v);  (buf of 20 bytes at least)
 *
 * DESCRIPTION
 *	dmta_str_copy() copies @p src into @p dst of @p cap bytes (cap > 0),
 *	cut to fit and always NUL-terminated, and returns the bytes copied:
 *	snprintf(dst, cap, "%s", src) without the cost of a format (a few
 *	hundred instructions a call on the delivery path).
 *
 *	dmta_str_u64() writes the decimal digits of @p v so that they end just
 *	before @p end (20 at most, no NUL) and returns where they begin: "%"
 *	PRIu64 without printf, for command lines and log records.
 */
#ifndef DMTA_STR_H
#define DMTA_STR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t dmta_str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

static inline char *dmta_str_u64(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

#endif
