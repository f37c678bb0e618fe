/*
 * queue_json.h - one line of the bulk injection format (DESIGN.md section 3).
 *
 * SYNOPSIS
 *	struct queue_inject rec;
 *	rc = queue_json_inject(line, len, &rec, &why);
 *	... rec.from, rec.to[i], rec.data / rec.path ...
 *	queue_json_inject_free(&rec);
 *
 * DESCRIPTION
 *	{"from": "a@b", "to": ["c@d", ...], "data": "RFC 5322 text"}, or
 *	"path": "/file" instead of "data"; optional "notify" (a string such
 *	as "failure,delay" or an array of them), "ret" ("full" or "hdrs") and
 *	"envid"; optional "pool", "tenant" (1 to 64 of A-Z a-z 0-9 . _ -) and
 *	"priority" ("high", "normal" or "bulk"; any case), the envelope's
 *	traffic-control fields (queue_env.h). "to" may also be a single string. Standard JSON (RFC
 *8259) with \uXXXX escapes and surrogate pairs; the decoded strings are UTF-8. Unknown keys,
 *duplicate keys, NUL in strings, trailing garbage and nesting beyond the format are refused, so
 *typos do not pass.
 *
 * DIAGNOSTICS
 *	0, -EBADMSG with *why (a static reason), or -ENOMEM.
 */
#ifndef QUEUE_JSON_H
#define QUEUE_JSON_H

#include <stddef.h>
#include <stdint.h>

struct queue_inject {
	char *from;
	char **to;
	size_t nto;
	char *data; /* NULL when path is given */
	size_t data_len;
	char *path;
	char *envid;
	char *pool, *tenant; /* NULL when not given */
	int priority;	     /* enum queue_prio, -1 when not given */
	uint8_t notify;	     /* QUEUE_NOTIFY_* */
	uint8_t ret;	     /* enum queue_ret */
};

int queue_json_inject(const char *line, size_t len, struct queue_inject *rec, const char **why);
void queue_json_inject_free(struct queue_inject *rec);

#endif
