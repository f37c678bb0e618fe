/*
 * dmta_accept.h - a message being taken in over SMTP: the envelope from
 *	MAIL and RCPT, and the body, for dmtad's listener and sendmail -bs.
 *
 * SYNOPSIS
 *	struct dmta_accept a = {0};
 *	code = dmta_accept_mail(&a, &ev, &text);   (0: accept; else reply code, text)
 *	code = dmta_accept_rcpt(&a, &ev, &text);
 *	dmta_accept_body(&a, ev.data, ev.len);
 *	(at end of data: a.env, a.body, a.len are the message)
 *	dmta_accept_drop(&a);  dmta_accept_free(&a);
 *
 * DESCRIPTION
 *	Addresses are checked as the spool wants them (queue_addr_check);
 *	MAIL's BODY, SMTPUTF8, RET and ENVID and RCPT's NOTIFY and ORCPT go
 *	into the envelope. Policy (who may send, who may relay) is the
 *	caller's, before it calls these.
 *
 * DIAGNOSTICS
 *	dmta_accept_mail/rcpt return 0 or an SMTP code with its text (5xx for
 *	bad syntax, 452 when out of memory). dmta_accept_body returns 0 or
 *	-ENOMEM.
 */
#ifndef DMTA_ACCEPT_H
#define DMTA_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>

#include "queue/queue_env.h"
#include "smtp/smtp_server.h"

struct dmta_accept {
	struct queue_env env; /* owning */
	char *body;	      /* the message so far (malloc) */
	size_t len, cap;
	bool started; /* the caller added its trace field */
};

int dmta_accept_mail(struct dmta_accept *a, const struct smtp_server_event *ev, const char **text);
int dmta_accept_rcpt(struct dmta_accept *a, const struct smtp_server_event *ev, const char **text);
int dmta_accept_body(struct dmta_accept *a, const void *p, size_t n);
/** Forget the transaction (the body buffer is kept for the next). */
void dmta_accept_drop(struct dmta_accept *a);
void dmta_accept_free(struct dmta_accept *a);

#endif
