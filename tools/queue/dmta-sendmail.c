/*
 * dmta-sendmail - the sendmail(8) interface to dmta's spool.
 *
 * SYNOPSIS
 *	dmta-sendmail [options] [recipient ...] < message
 *	dmta-sendmail -bp            (list the queue; also when run as mailq)
 *	dmta-sendmail -q             (ask the daemon to flush the queue)
 *	dmta-sendmail -bs            (SMTP on stdin and stdout)
 *
 * DESCRIPTION
 *	Reads a message on standard input and queues it in the spool for the
 *	recipients named on the command line and, with -t, in its To, Cc and
 *	Bcc fields (added to those on the command line, as Postfix does; Bcc
 *	fields are removed). The message is repaired as sendmail must
 *	(queue_msg.h): CRLF line ends, long lines folded, and Date,
 *	Message-ID and From added when missing. Then, when a [dkim DOMAIN]
 *	section covers the From domain, it is signed (queue_dkim.h): the
 *	spool holds the signed message and nothing signs it again. Before
 *	that, X-Dmta-Pool, X-Dmta-Priority and X-Dmta-Tenant fields set the
 *	message's egress pool, priority lane and tenant and are removed
 *	(queue_msg.h); without them the [user NAME] section of the user who
 *	runs the program gives the defaults (queue_user.h). The
 *	message is in the spool, fsync'ed, before this program exits 0; the
 *	daemon need not run (it is woken through the spool's socket if it
 *	does).
 *
 *	Options, as Postfix's sendmail implements them:
 *	-t extract recipients; -f ADDR / -r ADDR envelope sender ("" or <>
 *	for the null sender); -F NAME full name for a From field we add;
 *	-i, -oi a lone "." does not end the message; -bm deliver mail (the
 *	default); -bp list the queue; -bi (newaliases) does nothing; -q flush;
 *	-N never|success,failure,delay; -R full|hdrs; -V ENVID; -v print the
 *	queue id; -B 7BIT|8BITMIME; -C FILE configuration file. Accepted and
 *	ignored: -c -G -I -m -n -U -x, -o<x> (but -oi), -h N, -L LABEL,
 *	-O OPT, -X FILE, -p PROTO, -e<x>, -A<x>. -bs speaks SMTP on stdin and
 *	stdout (sendmail_bs.h), queueing each message as it ends.
 *
 *	Installed as the system's sendmail, this program is setgid dmtadrop
 *	(spool_drop.h). Run so by a user other than root, it is privileged:
 *	it reads only the default configuration (-C and $DMTA_CONFIG are
 *	refused), refuses -q and -bp (the queue is root's), gives its group
 *	up at once and takes it back only to write the message into
 *	SPOOL/maildrop, which dmtad picks up (running or not: the file
 *	waits). Root, or a user without the setgid bit (tests, a private
 *	spool), writes the spool directly.
 *
 * DIAGNOSTICS
 *	One line on stderr and sendmail's exit codes: 64 usage (bad option,
 *	no recipients, bad -f/-F/-N/-R/-V value), 65 data (NUL byte, message
 *	over [spool] message_size_limit, malformed address list with -t,
 *	a bad X-Dmta-* field: "X-Dmta-Priority: want normal, high or bulk"),
 *	67 bad recipient address, 69 -q without a daemon, 73 the spool cannot
 *	be created or written, 77 an option a user may not use, 75 temporary
 *	failure (disk or map full, I/O error, a DKIM signature that could not
 *	be made), 78 configuration error (a DKIM key unreadable, open to
 *	others or of a wrong type included). With DKIM configured, a message
 *	whose From field does not name exactly one valid address is refused
 *	with 65: it cannot be signed correctly, and unsigned it would fail
 *	DMARC anyway. Nothing is queued unless the exit is 0.
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_addr.h"
#include "queue/queue_dkim.h"
#include "queue/queue_egress.h"
#include "queue/queue_msg.h"
#include "queue/queue_sched.h"
#include "queue/queue_user.h"
#include "queue/spool.h"
#include "queue/spool_drop.h"
#include "tools/queue/queue_tool.h"
#include "tools/queue/sendmail_bs.h"

#define MAX_RCPT   10000
#define EX_NOPERM_ 77

struct opts {
	const char *conf;
	const char *sender; /* NULL: the user's address */
	const char *fullname;
	const char *envid;
	char mode;	  /* 'm' deliver, 'p' list, 'i' newaliases, 'q' flush, 's' SMTP */
	bool extract;	  /* -t */
	bool ignore_dots; /* -i */
	bool verbose;	  /* -v */
	bool body8;	  /* -B 8BITMIME */
	uint8_t notify;
	uint8_t ret;
	char **rcpt;
	int nrcpt;
};

static void __attribute__((noreturn, format(printf, 2, 3))) die(int ex, const char *fmt, ...)
{
	va_list ap;
	char line[1024];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "dmta-sendmail: %s\n", line);
	exit(ex);
}

static bool has_ctl(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 32 || *p == 127)
			return true;
	return false;
}

static uint8_t parse_notify(const char *v)
{
	char buf[128], *save, *tok;
	uint8_t n = 0;

	if (strlen(v) >= sizeof(buf))
		die(EX_USAGE_, "bad -N value: too long");
	strcpy(buf, v);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (strcasecmp(tok, "never") == 0)
			n |= QUEUE_NOTIFY_NEVER;
		else if (strcasecmp(tok, "success") == 0)
			n |= QUEUE_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "failure") == 0)
			n |= QUEUE_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "delay") == 0)
			n |= QUEUE_NOTIFY_DELAY;
		else
			die(EX_USAGE_, "bad -N value \"%s\": want never or success,failure,delay",
			    v);
	}
	if (n == 0 || ((n & QUEUE_NOTIFY_NEVER) && n != QUEUE_NOTIFY_NEVER))
		die(EX_USAGE_, "bad -N value \"%s\": want never or success,failure,delay", v);
	return n;
}

/* The value of an option that takes one: the rest of this word or the next. */
static const char *optval(int argc, char **argv, int *i, const char *rest, char flag)
{
	if (*rest)
		return rest;
	if (*i + 1 >= argc)
		die(EX_USAGE_, "option -%c requires an argument", flag);
	return argv[++*i];
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	int i;

	o->mode = 'm';
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-' || a[1] == 0)
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		for (const char *p = a + 1; *p; p++) {
			char c = *p;
			const char *v;

			switch (c) {
			case 't':
				o->extract = true;
				break;
			case 'i':
				o->ignore_dots = true;
				break;
			case 'v':
				o->verbose = true;
				break;
			case 'c':
			case 'G':
			case 'I':
			case 'm':
			case 'n':
			case 'U':
			case 'x':
				break; /* accepted and ignored, as Postfix does */
			case 'f':
			case 'r':
				o->sender = optval(argc, argv, &i, p + 1, c);
				goto next;
			case 'F':
				o->fullname = optval(argc, argv, &i, p + 1, c);
				goto next;
			case 'V':
				o->envid = optval(argc, argv, &i, p + 1, c);
				goto next;
			case 'C':
				o->conf = optval(argc, argv, &i, p + 1, c);
				goto next;
			case 'N':
				o->notify = parse_notify(optval(argc, argv, &i, p + 1, c));
				goto next;
			case 'R':
				v = optval(argc, argv, &i, p + 1, c);
				if (strcasecmp(v, "full") == 0)
					o->ret = QUEUE_RET_FULL;
				else if (strcasecmp(v, "hdrs") == 0)
					o->ret = QUEUE_RET_HDRS;
				else
					die(EX_USAGE_, "bad -R value \"%s\": want full or hdrs", v);
				goto next;
			case 'B':
				v = optval(argc, argv, &i, p + 1, c);
				if (strcasecmp(v, "8BITMIME") == 0)
					o->body8 = true;
				else if (strcasecmp(v, "7BIT") != 0)
					die(EX_USAGE_, "bad -B value \"%s\": want 7BIT or 8BITMIME",
					    v);
				goto next;
			case 'h':
			case 'L':
			case 'O':
			case 'X':
			case 'p':
				(void)optval(argc, argv, &i, p + 1, c);
				goto next;
			case 'o':
				/* -oi is -i; other sendmail.cf options mean nothing here. */
				if (p[1] == 'i' && p[2] == 0)
					o->ignore_dots = true;
				else if (p[1] == 0)
					die(EX_USAGE_, "option -o requires a letter");
				goto next;
			case 'e':
			case 'A':
				goto next;
			case 'b':
				switch (p[1]) {
				case 'm':
				case 'p':
				case 'i':
				case 's':
					if (p[2] != 0)
						die(EX_USAGE_, "unsupported mode -%s", p);
					o->mode = p[1];
					break;
				case 0:
					die(EX_USAGE_, "option -b requires a mode");
				default:
					die(EX_USAGE_, "unsupported mode -%s", p);
				}
				goto next;
			case 'q':
				/* -q flushes; -qINTERVAL (a daemon's timer) too. */
				o->mode = 'q';
				goto next;
			default:
				die(EX_USAGE_, "unknown option -%c (in \"%s\")", c, a);
			}
		}
	next:;
	}
	o->rcpt = argv + i;
	o->nrcpt = argc - i;
}

/* Growable list of envelope recipients, kept unique. */
struct rcpts {
	char **v;
	int n, cap;
	bool utf8;
	const char *origin; /* domain for unqualified names */
	const char *where;  /* "command line" or "To: field" */
	int ex;		    /* exit code for a bad address */
};

static int rcpt_add(const char *a, size_t len, void *arg)
{
	struct rcpts *r = arg;
	char buf[QUEUE_ADDR_MAX + 2];
	const char *why;
	bool utf8 = false;

	if (len == 0)
		die(r->ex, "empty recipient address in %s", r->where);
	if (memchr(a, '@', len) == NULL) {
		/* An unqualified name, as sendmail allows: user becomes user@origin. */
		if (snprintf(buf, sizeof(buf), "%.*s@%s", (int)len, a, r->origin) >=
		    (int)sizeof(buf))
			die(r->ex, "bad recipient address \"%.*s\": too long", (int)len, a);
	} else if (len <= QUEUE_ADDR_MAX) {
		memcpy(buf, a, len);
		buf[len] = 0;
	} else {
		die(r->ex, "bad recipient address \"%.40s...\": longer than 254 octets", a);
	}
	if (queue_addr_check(buf, strlen(buf), &utf8, &why) < 0)
		die(r->ex, "bad recipient address \"%s\" in %s: %s", buf, r->where, why);
	r->utf8 |= utf8;
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->v[i], buf) == 0)
			return 0;
	if (r->n >= MAX_RCPT)
		die(EX_USAGE_, "too many recipients (more than %d)", MAX_RCPT);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->v = realloc(r->v, (size_t)r->cap * sizeof(*r->v));
		if (r->v == NULL)
			die(EX_TEMPFAIL_, "out of memory");
	}
	if ((r->v[r->n++] = strdup(buf)) == NULL)
		die(EX_TEMPFAIL_, "out of memory");
	return 0;
}

static char *read_stdin(uint64_t limit, size_t *lenp)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);

	if (buf == NULL)
		die(EX_TEMPFAIL_, "out of memory");
	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				die(EX_TEMPFAIL_, "out of memory");
		}
		n = read(0, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(EX_TEMPFAIL_, "cannot read the message: %s", strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > limit)
			die(EX_DATAERR_, "message too large (over %llu bytes)",
			    (unsigned long long)limit);
	}
	*lenp = len;
	return buf;
}

/* "Full Name" as an RFC 5322 phrase: quoted, or RFC 2047 encoded when not ASCII. */
static void phrase(char *out, size_t cap, const char *name)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	bool ascii = true;
	size_t o = 0, n = strlen(name);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] >= 0x80)
			ascii = false;
	if (ascii) {
		out[o++] = '"';
		for (size_t i = 0; i < n && o + 3 < cap; i++) {
			if (name[i] == '"' || name[i] == '\\')
				out[o++] = '\\';
			out[o++] = name[i];
		}
		out[o++] = '"';
		out[o] = 0;
		return;
	}
	o = (size_t)snprintf(out, cap, "=?UTF-8?B?");
	for (size_t i = 0; i < n && o + 8 < cap; i += 3) {
		unsigned v = (unsigned char)name[i] << 16;

		if (i + 1 < n)
			v |= (unsigned char)name[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)name[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	snprintf(out + o, cap - o, "?=");
}

/* Where a message goes: the spool (root, or no privilege at all), or the
 * maildrop (a user through the setgid bit). */
struct sink {
	struct spool *sp;		   /* NULL: the maildrop */
	const char *spool;		   /* the spool's path */
	gid_t drop_gid;			   /* the setgid group, taken back to write */
	const struct queue_dkim *dkim;	   /* signs before the spool (dmtad signs the maildrop's) */
	const struct queue_users *users;   /* [user NAME] */
	const struct queue_egress *egress; /* [pool NAME]: the pools a message may name */
	char poolwhy[180];		   /* why its pool was refused */
	const char *user;		   /* the submitting uid's name */
	const char *why;		   /* why signing failed */
	const char *refused;		   /* why the message was refused (-EBADMSG) */
};

static int queue_durable(struct sink *k, struct queue_env *env, const void *msg, size_t len,
			 char *id);

/*
 * Make the message durable (for -bs and the plain mode alike); its id
 * (queue id or maildrop name) into id. Into the spool: with the [user
 * NAME] defaults, then the message's X-Dmta-* fields, which are removed
 * (queue_msg.h), then DKIM-signed when a [dkim DOMAIN] covers its From.
 * Into the maildrop: the fields are only checked, so that a bad one is
 * refused now rather than dropped by dmtad; dmtad takes them, and applies
 * the defaults, when it picks the file up. -EBADMSG: refused (*why and
 * k->refused say why) or it cannot be signed correctly (k->why).
 */
static int queue_message(void *arg, struct queue_env *env, const void *msg, size_t len, char *id,
			 const char **why)
{
	struct sink *k = arg;
	struct queue_buf out = {0};
	struct queue_env scratch = {0};
	long n;
	int rc;

	k->why = k->refused = NULL;
	rc = queue_buf_add(&out, msg, len) < 0 ? -ENOMEM : 0;
	if (rc == 0) {
		n = k->sp ? queue_users_take(k->users, k->user, env, out.p, &out.len, &k->refused)
			  : queue_users_take(NULL, NULL, &scratch, out.p, &out.len, &k->refused);
		rc = n < 0 ? (int)n : 0;
		if (rc == 0 && queue_egress_check_pool(k->egress, k->sp ? env->pool : scratch.pool,
						       k->poolwhy, sizeof(k->poolwhy)) < 0) {
			rc = -EBADMSG;
			k->refused = k->poolwhy;
		}
		if (rc == -EBADMSG)
			*why = k->refused;
		else
			k->refused = NULL;
	}
	queue_env_free(&scratch);
	if (rc == 0 && k->sp == NULL) {
		rc = queue_durable(k, env, msg, len, id);
	} else if (rc == 0) {
		if (k->dkim != NULL && queue_dkim_active(k->dkim))
			rc = queue_dkim_sign_msg(k->dkim, &out, time(NULL), &k->why);
		if (rc == -EBADMSG)
			*why = "The From field must name one address (DKIM)";
		if (rc >= 0)
			rc = queue_durable(k, env, out.p, out.len, id);
	}
	queue_buf_free(&out);
	return rc;
}

static int queue_durable(struct sink *k, struct queue_env *env, const void *msg, size_t len,
			 char *id)
{
	struct spool_txn *t;
	int rc;

	if (k->sp == NULL) {
		if (setegid(k->drop_gid) != 0)
			return -errno;
		rc = spool_drop_write(k->spool, env, msg, len, id, 64);
		if (setegid(getgid()) != 0)
			abort(); /* never go on with the group */
		return rc;
	}
	for (int tries = 0;; tries++) {
		rc = spool_begin(k->sp, true, &t);
		if (rc == 0) {
			rc = spool_put(t, env, msg, len);
			if (rc < 0)
				spool_abort(t);
			else
				rc = spool_commit(t);
		}
		if (rc != -EAGAIN || tries >= 3)
			break;
		usleep(10000);
	}
	if (rc == 0) {
		queue_id_fmt(env->qid, id);
		(void)spool_wake(spool_path(k->sp), "wake");
	}
	return rc;
}

static bool privileged; /* a user through the setgid bit */

/*
 * LeakSanitizer, in sanitized test builds, cannot trace a setgid process
 * (the kernel makes it undumpable) and would fail the exit of every run;
 * it is told to stay off there. Unused without the sanitizer.
 */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return privileged;
}

/*
 * A user running the setgid binary: only the default configuration, no
 * queue administration, and the group only while writing the maildrop.
 * Returns the configuration to use.
 */
static struct dmta_conf *privileged_setup(const struct opts *o, struct sink *k)
{
	char err[512];
	struct dmta_conf *conf;

	if (o->conf != NULL)
		die(EX_NOPERM_, "-C is for root only");
	if (getenv("DMTA_CONFIG") != NULL)
		die(EX_NOPERM_, "$DMTA_CONFIG is for root only: unset it");
	if (o->mode == 'q' || o->mode == 'p')
		die(EX_NOPERM_, "%s is for root only", o->mode == 'q' ? "-q" : "listing the queue");
	conf = dmta_conf_load(DMTA_CONF_DEFAULT_PATH, err, sizeof(err));
	if (conf == NULL)
		die(EX_CONFIG_, "%s", err);
	return conf;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct dmta_conf *conf = NULL;
	struct spool *sp;
	struct sink snk = {0};
	char *spool_path_copy = NULL;
	struct queue_env env = {0};
	struct queue_msg m;
	struct queue_buf out = {0};
	struct queue_dkim *dkim;
	struct queue_users *users;
	struct queue_egress *egress;
	struct rcpts r = {0};
	char host[256], user_addr[512], sender[512], id[64], uname[256];
	const char *why, *user;
	uint64_t limit;
	unsigned mflags;
	size_t inlen;
	char *in, *gecos = NULL;
	int ex, rc;

	/* The setgid group is given up first, and taken back only to write
	 * the maildrop (queue_message). */
	if (getegid() != getgid() || geteuid() != getuid()) {
		privileged = getuid() != 0; /* root may do anything anyway */
		snk.drop_gid = getegid();
		if (setegid(getgid()) != 0) {
			fprintf(stderr, "dmta-sendmail: cannot give up group %u: %s\n",
				(unsigned)snk.drop_gid, strerror(errno));
			exit(EX_SOFTWARE_);
		}
	}
	dmta_log_init("dmta-sendmail", DMTA_LOG_ERR);
	parse_args(argc, argv, &o);
	{
		/* Installed as mailq or newaliases, it behaves as -bp or -bi. */
		const char *base = strrchr(argv[0], '/');

		base = base ? base + 1 : argv[0];
		if (strcmp(base, "mailq") == 0)
			o.mode = 'p';
		else if (strcmp(base, "newaliases") == 0)
			o.mode = 'i';
	}

	/* Arguments that become header or envelope text: no control characters. */
	if (o.sender && has_ctl(o.sender))
		die(EX_USAGE_, "bad sender address: control character");
	if (o.fullname && has_ctl(o.fullname))
		die(EX_USAGE_, "bad full name (-F): control character");
	if (o.fullname && queue_utf8_valid(o.fullname, strlen(o.fullname)) < 0)
		die(EX_USAGE_, "bad full name (-F): not UTF-8");
	if (o.envid) {
		if (strlen(o.envid) == 0 || strlen(o.envid) > 100)
			die(EX_USAGE_, "bad -V value: 1 to 100 characters");
		for (const unsigned char *p = (const unsigned char *)o.envid; *p; p++)
			if (*p < 33 || *p > 126)
				die(EX_USAGE_, "bad -V value: printable ASCII only");
	}
	for (int i = 0; i < o.nrcpt; i++) {
		if (o.rcpt[i][0] == '-')
			die(EX_NOUSER_,
			    "bad recipient address \"%s\": looks like an option "
			    "(options must come before recipients)",
			    o.rcpt[i]);
		if (has_ctl(o.rcpt[i]))
			die(EX_NOUSER_, "bad recipient address: control character in argument %d",
			    i + 1);
	}

	if (o.mode == 'i') {
		/* newaliases: dmta delivers nothing locally, so it has none. */
		printf("dmta-sendmail: no aliases database: nothing to rebuild\n");
		exit(EX_OK_);
	}
	if (privileged) {
		struct spool_opts so = {0};

		conf = privileged_setup(&o, &snk);
		if (spool_opts_from_conf(conf, &so) < 0)
			exit(EX_CONFIG_);
		snk.spool = spool_path_copy = strdup(so.path);
		if (snk.spool == NULL)
			die(EX_TEMPFAIL_, "out of memory");
		sp = NULL;
	} else {
		sp = queue_tool_open(o.conf, o.mode == 'p', o.mode == 'm' || o.mode == 's', &conf,
				     &ex);
		if (sp == NULL)
			exit(ex);
		snk.sp = sp;
		snk.spool = spool_path(sp);
	}
	if (o.mode == 'p') {
		rc = queue_tool_list(sp, false, stdout);
		if (rc < 0)
			die(EX_TEMPFAIL_, "cannot list the queue: %s", spool_strerror(rc));
		exit(EX_OK_);
	}
	if (o.mode == 'q') {
		rc = spool_wake(spool_path(sp), "flush");
		if (rc < 0)
			die(EX_UNAVAILABLE_, "cannot flush the queue: the mail system is down (%s)",
			    strerror(-rc));
		exit(EX_OK_);
	}

	{
		struct spool_opts so = {0};

		if (spool_opts_from_conf(conf, &so) < 0)
			exit(EX_CONFIG_);
		limit = so.message_size_limit;
	}
	{
		char err[1024];

		/* Keys are checked before the message is read: a bad one is the
		 * operator's error, reported the same way for every message. A
		 * user's message goes through the maildrop, and dmtad signs it
		 * when it picks it up: the keys are not the user's to read. */
		dkim = snk.sp != NULL ? queue_dkim_conf_load(conf, err, sizeof(err))
				      : queue_dkim_new();
		if (dkim == NULL && snk.sp == NULL)
			snprintf(err, sizeof(err), "out of memory");
		if (dkim == NULL)
			die(errno == ENOMEM ? EX_TEMPFAIL_ : EX_CONFIG_, "%s", err);
		snk.dkim = dkim;
	}
	{
		char err[1024];
		struct passwd *pw = getpwuid(getuid());

		/* Defaults of the local user who runs us ([user NAME]). */
		snk.users = users = queue_users_load(conf, err, sizeof(err));
		if (users == NULL)
			die(errno == ENOMEM ? EX_TEMPFAIL_ : EX_CONFIG_, "%s", err);
		rc = queue_egress_load(conf, &egress, err, sizeof(err));
		if (rc != 0)
			die(rc == -ENOMEM ? EX_TEMPFAIL_ : EX_CONFIG_, "%s", err);
		snk.egress = egress;
		snprintf(uname, sizeof(uname), "%s", pw ? pw->pw_name : "nobody");
		snk.user = user = uname;
	}
	r.origin = queue_myhostname(conf, host, sizeof(host));
	if (o.mode == 's') {
		struct sendmail_bs b = {.hostname = r.origin,
					.size_limit = limit,
					.uid = getuid(),
					.queue = queue_message,
					.arg = &snk,
					.in = 0,
					.out = 1};

		ex = sendmail_bs_run(&b);
		queue_users_free(users);
		queue_egress_free(egress);
		queue_dkim_free(dkim);
		spool_close(sp);
		free(spool_path_copy);
		dmta_conf_free(conf);
		return ex;
	}

	{
		struct passwd *pw = getpwuid(getuid());

		snprintf(user_addr, sizeof(user_addr), "%s@%s", user, r.origin);
		if (o.fullname == NULL && pw && pw->pw_gecos && pw->pw_gecos[0] &&
		    !has_ctl(pw->pw_gecos)) {
			char *comma;

			o.fullname = gecos = strdup(pw->pw_gecos);
			if (o.fullname && (comma = strchr(o.fullname, ',')) != NULL)
				*comma = 0;
			if (o.fullname && (!o.fullname[0] ||
					   queue_utf8_valid(o.fullname, strlen(o.fullname)) < 0))
				o.fullname = NULL;
		}
	}

	/* The envelope sender. */
	if (o.sender == NULL) {
		snprintf(sender, sizeof(sender), "%s", user_addr);
	} else {
		size_t n = strlen(o.sender);
		const char *s = o.sender;
		bool utf8 = false;

		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		if (n > QUEUE_ADDR_MAX)
			die(EX_USAGE_, "bad sender address: longer than 254 octets");
		memcpy(sender, s, n);
		sender[n] = 0;
		if (n > 0 && memchr(sender, '@', n) == NULL) {
			if (snprintf(sender + n, sizeof(sender) - n, "@%s", r.origin) >=
			    (int)(sizeof(sender) - n))
				die(EX_USAGE_, "bad sender address: too long");
		}
		if (sender[0] && queue_addr_check(sender, strlen(sender), &utf8, &why) < 0)
			die(EX_USAGE_, "bad sender address \"%s\": %s", sender, why);
		r.utf8 |= utf8;
	}

	/* Recipients from the command line. */
	r.where = "the command line";
	r.ex = EX_NOUSER_;
	for (int i = 0; i < o.nrcpt; i++) {
		rc = queue_addr_list(o.rcpt[i], strlen(o.rcpt[i]), rcpt_add, &r);
		if (rc < 0)
			die(EX_NOUSER_,
			    "bad recipient address \"%s\": unbalanced quote, "
			    "comment or bracket",
			    o.rcpt[i]);
	}
	if (!o.extract && r.n == 0)
		die(EX_USAGE_, "no recipients: name them as arguments or use -t");

	in = read_stdin(limit, &inlen);
	rc = queue_msg_parse(&m, in, inlen, o.ignore_dots, &why);
	if (rc == -ENOMEM)
		die(EX_TEMPFAIL_, "out of memory");
	if (rc < 0)
		die(EX_DATAERR_, "%s", why);
	free(in);

	if (o.extract) {
		static const char *const fields[] = {"To", "Cc", "Bcc"};

		for (size_t f = 0; f < 3; f++) {
			struct queue_hdr *h;
			char where[32];

			snprintf(where, sizeof(where), "the %s: field", fields[f]);
			r.where = where;
			for (size_t k = 0; (h = queue_msg_find(&m, fields[f], k)) != NULL; k++) {
				char *v = queue_msg_value(h);

				if (v == NULL)
					die(EX_TEMPFAIL_, "out of memory");
				if (queue_addr_list(v, strlen(v), rcpt_add, &r) < 0)
					die(EX_DATAERR_, "malformed address list in %s", where);
				free(v);
			}
		}
		if (r.n == 0)
			die(EX_USAGE_, "no recipients: none on the command line or in To/Cc/Bcc");
	}
	queue_msg_remove(&m, "Bcc");

	/* The fields every message must have (RFC 5322 section 3.6). */
	if (queue_msg_find(&m, "From", 0) == NULL) {
		char from[1024], ph[512];
		const char *addr = sender[0] ? sender : user_addr;

		if (o.fullname && o.fullname[0]) {
			phrase(ph, sizeof(ph), o.fullname);
			/* Never a cut header: a From without its address's end. */
			if ((size_t)snprintf(from, sizeof(from), "%s <%s>", ph, addr) >=
			    sizeof(from))
				die(EX_DATAERR_,
				    "full name and address too long for a From: field");
		} else {
			snprintf(from, sizeof(from), "%s", addr);
		}
		if (queue_msg_add(&m, "From", from) < 0)
			die(EX_TEMPFAIL_, "out of memory");
	}
	if (queue_msg_find(&m, "Date", 0) == NULL) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		if (queue_msg_add(&m, "Date", date) < 0)
			die(EX_TEMPFAIL_, "out of memory");
	}
	if (queue_msg_find(&m, "Message-ID", 0) == NULL) {
		char mid[512];
		uint64_t rnd = 0;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
		snprintf(mid, sizeof(mid), "<%llx.%llx@%s>",
			 (unsigned long long)(dmta_wall_ns() / 1000), (unsigned long long)rnd,
			 r.origin);
		if (queue_msg_add(&m, "Message-ID", mid) < 0)
			die(EX_TEMPFAIL_, "out of memory");
	}
	if (queue_msg_render(&m, &out, &mflags) < 0)
		die(EX_TEMPFAIL_, "out of memory");
	queue_msg_free(&m);
	if (out.len > limit)
		die(EX_DATAERR_, "message too large (over %llu bytes)", (unsigned long long)limit);

	/* The envelope. */
	if (queue_env_set_sender(&env, sender) < 0 || queue_env_set_envid(&env, o.envid) < 0)
		die(EX_TEMPFAIL_, "out of memory");
	for (int i = 0; i < r.n; i++)
		if (queue_env_add_rcpt(&env, r.v[i], NULL, o.notify) < 0)
			die(EX_TEMPFAIL_, "out of memory");
	env.ret = o.ret;
	if ((mflags & QUEUE_MSG_8BIT_BODY) || o.body8)
		env.flags |= QUEUE_F_8BITMIME;
	if ((mflags & QUEUE_MSG_8BIT_HDR) || r.utf8)
		env.flags |= QUEUE_F_SMTPUTF8;

	/* Durable before saying anything is queued. */
	rc = queue_message(&snk, &env, out.p ? out.p : "", out.len, id, &why);
	/* A failure to sign is temporary (75), as with a signing milter; a
	 * message that cannot be signed correctly is refused (65), as is one
	 * with a bad X-Dmta-* field. */
	if (rc == -EBADMSG && snk.refused != NULL)
		die(EX_DATAERR_, "%s", snk.refused);
	if (rc == -EBADMSG)
		die(EX_DATAERR_, "cannot DKIM-sign the message: %s", snk.why);
	if (rc < 0 && snk.why != NULL)
		die(EX_TEMPFAIL_, "cannot DKIM-sign the message: %s", snk.why);
	if (rc < 0)
		die(queue_tool_exit(rc) == EX_CANTCREAT_ ? EX_CANTCREAT_ : EX_TEMPFAIL_,
		    "cannot queue the message: %s", spool_strerror(rc));
	if (o.verbose)
		fprintf(stderr, "dmta-sendmail: queued as %s\n", id);
	queue_env_free(&env);
	queue_buf_free(&out);
	for (int i = 0; i < r.n; i++)
		free(r.v[i]);
	free(r.v);
	free(gecos);
	queue_users_free(users);
	queue_egress_free(egress);
	queue_dkim_free(dkim);
	spool_close(sp);
	free(spool_path_copy);
	dmta_conf_free(conf);
	return EX_OK_;
}
