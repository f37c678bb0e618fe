/*
 * dmta_dlog.h - the delivery log: one JSON line per attempt per recipient.
 *
 * SYNOPSIS
 *	dl = dmta_dlog_open(path, max_bytes, keep);
 *	dmta_dlog_write(dl, &rec);	(per recipient)
 *	dmta_dlog_flush(dl);		(once a turn)
 *	dmta_dlog_close(dl);
 *
 * DESCRIPTION
 *	Each line is a JSON object that jq reads:
 *	  {"time":"2026-11-23T18:40:00.123Z","qid":"00000000002A",
 *	   "from":"a@x.test","to":"b@y.test","domain":"y.test",
 *	   "mx":"mx.y.test","ip":"198.18.1.10","tls":"TLSv1.3 ...",
 *	   "reply":"250 2.0.0 Ok","status":"2.0.0","attempt":1,
 *	   "delay_s":0.132,"outcome":"delivered","source":"198.18.0.10",
 *	   "site":"mx.y.test","class":"","priority":"normal","tenant":"acme"}
 *	outcome is delivered, deferred, bounced or expired. source is the
 *	egress address ("" when the backend chose), site the MX site's first
 *	exchanger, class the failure's bounce class (queue_rules.h; "" when
 *	delivered), tenant "" when the message has none. When the file grows
 *	past max_bytes it is renamed to PATH.1 (PATH.1 to PATH.2, ... up to
 *	keep files) and a new one is started. Lines are kept in a buffer and
 *	written whole, many with one write(2), so a reader never sees half a
 *	line: when the buffer (64 KiB) is full, before a rotation, and at
 *	dmta_dlog_flush(), which the control thread calls once per turn of its
 *	loop (a line per recipient was a system call per recipient). A line is at most
 *	4 KiB: a longer reply is cut to fit, between characters, so every
 *	line stays JSON (written by core/base/dmta_json).
 */
#ifndef DMTA_DLOG_H
#define DMTA_DLOG_H

#include <stdint.h>

struct dmta_dlog;

struct dmta_dlog_rec {
	uint64_t qid;
	const char *from, *to, *domain;
	const char *mx, *ip, *tls; /* may be NULL or "" */
	const char *reply;	   /* may be NULL */
	const char *status;	   /* enhanced status code, may be NULL */
	uint32_t attempt;
	double delay_s; /* since arrival */
	const char *outcome;
	const char *source, *site, *cls; /* may be NULL */
	const char *priority, *tenant;	 /* may be NULL */
};

/** NULL + errno. */
struct dmta_dlog *dmta_dlog_open(const char *path, uint64_t max_bytes, unsigned keep);
/** Into the buffer. 0 or -errno (a line that does not fit, or a write of
 *  earlier lines that failed: logged once; delivery goes on without its log). */
int dmta_dlog_write(struct dmta_dlog *dl, const struct dmta_dlog_rec *r);
/** Write the lines kept so far. 0 or -EIO (those lines are lost, logged once). */
int dmta_dlog_flush(struct dmta_dlog *dl);
/** Flush, then close. */
void dmta_dlog_close(struct dmta_dlog *dl);

#endif
