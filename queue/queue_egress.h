/*
 * queue_egress.h - egress sources and pools: which local address a
 * message leaves from.
 *
 * SYNOPSIS
 *	rc = queue_egress_load(conf, &eg, err, sizeof(err));
 *	pool = queue_egress_pool(eg, env->pool);     (-1: unknown name)
 *	src = queue_egress_pick(eg, pool);           (a source index)
 *	addr = queue_egress_source_addr(eg, src);
 *	queue_egress_free(eg);
 *
 * DESCRIPTION
 *	A source is a named local IPv4 address mail is sent from:
 *	[source NAME] address = A.B.C.D. A pool is a weighted set of sources:
 *	[pool NAME] sources = a:3, b:1 (a weight defaults to 1). [queue]
 *	default_pool names the pool of messages that name none; without it,
 *	the default pool holds every source with weight 1, in file order.
 *
 *	Without any [source] section there is one implicit source,
 *	"default", with address 0.0.0.0: the backend's own address
 *	([net] address on DPDK, the kernel's choice on kernel sockets);
 *	a pool may name it ([pool bulk] sources = default).
 *
 *	A message names its pool (X-Dmta-Pool, dmta-inject's "pool", its
 *	user's [user NAME] pool); a name without a [pool NAME] section is
 *	refused where the message comes in, and a [user NAME] pool that
 *	names none keeps dmtad from starting (queue_users_check_pools()).
 *
 *	queue_egress_pick() spreads picks over a pool's sources in
 *	proportion to their weights and evenly in time (smooth weighted
 *	round robin, as nginx does for upstreams): weights 3:1 give
 *	a a b a, a a b a, ... Picks are per pool and deterministic.
 */
#ifndef QUEUE_EGRESS_H
#define QUEUE_EGRESS_H

#include <netinet/in.h>
#include <stddef.h>

struct dmta_conf;
struct queue_egress;

extern const struct dmta_conf_section queue_source_conf_section;
extern const struct dmta_conf_section queue_pool_conf_section;
extern const struct dmta_conf_section queue_egress_conf_section; /* [queue] default_pool */

/** Sources and pools from @p conf (may be NULL). 0, or -EINVAL with @p err set, or -ENOMEM. */
int queue_egress_load(const struct dmta_conf *conf, struct queue_egress **out, char *err,
		      size_t errlen);
void queue_egress_free(struct queue_egress *eg);

unsigned queue_egress_nsources(const struct queue_egress *eg);
const char *queue_egress_source_name(const struct queue_egress *eg, unsigned i);
/** The source's address; 0.0.0.0 for the implicit "default" source. */
struct in_addr queue_egress_source_addr(const struct queue_egress *eg, unsigned i);
/** The index of source @p name, or -1. */
int queue_egress_source(const struct queue_egress *eg, const char *name);

/** The index of pool @p name, the default pool for NULL, or -1 when there is no such pool. */
int queue_egress_pool(const struct queue_egress *eg, const char *name);
const char *queue_egress_pool_name(const struct queue_egress *eg, int pool);
/** 0 if @p pool (NULL: the default) names a pool; else -EBADMSG with the
 *  reason, for the submitter, in @p why. */
int queue_egress_check_pool(const struct queue_egress *eg, const char *pool, char *why,
			    size_t whylen);
/** A source of pool @p pool (the default pool when out of range), by weight. */
unsigned queue_egress_pick(struct queue_egress *eg, int pool);

#endif
