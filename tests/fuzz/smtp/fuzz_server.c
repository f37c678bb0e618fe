/*
 * fuzz_server.c - fuzz target: the SMTP server engine against an
 * adversarial client.
 *
 * The first byte picks the session's settings (pipelining, chunking,
 * STARTTLS, AUTH and whether it is offered in plaintext, the bare-EOL
 * policy, small limits); the second seeds the decisions (accept or refuse
 * senders, recipients, AUTH, messages; answer a message at once or only
 * after the next read, as after an fsync). The rest is the client's bytes,
 * cut into reads at each 0xff byte. At the end the connection is dropped.
 *
 * The engine must never crash, and:
 *   - BODY events come only inside a transaction, and DATA_END's size is
 *     the sum of the pieces;
 *   - a message that came by DATA is given with no bare CR or LF, whatever
 *     the policy (CRLF.CRLF is the only end; nothing is smuggled);
 *   - a decision is awaited only after an event that asks for one;
 *   - after SMTP_SEV_CLOSED no event follows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
	struct smtp_server *s;
	uint32_t rnd;
	bool in_txn, closed, prev_cr, bare, deferred;
	uint64_t got;
};

static uint32_t next_rnd(struct state *st)
{
	st->rnd = st->rnd * 1103515245u + 12345u;
	return st->rnd >> 16;
}

static void decide(struct state *st, bool accept_bias)
{
	uint32_t r = next_rnd(st);
	int codes[] = {0, 250, 451, 452, 550, 554};
	int code = accept_bias && (r & 3) ? 0 : codes[r % 6];

	if (smtp_server_reply(st->s, code, (r & 8) ? NULL : "5.7.1 no") != 0)
		abort();
}

static void events(struct state *st)
{
	struct smtp_server_event e;

	while (smtp_server_event(st->s, &e)) {
		if (st->closed)
			abort();
		switch (e.type) {
		case SMTP_SEV_MAIL:
			if (!smtp_server_waiting(st->s) || e.addr == NULL)
				abort();
			st->in_txn = true; /* until the reply says otherwise */
			st->got = 0;
			st->prev_cr = st->bare = false;
			decide(st, true);
			break;
		case SMTP_SEV_RCPT:
		case SMTP_SEV_AUTH:
			if (!smtp_server_waiting(st->s))
				abort();
			decide(st, true);
			break;
		case SMTP_SEV_BODY: {
			const uint8_t *p = e.data;
			if (!st->in_txn || e.len == 0)
				abort();
			for (size_t i = 0; i < e.len; i++) {
				if ((p[i] == '\n') != st->prev_cr)
					st->bare = true;
				st->prev_cr = p[i] == '\r';
			}
			st->got += e.len;
			break;
		}
		case SMTP_SEV_DATA_END:
			if (!st->in_txn || e.size != st->got || !smtp_server_waiting(st->s))
				abort();
			if (!e.bdat && (st->bare || st->prev_cr))
				abort(); /* a bare CR or LF reached the caller */
			st->in_txn = false;
			if (next_rnd(st) & 1)
				st->deferred = true; /* answer after the next read */
			else
				decide(st, true);
			break;
		case SMTP_SEV_RESET:
			st->in_txn = false;
			break;
		case SMTP_SEV_TLS_NEEDED:
			smtp_server_tls_started(st->s);
			break;
		case SMTP_SEV_CLOSED:
			st->closed = true;
			st->in_txn = false;
			break;
		case SMTP_SEV_HELO:
			if (e.helo == NULL)
				abort();
			break;
		default:
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_server_config cfg = {.hostname = "mx.fuzz.test"};
	struct state st = {0};
	struct iovec iov[4];

	if (size < 2)
		return 0;
	uint8_t f = data[0];
	st.rnd = data[1];
	data += 2;
	size -= 2;
	cfg.no_pipelining = f & 1;
	cfg.no_chunking = f & 2;
	cfg.tls_available = f & 4;
	cfg.auth = f & 8;
	cfg.auth_plaintext_ok = f & 16;
	cfg.bare_eol = (f & 32) ? SMTP_BARE_EOL_NORMALISE : SMTP_BARE_EOL_REJECT;
	if (f & 64) {
		cfg.max_rcpts = 2;
		cfg.max_errors = 3;
		cfg.text_line_max = 40;
		cfg.size_limit = 100;
	}
	cfg.requiretls = f & 128;
	st.s = smtp_server_new(&cfg);
	if (st.s == NULL)
		abort();

	size_t pos = 0;
	for (int last = 0; !last;) {
		size_t n = 0;

		while (pos + n < size && data[pos + n] != 0xff)
			n++;
		if (pos + n >= size)
			last = 1;
		size_t done = 0;
		while (done < n && !smtp_server_closed(st.s)) {
			/* A message answered late: bytes fed meanwhile wait. */
			bool late = st.deferred;
			size_t k = smtp_server_feed(st.s, data + pos + done, n - done);
			events(&st);
			if (late) {
				st.deferred = false;
				decide(&st, true);
				events(&st);
			} else if (k == 0) {
				abort(); /* stuck without a decision to wait for */
			}
			done += k;
		}
		size_t k;
		while ((k = smtp_server_tx_iov(st.s, iov, 4)) > 0)
			smtp_server_tx_done(st.s, iov[0].iov_len);
		(void)smtp_server_deadline(st.s, NULL);
		pos += n + 1;
	}
	if (st.deferred) {
		decide(&st, true);
		events(&st);
	}
	smtp_server_eof(st.s);
	events(&st);
	if (!st.closed || st.in_txn)
		abort();
	smtp_server_free(st.s);
	return 0;
}
