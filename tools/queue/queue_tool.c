/*
 * queue_tool.c - see queue_tool.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_json.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "tools/queue/queue_tool.h"

int queue_tool_exit(int err)
{
	switch (err < 0 ? -err : err) {
	case EACCES:
	case EPERM:
	case EROFS:
	case ENOENT:
	case ENOTDIR:
	case EPROTO:
	case ENAMETOOLONG:
		return EX_CANTCREAT_;
	default:
		return EX_TEMPFAIL_;
	}
}

struct spool *queue_tool_open(const char *cli_conf, bool readonly, bool create,
			      struct dmta_conf **confp, int *ex)
{
	const char *path = dmta_conf_path(cli_conf);
	char err[512];
	struct dmta_conf *conf = dmta_conf_load(path, err, sizeof(err));
	struct spool_opts o = {0};
	struct spool *sp;

	if (conf == NULL) {
		fprintf(stderr, "%s: %s\n", dmta_log_progname(), err);
		*ex = EX_CONFIG_;
		return NULL;
	}
	if (spool_opts_from_conf(conf, &o) < 0) {
		dmta_conf_free(conf);
		*ex = EX_CONFIG_;
		return NULL;
	}
	o.readonly = readonly;
	o.create = create;
	sp = spool_open(&o, err, sizeof(err));
	if (sp == NULL) {
		int e = errno;

		fprintf(stderr, "%s: %s\n", dmta_log_progname(), err);
		dmta_conf_free(conf);
		*ex = queue_tool_exit(-e);
		return NULL;
	}
	*confp = conf;
	return sp;
}

struct list_ctx {
	FILE *out;
	bool json;
	struct dmta_json j;
	unsigned n;
	uint64_t bytes;
};

static void fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / DMTA_NS_PER_S);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, len, "%a %b %e %H:%M:%S", &tm);
}

static int list_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct list_ctx *cx = arg;
	char id[17], when[64];

	queue_id_fmt(env->qid, id);
	cx->bytes += env->size;
	if (cx->json) {
		struct dmta_json *j = &cx->j;

		dmta_json_obj(j);
		dmta_json_kstr(j, "id", id);
		dmta_json_ku64(j, "size", env->size);
		dmta_json_ku64(j, "arrival", env->arrival_ns / DMTA_NS_PER_S);
		dmta_json_ku64(j, "next_attempt", env->next_attempt_ns / DMTA_NS_PER_S);
		dmta_json_kbool(j, "held", env->flags & QUEUE_F_HOLD);
		dmta_json_kstr(j, "sender", env->sender);
		dmta_json_kstr(j, "pool", env->pool);
		dmta_json_kstr(j, "priority", queue_prio_name(env->priority));
		dmta_json_kstr(j, "tenant", env->tenant);
		dmta_json_key(j, "recipients");
		dmta_json_arr(j);
		for (uint32_t i = 0; i < env->nrcpt; i++) {
			const struct queue_rcpt *r = &env->rcpt[i];

			dmta_json_obj(j);
			dmta_json_kstr(j, "address", r->addr);
			dmta_json_kstr(j, "state", queue_rcpt_state_name(r->state));
			dmta_json_ku64(j, "attempts", r->attempts);
			dmta_json_kstr(j, "reply", r->reply);
			dmta_json_obj_end(j);
		}
		dmta_json_arr_end(j);
		dmta_json_obj_end(j);
	} else {
		fmt_time(env->arrival_ns, when, sizeof(when));
		if (cx->n == 0)
			fprintf(cx->out, "-Queue ID-  --Size-- ----Arrival Time---- "
					 "-Sender/Recipient-------\n");
		fprintf(cx->out, "%s%c %8" PRIu64 " %-20s %s\n", id,
			env->flags & QUEUE_F_HOLD ? '!' : ' ', env->size, when,
			env->sender[0] ? env->sender : "MAILER-DAEMON");
		for (uint32_t i = 0; i < env->nrcpt; i++) {
			const struct queue_rcpt *r = &env->rcpt[i];

			if (r->reply)
				fprintf(cx->out, "%43s(%s)\n", "", r->reply);
			fprintf(cx->out, "%43s%s [%s]\n", "", r->addr,
				queue_rcpt_state_name(r->state));
		}
		fputc('\n', cx->out);
	}
	cx->n++;
	return 0;
}

int queue_tool_list(struct spool *sp, bool json, FILE *out)
{
	struct list_ctx cx = {.out = out, .json = json};
	struct spool_txn *t;
	int rc = spool_begin(sp, false, &t);

	if (rc < 0)
		return rc;
	if (json) {
		dmta_json_init_file(&cx.j, out);
		dmta_json_obj(&cx.j);
		dmta_json_key(&cx.j, "messages");
		dmta_json_arr(&cx.j);
	}
	rc = spool_foreach(t, list_one, &cx, NULL);
	spool_abort(t);
	if (json) {
		dmta_json_arr_end(&cx.j);
		dmta_json_ku64(&cx.j, "count", cx.n);
		dmta_json_ku64(&cx.j, "bytes", cx.bytes);
		dmta_json_obj_end(&cx.j);
		if (dmta_json_finish(&cx.j) < 0 && rc == 0)
			rc = -EIO;
		fputc('\n', out);
	} else if (cx.n == 0)
		fprintf(out, "Mail queue is empty\n");
	else
		fprintf(out, "-- %" PRIu64 " Kbytes in %u Request%s.\n", (cx.bytes + 1023) / 1024,
			cx.n, cx.n == 1 ? "" : "s");
	return rc;
}
