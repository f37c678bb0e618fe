/*
 * dmta_listen.c - see dmta_listen.h.
 *
 * DESCRIPTION
 *	One thread, one epoll loop (dmta_loop.h): the listening sockets, the
 *	connections, the maildrop's inotify descriptor, the committer's done
 *	eventfd and a stop eventfd. Each connection is a sans-I/O smtp_server,
 *	with an smtp_tls between it and the socket once TLS is up. A turn of
 *	the loop reads what is ready and lets the engines run; finished
 *	messages (struct pending) join the batch, which goes to the committer
 *	thread at the end of the turn when it is free; when a batch comes
 *	back each client is answered. Timeouts are expired once per turn.
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_accept.h"
#include "core/control/dmta_listen.h"
#include "core/control/dmta_loop.h"
#include "queue/queue_addr.h"
#include "queue/queue_env.h"
#include "queue/queue_sched.h"
#include "queue/queue_dkim.h"
#include "queue/queue_egress.h"
#include "queue/queue_user.h"
#include "queue/spool.h"
#include "queue/spool_drop.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_tls.h"

#define LISTEN_MAX_SOCKETS 16
#define LISTEN_MAX_NETS	   64
#define LISTEN_DROP_BATCH  1000	       /* maildrop files per commit */
#define LISTEN_DROP_RESCAN 60000       /* ms between scans without inotify news */
#define LISTEN_TMP_MAX_AGE (24 * 3600) /* s: a writer's temporary is abandoned */

enum lkind { LK_SMTP, LK_SUBMISSION, LK_SUBMISSIONS };
static const char *const lkind_name[] = {"smtp", "submission", "submissions"};

struct listen_keys {
	const char *smtp, *submission, *submissions;
	const char *tls_cert, *tls_key, *users, *mynetworks;
	uint64_t max_connections, max_per_client, max_recipients, max_errors;
	uint64_t command_timeout_ms, data_timeout_ms;
};

#define LKEY(m) DMTA_CONF_AT(struct listen_keys, m)

static const struct dmta_conf_key listen_keys[] = {
    {.name = "smtp",
     .type = DMTA_CONF_STR,
     .example = "127.0.0.1:25, [::1]:25",
     LKEY(smtp),
     .help = "SMTP for applications and other MTAs: ADDR:PORT, comma-separated.\n"
	     "Clients in mynetworks (or authenticated) may relay; others get 554 5.7.1."},
    {.name = "submission",
     .type = DMTA_CONF_STR,
     .example = "0.0.0.0:587",
     LKEY(submission),
     .help = "Message submission (port 587): STARTTLS, then AUTH, both required."},
    {.name = "submissions",
     .type = DMTA_CONF_STR,
     .example = "0.0.0.0:465",
     LKEY(submissions),
     .help = "Submission over implicit TLS (port 465, RFC 8314): AUTH required."},
    {.name = "tls_cert",
     .type = DMTA_CONF_STR,
     .example = "/etc/dmta/cert.pem",
     LKEY(tls_cert),
     .help = "Certificate chain (PEM, leaf first) for STARTTLS and port 465."},
    {.name = "tls_key",
     .type = DMTA_CONF_STR,
     .example = "/etc/dmta/key.pem",
     LKEY(tls_key),
     .help = "Its private key (PEM)."},
    {.name = "users",
     .type = DMTA_CONF_STR,
     .example = "/etc/dmta/users",
     LKEY(users),
     .help = "Who may AUTH: lines user:crypt-hash (yescrypt, sha512-crypt),\n"
	     "written by dmta-passwd USER. Keep it mode 0600."},
    {.name = "mynetworks",
     .type = DMTA_CONF_STR,
     .def = "127.0.0.0/8, ::1/128",
     LKEY(mynetworks),
     .help = "Clients that may relay through the smtp listener without AUTH."},
    {.name = "max_connections",
     .type = DMTA_CONF_U64,
     .def = "1000",
     .min = 1,
     .max = 100000,
     LKEY(max_connections),
     .help = "Connections at once, all listeners; more get 421 4.7.0."},
    {.name = "max_connections_per_client",
     .type = DMTA_CONF_U64,
     .def = "50",
     .min = 1,
     .max = 100000,
     LKEY(max_per_client),
     .help = "Connections at once from one client address; more get 421 4.7.0."},
    {.name = "max_recipients",
     .type = DMTA_CONF_U64,
     .def = "1000",
     .min = 1,
     .max = 100000,
     LKEY(max_recipients),
     .help = "Recipients per message; more get 452 4.5.3."},
    {.name = "max_errors",
     .type = DMTA_CONF_U64,
     .def = "10",
     .min = 1,
     .max = 1000,
     LKEY(max_errors),
     .help = "Client errors in one session before 421 and the end of it."},
    {.name = "command_timeout",
     .type = DMTA_CONF_DURATION,
     .def = "5m",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_HOUR(1),
     LKEY(command_timeout_ms),
     .help = "From one command's reply to the end of the next command line,\n"
	     "however the bytes trickle in (slowloris), and for a TLS handshake."},
    {.name = "data_timeout",
     .type = DMTA_CONF_DURATION,
     .def = "10m",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_HOUR(2),
     LKEY(data_timeout_ms),
     .help = "A whole DATA or BDAT transfer."},
};

const struct dmta_conf_section dmta_listen_conf_section = {
    .name = "listen",
    .help = "dmtad's SMTP listeners (kernel sockets; none unless named) and\n"
	    "message size from [spool] message_size_limit. Local users' mail\n"
	    "(sendmail, mail) comes through SPOOL/maildrop whatever is set here.",
    .keys = listen_keys,
    .nkeys = DMTA_CONF_NKEYS(listen_keys),
};

struct net {
	int family;
	uint8_t addr[16];
	unsigned bits;
};

struct user {
	char *name, *hash;
};

struct pending;

struct conn {
	struct dmta_listen *l;
	int fd;
	enum lkind kind;
	struct smtp_server *s;
	struct smtp_tls *tls;
	bool handshaking;
	bool trusted; /* in mynetworks */
	bool closing; /* the engine is done: send what is left, then close */
	struct sockaddr_storage peer;
	char ip[INET6_ADDRSTRLEN];
	char helo[128];
	/* Timeouts (monotonic ns). */
	uint64_t cmd_start, data_start;
	uint64_t seen_commands;
	bool in_data;
	struct dmta_accept acc;	 /* the transaction */
	struct pending *pending; /* in the batch, waiting for the commit */
	/* Ciphertext not yet sent. */
	char *obuf;
	size_t olen, ocap;
	bool want_out;
	struct conn *next, *prev;
};

struct pending {
	struct queue_env env;
	char *msg;
	size_t len;
	struct conn *c; /* SMTP: the client waiting for 250 (NULL: gone) */
	char drop[64];	/* maildrop: the file's name */
	uid_t uid;	/* maildrop: its owner */
	bool dropped;	/* the client left before the commit: not queued */
	int sign_rc;	/* DKIM signing failed (-EBADMSG: cannot be signed): not queued */
	struct pending *next;
};

struct dmta_listen {
	struct spool *sp;
	struct queue_dkim *dkim;     /* [dkim DOMAIN]: signed once, here, before the spool */
	struct queue_users *udefs;   /* [user NAME]: pool, priority and tenant defaults */
	struct queue_egress *egress; /* [pool NAME]: the pools a message may name */
	struct dmta_loop *loop;
	pthread_t thread;
	bool running;
	int stop_fd;
	bool stop;
	struct listen_keys k;
	uint64_t size_limit;
	char hostname[256];
	int lfd[LISTEN_MAX_SOCKETS];
	enum lkind lkind[LISTEN_MAX_SOCKETS];
	unsigned nl;
	struct net nets[LISTEN_MAX_NETS];
	unsigned nnets;
	struct user *users;
	size_t nusers;
	struct smtp_tls_ctx *tls;
	/* Connections. */
	struct conn *conns;
	unsigned nconns;
	/* The batch being made, and the committer's. */
	struct pending *batch, **batch_tail;
	unsigned nbatch;
	bool committing;	/* a batch is with the committer */
	unsigned drops_pending; /* maildrop files in either batch */
	pthread_t committer;
	bool committer_running;
	pthread_mutex_t mu; /* guards the four below */
	pthread_cond_t cv;
	struct pending *to_commit, *done;
	int done_rc;
	bool committer_stop;
	int done_fd; /* the committer's "done": an eventfd */
	/* The maildrop. */
	int ino_fd;
	bool drop_scan; /* look again this turn */
	uint64_t next_rescan;
	struct dmta_listen_stats st;
};

/* ---- configuration ---- */

static int parse_net(const char *s, struct net *n)
{
	char buf[80], *slash;
	unsigned long bits;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		bits = 128;
	} else {
		return -EINVAL;
	}
	if (slash) {
		char *end;
		unsigned long b = strtoul(slash, &end, 10);

		if (*slash == '\0' || *end != '\0' || b > bits)
			return -EINVAL;
		bits = b;
	}
	n->bits = (unsigned)bits;
	return 0;
}

static bool net_match(const struct net *n, int family, const uint8_t *a)
{
	unsigned full = n->bits / 8, rest = n->bits % 8;

	if (n->family != family)
		return false;
	if (memcmp(n->addr, a, full) != 0)
		return false;
	return rest == 0 || ((n->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

/* The address bytes of a peer (an IPv4-mapped IPv6 address as IPv4). */
static const uint8_t *peer_addr(const struct sockaddr_storage *ss, int *family)
{
	if (ss->ss_family == AF_INET) {
		*family = AF_INET;
		return (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
	}
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;

	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		*family = AF_INET;
		return a6->s6_addr + 12;
	}
	*family = AF_INET6;
	return a6->s6_addr;
}

/* Split a comma-separated list; fn gets each trimmed item. */
static int each_item(const char *list, int (*fn)(void *arg, const char *item), void *arg)
{
	const char *p = list;

	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char item[128];
		int rc;

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n >= sizeof(item))
			return -EINVAL;
		memcpy(item, p, n);
		item[n] = '\0';
		if (n > 0 && (rc = fn(arg, item)) != 0)
			return rc;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

static int add_net(void *arg, const char *item)
{
	struct dmta_listen *l = arg;

	if (l->nnets == LISTEN_MAX_NETS || parse_net(item, &l->nets[l->nnets]) != 0)
		return -EINVAL;
	l->nnets++;
	return 0;
}

struct bind_ctx {
	struct dmta_listen *l;
	enum lkind kind;
	char *err;
	size_t errlen;
};

static int add_listener(void *arg, const char *item)
{
	struct bind_ctx *b = arg;
	struct dmta_listen *l = b->l;
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				 .ai_socktype = SOCK_STREAM},
			*ai = NULL;
	char host[80];
	const char *port, *colon = strrchr(item, ':');
	int fd, one = 1;

	if (colon == NULL || colon[1] == '\0' || (size_t)(colon - item) >= sizeof(host)) {
		snprintf(b->err, b->errlen, "[listen] %s: \"%s\" is not ADDR:PORT",
			 lkind_name[b->kind], item);
		return -EINVAL;
	}
	memcpy(host, item, (size_t)(colon - item));
	host[colon - item] = '\0';
	port = colon + 1;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (l->nl == LISTEN_MAX_SOCKETS) {
		snprintf(b->err, b->errlen, "[listen]: more than %d addresses", LISTEN_MAX_SOCKETS);
		return -EINVAL;
	}
	if (getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &ai) != 0 ||
	    ai == NULL) {
		snprintf(b->err, b->errlen, "[listen] %s: bad address \"%s\"", lkind_name[b->kind],
			 item);
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
		snprintf(b->err, b->errlen, "[listen] %s: %s: %s", lkind_name[b->kind], item,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -EINVAL;
	}
	freeaddrinfo(ai);
	l->lfd[l->nl] = fd;
	l->lkind[l->nl++] = b->kind;
	dmta_info("listen: %s on %s", lkind_name[b->kind], item);
	return 0;
}

static int load_users(struct dmta_listen *l, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	struct stat st;
	unsigned no = 0;

	if (f == NULL) {
		snprintf(err, errlen, "[listen] users %s: %s", path, strerror(errno));
		return -EINVAL;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0044))
		dmta_warn("[listen] users %s is readable by others: chmod 600 it", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *colon, *nl = strchr(line, '\n');
		struct user *u;

		no++;
		if (nl)
			*nl = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL || colon == line || colon[1] != '$') {
			snprintf(err, errlen, "[listen] users %s:%u: want user:crypt-hash", path,
				 no);
			fclose(f);
			return -EINVAL;
		}
		*colon = '\0';
		/* Only hashes this libcrypt can verify: a typo is an error now,
		 * not a login that fails later. */
		switch (crypt_checksalt(colon + 1)) {
		case CRYPT_SALT_OK:
			break;
		case CRYPT_SALT_METHOD_LEGACY:
		case CRYPT_SALT_TOO_CHEAP:
			dmta_warn("[listen] users %s:%u: a weak hash for %s: run dmta-passwd %s",
				  path, no, line, line);
			break;
		default:
			snprintf(err, errlen, "[listen] users %s:%u: a hash crypt(3) cannot check",
				 path, no);
			fclose(f);
			return -EINVAL;
		}
		u = realloc(l->users, (l->nusers + 1) * sizeof(*u));
		if (u == NULL) {
			fclose(f);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		l->users = u;
		u = &l->users[l->nusers];
		u->name = strdup(line);
		u->hash = strdup(colon + 1);
		if (u->name == NULL || u->hash == NULL) {
			free(u->name);
			free(u->hash);
			fclose(f);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		l->nusers++;
	}
	fclose(f);
	return 0;
}

/* ---- the batch: one commit for every message finished in a turn ---- */

static void pending_free(struct pending *p)
{
	queue_env_free(&p->env);
	free(p->msg);
	free(p);
}

static void batch_add(struct dmta_listen *l, struct pending *p)
{
	*l->batch_tail = p;
	l->batch_tail = &p->next;
	l->nbatch++;
}

static void conn_answer(struct conn *c, int code, const char *text);

/*
 * The committer thread: write each batch it is handed in one transaction
 * (one commit, one fsync), then hand it back through done_fd. While it
 * waits for the disk the listener goes on serving every connection, so
 * that the messages finished meanwhile make the next batch. Only the
 * spool calls run here: the listener drops what a departed client left
 * before the handover and reads the results after it.
 */
/*
 * DKIM-sign a message about to be spooled, for SMTP clients and maildrop
 * files alike. A failure keeps it out of this commit: -EBADMSG (a From
 * that does not name one address) is refused for good, anything else is
 * a temporary failure (the client hears 451, the maildrop file stays).
 */
static int listen_sign(struct dmta_listen *l, struct pending *p)
{
	/* p->msg is malloc'd, p->len long: it becomes the buffer that grows. */
	struct queue_buf b = {p->msg, p->len, p->len};
	const char *why = "";
	int n;

	if (!queue_dkim_active(l->dkim) || p->msg == NULL)
		return 0;
	n = queue_dkim_sign_msg(l->dkim, &b, time(NULL), &why);
	p->msg = b.p;
	p->len = b.len;
	if (n < 0) {
		p->sign_rc = n;
		dmta_warn("listen: from=<%s>: cannot DKIM-sign the message: %s", p->env.sender,
			  why);
		return n;
	}
	return 0;
}

static void *committer_main(void *arg)
{
	struct dmta_listen *l = arg;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		struct pending *list, *p;
		struct spool_txn *t = NULL;
		uint64_t one = 1;
		int rc;

		while (l->to_commit == NULL && !l->committer_stop)
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->to_commit == NULL)
			break;
		list = l->to_commit;
		pthread_mutex_unlock(&l->mu);

		rc = spool_begin(l->sp, true, &t);
		for (p = list; rc == 0 && p != NULL; p = p->next) {
			/* Signed once, at acceptance, as dmta-sendmail and
			 * dmta-inject do (in this thread, off the loop's). */
			if (listen_sign(l, p) != 0)
				continue;
			rc = spool_put(t, &p->env, p->msg ? p->msg : "", p->len);
		}
		if (rc == 0)
			rc = spool_commit(t);
		else if (t != NULL)
			spool_abort(t);

		pthread_mutex_lock(&l->mu);
		l->to_commit = NULL;
		l->done = list;
		l->done_rc = rc;
		(void)!write(l->done_fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* Hand the batch to the committer, if it is free; messages of clients that
 * left are dropped first (never acknowledged: not queued). */
static void batch_handover(struct dmta_listen *l)
{
	struct pending *list = NULL, **tail = &list, *p, *next;

	if (l->batch == NULL || l->committing)
		return;
	for (p = l->batch; p != NULL; p = next) {
		next = p->next;
		if (p->dropped) {
			pending_free(p);
			continue;
		}
		p->next = NULL;
		*tail = p;
		tail = &p->next;
	}
	l->batch = NULL;
	l->batch_tail = &l->batch;
	l->nbatch = 0;
	if (list == NULL)
		return;
	l->committing = true;
	pthread_mutex_lock(&l->mu);
	l->to_commit = list;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/*
 * A batch came back: 250 with the queue id to each client, or 451 to each
 * if the commit failed; maildrop files are removed only after a good one.
 * Answers let pipelined input run, which may start the next batch.
 */
static void batch_finish(struct dmta_listen *l, struct pending *list, int rc)
{
	struct pending *p, *next;
	unsigned count = 0;

	for (p = list; p != NULL; p = p->next)
		count++;
	l->st.commits++;
	if (rc != 0) {
		l->st.commit_errors++;
		dmta_err("listen: cannot queue %u messages: %s", count, spool_strerror(rc));
	}
	for (p = list; p != NULL; p = next) {
		char id[17], text[64];

		next = p->next;
		if (p->c == NULL && p->drop[0] == '\0') {
			pending_free(p); /* its client left during the commit */
			continue;
		}
		queue_id_fmt(p->env.qid, id);
		if (p->c != NULL) {
			struct conn *c = p->c;
			char tls[96] = "no";

			c->pending = NULL;
			if (rc == 0 && p->sign_rc == -EBADMSG) {
				conn_answer(c, 554,
					    "5.6.0 The From field must name one address (DKIM)");
			} else if (rc == 0 && p->sign_rc != 0) {
				conn_answer(c, 451, "4.3.0 Cannot sign the message, try later");
			} else if (rc == 0) {
				if (c->tls)
					smtp_tls_describe(c->tls, tls, sizeof(tls));
				dmta_info(
				    "listen: %s from=<%s> nrcpt=%u size=%zu client=%s helo=%s "
				    "via=%s auth=%s tls=%s",
				    id, p->env.sender, p->env.nrcpt, p->len, c->ip,
				    c->helo[0] ? c->helo : "-", lkind_name[c->kind],
				    smtp_server_auth_user(c->s) ? smtp_server_auth_user(c->s) : "-",
				    tls);
				l->st.messages++;
				snprintf(text, sizeof(text), "2.0.0 Ok: queued as %s", id);
				conn_answer(c, 250, text);
			} else {
				conn_answer(c, 451, "4.3.0 Cannot queue the message, try later");
			}
		} else {
			l->drops_pending--;
			if (rc == 0 && p->sign_rc != 0 && p->sign_rc != -EBADMSG) {
				l->drop_scan = true; /* the file stays: try again */
			} else if (rc == 0) {
				int dfd;
				char path[4096];

				dmta_info("pickup: %s from=<%s> nrcpt=%u size=%zu uid=%u", id,
					  p->env.sender, p->env.nrcpt, p->len, (unsigned)p->uid);
				l->st.picked_up++;
				snprintf(path, sizeof(path), "%s/%s", spool_path(l->sp),
					 SPOOL_DROP_DIR);
				dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (dfd < 0 || unlinkat(dfd, p->drop, 0) < 0)
					dmta_err(
					    "pickup: cannot remove %s/%s: %s (it will be queued "
					    "again)",
					    path, p->drop, strerror(errno));
				if (dfd >= 0)
					close(dfd);
			} else {
				l->drop_scan = true; /* the file stays: try again */
			}
		}
		pending_free(p);
	}
	if (rc == 0)
		(void)spool_wake(spool_path(l->sp), "wake");
}

static void on_committed(void *arg, int fd, uint32_t events)
{
	struct dmta_listen *l = arg;
	struct pending *list;
	uint64_t n;
	int rc;

	(void)!read(fd, &n, sizeof(n));
	pthread_mutex_lock(&l->mu);
	list = l->done;
	rc = l->done_rc;
	l->done = NULL;
	pthread_mutex_unlock(&l->mu);
	if (list == NULL)
		return;
	l->committing = false;
	batch_finish(l, list, rc);
}

/* Wait for the batch in flight, if any, and take it back. */
static void batch_wait(struct dmta_listen *l)
{
	while (l->committing) {
		struct pollfd pfd = {.fd = l->done_fd, .events = POLLIN};

		(void)poll(&pfd, 1, -1);
		on_committed(l, l->done_fd, EPOLLIN);
	}
}

/* ---- the maildrop ---- */

static int read_file(int fd, size_t size, char **out)
{
	char *buf = malloc(size ? size : 1);
	size_t got = 0;

	if (buf == NULL)
		return -ENOMEM;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	*out = buf;
	return 0;
}

static void drop_remove(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		dmta_err("pickup: cannot remove %s: %s", name, strerror(errno));
}

/* Take one complete maildrop file into the batch, or remove it if bad. */
static void drop_take(struct dmta_listen *l, int dfd, const char *name)
{
	struct pending *p;
	struct stat st;
	const void *msg;
	const char *why = "unreadable";
	size_t mlen;
	char *buf = NULL;
	int fd, rc;

	fd = spool_drop_open(spool_path(l->sp), name, &st);
	if (fd == -ENOENT)
		return;
	if (fd < 0) {
		dmta_warn("pickup: %s: %s: removed", name,
			  fd == -ELOOP ? "a symbolic link" : "not a plain file");
		drop_remove(dfd, name);
		return;
	}
	if ((uint64_t)st.st_size > l->size_limit + SPOOL_DROP_HDR + SPOOL_DROP_ENV_MAX) {
		close(fd);
		dmta_warn("pickup: %s from uid %u: %lld bytes, over the size limit: removed", name,
			  (unsigned)st.st_uid, (long long)st.st_size);
		drop_remove(dfd, name);
		return;
	}
	rc = read_file(fd, (size_t)st.st_size, &buf);
	close(fd);
	p = calloc(1, sizeof(*p));
	if (rc == 0 && p != NULL)
		rc = spool_drop_parse(buf, (size_t)st.st_size, &p->env, &msg, &mlen, &why);
	if (p == NULL || rc == -ENOMEM) {
		free(p);
		free(buf);
		return; /* tried again at the next scan */
	}
	if (rc != 0) {
		dmta_warn("pickup: %s from uid %u: %s: removed", name, (unsigned)st.st_uid, why);
		free(p);
		free(buf);
		drop_remove(dfd, name);
		return;
	}
	/* The message moves to the front of the buffer it came in. */
	memmove(buf, msg, mlen);
	/* Its X-Dmta-* fields are taken here, and the defaults of the file's
	 * owner applied: dmta-sendmail only checked them (spool_drop.h). */
	{
		char pwbuf[1024], uname[64];
		struct passwd pw, *pwp = NULL;
		long n;

		if (getpwuid_r(st.st_uid, &pw, pwbuf, sizeof(pwbuf), &pwp) == 0 && pwp != NULL)
			snprintf(uname, sizeof(uname), "%s", pwp->pw_name);
		n = queue_users_take(l->udefs, pwp ? uname : NULL, &p->env, buf, &mlen, &why);
		if (n == -ENOMEM) {
			queue_env_free(&p->env);
			free(p);
			free(buf);
			return; /* tried again at the next scan */
		}
		if (n < 0) {
			dmta_warn("pickup: %s from uid %u: %s: removed", name, (unsigned)st.st_uid,
				  why);
			queue_env_free(&p->env);
			free(p);
			free(buf);
			drop_remove(dfd, name);
			return;
		}
		/* dmta-sendmail refused a pool without a section; one that went
		 * since is no reason to lose the message. */
		if (p->env.pool != NULL && queue_egress_pool(l->egress, p->env.pool) < 0) {
			dmta_warn("pickup: %s from uid %u: no [pool %s]: the default pool", name,
				  (unsigned)st.st_uid, p->env.pool);
			if (queue_env_set_pool(&p->env, NULL) < 0) {
				queue_env_free(&p->env);
				free(p);
				free(buf);
				return; /* tried again at the next scan */
			}
		}
	}
	p->msg = buf;
	p->len = mlen;
	p->uid = st.st_uid;
	snprintf(p->drop, sizeof(p->drop), "%s", name);
	l->drops_pending++;
	batch_add(l, p);
}

static void drop_scan(struct dmta_listen *l)
{
	char path[4096];
	struct dirent *de;
	unsigned taken = 0;
	DIR *d;

	/* Files already taken are still there until their commit: look again
	 * only once none is pending. */
	if (l->drops_pending > 0) {
		l->drop_scan = true;
		return;
	}
	l->drop_scan = false;
	l->next_rescan = dmta_now_ns() + (uint64_t)LISTEN_DROP_RESCAN * DMTA_NS_PER_MS;
	snprintf(path, sizeof(path), "%s/%s", spool_path(l->sp), SPOOL_DROP_DIR);
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.') {
			struct stat st;

			if (strncmp(de->d_name, ".tmp.", 5) == 0 &&
			    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    st.st_mtime + LISTEN_TMP_MAX_AGE < time(NULL))
				drop_remove(dirfd(d), de->d_name);
			continue;
		}
		if (strlen(de->d_name) >= sizeof(((struct pending *)0)->drop)) {
			drop_remove(dirfd(d), de->d_name);
			continue;
		}
		if (taken == LISTEN_DROP_BATCH) {
			l->drop_scan = true; /* more next turn */
			break;
		}
		drop_take(l, dirfd(d), de->d_name);
		taken++;
	}
	closedir(d);
}

static void on_inotify(void *arg, int fd, uint32_t events)
{
	struct dmta_listen *l = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	l->drop_scan = true;
}

/* SPOOL/maildrop: made if missing; group dmtadrop and mode 1770 when that
 * group exists (else root only: nobody else can submit). */
static int drop_setup(struct dmta_listen *l, char *err, size_t errlen)
{
	char path[4096];
	struct group *gr = getgrnam(SPOOL_DROP_GROUP);
	struct stat st, sst;

	snprintf(path, sizeof(path), "%s/%s", spool_path(l->sp), SPOOL_DROP_DIR);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", path);
		return -ENOTDIR;
	}
	/* The group passes through the spool (x only) to reach the maildrop;
	 * the spool's files stay root's. */
	if (gr != NULL && geteuid() == 0 && stat(spool_path(l->sp), &sst) == 0 && sst.st_uid == 0 &&
	    (sst.st_gid != gr->gr_gid || (sst.st_mode & 0070) != 0010)) {
		if (chown(spool_path(l->sp), 0, gr->gr_gid) < 0 ||
		    chmod(spool_path(l->sp), (sst.st_mode & 07707) | 0010) < 0)
			dmta_warn("%s: group %s with x only: %s", spool_path(l->sp),
				  SPOOL_DROP_GROUP, strerror(errno));
	}
	if (gr != NULL && geteuid() == 0 && st.st_uid == 0) {
		if (st.st_gid != gr->gr_gid && chown(path, 0, gr->gr_gid) < 0)
			dmta_warn("%s: chown to group %s: %s", path, SPOOL_DROP_GROUP,
				  strerror(errno));
		if ((st.st_mode & 07777) != 01770 && chmod(path, 01770) < 0)
			dmta_warn("%s: chmod 1770: %s", path, strerror(errno));
	}
	l->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (l->ino_fd < 0 || inotify_add_watch(l->ino_fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		snprintf(err, errlen, "inotify on %s: %s", path, strerror(errno));
		return -errno;
	}
	l->drop_scan = true;
	return 0;
}

/* ---- connections ---- */

static uint64_t now_ns(void)
{
	return dmta_now_ns();
}

static void conn_free(struct conn *c)
{
	struct dmta_listen *l = c->l;

	if (c->pending != NULL) {
		c->pending->c = NULL;
		c->pending->dropped = true; /* never acknowledged: not queued */
	}
	dmta_loop_del(l->loop, c->fd);
	close(c->fd);
	smtp_server_free(c->s);
	smtp_tls_free(c->tls);
	dmta_accept_free(&c->acc);
	free(c->obuf);
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	l->nconns--;
	free(c);
}

static int obuf_add(struct conn *c, const void *p, size_t n)
{
	if (c->olen + n > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 16384;
		char *b;

		while (cap < c->olen + n)
			cap *= 2;
		b = realloc(c->obuf, cap);
		if (b == NULL)
			return -ENOMEM;
		c->obuf = b;
		c->ocap = cap;
	}
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
	return 0;
}

/*
 * Send what the engine (through TLS when up) has queued. Returns false when
 * the connection broke (the caller frees it).
 */
static bool conn_flush(struct conn *c)
{
	struct iovec iov[8];
	size_t k;
	ssize_t n;

	if (c->tls != NULL) {
		/* During a handshake only its own messages go out; the 465
		 * greeting waits for its end. */
		while (!c->handshaking && (k = smtp_server_tx_iov(c->s, iov, 8)) > 0) {
			size_t sum = 0;

			for (size_t i = 0; i < k; i++) {
				if (smtp_tls_write(c->tls, iov[i].iov_base, iov[i].iov_len) < 0)
					return false;
				sum += iov[i].iov_len;
			}
			smtp_server_tx_done(c->s, sum);
		}
		for (;;) {
			char buf[16384];
			size_t got = smtp_tls_cipher_out(c->tls, buf, sizeof(buf));

			if (got == 0)
				break;
			if (obuf_add(c, buf, got) != 0)
				return false;
		}
		while (c->olen > 0) {
			n = send(c->fd, c->obuf, c->olen, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0)
				return false;
			memmove(c->obuf, c->obuf + n, c->olen - (size_t)n);
			c->olen -= (size_t)n;
		}
		c->want_out = c->olen > 0;
	} else {
		while ((k = smtp_server_tx_iov(c->s, iov, 8)) > 0) {
			n = writev(c->fd, iov, (int)k);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0)
				return false;
			smtp_server_tx_done(c->s, (size_t)n);
		}
		c->want_out = smtp_server_tx_pending(c->s) > 0;
	}
	/* No reading while a commit is awaited or the session is over: the
	 * socket's bytes would wake the loop again and again (epoll is level
	 * triggered) with nowhere to put them. conn_answer() flushes, which
	 * asks for them again. */
	dmta_loop_mod(c->l->loop, c->fd,
		      (c->pending != NULL || c->closing ? 0 : EPOLLIN) |
			  (c->want_out ? EPOLLOUT : 0));
	return true;
}

static bool authorized(const struct conn *c)
{
	return smtp_server_auth_user(c->s) != NULL || (c->kind == LK_SMTP && c->trusted);
}

/* The trace field every relay adds (RFC 5321 4.4), with RFC 3848's
 * protocol names. */
static int body_begin(struct conn *c)
{
	char line[1024], date[64];
	const char *proto;
	bool auth = smtp_server_auth_user(c->s) != NULL, tls = c->tls != NULL;
	time_t now = time(NULL);
	struct tm tm;
	int n;

	c->acc.started = true;
	proto = auth && tls ? "ESMTPSA" : auth ? "ESMTPA" : tls ? "ESMTPS" : "ESMTP";
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(line, sizeof(line),
		     "Received: from %s ([%s])\r\n\tby %s (dmta) with %s;\r\n\t%s\r\n",
		     c->helo[0] ? c->helo : "unknown", c->ip, c->l->hostname, proto, date);
	return dmta_accept_body(&c->acc, line,
				(size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void on_mail(struct conn *c, const struct smtp_server_event *ev)
{
	const char *text = NULL;
	int code;

	if (c->kind == LK_SUBMISSION && !smtp_server_tls_active(c->s)) {
		smtp_server_reply(c->s, 530, "5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (c->kind != LK_SMTP && smtp_server_auth_user(c->s) == NULL) {
		smtp_server_reply(c->s, 530, "5.7.0 Authentication required");
		return;
	}
	code = dmta_accept_mail(&c->acc, ev, &text);
	smtp_server_reply(c->s, code, text);
}

static void on_rcpt(struct conn *c, const struct smtp_server_event *ev)
{
	const char *text = NULL;
	int code;

	if (!authorized(c)) {
		smtp_server_reply(c->s, 554, "5.7.1 Relaying denied");
		return;
	}
	code = dmta_accept_rcpt(&c->acc, ev, &text);
	smtp_server_reply(c->s, code, text);
}

/* Constant-time string equality (the lengths may differ). */
static bool same(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	unsigned char d = (unsigned char)(na != nb);

	for (size_t i = 0; i < na && i < nb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/*
 * XXX: crypt_r runs in this thread; a yescrypt check takes some
 * milliseconds, during which the listener serves nobody else. max_errors
 * bounds the tries per connection, not per client.
 */
static void on_auth(struct conn *c, const struct smtp_server_event *ev)
{
	const struct user *u = NULL;
	struct crypt_data *cd;
	bool ok = false;

	for (size_t i = 0; i < c->l->nusers; i++)
		if (strcmp(c->l->users[i].name, ev->user) == 0)
			u = &c->l->users[i];
	if (ev->authzid && ev->authzid[0] && strcmp(ev->authzid, ev->user) != 0) {
		smtp_server_reply(c->s, 535, "5.7.8 Authentication credentials invalid");
		return;
	}
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		smtp_server_reply(c->s, 454, "4.7.0 Temporary authentication failure");
		return;
	}
	if (u != NULL) {
		const char *h = crypt_r(ev->pass, u->hash, cd);

		ok = h != NULL && h[0] != '*' && same(h, u->hash);
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	if (ok) {
		dmta_info("listen: client=%s via=%s auth=%s", c->ip, lkind_name[c->kind], ev->user);
		smtp_server_reply(c->s, 235, "2.7.0 Authentication successful");
	} else {
		dmta_warn("listen: client=%s via=%s: authentication failed for \"%.64s\"", c->ip,
			  lkind_name[c->kind], ev->user);
		smtp_server_reply(c->s, 535, "5.7.8 Authentication credentials invalid");
	}
}

static void on_data_end(struct conn *c, const struct smtp_server_event *ev)
{
	struct pending *p = calloc(1, sizeof(*p));
	const char *why = "";
	char text[200], poolwhy[180];
	long n = -ENOMEM;

	/* The AUTH user's [user NAME] defaults, then the message's own
	 * X-Dmta-* fields, removed before the committer signs it. */
	if (p != NULL && (c->acc.started || body_begin(c) == 0))
		n = queue_users_take(c->l->udefs, smtp_server_auth_user(c->s), &c->acc.env,
				     c->acc.body, &c->acc.len, &why);
	if (n >= 0 &&
	    queue_egress_check_pool(c->l->egress, c->acc.env.pool, poolwhy, sizeof(poolwhy)) < 0) {
		n = -EBADMSG;
		why = poolwhy;
	}
	if (n < 0) {
		free(p);
		if (n == -EBADMSG) {
			dmta_warn("listen: from=<%s> client=%s: refused: %s", c->acc.env.sender,
				  c->ip, why);
			snprintf(text, sizeof(text), "5.6.0 %s", why);
		}
		dmta_accept_drop(&c->acc);
		smtp_server_reply(c->s, n == -EBADMSG ? 550 : 451,
				  n == -EBADMSG ? text : "4.3.0 Out of memory");
		return;
	}
	p->env = c->acc.env; /* the envelope and the body move to the batch */
	memset(&c->acc.env, 0, sizeof(c->acc.env));
	p->msg = c->acc.body;
	p->len = c->acc.len;
	c->acc.body = NULL;
	c->acc.len = c->acc.cap = 0;
	c->acc.started = false;
	p->c = c;
	c->pending = p;
	batch_add(c->l, p);
}

static bool conn_events(struct conn *c);

/*
 * Move plaintext that TLS already decrypted into the engine while it has
 * room: no socket event will come for bytes that left the socket. 0, or
 * -EPIPE at the end of the stream (the engine was told), or -EIO.
 */
static int conn_pull_tls(struct conn *c)
{
	uint8_t *p;
	size_t room;

	while (!c->closing && !c->handshaking && (room = smtp_server_rx_space(c->s, &p)) > 0) {
		ssize_t got = smtp_tls_read(c->tls, p, room);

		if (got == -EAGAIN)
			break;
		if (got < 0) {
			smtp_server_eof(c->s);
			return conn_events(c) ? -EPIPE : -EIO;
		}
		smtp_server_rx_commit(c->s, (size_t)got);
		if (!conn_events(c))
			return -EIO;
	}
	return 0;
}

/* The answer to a DATA_END, after the commit; then the rest of the input. */
static void conn_answer(struct conn *c, int code, const char *text)
{
	smtp_server_reply(c->s, code, text);
	c->cmd_start = now_ns();
	if (!conn_events(c) || (c->tls != NULL && conn_pull_tls(c) == -EIO) || !conn_flush(c) ||
	    (c->closing && !c->want_out))
		conn_free(c);
}

static bool start_tls(struct conn *c)
{
	c->tls = smtp_tls_accept(c->l->tls);
	c->handshaking = true;
	c->cmd_start = now_ns();
	return c->tls != NULL;
}

/* Take the engine's events. false: the connection is to be freed now. */
static bool conn_events(struct conn *c)
{
	struct smtp_server_event ev;

	while (smtp_server_event(c->s, &ev)) {
		switch (ev.type) {
		case SMTP_SEV_HELO:
			snprintf(c->helo, sizeof(c->helo), "%s", ev.helo);
			break;
		case SMTP_SEV_AUTH:
			on_auth(c, &ev);
			break;
		case SMTP_SEV_MAIL:
			on_mail(c, &ev);
			break;
		case SMTP_SEV_RCPT:
			on_rcpt(c, &ev);
			break;
		case SMTP_SEV_BODY:
			if (!c->acc.started && body_begin(c) != 0)
				return false;
			/* Past the limit the engine refuses the message at its
			 * end: keep no more than that. */
			if (c->acc.len + ev.len <= c->l->size_limit + 4096 &&
			    dmta_accept_body(&c->acc, ev.data, ev.len) != 0)
				return false;
			break;
		case SMTP_SEV_DATA_END:
			on_data_end(c, &ev);
			break;
		case SMTP_SEV_RESET:
			dmta_accept_drop(&c->acc);
			break;
		case SMTP_SEV_TLS_NEEDED:
			/* The 220 goes out in plaintext before TLS starts. */
			if (!conn_flush(c) || c->want_out || !start_tls(c))
				return false;
			break;
		case SMTP_SEV_CLOSED:
			c->closing = true;
			break;
		default:
			dmta_err("listen: unexpected engine event %d", (int)ev.type);
			abort();
		}
	}
	return true;
}

/* Read and process; false: free the connection. */
static bool conn_read(struct conn *c)
{
	uint8_t *p;
	size_t room;
	ssize_t n;

	for (;;) {
		if (c->tls != NULL) {
			char buf[16384];
			int rc;

			n = recv(c->fd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				smtp_server_eof(c->s);
				return conn_events(c);
			}
			if (n < 0)
				return errno == EAGAIN;
			smtp_tls_cipher_in(c->tls, buf, (size_t)n);
			if (c->handshaking) {
				rc = smtp_tls_handshake(c->tls);
				if (rc == -EAGAIN) {
					if (!conn_flush(c))
						return false;
					continue;
				}
				if (rc < 0) {
					dmta_info("listen: client=%s via=%s: TLS: %s", c->ip,
						  lkind_name[c->kind], smtp_tls_error(c->tls));
					return false;
				}
				c->handshaking = false;
				if (c->kind != LK_SUBMISSIONS)
					smtp_server_tls_started(c->s);
				if (!conn_events(c))
					return false;
			}
			rc = conn_pull_tls(c);
			if (rc == -EIO)
				return false;
			if (rc == -EPIPE || c->closing || smtp_server_waiting(c->s))
				return true;
		} else {
			room = smtp_server_rx_space(c->s, &p);
			if (room == 0 || c->closing)
				return true; /* a decision is awaited: read on later */
			n = recv(c->fd, p, room, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == EAGAIN;
			if (n == 0) {
				smtp_server_eof(c->s);
				return conn_events(c);
			}
			smtp_server_rx_commit(c->s, (size_t)n);
			if (!conn_events(c))
				return false;
			if (c->tls != NULL)
				return true; /* STARTTLS: the handshake comes next */
		}
	}
}

static void on_conn(void *arg, int fd, uint32_t events)
{
	struct conn *c = arg;
	bool ok = true;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		ok = conn_read(c);
	if (ok)
		ok = conn_flush(c);
	/* Track commands for the command timeout. */
	if (ok) {
		uint64_t cmds = smtp_server_stats(c->s)->commands;

		if (cmds != c->seen_commands) {
			c->seen_commands = cmds;
			c->cmd_start = now_ns();
		}
	}
	if (!ok || (c->closing && !c->want_out && c->pending == NULL))
		conn_free(c);
}

static unsigned per_client(const struct dmta_listen *l, const struct sockaddr_storage *ss)
{
	int fa, fb;
	const uint8_t *a = peer_addr(ss, &fa);
	unsigned n = 0;

	for (const struct conn *c = l->conns; c != NULL; c = c->next) {
		const uint8_t *b = peer_addr(&c->peer, &fb);

		if (fa == fb && memcmp(a, b, fa == AF_INET ? 4 : 16) == 0)
			n++;
	}
	return n;
}

static void refuse(int fd, const char *host, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s %s\r\n", host, why);

	(void)!send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void conn_new(struct dmta_listen *l, int fd, enum lkind kind,
		     const struct sockaddr_storage *ss)
{
	struct smtp_server_config cfg = {
	    .hostname = l->hostname,
	    .size_limit = l->size_limit,
	    .max_rcpts = (unsigned)l->k.max_recipients,
	    .max_errors = (unsigned)l->k.max_errors,
	    .tls_available = l->tls != NULL && kind != LK_SUBMISSIONS,
	    .tls_implicit = kind == LK_SUBMISSIONS,
	    .auth = l->nusers > 0,
	};
	struct conn *c = calloc(1, sizeof(*c));
	int family;
	const uint8_t *a = peer_addr(ss, &family);

	if (c == NULL) {
		refuse(fd, l->hostname, "Out of memory");
		return;
	}
	c->l = l;
	c->fd = fd;
	c->kind = kind;
	c->peer = *ss;
	inet_ntop(family, a, c->ip, sizeof(c->ip));
	for (unsigned i = 0; i < l->nnets; i++)
		if (net_match(&l->nets[i], family, a))
			c->trusted = true;
	c->cmd_start = now_ns();
	c->s = smtp_server_new(&cfg);
	if (c->s == NULL || (kind == LK_SUBMISSIONS && !start_tls(c)) ||
	    dmta_loop_add(l->loop, fd, EPOLLIN, on_conn, c) != 0) {
		smtp_server_free(c->s);
		smtp_tls_free(c->tls);
		free(c);
		refuse(fd, l->hostname, "Cannot serve you now");
		return;
	}
	c->next = l->conns;
	if (l->conns)
		l->conns->prev = c;
	l->conns = c;
	l->nconns++;
	l->st.connections++;
	if (!conn_flush(c)) /* the greeting (after the handshake on 465) */
		conn_free(c);
}

static void on_accept(void *arg, int lfd, uint32_t events)
{
	struct dmta_listen *l = arg;
	enum lkind kind = LK_SMTP;

	for (unsigned i = 0; i < l->nl; i++)
		if (l->lfd[i] == lfd)
			kind = l->lkind[i];
	for (int k = 0; k < 64; k++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		if (l->nconns >= l->k.max_connections) {
			l->st.refused++;
			refuse(fd, l->hostname, "Too many connections, try again later");
		} else if (per_client(l, &ss) >= l->k.max_per_client) {
			l->st.refused++;
			refuse(fd, l->hostname, "Too many connections from your address");
		} else {
			conn_new(l, fd, kind, &ss);
		}
	}
}

/* Expire timeouts; returns ms until the next one (at most 1000). */
static int check_timeouts(struct dmta_listen *l)
{
	uint64_t now = now_ns(), next = now + 1000 * DMTA_NS_PER_MS;
	struct conn *c, *cn;

	for (c = l->conns; c != NULL; c = cn) {
		uint64_t ms, due;
		enum smtp_deadline d;

		cn = c->next;
		if (c->pending != NULL)
			continue;
		d = c->handshaking ? SMTP_DL_TLS : smtp_server_deadline(c->s, &ms);
		if (d == SMTP_DL_DATA_BLOCK) {
			if (!c->in_data) {
				c->in_data = true;
				c->data_start = now;
			}
			due = c->data_start + l->k.data_timeout_ms * DMTA_NS_PER_MS;
		} else {
			if (c->in_data) {
				c->in_data = false;
				c->cmd_start = now;
			}
			due = c->cmd_start + l->k.command_timeout_ms * DMTA_NS_PER_MS;
		}
		if (now >= due) {
			l->st.timeouts++;
			dmta_info("listen: client=%s via=%s: %s timeout", c->ip,
				  lkind_name[c->kind], c->in_data ? "data" : "command");
			if (c->closing || c->handshaking) {
				conn_free(c);
				continue;
			}
			smtp_server_timeout(c->s);
			(void)conn_events(c);
			(void)conn_flush(c);
			conn_free(c); /* the 421 went out if the socket took it */
			continue;
		}
		if (due < next)
			next = due;
	}
	return (int)((next - now) / DMTA_NS_PER_MS + 1);
}

static void on_stop(void *arg, int fd, uint32_t events)
{
	struct dmta_listen *l = arg;

	l->stop = true;
}

static void *listen_main(void *arg)
{
	struct dmta_listen *l = arg;
	int timeout = 0;

	while (!l->stop) {
		int rc = dmta_loop_once(l->loop, timeout);

		if (rc < 0 && rc != -EINTR)
			dmta_err("listen loop: %s", strerror(-rc));
		if ((l->drop_scan && l->drops_pending == 0) || now_ns() >= l->next_rescan)
			drop_scan(l);
		batch_handover(l);
		timeout = check_timeouts(l);
		if (l->drop_scan && l->drops_pending == 0)
			timeout = 0;
	}
	/* What was acknowledged is durable; what is finished gets its answer. */
	batch_wait(l);
	batch_handover(l);
	batch_wait(l);
	return NULL;
}

/* ---- start and stop ---- */

int dmta_listen_users_path(const struct dmta_conf *conf, const char **path)
{
	struct listen_keys k = {0};

	if (dmta_conf_read(conf, &dmta_listen_conf_section, &k) != 0)
		return -EINVAL;
	*path = k.users;
	return 0;
}

static void listen_free(struct dmta_listen *l)
{
	struct pending *p, *next;

	if (l->committer_running) {
		pthread_mutex_lock(&l->mu);
		l->committer_stop = true;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->committer, NULL);
	}
	while (l->conns != NULL)
		conn_free(l->conns);
	for (p = l->batch; p != NULL; p = next) {
		next = p->next;
		pending_free(p);
	}
	if (l->done_fd >= 0)
		close(l->done_fd);
	queue_dkim_free(l->dkim);
	queue_users_free(l->udefs);
	queue_egress_free(l->egress);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	for (unsigned i = 0; i < l->nl; i++) {
		if (l->loop)
			dmta_loop_del(l->loop, l->lfd[i]);
		close(l->lfd[i]);
	}
	if (l->ino_fd >= 0)
		close(l->ino_fd);
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	for (size_t i = 0; i < l->nusers; i++) {
		explicit_bzero(l->users[i].hash, strlen(l->users[i].hash));
		free(l->users[i].name);
		free(l->users[i].hash);
	}
	free(l->users);
	smtp_tls_ctx_free(l->tls);
	dmta_loop_free(l->loop);
	free(l);
}

struct dmta_listen *dmta_listen_start(const struct dmta_conf *conf, struct spool *sp, char *err,
				      size_t errlen)
{
	struct dmta_listen *l = calloc(1, sizeof(*l));
	struct spool_opts so = {0};
	struct bind_ctx b;
	bool tls_wanted;

	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->sp = sp;
	l->ino_fd = l->stop_fd = l->done_fd = -1;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->batch_tail = &l->batch;
	if (dmta_conf_read(conf, &dmta_listen_conf_section, &l->k) != 0 ||
	    spool_opts_from_conf(conf, &so) != 0) {
		snprintf(err, errlen, "invalid [listen] or [spool] settings in %s",
			 dmta_conf_source(conf));
		goto fail;
	}
	l->size_limit = so.message_size_limit;
	queue_myhostname(conf, l->hostname, sizeof(l->hostname));
	if (each_item(l->k.mynetworks, add_net, l) != 0) {
		snprintf(err, errlen, "[listen] mynetworks: want ADDR/BITS, comma-separated");
		goto fail;
	}
	tls_wanted = l->k.submission != NULL || l->k.submissions != NULL;
	if (l->k.tls_cert != NULL || l->k.tls_key != NULL || tls_wanted) {
		l->tls = smtp_tls_server_ctx_new(l->k.tls_cert, l->k.tls_key, err, errlen);
		if (l->tls == NULL) {
			if (l->k.tls_cert == NULL || l->k.tls_key == NULL)
				snprintf(err, errlen,
					 "[listen] submission and submissions need tls_cert and "
					 "tls_key");
			goto fail;
		}
	}
	if (l->k.users != NULL && load_users(l, l->k.users, err, errlen) != 0)
		goto fail;
	if (tls_wanted && l->nusers == 0) {
		snprintf(err, errlen, "[listen] submission and submissions need users");
		goto fail;
	}
	l->dkim = queue_dkim_conf_load(conf, err, errlen);
	if (l->dkim == NULL)
		goto fail;
	l->udefs = queue_users_load(conf, err, errlen);
	if (l->udefs == NULL || queue_egress_load(conf, &l->egress, err, errlen) != 0 ||
	    queue_users_check_pools(l->udefs, l->egress, conf, err, errlen) != 0)
		goto fail;
	l->loop = dmta_loop_new();
	l->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->loop == NULL || l->stop_fd < 0 || l->done_fd < 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		goto fail;
	}
	b = (struct bind_ctx){l, LK_SMTP, err, errlen};
	if (each_item(l->k.smtp, add_listener, &b) != 0)
		goto fail;
	b.kind = LK_SUBMISSION;
	if (each_item(l->k.submission, add_listener, &b) != 0)
		goto fail;
	b.kind = LK_SUBMISSIONS;
	if (each_item(l->k.submissions, add_listener, &b) != 0)
		goto fail;
	if (drop_setup(l, err, errlen) != 0)
		goto fail;
	for (unsigned i = 0; i < l->nl; i++)
		if (dmta_loop_add(l->loop, l->lfd[i], EPOLLIN, on_accept, l) != 0)
			goto fail_loop;
	if (dmta_loop_add(l->loop, l->ino_fd, EPOLLIN, on_inotify, l) != 0 ||
	    dmta_loop_add(l->loop, l->stop_fd, EPOLLIN, on_stop, l) != 0 ||
	    dmta_loop_add(l->loop, l->done_fd, EPOLLIN, on_committed, l) != 0)
		goto fail_loop;
	if (pthread_create(&l->committer, NULL, committer_main, l) != 0) {
		snprintf(err, errlen, "listen: cannot start its committer thread");
		goto fail;
	}
	l->committer_running = true;
	if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
		snprintf(err, errlen, "listen: cannot start its thread");
		goto fail;
	}
	l->running = true;
	return l;
fail_loop:
	snprintf(err, errlen, "listen: cannot watch its sockets");
fail:
	listen_free(l);
	return NULL;
}

void dmta_listen_stop(struct dmta_listen *l)
{
	uint64_t one = 1;

	if (l == NULL)
		return;
	if (l->running) {
		(void)!write(l->stop_fd, &one, sizeof(one));
		pthread_join(l->thread, NULL);
	}
	dmta_info("listen: %llu messages over SMTP, %llu from the maildrop, %llu commits, "
		  "%llu connections (%llu refused), %llu timeouts",
		  (unsigned long long)l->st.messages, (unsigned long long)l->st.picked_up,
		  (unsigned long long)l->st.commits, (unsigned long long)l->st.connections,
		  (unsigned long long)l->st.refused, (unsigned long long)l->st.timeouts);
	listen_free(l);
}

void dmta_listen_get_stats(const struct dmta_listen *l, struct dmta_listen_stats *st)
{
	*st = l->st;
}
