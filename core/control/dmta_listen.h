/*
 * dmta_listen.h - dmtad's way in: SMTP listeners on kernel sockets and the
 *	pickup of local users' maildrop, in two threads of their own (the
 *	listener and its committer).
 *
 * SYNOPSIS
 *	l = dmta_listen_start(conf, spool, err, sizeof(err));  (binds, then runs)
 *	dmta_listen_get_stats(l, &st);
 *	dmta_listen_stop(l);				  (joins, closes all)
 *
 * DESCRIPTION
 *	[listen] smtp, submission and submissions name the addresses to listen
 *	on (ADDR:PORT, IPv6 as [ADDR]:PORT, comma-separated):
 *	  smtp         relay for clients in mynetworks or authenticated ones;
 *	               others are refused at RCPT, 554 5.7.1 (dmta delivers
 *	               nothing locally, so no recipient is "ours");
 *	  submission   port 587: STARTTLS offered, and required before AUTH;
 *	               AUTH required before MAIL (530 5.7.0);
 *	  submissions  port 465: TLS from the first byte (RFC 8314), AUTH
 *	               required before MAIL.
 *	TLS uses tls_cert and tls_key; AUTH PLAIN and LOGIN check the crypt(3)
 *	hashes of the users file (lines "user:hash", see dmta-passwd).
 *
 *	Every message is acknowledged only once durable. Messages that reach
 *	their end of data, from all connections, and maildrop files make a
 *	batch; a committer thread writes each batch in one spool transaction
 *	(one commit, one fsync for all of them), and only then does each
 *	client get 250. While the committer waits for the disk, the listener
 *	goes on serving every connection, and what finishes meanwhile is the
 *	next batch: the more clients, the more per commit. The control
 *	thread is told through the spool's wake-up socket, as for any
 *	injector: it never waits on a client, and a slow client never waits
 *	on delivery.
 *
 *	Limits: max_connections and max_connections_per_client (421 4.7.0 and
 *	close, before the greeting), SIZE from [spool] message_size_limit,
 *	max_recipients (452 4.5.3 beyond), max_errors (421 after that many
 *	errors). command_timeout runs from the end of one command to the end
 *	of the next, so bytes that trickle in do not stretch it (slowloris);
 *	data_timeout bounds a whole DATA or BDAT transfer. Either expiring
 *	gives 421 4.4.2 and the connection is closed.
 *
 *	The maildrop (spool_drop.h): SPOOL/maildrop is made (mode 1770, group
 *	dmtadrop when that group exists) at start, read at start, on every
 *	inotify event and once a minute. Each complete file is parsed as
 *	untrusted input, committed with the turn's batch and then removed; a
 *	file that does not parse is logged with its owner's uid and removed.
 *	XXX: a crash between the commit and the removal queues that file's
 *	message a second time at the next start (at least once, never lost).
 *
 *	Each accepted message is a log line: queue id, sender, recipients,
 *	size, and the client (address, HELO, listener, AUTH user, TLS) or the
 *	submitting uid.
 *
 * DIAGNOSTICS
 *	dmta_listen_start() returns NULL with one line in err (a bad key, an
 *	address that cannot be bound, unusable certificate or users file).
 */
#ifndef DMTA_LISTEN_H
#define DMTA_LISTEN_H

#include <stddef.h>
#include <stdint.h>

struct dmta_conf;
struct spool;
struct dmta_listen;

/** The [listen] keys. */
extern const struct dmta_conf_section dmta_listen_conf_section;

struct dmta_listen_stats {
	uint64_t connections; /* accepted */
	uint64_t refused;     /* over a connection limit */
	uint64_t messages;    /* acknowledged over SMTP */
	uint64_t picked_up;   /* maildrop files queued */
	uint64_t commits;     /* spool transactions (one fsync each) */
	uint64_t commit_errors;
	uint64_t timeouts; /* sessions ended by command_timeout or data_timeout */
};

/** [listen] users of @p conf into *@p path (NULL when not set). 0 or -EINVAL. */
int dmta_listen_users_path(const struct dmta_conf *conf, const char **path);

/** Bind what [listen] names, make the maildrop and start the thread. */
struct dmta_listen *dmta_listen_start(const struct dmta_conf *conf, struct spool *sp, char *err,
				      size_t errlen);
/** Stop accepting, answer what is committed, close every connection, join. */
void dmta_listen_stop(struct dmta_listen *l);
/** A snapshot (read without locking: counters only grow). */
void dmta_listen_get_stats(const struct dmta_listen *l, struct dmta_listen_stats *st);

#endif
