/*
 * bench_smtp.c - cost of the SMTP client engine per message, over an
 * in-memory peer, for callgrind.
 *
 * SYNOPSIS
 *	bench_smtp bdat|data|tls|handshake|resume|server-data|server-bdat N
 *
 * DESCRIPTION
 *	Runs N deliveries of a 4 KiB message (one recipient each) on one
 *	session, the peer answering as Postfix does:
 *	  bdat       PIPELINING + CHUNKING, CRLF body (sent from the caller's
 *	             memory, no rewriting)
 *	  data       PIPELINING, DATA, LF body (CRLF and dot-stuffing done)
 *	  tls        as bdat, through the TLS layer after the handshake
 *	  handshake  N TLS handshakes (client side), no resumption
 *	  resume     N TLS handshakes, the session resumed each time
 *	Only the client's work is in functions named bench_client_*; run under
 *	  valgrind --tool=callgrind --toggle-collect='bench_client_*'
 *	to count the engine's instructions alone (bench/smtp/run does this and
 *	divides by N). The peer's work (including the server side of TLS) is
 *	outside those functions.
 *
 *	The server-* modes turn it round: the client engine feeds the server
 *	engine (smtp_server.h) N pipelined 4 KiB messages (MAIL, RCPT and DATA
 *	or BDAT LAST in one write, each accepted by the caller at once), and
 *	only the server's work is in functions named bench_server_*:
 *	  server-data  DATA, the body dot-stuffed by the client (one '.' line
 *	               start in ten lines), un-stuffed by the server
 *	  server-bdat  BDAT LAST, the body taken as it is
 *	The copies a socket would do (into the receive buffer, out of the
 *	reply buffer) are outside them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtp/smtp_client.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_tls.h"
#include "tests/unit/smtp/tls_peer.h"

#define NOINL __attribute__((noinline))

static char body_crlf[4096], body_lf[4096];
static const struct smtp_rcpt rcpt[] = {{"rcpt@example.net", NULL, NULL}};
static unsigned long events;

static void make_bodies(void)
{
	size_t n = 0;

	n += (size_t)snprintf(
	    body_crlf, sizeof(body_crlf),
	    "From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: bench\r\n"
	    "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\nMessage-ID: <b@example.com>\r\n\r\n");
	for (int i = 0; n < sizeof(body_crlf); i++) {
		char line[80];
		int l = snprintf(line, sizeof(line), "%s%072d\r\n", i % 10 == 0 ? "." : "x", i);
		size_t take = (size_t)l < sizeof(body_crlf) - n ? (size_t)l : sizeof(body_crlf) - n;

		memcpy(body_crlf + n, line, take);
		n += take;
	}
	/* The same text with bare LF line ends. */
	size_t m = 0;
	for (size_t i = 0; i < sizeof(body_crlf) && m < sizeof(body_lf); i++)
		if (body_crlf[i] != '\r')
			body_lf[m++] = body_crlf[i];
	while (m < sizeof(body_lf))
		body_lf[m++] = 'y';
}

/* ----------------------------------------------------- the client side */

static NOINL int bench_client_submit(struct smtp_client *c, const struct smtp_msg *m)
{
	return smtp_client_submit(c, m);
}

static NOINL size_t bench_client_drain(struct smtp_client *c, char *copy, size_t cap)
{
	struct iovec iov[8];
	size_t k, total = 0;

	while ((k = smtp_client_tx_iov(c, iov, 8)) > 0) {
		size_t n = 0;
		for (size_t i = 0; i < k; i++)
			n += iov[i].iov_len;
		/* A kernel or the userspace TCP would copy or reference here; we
		 * only keep the first bytes for the peer to read. */
		if (copy && total < cap)
			memcpy(copy + total, iov[0].iov_base,
			       iov[0].iov_len < cap - total ? iov[0].iov_len : cap - total);
		smtp_client_tx_done(c, n);
		total += n;
	}
	return total;
}

static NOINL void bench_client_feed(struct smtp_client *c, const char *s, size_t n)
{
	struct smtp_event e;

	smtp_client_feed(c, s, n);
	while (smtp_client_event(c, &e))
		events++;
}

/* TLS: engine output encrypted into out; returns ciphertext bytes. */
static NOINL size_t bench_client_tls_out(struct smtp_client *c, struct smtp_tls *t, char *out,
					 size_t cap)
{
	struct iovec iov[8];
	size_t k;

	while ((k = smtp_client_tx_iov(c, iov, 8)) > 0) {
		size_t n = 0;
		for (size_t i = 0; i < k; i++) {
			smtp_tls_write(t, iov[i].iov_base, iov[i].iov_len);
			n += iov[i].iov_len;
		}
		smtp_client_tx_done(c, n);
	}
	return smtp_tls_cipher_out(t, out, cap);
}

/* TLS: ciphertext from the peer decrypted into the engine. */
static NOINL void bench_client_tls_in(struct smtp_client *c, struct smtp_tls *t, const char *in,
				      size_t n)
{
	struct smtp_event e;

	smtp_tls_cipher_in(t, in, n);
	for (;;) {
		uint8_t *p;
		size_t room = smtp_client_rx_space(c, &p);
		ssize_t r = smtp_tls_read(t, p, room);

		if (r <= 0)
			break;
		smtp_client_rx_commit(c, (size_t)r);
		while (smtp_client_event(c, &e))
			events++;
	}
}

static NOINL struct smtp_tls *bench_client_tls_new(struct smtp_tls_ctx *x, const char *key)
{
	return smtp_tls_new(x, "mx.bench.test", key, true);
}

static NOINL int bench_client_hs_step(struct smtp_tls *t, const char *in, size_t n, char *out,
				      size_t cap, size_t *outn)
{
	int rc;

	if (n)
		smtp_tls_cipher_in(t, in, n);
	rc = smtp_tls_handshake(t);
	*outn = smtp_tls_cipher_out(t, out, cap);
	return rc;
}

static NOINL ssize_t bench_client_tls_read(struct smtp_tls *t, const char *in, size_t n, char *p,
					   size_t cap)
{
	smtp_tls_cipher_in(t, in, n);
	return smtp_tls_read(t, p, cap);
}

static NOINL size_t bench_client_tls_close(struct smtp_tls *t, char *out, size_t cap)
{
	size_t n;

	smtp_tls_shutdown(t);
	n = smtp_tls_cipher_out(t, out, cap);
	smtp_tls_free(t);
	return n;
}

/* ------------------------------------------------------------ the peer */

static char wire[1 << 20], wire2[1 << 20];

static const char R_MAIL[] = "250 2.1.0 Ok\r\n";
static const char R_RCPT[] = "250 2.1.5 Ok\r\n";
static const char R_354[] = "354 End data with <CR><LF>.<CR><LF>\r\n";
static const char R_DONE[] = "250 2.0.0 Ok: queued as 4Zx1Y2abcD\r\n";
static const char GREET[] = "220 mx.bench.test ESMTP\r\n";
static const char EHLO_R[] = "250-mx.bench.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
			     "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
			     "250-SMTPUTF8\r\n250 CHUNKING\r\n";
static const char EHLO_NOCHUNK[] = "250-mx.bench.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
				   "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";

static struct smtp_client *session(enum smtp_tls_policy tls)
{
	struct smtp_client_config cfg = {.helo_name = "client.bench.test", .tls = tls};
	struct smtp_client *c = smtp_client_new(&cfg);

	if (c == NULL)
		abort();
	return c;
}

static int run_plain(unsigned long n, int bdat)
{
	struct smtp_client *c = session(SMTP_TLS_NONE);
	struct smtp_chunk ck = {bdat ? body_crlf : body_lf, 4096};
	struct smtp_msg m = {"sender@example.com", rcpt, 1, &ck, 1, NULL, 0, NULL};
	char r1[128];
	size_t l1;
	unsigned long bytes = 0;

	bench_client_feed(c, GREET, sizeof(GREET) - 1);
	bench_client_drain(c, NULL, 0);
	bench_client_feed(c, bdat ? EHLO_R : EHLO_NOCHUNK,
			  bdat ? sizeof(EHLO_R) - 1 : sizeof(EHLO_NOCHUNK) - 1);
	l1 = (size_t)snprintf(r1, sizeof(r1), "%s%s%s", R_MAIL, R_RCPT, bdat ? R_DONE : R_354);
	for (unsigned long i = 0; i < n; i++) {
		if (bench_client_submit(c, &m) != 0)
			abort();
		bytes += bench_client_drain(c, NULL, 0);
		bench_client_feed(c, r1, l1);
		if (!bdat) {
			bytes += bench_client_drain(c, NULL, 0);
			bench_client_feed(c, R_DONE, sizeof(R_DONE) - 1);
		}
	}
	smtp_client_free(c);
	printf("%s: %lu messages, %lu bytes sent, %lu events\n", bdat ? "bdat" : "data", n, bytes,
	       events);
	return events == 2 * n + 2 ? 0 : 1; /* greeting, ready, rcpt+msg each */
}

static struct tls_peer peer;

/* Server side of TLS: take the client's ciphertext, answer with reply. */
static size_t peer_turn(const char *in, size_t n, const char *reply, char *out, size_t cap)
{
	int r;
	size_t got;
	static char sink[65536];

	BIO_write(peer.rbio, in, (int)n);
	if (!SSL_is_init_finished(peer.ssl))
		SSL_do_handshake(peer.ssl);
	while (SSL_read_ex(peer.ssl, sink, sizeof(sink), &got) == 1)
		;
	if (reply)
		tls_peer_write(&peer, reply, strlen(reply));
	r = BIO_read(peer.wbio, out, (int)cap);
	return r > 0 ? (size_t)r : 0;
}

static void handshake(struct smtp_tls *t)
{
	size_t n = 0, outn;
	int rc;

	for (int i = 0; i < 10; i++) {
		rc = bench_client_hs_step(t, wire2, n, wire, sizeof(wire), &outn);
		n = peer_turn(wire, outn, NULL, wire2, sizeof(wire2));
		if (rc == 0) {
			if (n)
				smtp_tls_cipher_in(t, wire2, n);
			return;
		}
	}
	fprintf(stderr, "bench_smtp: handshake failed\n");
	exit(1);
}

static int run_tls(unsigned long n)
{
	X509 *ca;
	SSL_CTX *sctx = tls_peer_ctx("mx.bench.test", &ca);
	char path[] = "/tmp/dmta-bench-ca-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		abort();
	tls_peer_ca_file(ca, path);
	struct smtp_tls_ctx *x = smtp_tls_ctx_new(path, 4);
	unlink(path);
	if (x == NULL)
		abort();
	tls_peer_init(&peer, sctx);
	struct smtp_tls *t = bench_client_tls_new(x, "mx.bench.test:25");
	handshake(t);

	struct smtp_client *c = session(SMTP_TLS_IMPLICIT);
	struct smtp_chunk ck = {body_crlf, 4096};
	struct smtp_msg m = {"sender@example.com", rcpt, 1, &ck, 1, NULL, 0, NULL};
	char r1[128];
	size_t k;

	/* Implicit TLS: the greeting already comes encrypted. */
	smtp_client_tls_started(c);
	k = peer_turn("", 0, GREET, wire2, sizeof(wire2));
	bench_client_tls_in(c, t, wire2, k);
	k = bench_client_tls_out(c, t, wire, sizeof(wire));
	k = peer_turn(wire, k, EHLO_R, wire2, sizeof(wire2));
	bench_client_tls_in(c, t, wire2, k);
	snprintf(r1, sizeof(r1), "%s%s%s", R_MAIL, R_RCPT, R_DONE);
	unsigned long cipher = 0;
	for (unsigned long i = 0; i < n; i++) {
		if (bench_client_submit(c, &m) != 0)
			abort();
		k = bench_client_tls_out(c, t, wire, sizeof(wire));
		cipher += k;
		k = peer_turn(wire, k, r1, wire2, sizeof(wire2));
		bench_client_tls_in(c, t, wire2, k);
	}
	printf("tls: %lu messages, %lu ciphertext bytes sent, %lu events, resumed %d\n", n, cipher,
	       events, smtp_tls_resumed(t));
	smtp_client_free(c);
	bench_client_tls_close(t, wire, sizeof(wire));
	tls_peer_free(&peer);
	smtp_tls_ctx_free(x);
	SSL_CTX_free(sctx);
	X509_free(ca);
	return events == 2 * n + 2 ? 0 : 1; /* greeting, ready, rcpt+msg each */
}

static int run_handshakes(unsigned long n, int resume)
{
	X509 *ca;
	SSL_CTX *sctx = tls_peer_ctx("mx.bench.test", &ca);
	char path[] = "/tmp/dmta-bench-ca-XXXXXX";
	int fd = mkstemp(path);
	unsigned long resumed = 0;

	if (fd < 0)
		abort();
	tls_peer_ca_file(ca, path);
	struct smtp_tls_ctx *x = smtp_tls_ctx_new(path, 4);
	unlink(path);
	/* One warm-up connection leaves a session to resume. */
	for (unsigned long i = 0; i <= n; i++) {
		char buf[64];
		struct smtp_tls *t;
		size_t k;

		tls_peer_init(&peer, sctx);
		t = bench_client_tls_new(x, resume ? "mx.bench.test:25" : NULL);
		handshake(t);
		/* The greeting carries the session tickets' records along. */
		k = peer_turn("", 0, GREET, wire2, sizeof(wire2));
		if (bench_client_tls_read(t, wire2, k, buf, sizeof(buf)) <= 0)
			abort();
		resumed += i > 0 && smtp_tls_resumed(t);
		k = bench_client_tls_close(t, wire, sizeof(wire));
		BIO_write(peer.rbio, wire, (int)k);
		SSL_shutdown(peer.ssl);
		tls_peer_free(&peer);
	}
	printf("%s: %lu handshakes, %lu resumed\n", resume ? "resume" : "handshake", n, resumed);
	smtp_tls_ctx_free(x);
	SSL_CTX_free(sctx);
	X509_free(ca);
	return resume ? resumed != n : resumed != 0;
}

/* ------------------------------------------------- the server engine */

static unsigned long srv_msgs, srv_body;

/* What a receiver does with a read: the engine's work, the decisions
 * (all accepted at once) and the body pieces (only counted here). */
static NOINL void bench_server_commit(struct smtp_server *s, size_t n)
{
	struct smtp_server_event e;

	smtp_server_rx_commit(s, n);
	while (smtp_server_event(s, &e)) {
		switch (e.type) {
		case SMTP_SEV_MAIL:
		case SMTP_SEV_RCPT:
			smtp_server_reply(s, 0, NULL);
			break;
		case SMTP_SEV_BODY:
			srv_body += e.len;
			break;
		case SMTP_SEV_DATA_END:
			srv_msgs++;
			smtp_server_reply(s, 0, NULL);
			break;
		default:
			break;
		}
	}
}

/* The replies to send: where they are, then that they were sent. */
static NOINL size_t bench_server_tx(struct smtp_server *s, struct iovec *iov)
{
	return smtp_server_tx_iov(s, iov, 1);
}

static NOINL void bench_server_tx_done(struct smtp_server *s, size_t n)
{
	smtp_server_tx_done(s, n);
}

/* Client bytes into the server (the copy is the socket's), replies back. */
static void server_turn(struct smtp_server *s, struct smtp_client *c, const char *in, size_t n)
{
	struct iovec iov[1];
	struct smtp_event e;
	size_t done = 0;

	while (done < n) {
		uint8_t *p;
		size_t room = smtp_server_rx_space(s, &p);

		if (room == 0)
			abort();
		if (room > n - done)
			room = n - done;
		memcpy(p, in + done, room);
		bench_server_commit(s, room);
		done += room;
	}
	while (bench_server_tx(s, iov) > 0) {
		smtp_client_feed(c, iov[0].iov_base, iov[0].iov_len);
		bench_server_tx_done(s, iov[0].iov_len);
		while (smtp_client_event(c, &e))
			events++;
	}
}

/* Everything the client has to send, gathered into wire. */
static size_t client_out(struct smtp_client *c)
{
	struct iovec iov[8];
	size_t k, total = 0;

	while ((k = smtp_client_tx_iov(c, iov, 8)) > 0) {
		size_t n = 0;
		for (size_t i = 0; i < k; i++) {
			if (total + iov[i].iov_len > sizeof(wire))
				abort();
			memcpy(wire + total, iov[i].iov_base, iov[i].iov_len);
			total += iov[i].iov_len;
			n += iov[i].iov_len;
		}
		smtp_client_tx_done(c, n);
	}
	return total;
}

static int run_server(unsigned long n, int bdat)
{
	struct smtp_server_config scfg = {.hostname = "mx.bench.test", .no_chunking = !bdat};
	struct smtp_server *s = smtp_server_new(&scfg);
	struct smtp_client_config ccfg = {.helo_name = "client.bench.test", .no_chunking = !bdat};
	struct smtp_client *c = smtp_client_new(&ccfg);
	struct smtp_chunk ck = {bdat ? body_crlf : body_lf, 4096};
	struct smtp_msg m = {"sender@example.com", rcpt, 1, &ck, 1, NULL, 0, NULL};
	unsigned long bytes = 0;
	size_t k;

	if (s == NULL || c == NULL)
		abort();
	server_turn(s, c, "", 0);		/* the greeting */
	server_turn(s, c, wire, client_out(c)); /* EHLO */
	for (unsigned long i = 0; i < n; i++) {
		if (smtp_client_submit(c, &m) != 0)
			abort();
		/* MAIL, RCPT, DATA (then the body after 354) or BDAT LAST. */
		while ((k = client_out(c)) > 0) {
			bytes += k;
			server_turn(s, c, wire, k);
		}
	}
	const struct smtp_server_stats *st = smtp_server_stats(s);
	printf("server-%s: %lu messages accepted, %lu bytes received, %lu body bytes, %llu "
	       "writes\n",
	       bdat ? "bdat" : "data", srv_msgs, bytes, srv_body, (unsigned long long)st->flushes);
	int bad = srv_msgs != n || st->messages != n || st->errors != 0;
	smtp_client_free(c);
	smtp_server_free(s);
	return bad;
}

int main(int argc, char **argv)
{
	unsigned long n;

	if (argc != 3 || (n = strtoul(argv[2], NULL, 10)) == 0) {
		fprintf(stderr, "usage: bench_smtp "
				"bdat|data|tls|handshake|resume|server-data|server-bdat N\n");
		return 2;
	}
	make_bodies();
	if (strcmp(argv[1], "bdat") == 0)
		return run_plain(n, 1);
	if (strcmp(argv[1], "data") == 0)
		return run_plain(n, 0);
	if (strcmp(argv[1], "tls") == 0)
		return run_tls(n);
	if (strcmp(argv[1], "handshake") == 0)
		return run_handshakes(n, 0);
	if (strcmp(argv[1], "resume") == 0)
		return run_handshakes(n, 1);
	if (strcmp(argv[1], "server-data") == 0)
		return run_server(n, 0);
	if (strcmp(argv[1], "server-bdat") == 0)
		return run_server(n, 1);
	fprintf(stderr, "bench_smtp: unknown mode %s\n", argv[1]);
	return 2;
}
