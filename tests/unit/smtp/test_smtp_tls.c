/*
 * test_smtp_tls.c - the engine through the TLS layer against an in-memory
 * OpenSSL server: STARTTLS, re-EHLO, AUTH only once encrypted, certificate
 * and host name checks, and session resumption per destination.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtp/smtp_client.h"
#include "smtp/smtp_tls.h"
#include "tests/unit/smtp/tls_peer.h"

static SSL_CTX *sctx;
static char ca_path[64];

struct conn {
	struct smtp_client *c;
	struct smtp_tls *t;
	struct tls_peer p;
	char got[8192]; /* plaintext the server received */
	size_t got_len;
	char ev[1024];
	size_t ev_len;
	int tls_failed;
};

static int setup(void **state)
{
	X509 *ca;
	int fd;

	sctx = tls_peer_ctx("mx.test", &ca);
	snprintf(ca_path, sizeof(ca_path), "/tmp/dmta-test-ca-XXXXXX");
	fd = mkstemp(ca_path);
	assert_true(fd >= 0);
	close(fd);
	tls_peer_ca_file(ca, ca_path);
	X509_free(ca);
	return 0;
}

static int teardown(void **state)
{
	unlink(ca_path);
	SSL_CTX_free(sctx);
	return 0;
}

static void take_events(struct conn *k)
{
	struct smtp_event e;
	static const char oc[] = "ktp";

	while (smtp_client_event(k->c, &e)) {
		int n = 0;

		switch (e.type) {
		case SMTP_EV_RCPT:
			n = snprintf(k->ev + k->ev_len, sizeof(k->ev) - k->ev_len, "r%zu:%c%d ",
				     e.rcpt, oc[e.outcome], e.code);
			break;
		case SMTP_EV_TLS_NEEDED:
			n = snprintf(k->ev + k->ev_len, sizeof(k->ev) - k->ev_len, "T ");
			break;
		case SMTP_EV_READY:
			n = snprintf(k->ev + k->ev_len, sizeof(k->ev) - k->ev_len, "R ");
			break;
		case SMTP_EV_CLOSED:
			n = snprintf(k->ev + k->ev_len, sizeof(k->ev) - k->ev_len, "X ");
			break;
		default:
			break;
		}
		k->ev_len += (size_t)n;
	}
}

/* Client bytes to the server (through TLS once it is up); the server's
 * plaintext is appended to k->got. */
static void client_to_server(struct conn *k)
{
	struct iovec iov[8];
	size_t n;

	while ((n = smtp_client_tx_iov(k->c, iov, 8)) > 0) {
		size_t tot = 0;

		for (size_t i = 0; i < n; i++) {
			if (k->t) {
				assert_true(smtp_tls_write(k->t, iov[i].iov_base, iov[i].iov_len) >=
					    0);
			} else {
				memcpy(k->got + k->got_len, iov[i].iov_base, iov[i].iov_len);
				k->got_len += iov[i].iov_len;
			}
			tot += iov[i].iov_len;
		}
		smtp_client_tx_done(k->c, tot);
	}
	if (k->t) {
		tls_peer_pump(&k->p, k->t);
		k->got_len +=
		    tls_peer_read(&k->p, k->got + k->got_len, sizeof(k->got) - k->got_len);
	}
}

/* The server says s (through TLS once it is up). */
static void server_says(struct conn *k, const char *s)
{
	if (k->t) {
		tls_peer_write(&k->p, s, strlen(s));
		tls_peer_pump(&k->p, k->t);
		for (;;) {
			uint8_t *p;
			size_t room = smtp_client_rx_space(k->c, &p);
			ssize_t r = smtp_tls_read(k->t, p, room);

			if (r <= 0)
				break;
			smtp_client_rx_commit(k->c, (size_t)r);
			take_events(k);
		}
	} else {
		smtp_client_feed(k->c, s, strlen(s));
	}
	take_events(k);
	client_to_server(k);
}

/* The rest of a handshake begun on k->t; returns 0 or -EPROTO. */
static int handshake_run(struct conn *k)
{
	int rc = -EAGAIN;

	tls_peer_init(&k->p, sctx);
	for (int i = 0; i < 10 && rc == -EAGAIN; i++) {
		rc = smtp_tls_handshake(k->t);
		tls_peer_pump(&k->p, k->t);
	}
	if (rc == 0)
		smtp_client_tls_started(k->c);
	else
		smtp_client_tls_failed(k->c, smtp_tls_error(k->t));
	take_events(k);
	client_to_server(k);
	return rc;
}

/* Handshake after TLS_NEEDED; returns 0 or -EPROTO. */
static int handshake(struct conn *k, struct smtp_tls_ctx *x, const char *name, int verify)
{
	k->t = smtp_tls_new(x, name, "mx.test:25", verify);
	assert_non_null(k->t);
	return handshake_run(k);
}

static const char body[] = "Subject: t\r\n\r\nhello\r\n";
static const struct smtp_rcpt rc1[] = {{"b@y.test", NULL, NULL}};
static struct smtp_chunk ck = {body, sizeof(body) - 1};
static struct smtp_msg msg = {"a@x.test", rc1, 1, &ck, 1, NULL, 0, NULL};

static void conn_start(struct conn *k)
{
	struct smtp_client_config cfg = {.helo_name = "client.test",
					 .tls = SMTP_TLS_REQUIRED,
					 .auth_user = "user",
					 .auth_pass = "secret"};

	memset(k, 0, sizeof(*k));
	k->c = smtp_client_new(&cfg);
	assert_non_null(k->c);
	assert_int_equal(smtp_client_submit(k->c, &msg), 0);
	smtp_client_quit(k->c);
	server_says(k, "220 mx.test ESMTP\r\n");
	server_says(k, "250-mx.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n");
	server_says(k, "220 2.0.0 go ahead\r\n");
	assert_string_equal(k->ev, "T ");
	assert_string_equal(k->got, "EHLO client.test\r\nSTARTTLS\r\n");
	k->got_len = 0;
	memset(k->got, 0, sizeof(k->got));
}

static void conn_end(struct conn *k)
{
	if (k->t) {
		/* A clean close keeps the session resumable. */
		smtp_tls_shutdown(k->t);
		SSL_shutdown(k->p.ssl);
		tls_peer_free(&k->p);
		smtp_tls_free(k->t);
	}
	smtp_client_free(k->c);
}

static void deliver(struct conn *k)
{
	/* After TLS: EHLO again, and only now AUTH (not offered before). */
	assert_string_equal(k->got, "EHLO client.test\r\n");
	server_says(k, "250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 AUTH PLAIN LOGIN\r\n");
	assert_non_null(strstr(k->got, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"));
	server_says(k, "235 2.7.0 ok\r\n");
	assert_non_null(strstr(k->got, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 21 "
				       "LAST\r\nSubject: t\r\n\r\nhello\r\n"));
	server_says(k, "250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
	assert_non_null(strstr(k->got, "QUIT\r\n"));
	server_says(k, "221 bye\r\n");
	assert_string_equal(k->ev, "T R r0:k250 X ");
	assert_true(smtp_client_tls_active(k->c));
}

static void test_starttls_verify_resume(void **state)
{
	struct smtp_tls_ctx *x = smtp_tls_ctx_new(ca_path, 8);
	struct conn k;

	assert_non_null(x);
	conn_start(&k);
	assert_int_equal(handshake(&k, x, "mx.test", 1), 0);
	assert_true(smtp_tls_verified(k.t));
	assert_false(smtp_tls_resumed(k.t));
	deliver(&k);
	conn_end(&k);

	/* Same destination: the session is offered and taken. */
	conn_start(&k);
	assert_int_equal(handshake(&k, x, "mx.test", 1), 0);
	assert_true(smtp_tls_resumed(k.t));
	deliver(&k);
	conn_end(&k);
	smtp_tls_ctx_free(x);
}

/*
 * Connections that start together to one destination each resume. A TLS
 * 1.3 ticket is for one use (RFC 8446 C.4; OpenSSL will not offer a
 * session again once it was offered), so the second must not be handed the
 * ticket the first took: a full handshake for every connection that starts
 * before the first one's new tickets are in.
 */
static void test_parallel_resume(void **state)
{
	struct smtp_tls_ctx *x = smtp_tls_ctx_new(ca_path, 8);
	struct conn a, b;

	assert_non_null(x);
	/* One connection: the server leaves two tickets. */
	conn_start(&a);
	assert_int_equal(handshake(&a, x, "mx.test", 1), 0);
	deliver(&a);
	conn_end(&a);

	/* Two at once: both ClientHellos go out before any answer. */
	conn_start(&a);
	conn_start(&b);
	a.t = smtp_tls_new(x, "mx.test", "mx.test:25", 1);
	assert_non_null(a.t);
	assert_int_equal(smtp_tls_handshake(a.t), -EAGAIN);
	b.t = smtp_tls_new(x, "mx.test", "mx.test:25", 1);
	assert_non_null(b.t);
	assert_int_equal(smtp_tls_handshake(b.t), -EAGAIN);
	assert_int_equal(handshake_run(&a), 0);
	assert_int_equal(handshake_run(&b), 0);
	assert_true(smtp_tls_resumed(a.t));
	assert_true(smtp_tls_resumed(b.t));
	deliver(&a);
	deliver(&b);
	conn_end(&a);
	conn_end(&b);

	/* One after the other, but the second before the first read its
	 * new tickets. */
	conn_start(&a);
	conn_start(&b);
	assert_int_equal(handshake(&a, x, "mx.test", 1), 0);
	assert_int_equal(handshake(&b, x, "mx.test", 1), 0);
	assert_true(smtp_tls_resumed(a.t));
	assert_true(smtp_tls_resumed(b.t));
	deliver(&a);
	deliver(&b);
	conn_end(&a);
	conn_end(&b);

	/* And the tickets they got serve the next ones. */
	for (int i = 0; i < 3; i++) {
		conn_start(&a);
		assert_int_equal(handshake(&a, x, "mx.test", 1), 0);
		assert_true(smtp_tls_resumed(a.t));
		deliver(&a);
		conn_end(&a);
	}
	smtp_tls_ctx_free(x);
}

/* TLS 1.2: a session id or ticket serves any number of connections. */
static void test_resume_tls12(void **state)
{
	struct smtp_tls_ctx *x = smtp_tls_ctx_new(ca_path, 8);
	struct conn a, b;

	assert_non_null(x);
	SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
	conn_start(&a);
	assert_int_equal(handshake(&a, x, "mx.test", 1), 0);
	assert_false(smtp_tls_resumed(a.t));
	deliver(&a);
	conn_end(&a);
	for (int i = 0; i < 2; i++) {
		conn_start(&a);
		conn_start(&b);
		assert_int_equal(handshake(&a, x, "mx.test", 1), 0);
		assert_int_equal(handshake(&b, x, "mx.test", 1), 0);
		assert_true(smtp_tls_resumed(a.t));
		assert_true(smtp_tls_resumed(b.t));
		assert_string_equal(SSL_get_version(a.p.ssl), "TLSv1.2");
		deliver(&a);
		deliver(&b);
		conn_end(&a);
		conn_end(&b);
	}
	SSL_CTX_set_max_proto_version(sctx, 0);
	smtp_tls_ctx_free(x);
}

static void test_name_mismatch(void **state)
{
	struct smtp_tls_ctx *x = smtp_tls_ctx_new(ca_path, 8);
	struct conn k;

	conn_start(&k);
	assert_int_equal(handshake(&k, x, "other.test", 1), -EPROTO);
	assert_non_null(strstr(smtp_tls_error(k.t), "certificate"));
	assert_string_equal(k.ev, "T r0:t454 X ");
	conn_end(&k);

	/* Without verification (opportunistic) the same certificate is taken,
	 * and said to be unverified. */
	conn_start(&k);
	assert_int_equal(handshake(&k, x, "other.test", 0), 0);
	assert_false(smtp_tls_verified(k.t));
	deliver(&k);
	conn_end(&k);
	smtp_tls_ctx_free(x);
}

static void test_untrusted_ca(void **state)
{
	struct smtp_tls_ctx *x = smtp_tls_ctx_new(NULL, 8); /* system CAs */
	struct conn k;

	assert_non_null(x);
	conn_start(&k);
	assert_int_equal(handshake(&k, x, "mx.test", 1), -EPROTO);
	assert_string_equal(k.ev, "T r0:t454 X ");
	conn_end(&k);
	smtp_tls_ctx_free(x);
	assert_null(smtp_tls_ctx_new("/nonexistent/ca.pem", 1));
}

/* Move ciphertext between two layers of ours; returns bytes moved. */
static size_t pump2(struct smtp_tls *a, struct smtp_tls *b)
{
	char buf[16384];
	size_t n, moved = 0;

	while ((n = smtp_tls_cipher_out(a, buf, sizeof(buf))) > 0) {
		smtp_tls_cipher_in(b, buf, n);
		moved += n;
	}
	while ((n = smtp_tls_cipher_out(b, buf, sizeof(buf))) > 0) {
		smtp_tls_cipher_in(a, buf, n);
		moved += n;
	}
	return moved;
}

/* The server side: our own certificate and key from files, a verifying
 * client of ours, data both ways, and files OpenSSL refuses. */
static void test_server_side(void **state)
{
	char key_path[64], err[256], buf[64];
	struct smtp_tls_ctx *sx, *cx;
	struct smtp_tls *srv, *cli;
	int fd, rs = -EAGAIN, rc = -EAGAIN;
	FILE *f;

	snprintf(key_path, sizeof(key_path), "/tmp/dmta-test-key-XXXXXX");
	fd = mkstemp(key_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(
	    PEM_write_PrivateKey(f, SSL_CTX_get0_privatekey(sctx), NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);

	/* The CA file is the self-signed certificate itself. */
	sx = smtp_tls_server_ctx_new(ca_path, key_path, err, sizeof(err));
	assert_non_null(sx);
	cx = smtp_tls_ctx_new(ca_path, 1);
	assert_non_null(cx);
	assert_null(smtp_tls_new(sx, "mx.test", NULL, true)); /* server contexts accept only */
	assert_null(smtp_tls_accept(cx));
	srv = smtp_tls_accept(sx);
	cli = smtp_tls_new(cx, "mx.test", NULL, true);
	assert_non_null(srv);
	assert_non_null(cli);
	for (int i = 0; i < 10 && (rs != 0 || rc != 0); i++) {
		if (rc != 0)
			rc = smtp_tls_handshake(cli);
		if (rs != 0)
			rs = smtp_tls_handshake(srv);
		pump2(cli, srv);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(rs, 0);
	assert_true(smtp_tls_verified(cli));
	assert_int_equal(smtp_tls_write(srv, "220 hello\r\n", 11), 11);
	pump2(cli, srv);
	assert_int_equal(smtp_tls_read(cli, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "220 hello\r\n", 11);
	assert_int_equal(smtp_tls_write(cli, "QUIT\r\n", 6), 6);
	pump2(cli, srv);
	assert_int_equal(smtp_tls_read(srv, buf, sizeof(buf)), 6);
	smtp_tls_free(srv);
	smtp_tls_free(cli);
	smtp_tls_ctx_free(cx);
	smtp_tls_ctx_free(sx);

	/* A key that is not the certificate's, and files that are missing. */
	assert_null(smtp_tls_server_ctx_new(ca_path, ca_path, err, sizeof(err)));
	assert_int_equal(errno, EPROTO);
	assert_null(smtp_tls_server_ctx_new("/nonexistent.pem", key_path, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent.pem"));
	assert_null(smtp_tls_server_ctx_new(NULL, key_path, err, sizeof(err)));
	unlink(key_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_starttls_verify_resume), cmocka_unit_test(test_parallel_resume),
	    cmocka_unit_test(test_resume_tls12),	   cmocka_unit_test(test_name_mismatch),
	    cmocka_unit_test(test_untrusted_ca),	   cmocka_unit_test(test_server_side),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
