/*
 * dmta_json.h - the one JSON writer: streaming, into a caller's buffer, a
 *	growing buffer or a FILE.
 *
 * SYNOPSIS
 *	struct dmta_json j;
 *	dmta_json_init(&j, buf, cap);    (or _init_grow(&j), _init_file(&j, f))
 *	dmta_json_obj(&j);
 *	dmta_json_key(&j, "to");  dmta_json_str(&j, addr);
 *	dmta_json_ku64(&j, "n", n);          (key and value in one call)
 *	dmta_json_obj_end(&j);
 *	n = dmta_json_finish(&j);
 *	dmta_json_free(&j);              (a growing buffer only)
 *
 * DESCRIPTION
 *	The writer puts the commas and the colons: the caller says what comes
 *	(a container, a key, a value) and in which order. Strings are escaped
 *	one way everywhere: '"' and '\' get a backslash, control characters
 *	(below 0x20, and DEL) become \u00xx with lowercase hex, and every other
 *	byte is copied as it is, so UTF-8 text stays UTF-8 (which JSON allows)
 *	and is never written as \u00xx per byte. Text that is not UTF-8 is
 *	copied all the same: that is the caller's to know.
 *
 *	Errors are sticky: after the first one nothing more is written and
 *	dmta_json_finish() returns it. With a caller's buffer, the buffer always
 *	holds a NUL-terminated prefix made of whole pieces (never half an
 *	escape), and dmta_json_need() says how many bytes the whole text would
 *	have taken, as snprintf() does, so a caller can cut what it writes and
 *	try again.
 *
 *	Containers nest up to DMTA_JSON_MAX_DEPTH deep. A key outside an
 *	object, a value where a key is due, or an end that does not match its
 *	begin is -EINVAL: a bug in the caller, caught rather than written.
 *
 * DIAGNOSTICS
 *	dmta_json_finish(): the length written (without the NUL), or -ENOSPC
 *	(the caller's buffer is full), -ENOMEM (a growing buffer could not
 *	grow), -EIO (the FILE refused a write), -EINVAL (misuse, see above),
 *	-EOVERFLOW (more than INT_MAX bytes).
 */
#ifndef DMTA_JSON_H
#define DMTA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Deepest nesting of objects and arrays. */
#define DMTA_JSON_MAX_DEPTH 32

struct dmta_json {
	char *buf;	/**< the text so far (buffer modes), NUL-terminated */
	size_t cap;	/**< bytes of buf */
	size_t len;	/**< bytes written */
	size_t need;	/**< bytes the text takes, written or not (buffer mode) */
	FILE *f;	/**< FILE mode */
	bool grow;	/**< buf is ours, realloc'd as needed */
	int err;	/**< first error, 0 if none */
	unsigned depth; /**< open containers */
	bool after_key; /**< a key was written: its value comes next */
	/** Per open container: it is an object, and it holds a member already. */
	bool is_obj[DMTA_JSON_MAX_DEPTH], nonempty[DMTA_JSON_MAX_DEPTH];
};

/** Write into @p buf of @p cap bytes (the caller's; cap 0 is -ENOSPC at once). */
void dmta_json_init(struct dmta_json *j, char *buf, size_t cap);
/** Write into a buffer that grows; j->buf is then freed by dmta_json_free(). */
void dmta_json_init_grow(struct dmta_json *j);
/** Write to @p f (not closed, not flushed). */
void dmta_json_init_file(struct dmta_json *j, FILE *f);

void dmta_json_obj(struct dmta_json *j);
void dmta_json_obj_end(struct dmta_json *j);
void dmta_json_arr(struct dmta_json *j);
void dmta_json_arr_end(struct dmta_json *j);

/** A member's key, in an object; its value is the next thing written. */
void dmta_json_key(struct dmta_json *j, const char *key);

/** A string value, escaped; NULL writes null. */
void dmta_json_str(struct dmta_json *j, const char *s);
/** The first @p n bytes of @p s as a string value (NUL bytes escaped too). */
void dmta_json_strn(struct dmta_json *j, const char *s, size_t n);
void dmta_json_u64(struct dmta_json *j, uint64_t v);
void dmta_json_i64(struct dmta_json *j, int64_t v);
/** @p v with @p decimals digits after the point; JSON has no NaN nor infinity: null. */
void dmta_json_f64(struct dmta_json *j, double v, int decimals);
void dmta_json_bool(struct dmta_json *j, bool v);
void dmta_json_null(struct dmta_json *j);

/** A member in one call: dmta_json_key() then the value. */
void dmta_json_kstr(struct dmta_json *j, const char *key, const char *s);
void dmta_json_ku64(struct dmta_json *j, const char *key, uint64_t v);
void dmta_json_kbool(struct dmta_json *j, const char *key, bool v);
/**
 * dmta_json_kstr() with a key of @p kn bytes that needs no escape (letters,
 * digits, '_'), copied as it is: for keys the caller writes as literals.
 */
void dmta_json_kstr_plain(struct dmta_json *j, const char *key, size_t kn, const char *s);
/** dmta_json_key() for a key of @p kn bytes that needs no escape, the same way. */
void dmta_json_key_plain(struct dmta_json *j, const char *key, size_t kn);

/** The length so far, or the first error (see DIAGNOSTICS); -EINVAL if a container is open. */
int dmta_json_finish(struct dmta_json *j);

/** Bytes the whole text takes (buffer modes), whether or not they fit. */
static inline size_t dmta_json_need(const struct dmta_json *j)
{
	return j->need;
}

/** Free a growing buffer (no-op otherwise); the writer may be reused after an init. */
void dmta_json_free(struct dmta_json *j);

#endif
