/*
 * fuzz_body.c - differential fuzz target for body rewriting.
 *
 * The input (after two bytes of settings) is a message body, cut into up
 * to three chunks at points taken from the settings. It is sent with DATA
 * or BDAT through the engine, and what goes on the wire must equal a
 * plain byte-at-a-time rewrite (bare CR and LF to CRLF, dot-stuffing for
 * DATA, a final CRLF), with the BDAT count equal to the bytes sent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t ref_encode(const uint8_t *in, size_t n, uint8_t *out, int dot)
{
	size_t o = 0;
	int bol = 1, cr = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t ch = in[i];

		if (ch == '\r') {
			out[o++] = '\r';
			out[o++] = '\n';
			cr = bol = 1;
		} else if (ch == '\n') {
			if (!cr) {
				out[o++] = '\r';
				out[o++] = '\n';
			}
			cr = 0;
			bol = 1;
		} else {
			if (bol && ch == '.' && dot)
				out[o++] = '.';
			out[o++] = ch;
			cr = bol = 0;
		}
	}
	if (!bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	if (dot) {
		memcpy(out + o, ".\r\n", 3);
		o += 3;
	}
	return o;
}

static uint8_t *wire;
static size_t wire_len, wire_cap;

static void drain(struct smtp_client *c)
{
	struct iovec iov[8];
	size_t k;

	while ((k = smtp_client_tx_iov(c, iov, 8)) > 0) {
		size_t t = 0;

		for (size_t i = 0; i < k; i++) {
			if (wire_len + iov[i].iov_len > wire_cap) {
				wire_cap = (wire_len + iov[i].iov_len) * 2;
				wire = realloc(wire, wire_cap);
				if (wire == NULL)
					abort();
			}
			memcpy(wire + wire_len, iov[i].iov_base, iov[i].iov_len);
			wire_len += iov[i].iov_len;
			t += iov[i].iov_len;
		}
		smtp_client_tx_done(c, t);
	}
}

static void say(struct smtp_client *c, const char *s)
{
	struct smtp_event e;

	smtp_client_feed(c, s, strlen(s));
	while (smtp_client_event(c, &e))
		;
	drain(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct smtp_rcpt rc[] = {{"b@y.test", NULL, NULL}};
	struct smtp_client_config cfg = {.helo_name = "f.test"};
	struct smtp_chunk ck[3];
	struct smtp_msg m = {"a@x.test", rc, 1, ck, 3, NULL, 0, NULL};
	const uint8_t *body;
	size_t n, a, b;
	int bdat;

	if (size < 2)
		return 0;
	bdat = data[0] & 1;
	body = data + 2;
	n = size - 2;
	a = n ? data[1] % (n + 1) : 0;
	b = n ? (size_t)(data[0] >> 1) % (n + 1) : 0;
	if (a > b) {
		size_t t = a;
		a = b;
		b = t;
	}
	ck[0] = (struct smtp_chunk){body, a};
	ck[1] = (struct smtp_chunk){body + a, b - a};
	ck[2] = (struct smtp_chunk){body + b, n - b};

	struct smtp_client *c = smtp_client_new(&cfg);
	if (c == NULL || smtp_client_submit(c, &m) != 0)
		abort();
	wire_len = 0;
	say(c, "220 x\r\n");
	say(c, bdat ? "250-x\r\n250-CHUNKING\r\n250 8BITMIME\r\n" : "250-x\r\n250 8BITMIME\r\n");
	say(c, bdat ? "250 ok\r\n250 ok\r\n" : "250 ok\r\n250 ok\r\n354 go\r\n");

	/* Find the body: after the BDAT or DATA line. */
	const char *tag = bdat ? "BDAT " : "DATA\r\n";
	uint8_t *p = memmem(wire, wire_len, tag, strlen(tag));

	if (p == NULL)
		abort();
	uint8_t *nl = memmem(p, wire_len - (size_t)(p - wire), "\r\n", 2);
	if (nl == NULL)
		abort();
	uint8_t *got = nl + 2;
	size_t got_len = wire_len - (size_t)(got - wire);
	uint8_t *want = malloc(2 * n + 8);
	size_t want_len = ref_encode(body, n, want, !bdat);

	if (got_len != want_len || memcmp(got, want, want_len) != 0)
		abort();
	if (bdat) {
		unsigned long cnt = strtoul((const char *)p + 5, NULL, 10);
		if (cnt != want_len)
			abort();
	}
	free(want);
	smtp_client_free(c);
	return 0;
}
