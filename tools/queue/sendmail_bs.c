/*
 * sendmail_bs.c - see sendmail_bs.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue_addr.h"
#include "smtp/smtp_server.h"
#include "tools/queue/sendmail_bs.h"

#define BS_MAX_RCPT 10000

struct bs {
	const struct sendmail_bs *b;
	struct smtp_server *s;
	struct queue_env env;
	char *body;
	size_t len, cap;
	bool started;
};

static int body_add(struct bs *x, const void *p, size_t n)
{
	if (x->len + n > x->cap) {
		size_t cap = x->cap ? x->cap : 8192;
		char *nb;

		while (cap < x->len + n)
			cap *= 2;
		nb = realloc(x->body, cap);
		if (nb == NULL)
			return -ENOMEM;
		x->body = nb;
		x->cap = cap;
	}
	memcpy(x->body + x->len, p, n);
	x->len += n;
	return 0;
}

/* The trace field: who ran us, as Postfix's pickup writes it. */
static int body_begin(struct bs *x)
{
	char line[512], date[64];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	x->started = true;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(line, sizeof(line),
		     "Received: by %s (dmta-sendmail -bs, from userid %u);\r\n\t%s\r\n",
		     x->b->hostname, (unsigned)x->b->uid, date);
	return body_add(x, line, (size_t)n);
}

static void drop(struct bs *x)
{
	queue_env_free(&x->env);
	x->len = 0;
	x->started = false;
}

static bool flush(struct bs *x)
{
	struct iovec iov[8];
	size_t k;

	while ((k = smtp_server_tx_iov(x->s, iov, 8)) > 0) {
		ssize_t n = writev(x->b->out, iov, (int)k);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		smtp_server_tx_done(x->s, (size_t)n);
	}
	return true;
}

static void on_mail(struct bs *x, const struct smtp_server_event *ev)
{
	const char *why;
	bool utf8 = false;

	if (ev->addr[0] && queue_addr_check(ev->addr, strlen(ev->addr), &utf8, &why) < 0) {
		smtp_server_reply(x->s, 501, "5.1.7 Bad sender address syntax");
		return;
	}
	drop(x);
	if (queue_env_set_sender(&x->env, ev->addr) < 0 ||
	    queue_env_set_envid(&x->env, ev->envid) < 0) {
		drop(x);
		smtp_server_reply(x->s, 452, "4.3.1 Out of memory");
		return;
	}
	x->env.ret = ev->ret == SMTP_RET_HDRS	? QUEUE_RET_HDRS
		     : ev->ret == SMTP_RET_FULL ? QUEUE_RET_FULL
						: QUEUE_RET_DEFAULT;
	if (ev->body == SMTP_BODY_8BITMIME || ev->body == SMTP_BODY_BINARYMIME)
		x->env.flags |= QUEUE_F_8BITMIME;
	if (ev->smtputf8 || utf8)
		x->env.flags |= QUEUE_F_SMTPUTF8;
	smtp_server_reply(x->s, 0, NULL);
}

static void on_rcpt(struct bs *x, const struct smtp_server_event *ev)
{
	const char *why;
	bool utf8 = false;

	if (queue_addr_check(ev->addr, strlen(ev->addr), &utf8, &why) < 0) {
		smtp_server_reply(x->s, 501, "5.1.3 Bad recipient address syntax");
		return;
	}
	if (queue_env_add_rcpt(&x->env, ev->addr, ev->orcpt, QUEUE_NOTIFY_DEFAULT) < 0) {
		smtp_server_reply(x->s, 452, "4.3.1 Out of memory");
		return;
	}
	if (utf8)
		x->env.flags |= QUEUE_F_SMTPUTF8;
	smtp_server_reply(x->s, 0, NULL);
}

static void on_data_end(struct bs *x)
{
	char id[64], text[128];
	int rc = 0;

	if (!x->started)
		rc = body_begin(x);
	if (rc == 0)
		rc = x->b->queue(x->b->arg, &x->env, x->body ? x->body : "", x->len, id);
	drop(x);
	if (rc == 0) {
		snprintf(text, sizeof(text), "2.0.0 Ok: queued as %s", id);
		smtp_server_reply(x->s, 250, text);
	} else if (rc == -ENOSPC) {
		smtp_server_reply(x->s, 452, "4.3.1 Insufficient system storage");
	} else {
		smtp_server_reply(x->s, 451, "4.3.0 Cannot queue the message");
	}
}

/* Take the engine's events; false once the session is over. */
static bool events(struct bs *x)
{
	struct smtp_server_event ev;
	bool open = true;

	while (smtp_server_event(x->s, &ev)) {
		switch (ev.type) {
		case SMTP_SEV_HELO:
		case SMTP_SEV_TLS_NEEDED: /* never offered */
			break;
		case SMTP_SEV_AUTH: /* never offered */
			smtp_server_reply(x->s, 503, "5.5.1 AUTH not available");
			break;
		case SMTP_SEV_MAIL:
			on_mail(x, &ev);
			break;
		case SMTP_SEV_RCPT:
			on_rcpt(x, &ev);
			break;
		case SMTP_SEV_BODY:
			if ((!x->started && body_begin(x) != 0) ||
			    (x->len + ev.len <= x->b->size_limit + 4096 &&
			     body_add(x, ev.data, ev.len) != 0)) {
				drop(x);
				return false;
			}
			break;
		case SMTP_SEV_DATA_END:
			on_data_end(x);
			break;
		case SMTP_SEV_RESET:
			drop(x);
			break;
		case SMTP_SEV_CLOSED:
			open = false;
			break;
		default:
			abort();
		}
	}
	return open;
}

int sendmail_bs_run(const struct sendmail_bs *b)
{
	struct smtp_server_config cfg = {
	    .hostname = b->hostname,
	    .size_limit = b->size_limit,
	    .max_rcpts = BS_MAX_RCPT,
	};
	struct bs x = {.b = b};
	bool open = true;
	int ex = 0;

	x.s = smtp_server_new(&cfg);
	if (x.s == NULL)
		return 70;
	while (open) {
		uint8_t *p;
		size_t room = smtp_server_rx_space(x.s, &p);
		ssize_t n;

		if (!flush(&x)) {
			ex = 74;
			break;
		}
		if (room == 0) {
			/* Every decision is made at once here: a full buffer with
			 * none awaited cannot happen. */
			ex = 70;
			break;
		}
		n = read(b->in, p, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			smtp_server_eof(x.s);
		else
			smtp_server_rx_commit(x.s, (size_t)n);
		open = events(&x) && !smtp_server_closed(x.s);
	}
	if (ex == 0 && !flush(&x))
		ex = 74;
	drop(&x);
	free(x.body);
	smtp_server_free(x.s);
	return ex;
}
