/*
 * dmta_reload.h - what a configuration reload (SIGHUP) may not change:
 *	finding the sections and keys that differ between the running
 *	configuration and the file read again.
 *
 * SYNOPSIS
 *	n = dmta_reload_fixed(old, new, dmta_reload_fixed_list, nfixed, buf, sizeof(buf));
 *
 * DESCRIPTION
 *	Some settings are bound to what was built at start (DPDK's EAL, the
 *	port, the workers and their TCP stacks, the spool, the resolver's
 *	servers, the session pools, the listeners): dmtad keeps them as they
 *	were and says so in one line. A fixed entry names a whole section
 *	(compared as its raw key = value pairs, so a key added or removed
 *	counts) or only the keys of a table within a section (a section
 *	shared by reloadable and fixed keys, such as [smtp]).
 *
 * DIAGNOSTICS
 *	dmta_reload_fixed(): how many entries differ; their names, comma
 *	separated ("[eal], [smtp] helo_name"), in @p buf (cut to fit).
 */
#ifndef DMTA_RELOAD_H
#define DMTA_RELOAD_H

#include <stddef.h>

#include "core/base/dmta_conf.h"

struct dmta_reload_fixed {
	const char *section;		      /* its name */
	const struct dmta_conf_section *keys; /* only these keys; NULL: the whole section */
};

/** What dmtad cannot change while it runs. */
extern const struct dmta_reload_fixed dmta_reload_fixed_list[];
extern const size_t dmta_reload_nfixed;

int dmta_reload_fixed(const struct dmta_conf *old, const struct dmta_conf *new,
		      const struct dmta_reload_fixed *fixed, size_t nfixed, char *buf, size_t cap);

#endif
