/*
 * spool_drop.h - the maildrop: how a local user who may not write the
 *	spool hands a message to dmtad.
 *
 * SYNOPSIS
 *	(a non-root sendmail, setgid dmtadrop)
 *	rc = spool_drop_write(spool_path, &env, msg, len, name, sizeof(name));
 *	(dmtad's listener thread, as root)
 *	fd = spool_drop_open(spool_path, name, &st);
 *	rc = spool_drop_parse(buf, len, &env, &msg, &msglen, &why);
 *
 * DESCRIPTION
 *	SPOOL/maildrop is owned by root, group SPOOL_DROP_GROUP, mode 1770:
 *	only that group may create names in it, and the sticky bit lets only
 *	a file's owner (or root) remove or rename it. No user is a member of
 *	the group: only the setgid sendmail has it, and it never lists the
 *	directory (the group's r is there so that the writer can open the
 *	directory to fsync it). The spool itself gives the group search (x)
 *	only. sendmail runs setgid to that group; a file it creates
 *	belongs to the invoking user (mode 0600), so no user reads, changes
 *	or removes another's queued mail, and the owner dmtad sees is the
 *	real submitter. LMDB's files and writer lock stay root's: no user
 *	process ever holds the lock dmtad waits on.
 *
 *	Why this design, of the three the issue names:
 *	  - a setgid injector writing the LMDB spool itself was never an
 *	    option: the user owns the process (may stop it with SIGSTOP
 *	    while it holds LMDB's writer lock, stalling dmtad, or ptrace it
 *	    were it dumpable) and could write anything into any record;
 *	  - a local socket to the daemon (OpenSMTPD's smtpctl/enqueue) loses
 *	    "the queue fills while dmtad is down" unless an offline area is
 *	    added, which is this maildrop again;
 *	  - so: Postfix's shape, a setgid writer of one file per message into
 *	    a directory only that group may write, and the privileged daemon
 *	    as the only reader. The setgid program holds no lock anybody
 *	    waits on, writes nothing another user can see, and the file's
 *	    owner (set by the kernel, not the file) tells dmtad who sent it.
 *	    Postfix needs a separate postdrop because its sendmail does much
 *	    more; dmta-sendmail gives the group up at its first line and
 *	    takes it back only around spool_drop_write().
 *
 *	A file is written as ".tmp.RANDOM" and renamed to its final name
 *	once complete and fsync'ed (directory too): dmtad takes only names
 *	that do not start with '.', so a writer killed half way leaves
 *	nothing dmtad would take (stale temporaries are removed after a day).
 *
 *	Format: the 8 octets "DMTADRP1", the envelope record's length as 4
 *	octets little-endian, the envelope record (queue_env_encode: magic,
 *	version, CRC32C), then the message bytes to the end of the file.
 *	The file is the user's and therefore untrusted: spool_drop_parse()
 *	takes from it only what a user may choose (sender, recipients with
 *	NOTIFY and ORCPT, RET, ENVID, 8BITMIME/SMTPUTF8) into a fresh
 *	envelope, checks every address, and never trusts a state, flag,
 *	time or count written there. Pool, priority and tenant are not taken
 *	from the file either: dmtad reads them from the message's X-Dmta-*
 *	fields when it picks the file up, over the [user NAME] defaults of the
 *	file's owner (queue_user.h), as dmtad's listener does for SMTP.
 *
 * DIAGNOSTICS
 *	0 or -errno; spool_drop_parse() gives -EBADMSG with a static reason.
 *	spool_drop_open() returns a descriptor or -errno (-ELOOP for a
 *	symbolic link, -EINVAL for anything not a regular file with one link).
 */
#ifndef QUEUE_SPOOL_DROP_H
#define QUEUE_SPOOL_DROP_H

#include <stddef.h>
#include <sys/stat.h>

#include "queue/queue_env.h"

#define SPOOL_DROP_DIR	 "maildrop"
#define SPOOL_DROP_GROUP "dmtadrop"
#define SPOOL_DROP_MAGIC "DMTADRP1"
#define SPOOL_DROP_HDR	 12 /* magic and length */
/** The longest envelope record a maildrop file may hold. */
#define SPOOL_DROP_ENV_MAX (4u << 20)

/**
 * Write @p env and the message into SPOOL/maildrop, durably: on 0 the
 * file is complete, fsync'ed and visible under its final name (copied
 * into @p name). Opens nothing through a symbolic link.
 */
int spool_drop_write(const char *spool_path, const struct queue_env *env, const void *msg,
		     size_t len, char *name, size_t namelen);

/** Open maildrop file @p name for reading (O_NOFOLLOW, regular, one link); @p st filled. */
int spool_drop_open(const char *spool_path, const char *name, struct stat *st);

/**
 * Parse a maildrop file's bytes into a new owning envelope @p env (free
 * with queue_env_free) and the message, a view into @p buf. 0, -ENOMEM,
 * or -EBADMSG with *@p why set.
 */
int spool_drop_parse(const void *buf, size_t len, struct queue_env *env, const void **msg,
		     size_t *msglen, const char **why);

#endif
