/*
 * queue_names.h - a set of names (addresses, domains) with a number for
 *	each, for grouping and de-duplicating a message's recipients in
 *	linear time.
 *
 * SYNOPSIS
 *	struct queue_names ns;
 *	queue_names_init(&ns, n, true);          (n: names to come, at most)
 *	rc = queue_names_put(&ns, name, &slot);  (1: new, 0: seen; *slot its number)
 *	queue_names_free(&ns);
 *
 * DESCRIPTION
 *	Open addressing over FNV-1a, sized at init for the names to come
 *	(at most half full), so a put never rehashes. Names are not copied:
 *	they must outlive the set. With @p nocase, ASCII letters compare
 *	without case (domains); otherwise bytes compare as they are.
 *	A new name's number starts at 0; the caller gives it its meaning.
 */
#ifndef QUEUE_NAMES_H
#define QUEUE_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct queue_names {
	const char **key;
	uint32_t *val;
	size_t mask, n, max;
	bool nocase;
};

/** Room for @p max names. 0 or -ENOMEM. */
int queue_names_init(struct queue_names *ns, size_t max, bool nocase);
/** Find or add @p name: 1 added, 0 found, -ENOSPC past max; *slot is its number. */
int queue_names_put(struct queue_names *ns, const char *name, uint32_t **slot);
void queue_names_free(struct queue_names *ns);

#endif
