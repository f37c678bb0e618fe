/*
 * sendmail_bs.c - see sendmail_bs.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/control/dmta_accept.h"
#include "smtp/smtp_server.h"
#include "tools/queue/sendmail_bs.h"

#define BS_MAX_RCPT 10000

struct bs {
	const struct sendmail_bs *b;
	struct smtp_server *s;
	struct dmta_accept acc;
};

/* The trace field: who ran us, as Postfix's pickup writes it. */
static int body_begin(struct bs *x)
{
	char line[512], date[64];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	x->acc.started = true;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(line, sizeof(line),
		     "Received: by %s (dmta-sendmail -bs, from userid %u);\r\n\t%s\r\n",
		     x->b->hostname, (unsigned)x->b->uid, date);
	return dmta_accept_body(&x->acc, line, (size_t)n);
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

static void on_data_end(struct bs *x)
{
	char id[64], text[256];
	const char *why = NULL;
	int rc = 0;

	if (!x->acc.started)
		rc = body_begin(x);
	if (rc == 0)
		rc = x->b->queue(x->b->arg, &x->acc.env, x->acc.body ? x->acc.body : "", x->acc.len,
				 id, &why);
	dmta_accept_drop(&x->acc);
	if (rc == 0) {
		snprintf(text, sizeof(text), "2.0.0 Ok: queued as %s", id);
		smtp_server_reply(x->s, 250, text);
	} else if (rc == -EBADMSG) {
		snprintf(text, sizeof(text), "5.6.0 %s", why ? why : "Message refused");
		smtp_server_reply(x->s, 550, text);
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
	const char *text = NULL;
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
			smtp_server_reply(x->s, dmta_accept_mail(&x->acc, &ev, &text), text);
			break;
		case SMTP_SEV_RCPT:
			smtp_server_reply(x->s, dmta_accept_rcpt(&x->acc, &ev, &text), text);
			break;
		case SMTP_SEV_BODY:
			if ((!x->acc.started && body_begin(x) != 0) ||
			    (x->acc.len + ev.len <= x->b->size_limit + 4096 &&
			     dmta_accept_body(&x->acc, ev.data, ev.len) != 0)) {
				dmta_accept_drop(&x->acc);
				return false;
			}
			break;
		case SMTP_SEV_DATA_END:
			on_data_end(x);
			break;
		case SMTP_SEV_RESET:
			dmta_accept_drop(&x->acc);
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
	dmta_accept_free(&x.acc);
	smtp_server_free(x.s);
	return ex;
}
