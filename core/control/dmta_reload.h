/*
 * dmta_reload.h - what a configuration reload (SIGHUP) may not change:
 *	finding the sections and keys that differ between the running
 *	configuration and the file read again.
 *
 * SYNOPSIS
 *	r = dmta_reload_read(path, boot_conf, err, sizeof(err));   (NULL: refused)
 *	n = dmta_reload_fixed(old, r->conf, dmta_reload_fixed_list, nfixed, buf, sizeof(buf));
 *	(the control thread swaps what r holds with what it runs on)
 *	dmta_reload_free(r);   (the whole list, at exit)
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
 *	dmta_reload_read() reads the file and everything a reload applies
 *	from it, changing nothing: the control thread then swaps the parts
 *	into place and keeps what they replaced in the same struct, chained,
 *	until it exits (jobs in flight point at the old relay credentials,
 *	lookups under way at the old routes, the scheduler at the old
 *	configuration's strings).
 *	XXX One struct per reload for the life of the process; reloads are
 *	rare and small.
 *
 * DIAGNOSTICS
 *	dmta_reload_read(): NULL with the reason in err (each bad key has
 *	also been logged on a line of its own by the tables).
 *	dmta_reload_fixed(): how many entries differ; their names, comma
 *	separated ("[eal], [smtp] helo_name"), in @p buf (cut to fit).
 */
#ifndef DMTA_RELOAD_H
#define DMTA_RELOAD_H

#include <stddef.h>

#include "core/base/dmta_conf.h"
#include "core/control/dmta_control_conf.h"
#include "dns/dns_conf.h"
#include "queue/queue_sched.h"

/** What a reload read (then, once applied, what it replaced). */
struct dmta_reload {
	struct dmta_conf *conf; /* owned; NULL once given away */
	struct dmta_control_conf cc;
	struct queue_sched_conf sc; /* sc.conf is conf; lifetime as at start */
	struct dns_config dns;
	char *relay_user, *relay_pass; /* NULL: no AUTH */
	struct queue_rules *rules;     /* [rules] file, or the built-in set */
	struct dmta_reload *next;
};

/**
 * Read @p path and check every part a reload applies: [smtp], [relay],
 * [log], [control], [queue] and every [dest DOMAIN], [rules], [dns] with [routes]
 * and [relay] host, the relay's password file. @p boot: the configuration
 * dmtad started with (what stays as it was comes from it).
 */
struct dmta_reload *dmta_reload_read(const char *path, const struct dmta_conf *boot, char *err,
				     size_t errlen);

/** Free @p r and every one chained after it. */
void dmta_reload_free(struct dmta_reload *r);

struct dmta_reload_fixed {
	const char *section;		      /* its name; "user ": every [user NAME] */
	const struct dmta_conf_section *keys; /* only these keys; NULL: the whole section */
};

/** What dmtad cannot change while it runs. */
extern const struct dmta_reload_fixed dmta_reload_fixed_list[];
extern const size_t dmta_reload_nfixed;

int dmta_reload_fixed(const struct dmta_conf *old, const struct dmta_conf *new,
		      const struct dmta_reload_fixed *fixed, size_t nfixed, char *buf, size_t cap);

#endif
