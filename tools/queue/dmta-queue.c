/*
 * dmta-queue - look at and manage dmta's spool.
 *
 * SYNOPSIS
 *	dmta-queue [-c FILE] [--json] list
 *	dmta-queue [-c FILE] [--json] show ID
 *	dmta-queue [-c FILE] cat ID              (the stored message bytes)
 *	dmta-queue [-c FILE] [--json] flush [DOMAIN]
 *	dmta-queue [-c FILE] [--json] delete ID... | --domain D | --all
 *	dmta-queue [-c FILE] [--json] hold ID... | --all
 *	dmta-queue [-c FILE] [--json] release ID... | --all
 *	dmta-queue [-c FILE] [--json] stats
 *	dmta-queue [-c FILE] [--json] check [--repair]
 *	dmta-queue [-c FILE] [--json] route DOMAIN...
 *	dmta-queue [-c FILE] [--json] reload
 *	dmta-queue [-c FILE] [--json] suspend DOMAIN|site:MX|source:NAME [DURATION]
 *	dmta-queue [-c FILE] [--json] resume DOMAIN|site:MX|source:NAME
 *
 * DESCRIPTION
 *	show prints the envelope: times, flags, sender, ENVID, the pool,
 *	priority and tenant when set (always with --json, null when unset),
 *	and each recipient's state and last reply; list --json names the
 *	pool, priority and tenant of each message too.
 *
 *	Changes are made in one spool transaction each and are durable when
 *	the command returns. Then the daemon, if it runs, is told through the
 *	spool's wake socket: "flush [DOMAIN]" (retry now; due times are also
 *	moved to now in the spool, so a flush works for a daemon started
 *	later) or "sync" after hold, release and delete.
 *
 *	stats: the spool's counts (messages, recipients by state, bytes, held,
 *	quarantined, map use), read from the spool itself; then the daemon.
 *	When a dmtad runs on this spool (it holds the lock on SPOOL/dmtad.pid)
 *	its live view follows, as it wrote it to SPOOL/dmtad.stats at most a
 *	few seconds ago ([control] stats_interval): the scheduler's queue, jobs
 *	in flight and waiting for DNS, delivery counters since start
 *	(recipients: attempts, delivered, deferred, bounced, expired), the
 *	delivery rate (last 10 s and since start), bounces generated, DNS cache
 *	counters, and per worker its SMTP sessions (open, connecting, idle),
 *	jobs, connections opened and failed, and TCP retransmissions (n/a when
 *	not known). Otherwise "daemon: not running"; a file left by a daemon
 *	that is gone is never shown as live. With --json the view is
 *	"daemon": {"running": BOOL, "pid": N, "age": SECONDS, "stats": {...}},
 *	"stats" being the snapshot (core/control/dmta_stats.h) or null when it is
 *	missing or stale.
 *
 *	suspend: the running dmtad stops sending to a recipient domain, to an
 *	MX site (site:HOST, a glob matched against the site's exchangers, e.g.
 *	site:*.mail.protection.outlook.com) or from a source (source:NAME)
 *	for DURATION (e.g. 30m; none: until resumed). Mail waits in the queue
 *	meanwhile; it neither bounces nor uses up attempts. resume ends it,
 *	and also what reply rules or connection failures started there.
 *	Suspensions live in the daemon (a restart forgets them) and are listed
 *	by stats. Exit 1 when no dmtad runs.
 *
 *	reload: sends SIGHUP to the dmtad that holds this spool's lock (it
 *	re-reads dmta.conf and logs what it applied or refused); exit 1 when
 *	none runs.
 *
 * DIAGNOSTICS
 *	Exit 0 on success, 1 when an ID is not found or check finds damage,
 *	64 on usage errors, 73/75 when the spool cannot be opened or written.
 */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_json.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_egress.h"
#include "core/control/dmta_stats.h"
#include "dns/dns_conf.h"
#include "dns/dns_show.h"
#include "queue/spool.h"
#include "tools/queue/queue_tool.h"

static bool json;

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: dmta-queue [-c FILE] [--json] "
	    "list|show ID|cat ID|flush [DOMAIN]|delete ID...|--domain D|--all|"
	    "hold ID...|--all|release ID...|--all|stats|check [--repair]|route DOMAIN|reload|\n"
	    "\tsuspend DOMAIN|site:MX|source:NAME [DURATION]|resume DOMAIN|site:MX|source:NAME\n");
	exit(EX_USAGE_);
}

static int show(struct spool *sp, const char *ids)
{
	struct spool_txn *t;
	struct queue_env env;
	uint64_t qid;
	char id[17];
	int rc;

	if (queue_id_parse(ids, &qid) < 0) {
		fprintf(stderr, "dmta-queue: bad queue id \"%s\"\n", ids);
		return EX_USAGE_;
	}
	if ((rc = spool_begin(sp, false, &t)) < 0)
		goto fail;
	rc = spool_env_get(t, qid, &env);
	if (rc < 0) {
		spool_abort(t);
		if (rc == -ENOENT) {
			fprintf(stderr, "dmta-queue: %s: no such message\n", ids);
			return 1;
		}
		goto fail;
	}
	queue_id_fmt(qid, id);
	if (json) {
		struct dmta_json j;

		dmta_json_init_file(&j, stdout);
		dmta_json_obj(&j);
		dmta_json_kstr(&j, "id", id);
		dmta_json_ku64(&j, "size", env.size);
		dmta_json_ku64(&j, "arrival", env.arrival_ns / DMTA_NS_PER_S);
		dmta_json_ku64(&j, "next_attempt", env.next_attempt_ns / DMTA_NS_PER_S);
		dmta_json_ku64(&j, "attempts", env.attempts);
		dmta_json_kbool(&j, "held", env.flags & QUEUE_F_HOLD);
		dmta_json_kbool(&j, "8bitmime", env.flags & QUEUE_F_8BITMIME);
		dmta_json_kbool(&j, "smtputf8", env.flags & QUEUE_F_SMTPUTF8);
		dmta_json_kbool(&j, "dsn", env.flags & QUEUE_F_DSN);
		dmta_json_kstr(&j, "ret",
			       env.ret == QUEUE_RET_FULL   ? "full"
			       : env.ret == QUEUE_RET_HDRS ? "hdrs"
							   : "");
		dmta_json_kstr(&j, "sender", env.sender);
		dmta_json_kstr(&j, "envid", env.envid);
		dmta_json_kstr(&j, "pool", env.pool);
		dmta_json_kstr(&j, "priority", queue_prio_name(env.priority));
		dmta_json_kstr(&j, "tenant", env.tenant);
		dmta_json_key(&j, "recipients");
		dmta_json_arr(&j);
		for (uint32_t i = 0; i < env.nrcpt; i++) {
			const struct queue_rcpt *r = &env.rcpt[i];

			dmta_json_obj(&j);
			dmta_json_kstr(&j, "address", r->addr);
			dmta_json_kstr(&j, "state", queue_rcpt_state_name(r->state));
			dmta_json_ku64(&j, "attempts", r->attempts);
			dmta_json_ku64(&j, "notify", r->notify);
			dmta_json_kstr(&j, "orcpt", r->orcpt);
			dmta_json_kstr(&j, "reply", r->reply);
			dmta_json_obj_end(&j);
		}
		dmta_json_arr_end(&j);
		dmta_json_obj_end(&j);
		dmta_json_finish(&j);
		putchar('\n');
	} else {
		printf("id: %s\nsize: %" PRIu64 "\narrival: %" PRIu64 "\nnext attempt: %" PRIu64
		       "\nattempts: %u\nflags:%s%s%s%s\nsender: <%s>\nenvid: %s\n",
		       id, env.size, (uint64_t)(env.arrival_ns / DMTA_NS_PER_S),
		       (uint64_t)(env.next_attempt_ns / DMTA_NS_PER_S), env.attempts,
		       env.flags & QUEUE_F_HOLD ? " hold" : "",
		       env.flags & QUEUE_F_8BITMIME ? " 8bitmime" : "",
		       env.flags & QUEUE_F_SMTPUTF8 ? " smtputf8" : "",
		       env.flags & QUEUE_F_DSN ? " dsn" : "", env.sender,
		       env.envid ? env.envid : "-");
		if (env.pool != NULL)
			printf("pool: %s\n", env.pool);
		if (env.priority != QUEUE_PRIO_NORMAL)
			printf("priority: %s\n", queue_prio_name(env.priority));
		if (env.tenant != NULL)
			printf("tenant: %s\n", env.tenant);
		for (uint32_t i = 0; i < env.nrcpt; i++)
			printf("recipient: <%s> %s attempts=%u%s%s\n", env.rcpt[i].addr,
			       queue_rcpt_state_name(env.rcpt[i].state), env.rcpt[i].attempts,
			       env.rcpt[i].reply ? " reply=" : "",
			       env.rcpt[i].reply ? env.rcpt[i].reply : "");
	}
	queue_env_release(&env);
	spool_abort(t);
	return 0;
fail:
	fprintf(stderr, "dmta-queue: %s\n", spool_strerror(rc));
	return queue_tool_exit(rc);
}

static int cat(struct spool *sp, const char *ids)
{
	struct spool_txn *t;
	uint64_t qid;
	const void *p;
	size_t len;
	int rc;

	if (queue_id_parse(ids, &qid) < 0) {
		fprintf(stderr, "dmta-queue: bad queue id \"%s\"\n", ids);
		return EX_USAGE_;
	}
	if ((rc = spool_begin(sp, false, &t)) < 0) {
		fprintf(stderr, "dmta-queue: %s\n", spool_strerror(rc));
		return queue_tool_exit(rc);
	}
	rc = spool_msg_get(t, qid, &p, &len);
	if (rc == 0 && fwrite(p, 1, len, stdout) != len)
		rc = -EIO;
	spool_abort(t);
	if (rc == -ENOENT) {
		fprintf(stderr, "dmta-queue: %s: no such message\n", ids);
		return 1;
	}
	return rc < 0 ? EX_TEMPFAIL_ : 0;
}

enum op { OP_DELETE, OP_HOLD, OP_RELEASE, OP_FLUSH };

struct change {
	enum op op;
	const char *domain; /* only messages with recipients there */
	uint64_t now;
	unsigned n;
	int err;
	uint64_t *ids;
	size_t nids, cap;
};

static int collect(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	struct change *c = arg;

	if (c->domain) {
		bool hit = false;

		for (uint32_t i = 0; i < env->nrcpt && !hit; i++)
			hit = strcasecmp(queue_addr_domain(env->rcpt[i].addr), c->domain) == 0;
		if (!hit)
			return 0;
	}
	if (c->nids == c->cap) {
		uint64_t *v = realloc(c->ids, (c->cap ? c->cap * 2 : 64) * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		c->ids = v;
		c->cap = c->cap ? c->cap * 2 : 64;
	}
	c->ids[c->nids++] = env->qid;
	return 0;
}

/* Apply one change to one message inside @p t. 0, -ENOENT or -errno. */
static int change_one(struct spool_txn *t, struct change *c, uint64_t qid)
{
	struct queue_env env, cp;
	int rc;

	if (c->op == OP_DELETE)
		return spool_delete(t, qid);
	rc = spool_env_get(t, qid, &env);
	if (rc < 0)
		return rc;
	rc = queue_env_dup(&cp, &env);
	queue_env_release(&env);
	if (rc < 0)
		return rc;
	switch (c->op) {
	case OP_HOLD:
		cp.flags |= QUEUE_F_HOLD;
		break;
	case OP_RELEASE:
		cp.flags &= ~(uint32_t)QUEUE_F_HOLD;
		break;
	case OP_FLUSH:
		if (cp.next_attempt_ns > c->now)
			cp.next_attempt_ns = c->now;
		break;
	default:
		dmta_panic("change op %d", c->op);
	}
	rc = spool_env_store(t, &cp);
	queue_env_free(&cp);
	return rc;
}

static int change(struct spool *sp, enum op op, int argc, char **argv)
{
	static const char *const names[] = {"deleted", "held", "released", "flushed"};
	struct change c = {.op = op, .now = dmta_wall_ns()};
	struct spool_txn *t;
	bool all = false;
	int missing = 0, rc;

	if (op == OP_FLUSH) {
		all = true;
		if (argc > 1)
			usage();
		c.domain = argc == 1 ? argv[0] : NULL;
	} else if (argc == 1 && strcmp(argv[0], "--all") == 0) {
		all = true;
	} else if (argc == 2 && strcmp(argv[0], "--domain") == 0) {
		all = true;
		c.domain = argv[1];
	} else if (argc == 0) {
		usage();
	}
	if ((rc = spool_begin(sp, true, &t)) < 0)
		goto fail;
	if (all) {
		rc = spool_foreach(t, collect, &c, NULL);
	} else {
		c.ids = calloc((size_t)argc, sizeof(*c.ids));
		if (c.ids == NULL) {
			spool_abort(t);
			rc = -ENOMEM;
			goto fail;
		}
		for (int i = 0; i < argc; i++) {
			if (queue_id_parse(argv[i], &c.ids[c.nids++]) < 0) {
				spool_abort(t);
				free(c.ids);
				fprintf(stderr, "dmta-queue: bad queue id \"%s\"\n", argv[i]);
				return EX_USAGE_;
			}
		}
	}
	for (size_t i = 0; rc == 0 && i < c.nids; i++) {
		rc = change_one(t, &c, c.ids[i]);
		if (rc == -ENOENT) {
			char id[17];

			fprintf(stderr, "dmta-queue: %s: no such message\n",
				queue_id_fmt(c.ids[i], id));
			missing++;
			rc = 0;
		} else if (rc == 0) {
			c.n++;
		}
	}
	free(c.ids);
	if (rc < 0) {
		spool_abort(t);
		goto fail;
	}
	if ((rc = spool_commit(t)) < 0)
		goto fail;
	{
		/* flush asks for a retry now; the others make the daemon re-read holds. */
		char what[300];

		snprintf(what, sizeof(what), "flush%s%s", c.domain ? " " : "",
			 c.domain ? c.domain : "");
		(void)spool_wake(spool_path(sp), op == OP_FLUSH ? what : "sync");
	}
	if (json)
		printf("{\"%s\":%u,\"missing\":%d}\n", names[op], c.n, missing);
	else
		printf("%s %u message%s\n", names[op], c.n, c.n == 1 ? "" : "s");
	return missing ? 1 : 0;
fail:
	fprintf(stderr, "dmta-queue: %s\n", spool_strerror(rc));
	return queue_tool_exit(rc);
}

/* The daemon's part of stats: what runs on this spool, and its live view. */
static int daemon_stats(struct spool *sp)
{
	struct dmta_stats_live *live = calloc(1, sizeof(*live));
	char *buf = NULL;
	int rc;

	if (live == NULL) {
		fprintf(stderr, "dmta-queue: out of memory\n");
		return EX_TEMPFAIL_;
	}
	rc = dmta_stats_load(spool_path(sp), dmta_wall_ns(), live);
	if (rc < 0) {
		/* The spool's counts stand; only the daemon is unknown. */
		if (json) {
			/* The spool's path is the operator's: escape it. */
			char why[4200];
			struct dmta_json j;

			snprintf(why, sizeof(why), "%s/%s: %s", spool_path(sp),
				 DMTA_STATS_LOCK_FILE, strerror(-rc));
			printf("\"daemon\":{\"running\":null,\"error\":");
			dmta_json_init_file(&j, stdout);
			dmta_json_str(&j, why);
			printf("}}\n");
		} else
			printf("daemon:      unknown (%s/%s: %s)\n", spool_path(sp),
			       DMTA_STATS_LOCK_FILE, strerror(-rc));
		free(live);
		return 0;
	}
	if (live->fresh) {
		size_t cap = 2048 + (size_t)live->stats.nworkers * 256;

		buf = malloc(cap);
		if (buf == NULL || dmta_stats_format(&live->stats, buf, cap) < 0) {
			free(buf);
			buf = NULL;
			live->fresh = false;
		}
	}
	if (json) {
		if (live->pid == 0)
			printf("\"daemon\":{\"running\":false}}\n");
		else if (buf == NULL && live->age_s < 0)
			printf("\"daemon\":{\"running\":true,\"pid\":%" PRId64
			       ",\"age\":null,\"stats\":null}}\n",
			       live->pid);
		else
			printf("\"daemon\":{\"running\":true,\"pid\":%" PRId64
			       ",\"age\":%.3f,\"stats\":%s}}\n",
			       live->pid, live->age_s, buf ? buf : "null");
	} else if (live->pid == 0) {
		printf("daemon:      not running\n");
	} else if (buf == NULL) {
		if (live->age_s < 0)
			printf("daemon:      running, pid %" PRId64
			       ", no statistics from it (yet)\n",
			       live->pid);
		else
			printf("daemon:      running, pid %" PRId64
			       ", but its statistics are stale (written %.1f s ago)\n",
			       live->pid, live->age_s);
	} else {
		dmta_stats_print(stdout, &live->stats, live->age_s);
	}
	free(buf);
	free(live);
	return 0;
}

static int stats(struct spool *sp)
{
	struct spool_txn *t;
	struct spool_stats st;
	int rc;

	if ((rc = spool_begin(sp, false, &t)) < 0 || (rc = spool_get_stats(t, &st)) < 0) {
		if (rc != -ENOMEM && t)
			spool_abort(t);
		fprintf(stderr, "dmta-queue: %s\n", spool_strerror(rc));
		return queue_tool_exit(rc);
	}
	spool_abort(t);
	if (json)
		printf("{\"messages\":%" PRIu64 ",\"recipients\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"pending\":%" PRIu64 ",\"deferred\":%" PRIu64 ",\"delivered\":%" PRIu64
		       ",\"bounced\":%" PRIu64 ",\"held\":%" PRIu64 ",\"quarantined\":%" PRIu64
		       ",\"map_size\":%" PRIu64 ",\"map_used\":%" PRIu64 ",",
		       st.messages, st.recipients, st.bytes, st.pending, st.deferred, st.delivered,
		       st.bounced, st.held, st.quarantined, st.map_size, st.map_used);
	else
		printf("messages:    %" PRIu64 "\nrecipients:  %" PRIu64 " (pending %" PRIu64
		       ", deferred %" PRIu64 ", delivered %" PRIu64 ", bounced %" PRIu64
		       ")\nbytes:       %" PRIu64 "\nheld:        %" PRIu64
		       "\nquarantined: %" PRIu64 "\nmap:         %" PRIu64 " of %" PRIu64
		       " bytes used\n",
		       st.messages, st.recipients, st.pending, st.deferred, st.delivered,
		       st.bounced, st.bytes, st.held, st.quarantined, st.map_used, st.map_size);
	return daemon_stats(sp);
}

static int check(struct spool *sp, bool repair)
{
	struct spool_check_report r;
	int rc = spool_check(sp, repair, &r);
	bool damage;

	if (rc < 0) {
		fprintf(stderr, "dmta-queue: check: %s\n", spool_strerror(rc));
		return queue_tool_exit(rc);
	}
	damage = r.bad_env || r.orphan_msg || r.missing_msg || r.size_mismatch;
	if (json)
		printf("{\"messages\":%" PRIu64 ",\"bad_envelopes\":%" PRIu64
		       ",\"orphan_messages\":%" PRIu64 ",\"missing_messages\":%" PRIu64
		       ",\"size_mismatches\":%" PRIu64 ",\"quarantined\":%" PRIu64 ",\"ok\":%s}\n",
		       r.messages, r.bad_env, r.orphan_msg, r.missing_msg, r.size_mismatch,
		       r.quarantined, damage ? "false" : "true");
	else
		printf("messages %" PRIu64 ", bad envelopes %" PRIu64 ", orphan messages %" PRIu64
		       ", missing messages %" PRIu64 ", size mismatches %" PRIu64
		       ", quarantined %" PRIu64 ": %s\n",
		       r.messages, r.bad_env, r.orphan_msg, r.missing_msg, r.size_mismatch,
		       r.quarantined, damage ? (repair ? "repaired" : "DAMAGED") : "ok");
	return damage && !repair ? 1 : 0;
}

/* route DOMAIN...: the destinations as the scheduler sees them. */
static int route(const char *conf_path, int n, char **domains, bool as_json)
{
	struct dmta_conf *conf;
	struct dns_config cfg;
	char err[512];
	int rc;

	if (n < 1) {
		fprintf(stderr, "dmta-queue: route: which domain?\n");
		return EX_USAGE_;
	}
	conf = dmta_conf_load(dmta_conf_path(conf_path), err, sizeof(err));
	if (conf == NULL) {
		fprintf(stderr, "dmta-queue: %s\n", err);
		return EX_CONFIG_;
	}
	dns_config_defaults(&cfg);
	if (dns_config_load(&cfg, conf) != 0) {
		dns_config_release(&cfg);
		dmta_conf_free(conf);
		return EX_CONFIG_;
	}
	rc = dns_show(&cfg, domains, n, as_json ? DNS_SHOW_JSON : 0, stdout);
	dns_config_release(&cfg);
	dmta_conf_free(conf);
	if (rc < 0) {
		fprintf(stderr, "dmta-queue: route: cannot start the resolver: %s\n",
			strerror(-rc));
		return EX_TEMPFAIL_;
	}
	return rc == 0 ? 0 : 1;
}

/* Ask the spool's dmtad to re-read its configuration. */
static int reload(struct spool *sp)
{
	int64_t pid = dmta_stats_owner(spool_path(sp));

	if (pid <= 0) {
		fprintf(stderr, "dmta-queue: reload: no dmtad runs on spool %s\n", spool_path(sp));
		return 1;
	}
	if (kill((pid_t)pid, SIGHUP) != 0) {
		fprintf(stderr, "dmta-queue: reload: pid %lld: %s\n", (long long)pid,
			strerror(errno));
		return 1;
	}
	if (json)
		printf("{\"reload\":true,\"pid\":%lld}\n", (long long)pid);
	else
		printf("asked dmtad (pid %lld) to reload; its log says what it applied\n",
		       (long long)pid);
	return 0;
}

/* suspend/resume: told to the daemon through the wake socket. */
static int suspend(struct spool *sp, const struct dmta_conf *conf, bool on, int argc, char **argv)
{
	const char *target = argv[0];
	uint64_t ms = 0;
	char what[400];
	int rc;

	if (argc < 1 || argc > (on ? 2 : 1) || target[0] == '\0' || strchr(target, ' ') != NULL ||
	    strlen(target) > 255)
		usage();
	if (on && argc == 2 && (dmta_parse_duration_ms(argv[1], &ms) != 0 || ms == 0)) {
		fprintf(stderr, "dmta-queue: suspend: '%s': not a duration (e.g. 30m, 2h)\n",
			argv[1]);
		return EX_USAGE_;
	}
	if (strncmp(target, "source:", 7) == 0) {
		struct queue_egress *eg;
		char err[256];

		rc = queue_egress_load(conf, &eg, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "dmta-queue: %s\n", err);
			return EX_CONFIG_;
		}
		rc = queue_egress_source(eg, target + 7);
		queue_egress_free(eg);
		if (rc < 0) {
			fprintf(stderr, "dmta-queue: %s: no [source %s] in the configuration\n",
				target, target + 7);
			return 1;
		}
	}
	if (dmta_stats_owner(spool_path(sp)) <= 0) {
		fprintf(stderr, "dmta-queue: %s: no dmtad runs on spool %s\n",
			on ? "suspend" : "resume", spool_path(sp));
		return 1;
	}
	if (on && ms)
		snprintf(what, sizeof(what), "suspend %s %" PRIu64, target, ms);
	else
		snprintf(what, sizeof(what), "%s %s", on ? "suspend" : "resume", target);
	rc = spool_wake(spool_path(sp), what);
	if (rc != 0) {
		fprintf(stderr, "dmta-queue: cannot reach dmtad: %s\n", strerror(-rc));
		return 1;
	}
	if (json)
		printf("{\"%s\":\"%s\",\"ms\":%" PRIu64 "}\n", on ? "suspend" : "resume", target,
		       ms);
	else
		printf("%s %s%s\n", on ? "suspended" : "resumed", target,
		       on && !ms ? " until resumed" : "");
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL, *cmd;
	struct dmta_conf *conf = NULL;
	struct spool *sp;
	bool ro;
	int i, ex;

	dmta_log_init("dmta-queue", DMTA_LOG_WARN);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf_path = argv[++i];
		else if (argv[i][0] == '-')
			usage();
		else
			break;
	}
	if (i >= argc)
		usage();
	cmd = argv[i++];
	/* options may also follow the command */
	for (int j = i; j < argc; j++)
		if (strcmp(argv[j], "--json") == 0) {
			json = true;
			memmove(argv + j, argv + j + 1, (size_t)(argc - j - 1) * sizeof(*argv));
			argc--;
			j--;
		}
	if (strcmp(cmd, "route") == 0)
		return route(conf_path, argc - i, argv + i, json);
	ro = strcmp(cmd, "list") == 0 || strcmp(cmd, "show") == 0 || strcmp(cmd, "cat") == 0 ||
	     strcmp(cmd, "stats") == 0 || strcmp(cmd, "reload") == 0 ||
	     strcmp(cmd, "suspend") == 0 || strcmp(cmd, "resume") == 0 ||
	     (strcmp(cmd, "check") == 0 && i == argc);
	sp = queue_tool_open(conf_path, false, !ro, &conf, &ex);
	if (sp == NULL)
		return ex;
	if (strcmp(cmd, "list") == 0 && i == argc) {
		ex = queue_tool_list(sp, json, stdout) < 0 ? EX_TEMPFAIL_ : 0;
	} else if (strcmp(cmd, "show") == 0 && i + 1 == argc) {
		ex = show(sp, argv[i]);
	} else if (strcmp(cmd, "cat") == 0 && i + 1 == argc) {
		ex = cat(sp, argv[i]);
	} else if (strcmp(cmd, "delete") == 0) {
		ex = change(sp, OP_DELETE, argc - i, argv + i);
	} else if (strcmp(cmd, "hold") == 0) {
		ex = change(sp, OP_HOLD, argc - i, argv + i);
	} else if (strcmp(cmd, "release") == 0) {
		ex = change(sp, OP_RELEASE, argc - i, argv + i);
	} else if (strcmp(cmd, "flush") == 0) {
		ex = change(sp, OP_FLUSH, argc - i, argv + i);
	} else if (strcmp(cmd, "reload") == 0 && i == argc) {
		ex = reload(sp);
	} else if ((strcmp(cmd, "suspend") == 0 || strcmp(cmd, "resume") == 0) && i < argc) {
		ex = suspend(sp, conf, cmd[0] == 's', argc - i, argv + i);
	} else if (strcmp(cmd, "stats") == 0 && i == argc) {
		ex = stats(sp);
	} else if (strcmp(cmd, "check") == 0 &&
		   (i == argc || (i + 1 == argc && strcmp(argv[i], "--repair") == 0))) {
		ex = check(sp, i < argc);
	} else {
		spool_close(sp);
		dmta_conf_free(conf);
		usage();
	}
	spool_close(sp);
	dmta_conf_free(conf);
	return ex;
}
