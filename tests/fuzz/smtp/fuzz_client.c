/*
 * fuzz_client.c - fuzz target: the SMTP client engine against an
 * adversarial server.
 *
 * The first byte picks the session's settings (pipelining, chunking, TLS
 * policy, AUTH, recipients per transaction); the rest is the server's
 * bytes, cut into reads at each 0xff byte. Three messages are queued. At
 * the end the connection is dropped. The engine must never crash, and
 * every recipient must end with exactly one outcome and every message with
 * exactly one SMTP_EV_MSG.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char body1[] = "Subject: a\r\n\r\n.dot\nbare\rlines\r\n";
static const char body2[] = "Subject: b\r\n\r\nh\xc3\xa9llo\r\n";
static const struct smtp_rcpt rc[] = {{"a@y.test", "SUCCESS", "rfc822;a@y.test"},
				      {"b@y.test", NULL, NULL},
				      {"c@y.test", NULL, NULL},
				      {"d\xc3\xa9@y.test", NULL, NULL}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_chunk c1[2] = {{body1, 10}, {body1 + 10, sizeof(body1) - 11}};
	struct smtp_chunk c2 = {body2, sizeof(body2) - 1};
	struct smtp_msg m[3] = {
	    {"s@x.test", rc, 3, c1, 2, "env1", SMTP_RET_FULL, NULL},
	    {"s@x.test", rc + 1, 1, &c2, 1, NULL, 0, NULL},
	    {"", rc + 2, 2, c1, 2, NULL, 0, NULL},
	};
	unsigned seen_rcpt[3][4] = {{0}}, seen_msg[3] = {0};
	struct smtp_client_config cfg = {.helo_name = "fuzz.test"};
	struct smtp_client *c;
	struct smtp_event e;
	struct iovec iov[8];
	uint8_t flags;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	cfg.no_pipelining = flags & 1;
	cfg.no_chunking = flags & 2;
	cfg.tls = (flags >> 2) & 3;
	if (flags & 16) {
		cfg.auth_user = "u";
		cfg.auth_pass = "p";
		cfg.auth_plaintext_ok = flags & 32;
	}
	cfg.max_rcpts = (flags & 64) ? 1 : 0;
	c = smtp_client_new(&cfg);
	if (c == NULL)
		abort();
	for (int i = 0; i < 3; i++)
		if (smtp_client_submit(c, &m[i]) != 0)
			abort();
	if (flags & 128)
		smtp_client_quit(c);
	if (cfg.tls == SMTP_TLS_IMPLICIT)
		smtp_client_tls_started(c);

	size_t pos = 0;
	for (int last = 0; !last;) {
		size_t n = 0;

		while (pos + n < size && data[pos + n] != 0xff)
			n++;
		if (pos + n >= size)
			last = 1;
		size_t done = 0;
		while (done < n && !smtp_client_closed(c)) {
			done += smtp_client_feed(c, data + pos + done, n - done);
			while (smtp_client_event(c, &e)) {
				int mi = e.msg ? (int)(e.msg - m) : -1;

				if (e.type == SMTP_EV_RCPT) {
					if (mi < 0 || mi > 2 || e.rcpt >= m[mi].nrcpts)
						abort();
					seen_rcpt[mi][e.rcpt]++;
				} else if (e.type == SMTP_EV_MSG) {
					if (mi < 0 || mi > 2)
						abort();
					seen_msg[mi]++;
				} else if (e.type == SMTP_EV_TLS_NEEDED) {
					smtp_client_tls_started(c);
				}
			}
		}
		size_t k;
		while ((k = smtp_client_tx_iov(c, iov, 8)) > 0) {
			size_t t = 0;
			for (size_t i = 0; i < k; i++)
				t += iov[i].iov_len;
			smtp_client_tx_done(c, t);
		}
		(void)smtp_client_deadline(c, NULL);
		pos += n + 1;
	}
	smtp_client_eof(c);
	while (smtp_client_event(c, &e)) {
		int mi = e.msg ? (int)(e.msg - m) : -1;

		if (e.type == SMTP_EV_RCPT)
			seen_rcpt[mi][e.rcpt]++;
		else if (e.type == SMTP_EV_MSG)
			seen_msg[mi]++;
	}
	for (int i = 0; i < 3; i++) {
		if (seen_msg[i] != 1)
			abort();
		for (size_t j = 0; j < m[i].nrcpts; j++)
			if (seen_rcpt[i][j] != 1)
				abort();
	}
	smtp_client_free(c);
	return 0;
}
