/*
 * queue_user.h - [user NAME]: per-user defaults of a message's pool,
 *	priority and tenant.
 *
 * SYNOPSIS
 *	us = queue_users_load(conf, err, sizeof(err));
 *	rc = queue_users_apply(us, "alice", &env);
 *	n = queue_users_take(us, "alice", &env, msg, &len, &why);
 *	queue_users_free(us);
 *
 * DESCRIPTION
 *	One [user NAME] section per user who submits mail: NAME is the SMTP
 *	AUTH user for dmtad's listeners, and the local Unix user (the
 *	submitting uid's name) for dmta-sendmail and the maildrop. Its keys
 *	pool, priority and tenant are the defaults of that user's messages;
 *	X-Dmta-Pool, X-Dmta-Priority and X-Dmta-Tenant fields in a message
 *	override them (queue_msg_take_fields()), as a header is the
 *	submitter's choice for one message and the section only a default;
 *	except the fields the section names in its "fixed" key: an operator
 *	who gives each tenant an AUTH user expects that tenant not to pass
 *	for another, nor to move itself to the high lane, whatever its
 *	messages say. Fixed fields are still removed from the message.
 *	A user without a section (or a message without a user) gets none:
 *	the default pool, normal priority, no tenant.
 *
 *	The table is read once (at start, or at a reload) and owns copies of
 *	its strings: it outlives the configuration it came from.
 *
 * DIAGNOSTICS
 *	queue_users_load() returns NULL with errno set (EINVAL: a bad value,
 *	named in @p err as "FILE: [user NAME] key: reason"; ENOMEM).
 *	queue_users_apply() returns 0 or -ENOMEM.
 */
#ifndef QUEUE_USER_H
#define QUEUE_USER_H

#include <stddef.h>

#include "core/base/dmta_conf.h"
#include "queue/queue_env.h"

struct queue_users;

/** The [user NAME] family's keys (for the sample and the man page). */
extern const struct dmta_conf_section queue_user_conf_section;

/** Read every [user NAME] section of @p conf (NULL: none). */
struct queue_users *queue_users_load(const struct dmta_conf *conf, char *err, size_t errlen);

/** Set @p env's pool, priority and tenant to @p name's defaults (an owning
 *  envelope; a NULL @p us or @p name, or a user without a section, changes
 *  nothing). 0 or -ENOMEM. */
int queue_users_apply(const struct queue_users *us, const char *name, struct queue_env *env);

/**
 * The traffic-control fields of a message at acceptance, for every way in:
 * @p user's defaults (queue_users_apply()), then the message's own
 * X-Dmta-* fields, removed from @p msg (queue_msg_take_fields()), except
 * that the fields the user's section names in "fixed" keep what the
 * section (or, when it says nothing, the default) gives. Returns
 * how many fields were removed, -EBADMSG with *@p why (refuse the
 * message), or -ENOMEM.
 */
long queue_users_take(const struct queue_users *us, const char *user, struct queue_env *env,
		      char *msg, size_t *len, const char **why);

struct queue_egress;

/** Every [user NAME] pool must name a [pool NAME] of @p eg: 0, or -EINVAL
 *  with "FILE: [user NAME] pool: 'X': no [pool X]" in @p err. */
int queue_users_check_pools(const struct queue_users *us, const struct queue_egress *eg,
			    const struct dmta_conf *conf, char *err, size_t errlen);

/** Free the table (NULL is fine). */
void queue_users_free(struct queue_users *us);

#endif
