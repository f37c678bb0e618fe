/*
 * smtp_server_harness.c - the SMTP server engine over kernel sockets, for
 *	lab tests with real clients.
 *
 * SYNOPSIS
 *	smtp_server_harness -l ADDR:PORT -d DIR [-t] [-a] [-p] [-n] [-T SECONDS]
 *
 * DESCRIPTION
 *	A single-threaded epoll server: each connection runs smtp_server with
 *	its greeting "220 <host> ESMTP". Every accepted message is written to
 *	DIR/<n>.eml (the body as the engine gave it: de-dot-stuffed, CRLF),
 *	fsync'd and renamed into place before the 250 goes out; the envelope
 *	goes beside it in DIR/<n>.env ("MAIL from", one "RCPT to" a line).
 *
 *	-t  offer STARTTLS, with a self-signed certificate made at start
 *	-a  offer AUTH PLAIN and LOGIN (under TLS only, unless -p); the one
 *	    user is "test" with the password "test-pass"
 *	-p  allow AUTH without TLS
 *	-n  normalise bare CR and LF in DATA instead of refusing the message
 *	-T  exit after this many seconds (default 120): a bound for tests
 *
 *	Recipients whose address contains "deny" are refused with 550 5.7.1,
 *	as a relay would. The engine's deadlines are armed per connection.
 *	On SIGTERM or at -T it prints one summary line and exits.
 *
 * DIAGNOSTICS
 *	Exit 0 after SIGTERM or -T, 1 when it cannot start. Connections that
 *	fail are closed and counted in the summary.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "smtp/smtp_server.h"
#include "tests/unit/smtp/tls_peer.h"

#define MAX_CONNS 256

struct conn {
	int fd;
	struct smtp_server *s;
	struct tls_peer tls;
	bool tls_on, tls_up;
	char *msg; /* the message being received */
	size_t len, cap;
	char env[4096]; /* the envelope, one line per address */
	size_t env_len;
	uint64_t deadline_ms; /* 0: none */
};

static const char *dir;
static SSL_CTX *sctx;
static volatile sig_atomic_t stop;
static unsigned long n_msgs, n_conns, n_failed, n_refused;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* Write all of p to the socket, waiting for room (the harness is small;
 * a reply never waits long). Returns false when the peer is gone. */
static bool write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	for (int spins = 0; n > 0 && spins < 10000; spins++) {
		ssize_t w = write(fd, c, n);
		if (w > 0) {
			c += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else {
			return false;
		}
	}
	return n == 0;
}

/* The engine's replies to the wire, through TLS once it is up. */
static bool flush(struct conn *c)
{
	struct iovec iov[1];
	static char buf[65536];

	while (smtp_server_tx_iov(c->s, iov, 1) > 0) {
		size_t n = iov[0].iov_len;
		bool ok = c->tls_on ? SSL_write(c->tls.ssl, iov[0].iov_base, (int)n) == (int)n
				    : write_all(c->fd, iov[0].iov_base, n);
		if (!ok)
			return false;
		smtp_server_tx_done(c->s, n);
	}
	if (c->tls_on) {
		int r;
		while ((r = BIO_read(c->tls.wbio, buf, sizeof(buf))) > 0)
			if (!write_all(c->fd, buf, (size_t)r))
				return false;
	}
	return true;
}

static void msg_add(struct conn *c, const void *p, size_t n)
{
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 65536;
		while (cap < c->len + n)
			cap *= 2;
		c->msg = realloc(c->msg, cap);
		if (c->msg == NULL)
			abort();
		c->cap = cap;
	}
	memcpy(c->msg + c->len, p, n);
	c->len += n;
}

static bool write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	bool ok = fd >= 0;

	for (size_t off = 0; ok && off < n;) {
		ssize_t w = write(fd, (const char *)p + off, n - off);
		if (w <= 0)
			ok = false;
		else
			off += (size_t)w;
	}
	ok = ok && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Store the message durably: body and envelope written and fsync'd under
 * temporary names, renamed, the directory fsync'd. Only then 250. */
static bool store(struct conn *c)
{
	char tmp[4096], fin[4096];
	unsigned long id = n_msgs + 1;

	snprintf(tmp, sizeof(tmp), "%s/tmp.%lu.env", dir, id);
	snprintf(fin, sizeof(fin), "%s/%lu.env", dir, id);
	if (!write_file(tmp, c->env, c->env_len) || rename(tmp, fin) != 0)
		return false;
	snprintf(tmp, sizeof(tmp), "%s/tmp.%lu.eml", dir, id);
	snprintf(fin, sizeof(fin), "%s/%lu.eml", dir, id);
	if (!write_file(tmp, c->msg, c->len) || rename(tmp, fin) != 0)
		return false;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	bool ok = dfd >= 0 && fsync(dfd) == 0;
	if (dfd >= 0)
		close(dfd);
	if (ok)
		n_msgs++;
	return ok;
}

static void env_add(struct conn *c, const char *what, const char *addr)
{
	int n = snprintf(c->env + c->env_len, sizeof(c->env) - c->env_len, "%s %s\n", what, addr);
	if (n > 0 && (size_t)n < sizeof(c->env) - c->env_len)
		c->env_len += (size_t)n;
}

/* Take the engine's events and answer its questions. Returns false when
 * the session is over. */
static bool events(struct conn *c)
{
	struct smtp_server_event e;

	while (smtp_server_event(c->s, &e)) {
		switch (e.type) {
		case SMTP_SEV_AUTH: {
			bool ok = strcmp(e.user, "test") == 0 && strcmp(e.pass, "test-pass") == 0;
			smtp_server_reply(c->s, ok ? 0 : 535,
					  ok ? NULL : "5.7.8 Authentication failed");
			break;
		}
		case SMTP_SEV_MAIL:
			c->len = 0;
			c->env_len = 0;
			env_add(c, "MAIL", e.addr);
			smtp_server_reply(c->s, 0, NULL);
			break;
		case SMTP_SEV_RCPT:
			if (strstr(e.addr, "deny")) {
				smtp_server_reply(c->s, 550, "5.7.1 Relaying denied");
			} else {
				env_add(c, "RCPT", e.addr);
				smtp_server_reply(c->s, 0, NULL);
			}
			break;
		case SMTP_SEV_BODY:
			msg_add(c, e.data, e.len);
			break;
		case SMTP_SEV_DATA_END:
			if (store(c))
				smtp_server_reply(c->s, 0, NULL);
			else
				smtp_server_reply(c->s, 451, "4.3.0 Cannot store the message");
			c->len = 0;
			break;
		case SMTP_SEV_RESET:
			c->len = 0;
			n_refused++;
			break;
		case SMTP_SEV_TLS_NEEDED:
			/* The 220 goes in the clear; then TLS from the next byte. */
			if (!flush(c))
				return false;
			tls_peer_init(&c->tls, sctx);
			c->tls_on = true;
			break;
		case SMTP_SEV_CLOSED:
			flush(c);
			return false;
		case SMTP_SEV_HELO:
			break;
		default:
			abort();
		}
	}
	return true;
}

static void arm(struct conn *c)
{
	uint64_t ms;

	c->deadline_ms = smtp_server_deadline(c->s, &ms) == SMTP_DL_NONE ? 0 : now_ms() + ms;
}

static void conn_close(struct conn *c, int ep)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->tls_on)
		tls_peer_free(&c->tls);
	smtp_server_free(c->s);
	free(c->msg);
	free(c);
}

/* read() gave n <= 0: the peer closed (the engine is told), or nothing
 * more for now, and the replies go. Returns whether the connection stays. */
static bool read_ended(struct conn *c, ssize_t n)
{
	if (n < 0 && errno == EINTR)
		return true;
	if (n < 0) /* drained: now the replies go (RFC 2920 3.2) */
		return errno == EAGAIN && flush(c);
	smtp_server_eof(c->s);
	events(c);
	return false;
}

/* The socket is readable: returns false when the connection should go. */
static bool readable(struct conn *c)
{
	static char cipher[65536];

	for (;;) {
		if (!c->tls_on) {
			uint8_t *p;
			size_t room = smtp_server_rx_space(c->s, &p);
			if (room == 0)
				return events(c) && flush(c);
			ssize_t n = read(c->fd, p, room);
			if (n <= 0)
				return read_ended(c, n);
			smtp_server_rx_commit(c->s, (size_t)n);
		} else {
			ssize_t n = read(c->fd, cipher, sizeof(cipher));
			if (n <= 0)
				return read_ended(c, n);
			BIO_write(c->tls.rbio, cipher, (int)n);
			if (!c->tls_up) {
				int r = SSL_do_handshake(c->tls.ssl);
				if (r != 1 && SSL_get_error(c->tls.ssl, r) != SSL_ERROR_WANT_READ) {
					n_failed++;
					return false;
				}
				if (r == 1) {
					c->tls_up = true;
					smtp_server_tls_started(c->s);
				}
			}
			for (;;) {
				uint8_t *p;
				size_t got = 0;
				size_t room = smtp_server_rx_space(c->s, &p);
				if (!c->tls_up || room == 0 ||
				    SSL_read_ex(c->tls.ssl, p, room, &got) != 1)
					break;
				smtp_server_rx_commit(c->s, got);
				if (!events(c))
					return false;
			}
		}
		if (!events(c))
			return false;
		arm(c);
	}
}

static int listen_on(const char *spec)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct smtp_server_config cfg = {.hostname = "harness.lab.test"};
	const char *addr = NULL;
	int opt, max_s = 120;

	while ((opt = getopt(argc, argv, "l:d:tapnT:")) != -1) {
		switch (opt) {
		case 'l':
			addr = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 't':
			cfg.tls_available = true;
			cfg.requiretls = true;
			break;
		case 'a':
			cfg.auth = true;
			break;
		case 'p':
			cfg.auth_plaintext_ok = true;
			break;
		case 'n':
			cfg.bare_eol = SMTP_BARE_EOL_NORMALISE;
			break;
		case 'T':
			max_s = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (addr == NULL || dir == NULL)
		goto usage;
	if (cfg.tls_available)
		sctx = tls_peer_ctx(cfg.hostname, NULL);
	int lfd = listen_on(addr);
	if (lfd < 0) {
		fprintf(stderr, "smtp_server_harness: cannot listen on %s: %s\n", addr,
			strerror(errno));
		return 1;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	struct conn *conns[MAX_CONNS] = {0};
	uint64_t end = now_ms() + (uint64_t)max_s * 1000;

	printf("listening on %s\n", addr);
	fflush(stdout);
	while (!stop && now_ms() < end) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 100);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
				int slot = 0;
				while (slot < MAX_CONNS && conns[slot])
					slot++;
				if (fd < 0)
					continue;
				if (slot == MAX_CONNS) {
					close(fd);
					n_failed++;
					continue;
				}
				c = calloc(1, sizeof(*c));
				c->fd = fd;
				c->s = smtp_server_new(&cfg);
				if (c->s == NULL)
					abort();
				conns[slot] = c;
				n_conns++;
				struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				if (!flush(c)) {
					conns[slot] = NULL;
					conn_close(c, ep);
				} else {
					arm(c);
				}
				continue;
			}
			if (!readable(c)) {
				for (int k = 0; k < MAX_CONNS; k++)
					if (conns[k] == c)
						conns[k] = NULL;
				conn_close(c, ep);
			}
		}
		/* The engine names the deadline; the caller arms and fires it. */
		uint64_t t = now_ms();
		for (int k = 0; k < MAX_CONNS; k++) {
			struct conn *c = conns[k];
			if (c && c->deadline_ms && t >= c->deadline_ms) {
				smtp_server_timeout(c->s);
				events(c);
				flush(c);
				conns[k] = NULL;
				conn_close(c, ep);
			}
		}
	}
	for (int k = 0; k < MAX_CONNS; k++)
		if (conns[k])
			conn_close(conns[k], ep);
	printf("harness: %lu messages stored, %lu connections, %lu refused, %lu failed\n", n_msgs,
	       n_conns, n_refused, n_failed);
	if (sctx)
		SSL_CTX_free(sctx);
	return 0;
usage:
	fprintf(stderr, "usage: smtp_server_harness -l ADDR:PORT -d DIR [-t] [-a] [-p] [-n] "
			"[-T SECONDS]\n");
	return 1;
}
