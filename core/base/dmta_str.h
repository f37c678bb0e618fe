/*
 * dmta_str.h - small string helpers the base offers every folder.
 *
 * SYNOPSIS
 *	n = dmta_str_copy(dst, sizeof(dst), src);
 *
 * DESCRIPTION
 *	dmta_str_copy() copies @p src into @p dst of @p cap bytes (cap > 0),
 *	cut to fit and always NUL-terminated, and returns the bytes copied:
 *	snprintf(dst, cap, "%s", src) without the cost of a format (a few
 *	hundred instructions a call on the delivery path).
 */
#ifndef DMTA_STR_H
#define DMTA_STR_H

#include <stddef.h>
#include <string.h>

static inline size_t dmta_str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

#endif
