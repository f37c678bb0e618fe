/*
 * dmta_smtp.c - dmta-smtp: deliver one message over SMTP, over kernel sockets.
 *
 * SYNOPSIS
 *	dmta-smtp --server HOST[:PORT] --from A --to B [--to C...]
 *		[--tls none|opportunistic|required|implicit] [--ca-file F]
 *		[--tls-name NAME] [--auth-user U --auth-password-file F]
 *		[--auth-plaintext] [--helo NAME] [--verbose] [--no-pipelining]
 *		[--no-chunking] [--max-rcpts N] [--count N] [--connections N]
 *		[--notify V] [--ret full|hdrs] [--envid ID] < message
 *
 * DESCRIPTION
 *	Reads an RFC 5322 message on standard input and delivers it with the
 *	sans-I/O engine of smtp/, for tests and operators (like swaks). One
 *	line per recipient on standard output: "ADDR: sent|deferred|bounced:
 *	REPLY". --verbose prints the conversation on standard error (AUTH
 *	secrets hidden). --count sends the message N times per connection and
 *	--connections opens N connections one after another (TLS sessions are
 *	resumed between them). TLS policies: none; opportunistic (STARTTLS
 *	when offered, any certificate); required (STARTTLS or fail, chain and
 *	host name verified against --ca-file or the system's CAs, SNI sent);
 *	implicit (TLS from the first byte, port 465, verified likewise).
 *	--no-verify turns verification off for required and implicit.
 *	--auth-xoauth2 uses AUTH XOAUTH2 with the password file holding the
 *	bearer token.
 *
 *	Exit status as sendmail's (sysexits.h): 0 every recipient took it, 69
 *	(EX_UNAVAILABLE) some recipient refused it for good, 75 (EX_TEMPFAIL)
 *	some delivery should be tried again (including connection and TLS
 *	failures), 76 (EX_PROTOCOL) the server broke the protocol, 64
 *	(EX_USAGE) bad arguments, 66 (EX_NOINPUT) unreadable input, 68
 *	(EX_NOHOST) unknown host.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sysexits.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "core/base/dmta_log.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_tls.h"

#define MAX_MSG (64u << 20)

struct opts {
	char host[256], port[16];
	const char *from;
	struct smtp_rcpt *rcpts;
	size_t nrcpts;
	enum smtp_tls_policy tls;
	const char *ca_file, *tls_name, *helo;
	const char *auth_user;
	char *auth_pass;
	int auth_plaintext, auth_xoauth2, verbose, no_pipelining, no_chunking, no_verify;
	unsigned max_rcpts, count, connections;
	const char *envid;
	enum smtp_dsn_ret ret;
};

static int verbose;
static int saw_perm, saw_temp, saw_proto;

static void trace(void *arg, char dir, const char *line, size_t len)
{
	const char *p = line, *end = line + len;

	(void)arg;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (l > 0 && p[l - 1] == '\r')
			l--;
		fprintf(stderr, "%s %.*s\n", dir == 'C' ? "->" : "<-", (int)l, p);
		p = nl ? nl + 1 : end;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: dmta-smtp --server HOST[:PORT] --from A --to B [--to C...]\n"
		"       [--tls none|opportunistic|required|implicit] [--ca-file F] [--tls-name N]\n"
		"       [--auth-user U --auth-password-file F] [--auth-plaintext] [--helo NAME]\n"
		"       [--verbose] [--no-pipelining] [--no-chunking] [--max-rcpts N]\n"
		"       [--count N] [--connections N] [--notify V] [--ret full|hdrs] [--envid ID]\n"
		"       [--no-verify] [--auth-xoauth2]\n"
		"       < message\n");
	exit(EX_USAGE);
}

static int connect_to(const struct opts *o)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *a;
	int rc = getaddrinfo(o->host, o->port, &hints, &ai), fd = -1;

	if (rc != 0) {
		fprintf(stderr, "dmta-smtp: %s: %s\n", o->host, gai_strerror(rc));
		exit(EX_NOHOST);
	}
	for (a = ai; a; a = a->ai_next) {
		/* Connect within 30 s (SO_SNDTIMEO bounds connect(2) on
		 * Linux); later writes within RFC 5321's 3 min per block. */
		struct timeval ct = {30, 0}, wt = {180, 0};

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ct, sizeof(ct));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wt, sizeof(wt));
			break;
		}
		fprintf(stderr, "dmta-smtp: connect %s port %s: %s\n", o->host, o->port,
			strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send what the engine (through TLS when on) has queued. */
static int flush(int fd, struct smtp_client *c, struct smtp_tls *tls, int handshaking)
{
	struct iovec iov[16];
	size_t k;

	if (!handshaking) {
		while ((k = smtp_client_tx_iov(c, iov, 16)) > 0) {
			size_t n = 0;

			if (tls) {
				for (size_t i = 0; i < k; i++) {
					if (smtp_tls_write(tls, iov[i].iov_base, iov[i].iov_len) <
					    0)
						return -EPROTO;
					n += iov[i].iov_len;
				}
			} else {
				ssize_t w = writev(fd, iov, (int)k);

				if (w < 0) {
					if (errno == EINTR)
						continue;
					return -errno;
				}
				n = (size_t)w;
			}
			smtp_client_tx_done(c, n);
		}
	}
	if (tls) {
		static char buf[65536];
		size_t n;

		while ((n = smtp_tls_cipher_out(tls, buf, sizeof(buf))) > 0) {
			int rc = send_all(fd, buf, n);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static void report(const struct opts *o, const struct smtp_event *e)
{
	static const char *const word[] = {"sent", "deferred", "bounced"};
	size_t l = e->text_len;
	const char *nl = e->text ? memchr(e->text, '\n', l) : NULL;

	if (nl)
		l = (size_t)(nl - e->text);
	if (l > 0 && e->text[l - 1] == '\r')
		l--;
	printf("%s: %s: %.*s%s\n", e->msg->rcpts[e->rcpt].addr, word[e->outcome], (int)l,
	       e->text ? e->text : "", e->local ? " (local)" : "");
	if (e->outcome == SMTP_PERMFAIL)
		saw_perm = 1;
	else if (e->outcome == SMTP_TEMPFAIL)
		saw_temp = 1;
	(void)o;
}

static void one_connection(const struct opts *o, struct smtp_tls_ctx *tctx,
			   const struct smtp_msg *msg)
{
	struct smtp_client_config cfg = {
	    .helo_name = o->helo,
	    .tls = o->tls,
	    .auth_user = o->auth_user,
	    .auth_pass = o->auth_pass,
	    .auth_plaintext_ok = o->auth_plaintext,
	    .auth_xoauth2 = o->auth_xoauth2,
	    .max_rcpts = o->max_rcpts,
	    .no_pipelining = o->no_pipelining,
	    .no_chunking = o->no_chunking,
	    .trace = verbose ? trace : NULL,
	};
	struct smtp_client *c = smtp_client_new(&cfg);
	struct smtp_tls *tls = NULL;
	int handshaking = 0, fd;
	char key[300];
	const char *sni = o->tls_name ? o->tls_name : o->host;
	struct in6_addr a6;

	if (c == NULL) {
		fprintf(stderr, "dmta-smtp: bad settings (--helo?)\n");
		exit(EX_USAGE);
	}
	/* An address literal is not a name to send or check. */
	if (!o->tls_name &&
	    (inet_pton(AF_INET, sni, &a6) == 1 || inet_pton(AF_INET6, sni, &a6) == 1))
		sni = NULL;
	snprintf(key, sizeof(key), "%s:%s", o->host, o->port);
	for (unsigned i = 0; i < o->count; i++)
		if (smtp_client_submit(c, msg) != 0) {
			fprintf(stderr, "dmta-smtp: bad envelope address\n");
			exit(EX_USAGE);
		}
	smtp_client_quit(c);

	fd = connect_to(o);
	if (fd < 0) {
		smtp_client_eof(c);
	} else if (o->tls == SMTP_TLS_IMPLICIT) {
		tls = smtp_tls_new(tctx, sni, key, !o->no_verify);
		if (tls == NULL)
			dmta_fatal("TLS: %s", strerror(errno));
		handshaking = 1;
		smtp_tls_handshake(tls);
	}

	for (;;) {
		struct smtp_event e;

		while (smtp_client_event(c, &e)) {
			switch (e.type) {
			case SMTP_EV_RCPT:
				report(o, &e);
				break;
			case SMTP_EV_TLS_NEEDED:
				tls = smtp_tls_new(tctx, sni, key,
						   o->tls == SMTP_TLS_REQUIRED && !o->no_verify);
				if (tls == NULL)
					dmta_fatal("TLS: %s", strerror(errno));
				handshaking = 1;
				smtp_tls_handshake(tls);
				break;
			case SMTP_EV_PROTOCOL_ERROR:
				fprintf(stderr, "dmta-smtp: protocol error: %.*s\n",
					(int)(e.text_len > 200 ? 200 : e.text_len), e.text);
				saw_proto = 1;
				break;
			default:
				break;
			}
		}
		if (smtp_client_closed(c) || fd < 0)
			break;
		if (flush(fd, c, tls, handshaking) < 0) {
			smtp_client_eof(c);
			continue;
		}

		uint64_t ms;
		enum smtp_deadline d = smtp_client_deadline(c, &ms);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int rc = poll(&pfd, 1, d == SMTP_DL_NONE ? 300000 : (int)ms);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0) {
			fprintf(stderr, "dmta-smtp: timeout (%s)\n", smtp_deadline_name(d));
			smtp_client_timeout(c);
			continue;
		}
		if (tls) {
			char buf[16384];
			ssize_t n = recv(fd, buf, sizeof(buf), 0);

			if (n <= 0) {
				smtp_client_eof(c);
				continue;
			}
			smtp_tls_cipher_in(tls, buf, (size_t)n);
			if (handshaking) {
				int hr = smtp_tls_handshake(tls);

				if (hr == -EPROTO) {
					fprintf(stderr, "dmta-smtp: TLS: %s\n",
						smtp_tls_error(tls));
					flush(fd, c, tls, 1);
					smtp_client_tls_failed(c, smtp_tls_error(tls));
					continue;
				}
				if (hr == -EAGAIN) {
					flush(fd, c, tls, 1);
					continue;
				}
				handshaking = 0;
				if (verbose) {
					char dbuf[128];
					fprintf(stderr, "-- TLS %s%s%s\n",
						smtp_tls_describe(tls, dbuf, sizeof(dbuf)),
						smtp_tls_resumed(tls) ? ", resumed" : "",
						smtp_tls_verified(tls) ? ", verified" : "");
				}
				smtp_client_tls_started(c);
			}
			for (;;) {
				uint8_t *p;
				size_t room = smtp_client_rx_space(c, &p);
				ssize_t r;

				if (room == 0)
					break;
				r = smtp_tls_read(tls, p, room);
				if (r == -EAGAIN)
					break;
				if (r < 0) {
					smtp_client_eof(c);
					break;
				}
				smtp_client_rx_commit(c, (size_t)r);
				if (smtp_client_closed(c))
					break;
				struct smtp_event e2;
				/* Events must be taken before the buffer moves. */
				while (smtp_client_event(c, &e2)) {
					if (e2.type == SMTP_EV_RCPT)
						report(o, &e2);
					else if (e2.type == SMTP_EV_PROTOCOL_ERROR)
						saw_proto = 1;
				}
			}
		} else {
			uint8_t *p;
			size_t room = smtp_client_rx_space(c, &p);
			ssize_t n = recv(fd, p, room, 0);

			if (n <= 0) {
				smtp_client_eof(c);
				continue;
			}
			smtp_client_rx_commit(c, (size_t)n);
		}
	}
	if (fd >= 0) {
		if (tls) {
			smtp_tls_shutdown(tls);
			flush(fd, c, tls, 1);
		}
		close(fd);
	}
	smtp_tls_free(tls);
	smtp_client_free(c);
}

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);

	while (b) {
		size_t r = fread(b + n, 1, cap - n, f);

		n += r;
		if (r == 0)
			break;
		if (n == cap) {
			if (cap >= MAX_MSG) {
				free(b);
				return NULL;
			}
			char *nb = realloc(b, cap * 2);
			if (nb == NULL) {
				free(b);
				return NULL;
			}
			b = nb;
			cap *= 2;
		}
	}
	if (b == NULL || ferror(f)) {
		free(b);
		return NULL;
	}
	*len = n;
	return b;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"tls", required_argument, NULL, 'T'},
	    {"ca-file", required_argument, NULL, 'C'},
	    {"tls-name", required_argument, NULL, 'N'},
	    {"auth-user", required_argument, NULL, 'u'},
	    {"auth-password-file", required_argument, NULL, 'p'},
	    {"auth-plaintext", no_argument, NULL, 'P'},
	    {"helo", required_argument, NULL, 'H'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"no-pipelining", no_argument, NULL, '1'},
	    {"no-chunking", no_argument, NULL, '2'},
	    {"max-rcpts", required_argument, NULL, 'm'},
	    {"count", required_argument, NULL, 'n'},
	    {"connections", required_argument, NULL, 'c'},
	    {"notify", required_argument, NULL, 'y'},
	    {"ret", required_argument, NULL, 'r'},
	    {"envid", required_argument, NULL, 'e'},
	    {"no-verify", no_argument, NULL, 'V'},
	    {"auth-xoauth2", no_argument, NULL, 'X'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {.count = 1, .connections = 1, .port = "25"};
	const char *notify = NULL, *passfile = NULL;
	char helo[256];
	int ch;

	dmta_log_init("dmta-smtp", DMTA_LOG_INFO);
	o.rcpts = calloc((size_t)argc, sizeof(*o.rcpts));
	if (o.rcpts == NULL)
		return EX_OSERR;
	while ((ch = getopt_long(argc, argv, "s:f:t:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': {
			const char *colon = strrchr(optarg, ':');
			size_t hl = colon && !strchr(colon + 1, ']') ? (size_t)(colon - optarg)
								     : strlen(optarg);
			if (hl >= sizeof(o.host))
				usage();
			memcpy(o.host, optarg, hl);
			o.host[hl] = '\0';
			if (o.host[0] == '[' && hl > 2 && o.host[hl - 1] == ']') {
				memmove(o.host, o.host + 1, hl - 2);
				o.host[hl - 2] = '\0';
			}
			if (hl < strlen(optarg))
				snprintf(o.port, sizeof(o.port), "%s", colon + 1);
			break;
		}
		case 'f':
			o.from = optarg;
			break;
		case 't':
			o.rcpts[o.nrcpts++].addr = optarg;
			break;
		case 'T':
			if (strcmp(optarg, "none") == 0)
				o.tls = SMTP_TLS_NONE;
			else if (strcmp(optarg, "opportunistic") == 0)
				o.tls = SMTP_TLS_OPPORTUNISTIC;
			else if (strcmp(optarg, "required") == 0)
				o.tls = SMTP_TLS_REQUIRED;
			else if (strcmp(optarg, "implicit") == 0)
				o.tls = SMTP_TLS_IMPLICIT;
			else
				usage();
			break;
		case 'C':
			o.ca_file = optarg;
			break;
		case 'N':
			o.tls_name = optarg;
			break;
		case 'u':
			o.auth_user = optarg;
			break;
		case 'p':
			passfile = optarg;
			break;
		case 'P':
			o.auth_plaintext = 1;
			break;
		case 'H':
			o.helo = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case '1':
			o.no_pipelining = 1;
			break;
		case '2':
			o.no_chunking = 1;
			break;
		case 'm':
			o.max_rcpts = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			o.count = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			o.connections = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'y':
			notify = optarg;
			break;
		case 'r':
			o.ret = strcmp(optarg, "full") == 0   ? SMTP_RET_FULL
				: strcmp(optarg, "hdrs") == 0 ? SMTP_RET_HDRS
							      : (usage(), SMTP_RET_DEFAULT);
			break;
		case 'e':
			o.envid = optarg;
			break;
		case 'V':
			o.no_verify = 1;
			break;
		case 'X':
			o.auth_xoauth2 = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || o.host[0] == '\0' || o.from == NULL || o.nrcpts == 0 ||
	    o.count == 0 || o.connections == 0 || (o.auth_user && !passfile))
		usage();
	for (size_t i = 0; i < o.nrcpts; i++)
		o.rcpts[i].notify = notify;
	if (o.helo == NULL) {
		if (gethostname(helo, sizeof(helo)) != 0 || helo[0] == '\0')
			snprintf(helo, sizeof(helo), "localhost");
		helo[sizeof(helo) - 1] = '\0';
		o.helo = helo;
	}
	if (passfile) {
		FILE *f = fopen(passfile, "r");
		size_t n;

		if (f == NULL || (o.auth_pass = read_all(f, &n)) == NULL) {
			fprintf(stderr, "dmta-smtp: %s: cannot read\n", passfile);
			return EX_NOINPUT;
		}
		fclose(f);
		o.auth_pass = realloc(o.auth_pass, n + 1);
		o.auth_pass[n] = '\0';
		o.auth_pass[strcspn(o.auth_pass, "\r\n")] = '\0';
	}

	size_t len;
	char *body = read_all(stdin, &len);
	if (body == NULL) {
		fprintf(stderr, "dmta-smtp: cannot read the message (over %u MiB?)\n",
			MAX_MSG >> 20);
		return EX_NOINPUT;
	}
	struct smtp_chunk ck = {body, len};
	struct smtp_msg msg = {.from = o.from,
			       .rcpts = o.rcpts,
			       .nrcpts = o.nrcpts,
			       .body = &ck,
			       .nbody = 1,
			       .envid = o.envid,
			       .ret = o.ret};
	struct smtp_tls_ctx *tctx = NULL;

	if (o.tls != SMTP_TLS_NONE) {
		tctx = smtp_tls_ctx_new(o.ca_file, 16);
		if (tctx == NULL) {
			fprintf(stderr, "dmta-smtp: TLS setup failed (--ca-file %s)\n",
				o.ca_file ? o.ca_file : "default");
			return EX_CONFIG;
		}
	}
	for (unsigned i = 0; i < o.connections; i++)
		one_connection(&o, tctx, &msg);
	fflush(stdout);
	smtp_tls_ctx_free(tctx);
	if (o.auth_pass) {
		memset(o.auth_pass, 0, strlen(o.auth_pass));
		free(o.auth_pass);
	}
	free(body);
	free(o.rcpts);
	if (saw_proto)
		return EX_PROTOCOL;
	if (saw_perm)
		return EX_UNAVAILABLE;
	if (saw_temp)
		return EX_TEMPFAIL;
	return EX_OK;
}
