/*
 * dmta-inject - bulk injection into dmta's spool from JSON Lines.
 *
 * SYNOPSIS
 *	dmta-inject [-c FILE] [-b BATCH] [-j THREADS] [--ids] [-q] < messages.jsonl
 *
 * DESCRIPTION
 *	One message per line (DESIGN.md section 3, queue/queue_json.h):
 *	{"from": "...", "to": ["...", ...], "data": "RFC 5322 text"} or
 *	"path" instead of "data"; optional "notify", "ret", "envid", and
 *	"pool", "priority" ("high", "normal", "bulk") and "tenant" for
 *	traffic control. X-Dmta-Pool, X-Dmta-Priority and X-Dmta-Tenant
 *	fields in the message are taken as dmta-sendmail takes them
 *	(queue_msg.h) and removed; the line's fields override them.
 *
 *	Messages are checked and normalised (CRLF, long lines; queue_msg.h)
 *	while they are read, then written in batches: BATCH messages (default
 *	500), 4 MiB, or whatever arrived within 100 ms, whichever comes
 *	first, in one spool transaction each. The spool's writer lock is held
 *	only while a prepared batch is written and fsync'ed, so the daemon's
 *	own commits are not held up while input trickles in. The batch size
 *	trades injection rate against how long the daemon may wait for the
 *	lock (bench/RESULTS.md "## queue": 2000 x 4 KiB per batch raised the
 *	daemon's p99 commit time to 20-32 ms from 8-10 ms; 200 left it
 *	alone; 500 keeps most of the rate).
 *
 *	With [dkim DOMAIN] sections, every message whose From domain one of
 *	them covers is signed (queue_dkim.h) before its batch is written, so
 *	the spool holds signed messages. A batch is signed in parallel by a
 *	pool of THREADS signers (default: one per online core, this thread
 *	included): an RSA signature costs far more than everything else done
 *	per message. While more input waits, a full batch is signed by the
 *	other threads as this one reads the next, and is written just
 *	before it. Keys are loaded and checked once, at start.
 *
 *	A message is acknowledged only after its batch is durable: with
 *	--ids, "LINE QUEUE-ID" is printed on stdout for each message then
 *	(and flushed). Bad lines are reported as "dmta-inject: line N: reason"
 *	on stderr and skipped; the good ones are queued. A progress bar is
 *	drawn on stderr when it is a terminal (-q: none), and a summary line
 *	ends the run.
 *
 * DIAGNOSTICS
 *	Exit 0 when every line was queued, 65 when some lines were refused
 *	(the others are queued), 73 when the spool cannot be created, 75 when
 *	the spool is full or fails (messages of committed batches are queued,
 *	and listed with --ids) or when some signatures could not be made
 *	(those messages are not queued; the others are), 64 on usage errors,
 *	78 on configuration errors (DKIM keys included). With DKIM on, a
 *	message whose From field does not name exactly one valid address is
 *	a refused line: it cannot be signed correctly.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_addr.h"
#include "queue/queue_dkim.h"
#include "queue/queue_egress.h"
#include "queue/queue_json.h"
#include "queue/queue_msg.h"
#include "queue/queue_names.h"
#include "queue/spool.h"
#include "tools/queue/queue_tool.h"

#define DEFAULT_BATCH 500
#define BATCH_BYTES   (4u << 20)
#define BATCH_WAIT_NS (100 * DMTA_NS_PER_MS)

struct pending {
	uint64_t line;
	struct queue_env env;
	struct queue_buf msg;
	int sign_rc; /* queue_dkim_sign_msg()'s result */
	const char *sign_why;
};

/*
 * The signer pool: the main thread hands it a whole batch and signs along
 * with the workers, each taking the next unsigned message, until none is
 * left. Messages are independent and the signer is read-only, so nothing
 * but the batch counters is shared.
 */
struct signers {
	const struct queue_dkim *dkim;
	pthread_t *th;
	unsigned nth; /* worker threads, besides the main one */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	struct pending *b;
	size_t nb;
	size_t next;   /* next message to sign (atomic) */
	size_t left;   /* messages not yet signed (under mu) */
	unsigned busy; /* workers inside sign_some() (under mu) */
	uint64_t gen;  /* batch number, under mu */
	time_t now;
	bool stop;
};

struct inject {
	struct spool *sp;
	uint64_t limit;
	unsigned batch_max;
	bool ids, progress;
	struct pending *b; /* the batch being read */
	size_t nb;
	size_t bytes;
	struct pending *sb; /* a full batch the signers work on (DKIM only) */
	size_t snb;
	uint64_t first_ns;	     /* when the oldest message of the batch was read */
	struct signers *sg;	     /* NULL: DKIM off */
	struct queue_egress *egress; /* [pool NAME]: the pools a line may name */
	/* totals */
	uint64_t queued, rejected, sign_failed, rcpts, qbytes, lines, in_bytes, in_size;
	uint64_t start_ns, last_draw_ns;
};

static void draw(struct inject *in, bool final)
{
	uint64_t now = dmta_now_ns();
	double secs = (double)(now - in->start_ns) / 1e9;
	char bar[33];
	int fill = 0;

	if (!in->progress || (!final && now - in->last_draw_ns < 100 * DMTA_NS_PER_MS))
		return;
	in->last_draw_ns = now;
	if (in->in_size)
		fill = (int)(32.0 * (double)in->in_bytes / (double)in->in_size);
	if (fill > 32)
		fill = 32;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, in->in_size ? '.' : ' ', (size_t)(32 - fill));
	bar[32] = 0;
	fprintf(stderr, "\r[%s] %" PRIu64 " queued, %" PRIu64 " rejected, %.0f msg/s%s", bar,
		in->queued, in->rejected, secs > 0 ? (double)in->queued / secs : 0.0,
		final ? "\n" : "");
}

static void __attribute__((format(printf, 3, 4)))
say_line(struct inject *in, uint64_t line, const char *fmt, ...)
{
	va_list ap;

	if (in->progress)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "dmta-inject: line %" PRIu64 ": ", line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Sign messages of the current batch until there is none left. */
static void sign_some(struct signers *sg, bool worker)
{
	size_t i, done = 0;

	while ((i = __atomic_fetch_add(&sg->next, 1, __ATOMIC_RELAXED)) < sg->nb) {
		struct pending *p = &sg->b[i];

		p->sign_rc = queue_dkim_sign_msg(sg->dkim, &p->msg, sg->now, &p->sign_why);
		done++;
	}
	pthread_mutex_lock(&sg->mu);
	sg->left -= done;
	sg->busy -= worker;
	if (sg->left == 0 || sg->busy == 0)
		pthread_cond_broadcast(&sg->done);
	pthread_mutex_unlock(&sg->mu);
}

static void *signer_main(void *arg)
{
	struct signers *sg = arg;
	uint64_t seen = 0;

	for (;;) {
		pthread_mutex_lock(&sg->mu);
		while (!sg->stop && sg->gen == seen)
			pthread_cond_wait(&sg->go, &sg->mu);
		if (sg->stop) {
			pthread_mutex_unlock(&sg->mu);
			return NULL;
		}
		seen = sg->gen;
		sg->busy++;
		pthread_mutex_unlock(&sg->mu);
		sign_some(sg, true);
	}
}

static struct signers *signers_start(const struct queue_dkim *dkim, unsigned threads)
{
	struct signers *sg = calloc(1, sizeof(*sg));

	if (sg == NULL)
		return NULL;
	sg->dkim = dkim;
	pthread_mutex_init(&sg->mu, NULL);
	pthread_cond_init(&sg->go, NULL);
	pthread_cond_init(&sg->done, NULL);
	sg->th = calloc(threads, sizeof(*sg->th));
	for (unsigned i = 0; sg->th && i + 1 < threads; i++) {
		if (pthread_create(&sg->th[i], NULL, signer_main, sg) != 0)
			break; /* fewer signers: slower, not wrong */
		sg->nth++;
	}
	return sg;
}

static void signers_stop(struct signers *sg)
{
	if (sg == NULL)
		return;
	pthread_mutex_lock(&sg->mu);
	sg->stop = true;
	pthread_cond_broadcast(&sg->go);
	pthread_mutex_unlock(&sg->mu);
	for (unsigned i = 0; i < sg->nth; i++)
		pthread_join(sg->th[i], NULL);
	free(sg->th);
	pthread_mutex_destroy(&sg->mu);
	pthread_cond_destroy(&sg->go);
	pthread_cond_destroy(&sg->done);
	free(sg);
}

/* Hand batch @p b to the signers and return at once. */
static void sign_start(struct signers *sg, struct pending *b, size_t nb)
{
	pthread_mutex_lock(&sg->mu);
	/* A worker that woke late for the last batch may still be looking
	 * at it: the counters are reset only when none is. */
	while (sg->busy > 0)
		pthread_cond_wait(&sg->done, &sg->mu);
	sg->b = b;
	sg->nb = nb;
	sg->now = time(NULL);
	__atomic_store_n(&sg->next, 0, __ATOMIC_RELAXED);
	sg->left = nb;
	sg->gen++;
	pthread_cond_broadcast(&sg->go);
	pthread_mutex_unlock(&sg->mu);
}

/*
 * Sign what is left of the batch along with the workers and wait for the
 * rest, then drop the messages that could not be signed (reported; a
 * message is never queued unsigned when a signature was due). Returns how
 * many remain, in order.
 */
static size_t sign_finish(struct inject *in, struct pending *b, size_t nb)
{
	struct signers *sg = in->sg;
	size_t k = 0;

	sign_some(sg, false);
	pthread_mutex_lock(&sg->mu);
	while (sg->left > 0)
		pthread_cond_wait(&sg->done, &sg->mu);
	pthread_mutex_unlock(&sg->mu);
	for (size_t i = 0; i < nb; i++) {
		struct pending *p = &b[i];

		if (p->sign_rc < 0) {
			say_line(in, p->line, "cannot DKIM-sign the message: %s%s", p->sign_why,
				 p->sign_rc == -EBADMSG ? "" : " (temporary; not queued)");
			if (p->sign_rc == -EBADMSG)
				in->rejected++;
			else
				in->sign_failed++;
			queue_env_free(&p->env);
			queue_buf_free(&p->msg);
			continue;
		}
		if (k != i)
			b[k] = *p;
		k++;
	}
	return k;
}

static void free_batch(struct pending *b, size_t nb)
{
	for (size_t i = 0; i < nb; i++) {
		queue_env_free(&b[i].env);
		queue_buf_free(&b[i].msg);
	}
}

/* Write a batch in one transaction. 0 or -errno (nothing of it queued). */
static int commit_batch(struct inject *in, struct pending *b, size_t nb)
{
	struct spool_txn *t;
	int rc = 0;
	char id[17];

	if (nb == 0)
		return 0;
	for (int tries = 0;; tries++) {
		t = NULL;
		rc = spool_begin(in->sp, true, &t);
		for (size_t i = 0; rc == 0 && i < nb; i++) {
			struct pending *p = &b[i];

			p->env.arrival_ns = 0;
			p->env.next_attempt_ns = 0;
			rc = spool_put(t, &p->env, p->msg.p ? p->msg.p : "", p->msg.len);
		}
		if (rc == 0)
			rc = spool_commit(t);
		else if (t)
			spool_abort(t);
		if (rc != -EAGAIN || tries >= 3)
			break;
		usleep(10000);
	}
	if (rc == 0) {
		for (size_t i = 0; i < nb; i++) {
			struct pending *p = &b[i];

			in->queued++;
			in->rcpts += p->env.nrcpt;
			in->qbytes += p->msg.len;
			if (in->ids)
				printf("%" PRIu64 " %s\n", p->line, queue_id_fmt(p->env.qid, id));
		}
		if (in->ids)
			fflush(stdout);
		(void)spool_wake(spool_path(in->sp), "wake");
	}
	free_batch(b, nb);
	return rc;
}

/*
 * Queue what has been read. With DKIM on, a batch that filled up while
 * more input is waiting (@p full) is handed to the signers and committed
 * at the next flush, so that the workers sign it while this thread reads
 * the next one; any other batch is signed and committed at once, so that
 * a slow trickle of input, or a writer waiting for --ids, is never held
 * back by a batch. Batches are committed
 * in order. 0 or -errno (then nothing read since the last commit is
 * queued).
 */
static int flush_batch(struct inject *in, bool full)
{
	struct pending *tmp;
	int rc = 0;

	if (in->snb) {
		rc = commit_batch(in, in->sb, sign_finish(in, in->sb, in->snb));
		in->snb = 0;
	}
	if (rc == 0 && in->nb && in->sg) {
		sign_start(in->sg, in->b, in->nb);
		if (full && in->sg->nth > 0) {
			tmp = in->sb;
			in->sb = in->b;
			in->b = tmp;
			in->snb = in->nb;
			in->nb = 0;
			in->bytes = 0;
			return 0;
		}
		in->nb = sign_finish(in, in->b, in->nb);
	}
	if (rc == 0)
		rc = commit_batch(in, in->b, in->nb);
	else
		free_batch(in->b, in->nb);
	in->nb = 0;
	in->bytes = 0;
	return rc;
}

static char *read_file(const char *path, uint64_t limit, size_t *len, const char **why)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		*why = strerror(errno);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > limit) {
		*why = S_ISREG(st.st_mode) ? "message too large" : "not a regular file";
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (buf == NULL || got != (size_t)st.st_size) {
		*why = buf ? "short read" : "out of memory";
		free(buf);
		return NULL;
	}
	*len = got;
	return buf;
}

/* Check and prepare one line; 0 added to the batch, -1 rejected (reported). */
static int take_line(struct inject *in, uint64_t lineno, const char *line, size_t len)
{
	struct queue_inject rec;
	struct queue_names seen = {0};
	struct pending *p;
	struct queue_msg m;
	const char *why;
	char poolwhy[180];
	const char *data;
	char *filebuf = NULL;
	size_t dlen;
	unsigned mflags;
	bool utf8 = false, u;
	long n;
	int rc;

	rc = queue_json_inject(line, len, &rec, &why);
	if (rc < 0) {
		say_line(in, lineno, "%s", why);
		return -1;
	}
	if (rec.from[0] && queue_addr_check(rec.from, strlen(rec.from), &utf8, &why) < 0) {
		say_line(in, lineno, "bad \"from\" address: %s", why);
		goto reject;
	}
	for (size_t i = 0; i < rec.nto; i++) {
		u = false;
		if (queue_addr_check(rec.to[i], strlen(rec.to[i]), &u, &why) < 0) {
			char msg[400];

			snprintf(msg, sizeof(msg), "bad \"to\" address \"%.254s\": %s", rec.to[i],
				 why);
			say_line(in, lineno, "%s", msg);
			goto reject;
		}
		utf8 |= u;
	}
	if (rec.envid && rec.envid[0] == '\0') {
		say_line(in, lineno, "%s", "bad \"envid\": 1 to 100 printable ASCII characters");
		goto reject;
	}
	if (rec.envid)
		for (const unsigned char *c = (const unsigned char *)rec.envid; *c; c++)
			if (*c < 33 || *c > 126 || c - (const unsigned char *)rec.envid >= 100) {
				say_line(in, lineno, "%s",
					 "bad \"envid\": 1 to 100 printable ASCII characters");
				goto reject;
			}
	if (rec.path) {
		filebuf = read_file(rec.path, in->limit, &dlen, &why);
		if (filebuf == NULL) {
			char msg[600];

			snprintf(msg, sizeof(msg), "\"path\" %.400s: %s", rec.path, why);
			say_line(in, lineno, "%s", msg);
			goto reject;
		}
		data = filebuf;
	} else {
		data = rec.data;
		dlen = rec.data_len;
	}
	if (dlen > in->limit) {
		say_line(in, lineno, "%s", "message too large");
		goto reject;
	}
	rc = queue_msg_parse(&m, data, dlen, true, &why);
	if (rc < 0) {
		say_line(in, lineno, "%s", rc == -ENOMEM ? "out of memory" : why);
		goto reject;
	}
	if (in->nb == 0)
		in->first_ns = dmta_now_ns();
	p = &in->b[in->nb];
	memset(p, 0, sizeof(*p));
	rc = queue_msg_render(&m, &p->msg, &mflags);
	queue_msg_free(&m);
	if (rc < 0 || p->msg.len > in->limit) {
		queue_buf_free(&p->msg);
		say_line(in, lineno, "%s", rc < 0 ? "out of memory" : "message too large");
		goto reject;
	}
	p->line = lineno;
	rc = queue_env_set_sender(&p->env, rec.from);
	if (rc == 0)
		rc = queue_env_set_envid(&p->env, rec.envid);
	/* Duplicates go once, found in one pass over however many there are. */
	if (rc == 0)
		rc = queue_names_init(&seen, rec.nto, false);
	for (size_t i = 0; rc == 0 && i < rec.nto; i++) {
		uint32_t *slot;

		if (queue_names_put(&seen, rec.to[i], &slot) == 1)
			rc = queue_env_add_rcpt(&p->env, rec.to[i], NULL, rec.notify);
	}
	queue_names_free(&seen);
	if (rc < 0) {
		queue_env_free(&p->env);
		queue_buf_free(&p->msg);
		say_line(in, lineno, "%s", "out of memory");
		goto reject;
	}
	/* X-Dmta-* fields never leave dmta; the line's own fields win over them. */
	n = queue_msg_take_fields(p->msg.p, &p->msg.len, &p->env, &why);
	if (n >= 0 && ((rec.pool && queue_env_set_pool(&p->env, rec.pool) < 0) ||
		       (rec.tenant && queue_env_set_tenant(&p->env, rec.tenant) < 0))) {
		n = -ENOMEM;
		why = "out of memory";
	}
	if (n >= 0 &&
	    queue_egress_check_pool(in->egress, p->env.pool, poolwhy, sizeof(poolwhy)) < 0) {
		n = -EBADMSG;
		why = poolwhy;
	}
	if (n < 0) {
		queue_env_free(&p->env);
		queue_buf_free(&p->msg);
		say_line(in, lineno, "%s", why);
		goto reject;
	}
	if (rec.priority >= 0)
		p->env.priority = (uint8_t)rec.priority;
	p->env.ret = rec.ret;
	if (mflags & QUEUE_MSG_8BIT_BODY)
		p->env.flags |= QUEUE_F_8BITMIME;
	if ((mflags & QUEUE_MSG_8BIT_HDR) || utf8)
		p->env.flags |= QUEUE_F_SMTPUTF8;
	in->nb++;
	in->bytes += p->msg.len;
	free(filebuf);
	queue_json_inject_free(&rec);
	return 0;
reject:
	free(filebuf);
	queue_json_inject_free(&rec);
	return -1;
}

/*
 * Whether the next line is already here (in stdio's buffer, or readable),
 * so that a full batch may be committed after the next one is read. A
 * writer that waits for --ids before writing more must not wait for us.
 * (XXX: stdio's buffer is looked at through glibc's FILE fields.)
 */
static bool input_ready(FILE *f)
{
	struct pollfd pfd = {.fd = fileno(f), .events = POLLIN};

	if (f->_IO_read_ptr < f->_IO_read_end)
		return true;
	return poll(&pfd, 1, 0) == 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: dmta-inject [-c FILE] [-b BATCH] [-j THREADS] [--ids] [-q] < "
			"messages.jsonl\n");
	exit(EX_USAGE_);
}

int main(int argc, char **argv)
{
	struct inject in = {.batch_max = DEFAULT_BATCH};
	const char *conf_path = NULL;
	struct dmta_conf *conf = NULL;
	bool quiet = false;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = ncpu > 0 ? (unsigned)ncpu : 1;
	struct queue_dkim *dkim;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t lineno = 0;
	struct stat st;
	int rc = 0, ex;

	dmta_log_init("dmta-inject", DMTA_LOG_ERR);
	for (int i = 1; i < argc; i++) {
		uint64_t v;

		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf_path = argv[++i];
		else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
			if (dmta_parse_u64(argv[++i], &v) < 0 || v == 0 || v > 1000000)
				usage();
			in.batch_max = (unsigned)v;
		} else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
			if (dmta_parse_u64(argv[++i], &v) < 0 || v == 0 || v > 1024)
				usage();
			threads = (unsigned)v;
		} else if (strcmp(argv[i], "--ids") == 0)
			in.ids = true;
		else if (strcmp(argv[i], "-q") == 0)
			quiet = true;
		else
			usage();
	}
	in.sp = queue_tool_open(conf_path, false, true, &conf, &ex);
	if (in.sp == NULL)
		return ex;
	{
		struct spool_opts so = {0};

		if (spool_opts_from_conf(conf, &so) < 0)
			return EX_CONFIG_;
		in.limit = so.message_size_limit;
	}
	{
		char err[1024];

		dkim = queue_dkim_conf_load(conf, err, sizeof(err));
		if (dkim == NULL) {
			ex = errno == ENOMEM ? EX_TEMPFAIL_ : EX_CONFIG_;
			fprintf(stderr, "dmta-inject: %s\n", err);
			spool_close(in.sp);
			dmta_conf_free(conf);
			return ex;
		}
	}
	{
		char err[1024];

		rc = queue_egress_load(conf, &in.egress, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "dmta-inject: %s\n", err);
			return rc == -ENOMEM ? EX_TEMPFAIL_ : EX_CONFIG_;
		}
	}
	if (queue_dkim_active(dkim) && (in.sg = signers_start(dkim, threads)) == NULL) {
		fprintf(stderr, "dmta-inject: out of memory\n");
		return EX_TEMPFAIL_;
	}
	in.b = calloc(in.batch_max, sizeof(*in.b));
	in.sb = calloc(in.batch_max, sizeof(*in.sb));
	if (in.b == NULL || in.sb == NULL) {
		fprintf(stderr, "dmta-inject: out of memory\n");
		return EX_TEMPFAIL_;
	}
	in.progress = !quiet && isatty(2);
	if (fstat(0, &st) == 0 && S_ISREG(st.st_mode))
		in.in_size = (uint64_t)st.st_size;
	in.start_ns = dmta_now_ns();

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		size_t len = (size_t)n;

		lineno++;
		in.in_bytes += len;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		if (memchr(line, 0, len) != NULL) {
			say_line(&in, lineno, "%s", "NUL byte in line");
			in.rejected++;
			continue;
		}
		if (take_line(&in, lineno, line, len) < 0)
			in.rejected++;
		if (in.nb >= in.batch_max || in.bytes >= BATCH_BYTES) {
			rc = flush_batch(&in, input_ready(stdin));
			if (rc < 0)
				break;
		} else if (in.nb && dmta_now_ns() - in.first_ns >= BATCH_WAIT_NS) {
			rc = flush_batch(&in, false);
			if (rc < 0)
				break;
		}
		draw(&in, false);
	}
	if (rc == 0)
		rc = flush_batch(&in, false);
	draw(&in, true);
	signers_stop(in.sg);
	queue_dkim_free(dkim);
	queue_egress_free(in.egress);
	free(line);
	free(in.b);
	free(in.sb);
	{
		double secs = (double)(dmta_now_ns() - in.start_ns) / 1e9;

		if (rc < 0)
			fprintf(stderr,
				"dmta-inject: stopped at line %" PRIu64 ": cannot queue: %s\n",
				lineno, spool_strerror(rc));
		fprintf(stderr,
			"dmta-inject: %" PRIu64 " messages queued (%" PRIu64 " recipients, %" PRIu64
			" bytes) in %.3f s, %.0f msg/s; %" PRIu64 " line%s rejected",
			in.queued, in.rcpts, in.qbytes, secs,
			secs > 0 ? (double)in.queued / secs : 0.0, in.rejected,
			in.rejected == 1 ? "" : "s");
		if (in.sign_failed)
			fprintf(stderr, "; %" PRIu64 " not signed (temporary failure)",
				in.sign_failed);
		fputc('\n', stderr);
	}
	spool_close(in.sp);
	dmta_conf_free(conf);
	if (rc < 0)
		return queue_tool_exit(rc) == EX_CANTCREAT_ ? EX_CANTCREAT_ : EX_TEMPFAIL_;
	if (in.sign_failed)
		return EX_TEMPFAIL_;
	return in.rejected ? EX_DATAERR_ : EX_OK_;
}
