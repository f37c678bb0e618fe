/*
 * dmta_events.h - each message's fate pushed to the sender's application:
 *	delivery events posted in batches of JSON to [events] url.
 *
 * SYNOPSIS
 *	rc = dmta_events_conf_load(conf, &ec);
 *	ev = dmta_events_open(&ec, spool_path, err, sizeof(err));  (ec.url set)
 *	in the control thread, as things happen:
 *		dmta_events_reception(ev, env, msg, len);
 *		dmta_events_attempt(ev, &rec, msg, len, secs);  (per recipient)
 *		dmta_events_delay(ev, env, rcpt, n);
 *	once per turn, before the spool commit:
 *		dmta_events_sync(ev);
 *	dmta_events_counters(ev, &extra);
 *	dmta_events_close(ev);
 *
 * DESCRIPTION
 *	Durable, in order, never in the way of delivery. The control thread
 *	appends each event as one JSON line to the newest segment file in
 *	SPOOL/events/ (NNNNNNNNNNNNNNNN.jsonl, numbered in hex), and
 *	dmta_events_sync() writes and fdatasync()s what the turn produced
 *	before the spool commits the changes they report. A thread of its own
 *	posts the synced lines, up to [events] batch at a time, as one JSON
 *	array to the URL with libcurl; after a 2xx answer it writes the cursor
 *	(SPOOL/events/cursor: segment, offset, and the last message whose
 *	reception was posted) to a temporary file, fsyncs it and renames it
 *	over the old one, and removes segments it has passed. A failed post
 *	(no answer, timeout, non-2xx) is tried again after retry_min, doubling
 *	up to retry_max. At start the cursor says where to go on from, so a
 *	restart neither loses nor repeats an event; only a crash between a
 *	receiver's 2xx and the cursor's rename repeats one batch, which the
 *	receiver can recognise by the events' ids.
 *
 *	One file, one writer, one reader: events reach the receiver in the
 *	order they happened, so per message: reception, then each attempt's
 *	outcome, a delay warning where it falls, the final delivery or bounce.
 *
 *	The backlog is the file's unposted part. With [events] max_backlog set,
 *	events that would grow it past that are dropped and counted; without,
 *	it grows on disk while the receiver is away.
 *
 *	Each event (fields that do not apply are left out):
 *	  {"id":"SEGMENT.OFFSET","event":"reception|delivery|transient_failure|
 *	   bounce|delay_warning","time":UNIX-SECONDS,"qid":"...",
 *	   "message_id":"<...>","sender":"...","recipient":"...",
 *	   "recipients":[...] (reception),"size":N (reception),
 *	   "domain":"...","mx":"...","ip":"...","tls":"...","reply":"...",
 *	   "status":"5.1.1","bounce_class":"mailbox|...|expired","attempt":N,
 *	   "delay_s":SECONDS since reception,"attempt_s":SECONDS it took}
 *
 * DIAGNOSTICS
 *	dmta_events_open(): NULL with one line in err. Writing problems are
 *	logged once and counted as drops: delivery goes on.
 */
#ifndef DMTA_EVENTS_H
#define DMTA_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/dmta_conf.h"
#include "core/control/dmta_dlog.h"
#include "core/control/dmta_metrics.h"
#include "queue/queue_env.h"

struct dmta_events;

extern const struct dmta_conf_section dmta_events_conf_section;

struct dmta_events_conf {
	const char *url; /* NULL: no events */
	uint32_t batch;
	uint64_t max_backlog; /* bytes; 0: no limit */
	uint64_t retry_min_ms, retry_max_ms, timeout_ms;
};

int dmta_events_conf_load(const struct dmta_conf *conf, struct dmta_events_conf *ec);

/** Open SPOOL/events, go on from its cursor, start the posting thread. */
struct dmta_events *dmta_events_open(const struct dmta_events_conf *ec, const char *spool_path,
				     char *err, size_t errlen);

/**
 * A message came into the queue (@p msg, @p len: its bytes, for the
 * Message-ID; may be NULL). Ignored for a message whose reception was
 * recorded before (at a restart every queued message is loaded again).
 */
void dmta_events_reception(struct dmta_events *ev, const struct queue_env *env, const void *msg,
			   size_t len);

/** One recipient's attempt as the delivery log has it (outcome delivered,
 *  deferred, bounced or expired); @p msg as above; @p attempt_s how long
 *  the attempt took (< 0: there was none). */
void dmta_events_attempt(struct dmta_events *ev, const struct dmta_dlog_rec *rec, const void *msg,
			 size_t len, double attempt_s);

/** A delay warning went to the sender for recipients @p rcpt[0..n) of @p env. */
void dmta_events_delay(struct dmta_events *ev, const struct queue_env *env, const uint32_t *rcpt,
		       uint32_t n);

/** Write and fdatasync what this turn produced, and wake the poster. 0 or -errno. */
int dmta_events_sync(struct dmta_events *ev);

/** The events_* counters of @p x. */
void dmta_events_counters(struct dmta_events *ev, struct dmta_metrics_extra *x);

/** Sync, let the poster finish the post under way, stop it, close. */
void dmta_events_close(struct dmta_events *ev);

/** The Message-ID header's value of @p msg (its header part) into @p buf; NULL if none. */
const char *dmta_events_message_id(const void *msg, size_t len, char *buf, size_t cap);

#endif
