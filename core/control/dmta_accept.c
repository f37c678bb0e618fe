/*
 * dmta_accept.c - see dmta_accept.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/control/dmta_accept.h"
#include "queue/queue_addr.h"

static uint8_t notify_bits(const char *v)
{
	uint8_t n = 0;

	if (v == NULL)
		return QUEUE_NOTIFY_DEFAULT;
	if (strcasestr(v, "NEVER"))
		n |= QUEUE_NOTIFY_NEVER;
	if (strcasestr(v, "SUCCESS"))
		n |= QUEUE_NOTIFY_SUCCESS;
	if (strcasestr(v, "FAILURE"))
		n |= QUEUE_NOTIFY_FAILURE;
	if (strcasestr(v, "DELAY"))
		n |= QUEUE_NOTIFY_DELAY;
	return n;
}

int dmta_accept_mail(struct dmta_accept *a, const struct smtp_server_event *ev, const char **text)
{
	const char *why;
	bool utf8 = false;

	if (ev->addr[0] && queue_addr_check(ev->addr, strlen(ev->addr), &utf8, &why) < 0) {
		*text = "5.1.7 Bad sender address syntax";
		return 501;
	}
	dmta_accept_drop(a);
	if (queue_env_set_sender(&a->env, ev->addr) < 0 ||
	    queue_env_set_envid(&a->env, ev->envid) < 0) {
		dmta_accept_drop(a);
		*text = "4.3.1 Out of memory";
		return 452;
	}
	a->env.ret = ev->ret == SMTP_RET_HDRS	? QUEUE_RET_HDRS
		     : ev->ret == SMTP_RET_FULL ? QUEUE_RET_FULL
						: QUEUE_RET_DEFAULT;
	if (ev->body == SMTP_BODY_8BITMIME || ev->body == SMTP_BODY_BINARYMIME)
		a->env.flags |= QUEUE_F_8BITMIME;
	if (ev->smtputf8 || utf8)
		a->env.flags |= QUEUE_F_SMTPUTF8;
	return 0;
}

int dmta_accept_rcpt(struct dmta_accept *a, const struct smtp_server_event *ev, const char **text)
{
	const char *why;
	bool utf8 = false;

	if (queue_addr_check(ev->addr, strlen(ev->addr), &utf8, &why) < 0) {
		*text = "5.1.3 Bad recipient address syntax";
		return 501;
	}
	if (queue_env_add_rcpt(&a->env, ev->addr, ev->orcpt, notify_bits(ev->notify)) < 0) {
		*text = "4.3.1 Out of memory";
		return 452;
	}
	if (utf8)
		a->env.flags |= QUEUE_F_SMTPUTF8;
	return 0;
}

int dmta_accept_body(struct dmta_accept *a, const void *p, size_t n)
{
	if (a->len + n > a->cap) {
		size_t cap = a->cap ? a->cap : 8192;
		char *b;

		while (cap < a->len + n)
			cap *= 2;
		b = realloc(a->body, cap);
		if (b == NULL)
			return -ENOMEM;
		a->body = b;
		a->cap = cap;
	}
	memcpy(a->body + a->len, p, n);
	a->len += n;
	return 0;
}

void dmta_accept_drop(struct dmta_accept *a)
{
	queue_env_free(&a->env);
	a->len = 0;
	a->started = false;
}

void dmta_accept_free(struct dmta_accept *a)
{
	dmta_accept_drop(a);
	free(a->body);
	a->body = NULL;
	a->cap = 0;
}
