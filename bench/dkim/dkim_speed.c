/*
 * dkim_speed - DKIM signatures per second on one core, as dmta makes them.
 *
 * SYNOPSIS
 *	dkim_speed SECONDS SIZE KEYFILE...
 *
 * DESCRIPTION
 *	For each key, signs the same SIZE-octet message (a bulk newsletter's
 *	shape: eight header fields, a text body) with queue_dkim_sign() in
 *	one thread for SECONDS, and prints one JSON line: the key's type,
 *	signatures made, and signatures per second. Everything a signature
 *	costs in dmta is in the figure: header and body canonicalisation,
 *	both SHA-256 hashes, the private-key operation and base64.
 *
 *	Time is this thread's CPU time, as `openssl speed` counts by default
 *	(user time): on a shared machine wall-clock time would measure the
 *	other tenants too, and the figure wanted is what one core does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "queue/queue_dkim.h"

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct queue_buf msg = {0};
	double secs;
	size_t size;
	static const char head[] =
	    "From: Newsletter <news@example.org>\r\nTo: rcpt@example.net\r\n"
	    "Subject: This week's news\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <1.bench@example.org>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "List-Unsubscribe: <mailto:unsub@example.org>\r\n\r\n";
	static const char line[] =
	    "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqr\r\n";

	if (argc < 4) {
		fprintf(stderr, "usage: dkim_speed SECONDS SIZE KEYFILE...\n");
		return 64;
	}
	secs = atof(argv[1]);
	size = (size_t)atol(argv[2]);
	queue_buf_adds(&msg, head);
	while (msg.len + sizeof(line) - 1 <= size)
		queue_buf_adds(&msg, line);
	for (int i = 3; i < argc; i++) {
		struct queue_dkim *d = queue_dkim_new();
		struct queue_buf sigs = {0};
		char keys[4200], err[1024];
		const char *why;
		uint64_t n = 0, t0, t1;

		snprintf(keys, sizeof(keys), "s:%s", argv[i]);
		if (d == NULL ||
		    queue_dkim_add(d, "example.org", keys, NULL, NULL, 0, err, sizeof(err)) < 0) {
			fprintf(stderr, "dkim_speed: %s\n", err);
			return 78;
		}
		t0 = cpu_ns();
		do {
			for (int k = 0; k < 16; k++) {
				sigs.len = 0;
				if (queue_dkim_sign(d, msg.p, msg.len, time(NULL), &sigs, &why) !=
				    1) {
					fprintf(stderr, "dkim_speed: cannot sign: %s\n", why);
					return 70;
				}
				n++;
			}
			t1 = cpu_ns();
		} while ((double)(t1 - t0) < secs * 1e9);
		printf("{\"key\":\"%s\",\"alg\":\"%s\",\"bytes\":%zu,\"signatures\":%" PRIu64
		       ",\"seconds\":%.3f,\"per_second\":%.1f}\n",
		       argv[i], strstr(sigs.p, "a=rsa-sha256") ? "rsa-sha256" : "ed25519-sha256",
		       msg.len, n, (double)(t1 - t0) / 1e9, (double)n / ((double)(t1 - t0) / 1e9));
		queue_buf_free(&sigs);
		queue_dkim_free(d);
	}
	queue_buf_free(&msg);
	return 0;
}
