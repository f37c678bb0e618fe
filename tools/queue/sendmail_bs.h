/*
 * sendmail_bs.h - "sendmail -bs": an SMTP session on standard input and
 *	output, with dmtad's server engine.
 *
 * SYNOPSIS
 *	struct sendmail_bs b = {.hostname = h, .size_limit = n, .uid = getuid(),
 *				.queue = fn, .arg = ctx, .in = 0, .out = 1};
 *	exit(sendmail_bs_run(&b));
 *
 * DESCRIPTION
 *	The caller is a local process, so it may send to any recipient; no
 *	TLS, no AUTH. Each message gets a Received field naming the uid that
 *	ran the program, and is handed to queue(), which must make it durable
 *	before it returns 0 (then the client hears 250 with the id queue()
 *	wrote); -EBADMSG refuses the message for good with 550 5.6.0 and the
 *	reason queue() gave (a bad X-Dmta-* field, a From that cannot be
 *	signed), another negative errno gives 451 (or 452 for -ENOSPC). The
 *	session
 *	ends at QUIT or at the end of the input.
 *
 * DIAGNOSTICS
 *	sendmail_bs_run() returns a sendmail exit code: 0, 70 when the engine
 *	cannot be made, 74 when the output breaks.
 */
#ifndef SENDMAIL_BS_H
#define SENDMAIL_BS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/queue_env.h"

struct sendmail_bs {
	const char *hostname;
	uint64_t size_limit;
	uid_t uid;
	/** Make the message durable; write its id (up to 64 bytes) into @p id.
	 *  On -EBADMSG, *@p why is the reason (static or owned by arg). */
	int (*queue)(void *arg, struct queue_env *env, const void *msg, size_t len, char *id,
		     const char **why);
	void *arg;
	int in, out;
};

int sendmail_bs_run(const struct sendmail_bs *b);

#endif
