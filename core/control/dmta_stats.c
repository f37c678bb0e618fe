/*
 * dmta_stats.c - see dmta_stats.h.
 *
 * One table names every scalar (its JSON group and key, its place in the
 * struct): the formatter, the parser and DPDK telemetry walk the same
 * table, so the three cannot drift apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/dmta_json.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_stats.h"

enum ftype { F_U64, F_F64, F_STR };

struct field {
	const char *group; /* NULL: top level */
	const char *name;
	enum ftype type;
	size_t off;
	size_t size; /* F_STR: the char array's */
};

#define U(g, n, m)                                                                                 \
	{                                                                                          \
		g, n, F_U64, offsetof(struct dmta_stats, m), 0                                     \
	}
#define D(g, n, m)                                                                                 \
	{                                                                                          \
		g, n, F_F64, offsetof(struct dmta_stats, m), 0                                     \
	}

/* In output order; a group's keys are consecutive. */
static const struct field fields[] = {
    U(NULL, "pid", pid),
    U(NULL, "time_ms", time_ms),
    U(NULL, "started_ms", started_ms),
    U(NULL, "interval_ms", interval_ms),
    U("queue", "messages", messages),
    U("queue", "waiting", waiting),
    U("queue", "ready", ready),
    U("queue", "in_flight", in_flight),
    U("queue", "held", held),
    U("queue", "destinations", dests),
    U("queue", "suspended", suspended),
    U("queue", "sites", sites),
    U("queue", "throttled", throttled),
    U("jobs", "in_flight", jobs_busy),
    U("jobs", "waiting_dns", jobs_dns),
    U("delivery", "attempts", attempts),
    U("delivery", "delivered", delivered),
    U("delivery", "deferred", deferred),
    U("delivery", "bounced", bounced),
    U("delivery", "expired", expired),
    D("delivery", "rate_10s", rate_10s),
    D("delivery", "rate", rate),
    U("classes", "bad-mailbox", classes[1]),
    U("classes", "inactive-mailbox", classes[2]),
    U("classes", "quota", classes[3]),
    U("classes", "spam-block", classes[4]),
    U("classes", "policy", classes[5]),
    U("classes", "content", classes[6]),
    U("classes", "dns", classes[7]),
    U("classes", "routing", classes[8]),
    U("classes", "protocol", classes[9]),
    U("classes", "tls", classes[10]),
    U("classes", "other", classes[11]),
    U("bounces", "generated", bounces),
    U("bounces", "delay_warnings", delay_dsns),
    U("spool", "loaded", loaded),
    U("spool", "commits", commits),
    U("spool", "commit_errors", commit_errors),
    U("dns", "hits", dns_hits),
    U("dns", "misses", dns_misses),
    U("dns", "entries", dns_entries),
    U("dns", "negative", dns_negative),
    U("dns", "in_flight", dns_in_flight),
    U("dns", "failures", dns_failures),
    U("dns", "queries", dns_queries),
};

#define W(n, m)                                                                                    \
	{                                                                                          \
		NULL, n, F_U64, offsetof(struct dmta_stats_worker, m), 0                           \
	}

static const struct field wfields[] = {
    W("jobs", jobs),
    W("sessions", sessions),
    W("connecting", connecting),
    W("idle", idle),
    W("opened", opened),
    W("connect_failed", connect_failed),
    W("retransmits", retransmits),
};

#define S(n, m)                                                                                    \
	{                                                                                          \
		NULL, n, F_STR, offsetof(struct dmta_stats_susp, m),                               \
		    sizeof(((struct dmta_stats_susp *)0)->m)                                       \
	}

static const struct field sfields[] = {
    S("kind", kind),
    S("name", name),
    S("source", source),
    S("why", why),
    {NULL, "until_ms", F_U64, offsetof(struct dmta_stats_susp, until_ms), 0},
    {NULL, "throttled", F_U64, offsetof(struct dmta_stats_susp, throttled), 0},
};

#define NFIELDS	 (sizeof(fields) / sizeof(fields[0]))
#define NWFIELDS (sizeof(wfields) / sizeof(wfields[0]))
#define NSFIELDS (sizeof(sfields) / sizeof(sfields[0]))

static uint64_t *u64_at(void *base, const struct field *f)
{
	return (uint64_t *)((char *)base + f->off);
}

static double *f64_at(void *base, const struct field *f)
{
	return (double *)((char *)base + f->off);
}

/* ---- formatting ---- */

static void put_field(struct dmta_json *j, const void *base, const struct field *f)
{
	dmta_json_key(j, f->name);
	if (f->type == F_STR) {
		dmta_json_str(j, (const char *)base + f->off);
		return;
	}
	if (f->type == F_F64) {
		double x = *f64_at((void *)base, f);

		/* JSON has no NaN or infinity, and the parser wants a number. */
		dmta_json_f64(j, x == x && x < 1e300 && x > -1e300 ? x : 0.0, 3);
		return;
	}
	if (*u64_at((void *)base, f) == DMTA_STATS_NA)
		dmta_json_null(j);
	else
		dmta_json_u64(j, *u64_at((void *)base, f));
}

int dmta_stats_format(const struct dmta_stats *s, char *buf, size_t cap)
{
	const char *group = NULL;
	char be[sizeof(s->backend)];
	struct dmta_json j;
	size_t k = 0;
	int n;

	/* The backend's name is ours, and the parser takes it only as a plain
	 * string (no escapes): keep it one whatever it holds. */
	for (size_t i = 0; i < sizeof(s->backend) - 1 && s->backend[i]; i++)
		if (s->backend[i] >= 0x20 && s->backend[i] < 0x7f && s->backend[i] != '"' &&
		    s->backend[i] != '\\')
			be[k++] = s->backend[i];
	be[k] = '\0';
	dmta_json_init(&j, buf, cap);
	dmta_json_obj(&j);
	dmta_json_key(&j, "version");
	dmta_json_i64(&j, DMTA_STATS_VERSION);
	dmta_json_key(&j, "backend");
	dmta_json_str(&j, be);
	for (size_t i = 0; i < NFIELDS; i++) {
		const struct field *f = &fields[i];

		if (f->group != group) {
			if (group != NULL)
				dmta_json_obj_end(&j);
			if (f->group != NULL) {
				dmta_json_key(&j, f->group);
				dmta_json_obj(&j);
			}
			group = f->group;
		}
		put_field(&j, s, f);
	}
	if (group != NULL)
		dmta_json_obj_end(&j);
	dmta_json_key(&j, "workers");
	dmta_json_arr(&j);
	for (unsigned w = 0; w < s->nworkers && w < DMTA_STATS_MAX_WORKERS; w++) {
		dmta_json_obj(&j);
		dmta_json_key(&j, "id");
		dmta_json_u64(&j, w);
		for (size_t i = 0; i < NWFIELDS; i++)
			put_field(&j, &s->workers[w], &wfields[i]);
		dmta_json_obj_end(&j);
	}
	dmta_json_arr_end(&j);
	dmta_json_key(&j, "suspensions");
	dmta_json_arr(&j);
	for (unsigned u = 0; u < s->nsusp && u < DMTA_STATS_MAX_SUSP; u++) {
		dmta_json_obj(&j);
		for (size_t i = 0; i < NSFIELDS; i++)
			put_field(&j, &s->susp[u], &sfields[i]);
		dmta_json_obj_end(&j);
	}
	dmta_json_arr_end(&j);
	dmta_json_obj_end(&j);
	n = dmta_json_finish(&j);
	if (n < 0) {
		if (cap > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return n;
}

/* ---- parsing ---- */

#define INCOMPLETE (-2)
#define MALFORMED  (-1)
#define MAX_DEPTH  16

struct cur {
	const char *p, *end;
};

static int ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
	return c->p < c->end ? 0 : INCOMPLETE;
}

static int expect(struct cur *c, char ch)
{
	int rc = ws(c);

	if (rc != 0)
		return rc;
	if (*c->p != ch)
		return MALFORMED;
	c->p++;
	return 0;
}

static bool is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* A string: its raw bytes between the quotes (escapes checked, not decoded). */
static int string(struct cur *c, const char **s, size_t *n, bool *escaped)
{
	int rc = expect(c, '"');
	const char *start = c->p;

	if (rc != 0)
		return rc;
	*escaped = false;
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;

		if (ch == '"') {
			*s = start;
			*n = (size_t)(c->p - start);
			c->p++;
			return 0;
		}
		if (ch < 0x20)
			return MALFORMED;
		if (ch == '\\') {
			*escaped = true;
			if (c->end - c->p < 2)
				return INCOMPLETE;
			switch (c->p[1]) {
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				c->p += 2;
				continue;
			case 'u':
				for (int i = 2; i < 6; i++) {
					if (c->end - c->p <= i)
						return INCOMPLETE;
					if (!is_hex(c->p[i]))
						return MALFORMED;
				}
				c->p += 6;
				continue;
			default:
				return MALFORMED;
			}
		}
		c->p++;
	}
	return INCOMPLETE;
}

static bool digit(const struct cur *c)
{
	return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

/*
 * A number by RFC 8259's grammar. The input never ends in one (an object
 * closes after it), so running out of bytes means incomplete.
 */
static int number(struct cur *c, const char **s, size_t *n, bool *integer)
{
	int rc = ws(c);
	const char *start = c->p;

	if (rc != 0)
		return rc;
	*integer = true;
	if (*c->p == '-') {
		*integer = false; /* no counter is negative */
		c->p++;
	}
	if (!digit(c))
		return c->p == c->end ? INCOMPLETE : MALFORMED;
	if (*c->p == '0')
		c->p++;
	else
		while (digit(c))
			c->p++;
	if (c->p < c->end && *c->p == '.') {
		*integer = false;
		c->p++;
		if (!digit(c))
			return c->p == c->end ? INCOMPLETE : MALFORMED;
		while (digit(c))
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		*integer = false;
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digit(c))
			return c->p == c->end ? INCOMPLETE : MALFORMED;
		while (digit(c))
			c->p++;
	}
	if (c->p == c->end)
		return INCOMPLETE;
	*s = start;
	*n = (size_t)(c->p - start);
	return 0;
}

static int literal(struct cur *c, const char *word)
{
	size_t k = strlen(word);
	size_t have = (size_t)(c->end - c->p);

	if (memcmp(c->p, word, have < k ? have : k) != 0)
		return MALFORMED;
	if (have < k)
		return INCOMPLETE;
	c->p += k;
	return 0;
}

static int skip_value(struct cur *c, int depth);

/* An object: member() is called with the cursor on each value. */
typedef int member_fn(void *ctx, struct cur *c, const char *key, size_t klen, int depth);

static int object(struct cur *c, member_fn *member, void *ctx, int depth)
{
	int rc;

	if (depth > MAX_DEPTH)
		return MALFORMED;
	if ((rc = expect(c, '{')) != 0)
		return rc;
	if ((rc = ws(c)) != 0)
		return rc;
	if (*c->p == '}') {
		c->p++;
		return 0;
	}
	for (;;) {
		const char *key;
		size_t klen;
		bool esc;

		if ((rc = string(c, &key, &klen, &esc)) != 0 || (rc = expect(c, ':')) != 0)
			return rc;
		/* An escaped key is no key of ours: skip its value. */
		rc = esc ? skip_value(c, depth + 1) : member(ctx, c, key, klen, depth + 1);
		if (rc != 0 || (rc = ws(c)) != 0)
			return rc;
		if (*c->p == '}') {
			c->p++;
			return 0;
		}
		if (*c->p != ',')
			return MALFORMED;
		c->p++;
	}
}

static int member_skip(void *ctx, struct cur *c, const char *key, size_t klen, int depth)
{
	return skip_value(c, depth);
}

static int skip_value(struct cur *c, int depth)
{
	const char *s;
	size_t n;
	bool b;
	int rc;

	if (depth > MAX_DEPTH)
		return MALFORMED;
	if ((rc = ws(c)) != 0)
		return rc;
	switch (*c->p) {
	case '{':
		return object(c, member_skip, NULL, depth);
	case '[':
		c->p++;
		if ((rc = ws(c)) != 0)
			return rc;
		if (*c->p == ']') {
			c->p++;
			return 0;
		}
		for (;;) {
			if ((rc = skip_value(c, depth + 1)) != 0 || (rc = ws(c)) != 0)
				return rc;
			if (*c->p == ']') {
				c->p++;
				return 0;
			}
			if (*c->p != ',')
				return MALFORMED;
			c->p++;
		}
	case '"':
		return string(c, &s, &n, &b);
	case 't':
		return literal(c, "true");
	case 'f':
		return literal(c, "false");
	case 'n':
		return literal(c, "null");
	default:
		return number(c, &s, &n, &b);
	}
}

/* A counter: a non-negative integer that fits, or null (not applicable). */
static int value_u64(struct cur *c, uint64_t *v)
{
	const char *s;
	size_t n;
	bool integer;
	uint64_t x = 0;
	int rc = ws(c);

	if (rc != 0)
		return rc;
	if (*c->p == 'n') {
		rc = literal(c, "null");
		if (rc == 0)
			*v = DMTA_STATS_NA;
		return rc;
	}
	if ((rc = number(c, &s, &n, &integer)) != 0)
		return rc;
	if (!integer)
		return MALFORMED;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (x > (UINT64_MAX - d) / 10)
			return MALFORMED;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static int value_f64(struct cur *c, double *v)
{
	char tmp[64];
	const char *s;
	size_t n;
	bool integer;
	int rc = number(c, &s, &n, &integer);

	if (rc != 0)
		return rc;
	if (n >= sizeof(tmp))
		return MALFORMED;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	*v = strtod(tmp, NULL);
	return 0;
}

static bool key_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

/* A plain string (no escapes: ours never need one; others are kept as "?"). */
static int value_str(struct cur *c, char *dst, size_t size)
{
	const char *s;
	size_t n;
	bool esc;
	int rc = ws(c);

	if (rc != 0 || (rc = string(c, &s, &n, &esc)) != 0)
		return rc;
	if (esc || n >= size) {
		s = "?";
		n = 1;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static int value_field(struct cur *c, void *base, const struct field *f)
{
	if (f->type == F_STR)
		return value_str(c, (char *)base + f->off, f->size);
	return f->type == F_F64 ? value_f64(c, f64_at(base, f)) : value_u64(c, u64_at(base, f));
}

struct pctx {
	struct dmta_stats *s;
	const char *group;
	unsigned worker;
	bool version, pid, time;
};

static int member_of_group(void *arg, struct cur *c, const char *key, size_t klen, int depth)
{
	struct pctx *x = arg;

	for (size_t i = 0; i < NFIELDS; i++)
		if (fields[i].group != NULL && strcmp(fields[i].group, x->group) == 0 &&
		    key_is(key, klen, fields[i].name))
			return value_field(c, x->s, &fields[i]);
	return skip_value(c, depth);
}

static int member_of_worker(void *arg, struct cur *c, const char *key, size_t klen, int depth)
{
	struct pctx *x = arg;

	for (size_t i = 0; i < NWFIELDS; i++)
		if (key_is(key, klen, wfields[i].name))
			return value_field(c, &x->s->workers[x->worker], &wfields[i]);
	return skip_value(c, depth); /* "id" is the position */
}

static int member_of_susp(void *arg, struct cur *c, const char *key, size_t klen, int depth)
{
	struct pctx *x = arg;

	for (size_t i = 0; i < NSFIELDS; i++)
		if (key_is(key, klen, sfields[i].name))
			return value_field(c, &x->s->susp[x->worker], &sfields[i]);
	return skip_value(c, depth);
}

/* An array of objects, each read by @p member into the next of @p max slots counted by @p n. */
static int array_of(struct cur *c, struct pctx *x, int depth, unsigned *n, unsigned max,
		    int (*member)(void *, struct cur *, const char *, size_t, int))
{
	int rc = expect(c, '[');

	if (rc != 0)
		return rc;
	if ((rc = ws(c)) != 0)
		return rc;
	if (*c->p == ']') {
		c->p++;
		return 0;
	}
	for (;;) {
		if ((rc = ws(c)) != 0)
			return rc;
		if (*n < max && *c->p == '{') {
			x->worker = (*n)++;
			rc = object(c, member, x, depth + 1);
		} else {
			rc = skip_value(c, depth + 1);
		}
		if (rc != 0 || (rc = ws(c)) != 0)
			return rc;
		if (*c->p == ']') {
			c->p++;
			return 0;
		}
		if (*c->p != ',')
			return MALFORMED;
		c->p++;
	}
}

static int member_of_top(void *arg, struct cur *c, const char *key, size_t klen, int depth)
{
	struct pctx *x = arg;
	uint64_t v;
	int rc;

	if (key_is(key, klen, "version")) {
		if ((rc = value_u64(c, &v)) != 0)
			return rc;
		if (v != DMTA_STATS_VERSION)
			return MALFORMED;
		x->version = true;
		return 0;
	}
	if (key_is(key, klen, "backend")) {
		const char *s;
		size_t n;
		bool esc;

		if ((rc = string(c, &s, &n, &esc)) != 0)
			return rc;
		if (esc || n >= sizeof(x->s->backend))
			return MALFORMED;
		memcpy(x->s->backend, s, n);
		x->s->backend[n] = '\0';
		return 0;
	}
	if (key_is(key, klen, "workers") || key_is(key, klen, "suspensions")) {
		bool w = key_is(key, klen, "workers");

		if ((rc = ws(c)) != 0)
			return rc;
		if (*c->p != '[')
			return MALFORMED;
		return w ? array_of(c, x, depth, &x->s->nworkers, DMTA_STATS_MAX_WORKERS,
				    member_of_worker)
			 : array_of(c, x, depth, &x->s->nsusp, DMTA_STATS_MAX_SUSP, member_of_susp);
	}
	for (size_t i = 0; i < NFIELDS; i++) {
		const struct field *f = &fields[i];

		if (f->group == NULL && key_is(key, klen, f->name)) {
			rc = value_field(c, x->s, f);
			x->pid |= rc == 0 && f->off == offsetof(struct dmta_stats, pid);
			x->time |= rc == 0 && f->off == offsetof(struct dmta_stats, time_ms);
			return rc;
		}
		if (f->group != NULL && key_is(key, klen, f->group)) {
			if ((rc = ws(c)) != 0)
				return rc;
			if (*c->p != '{')
				return MALFORMED;
			x->group = f->group;
			return object(c, member_of_group, x, depth);
		}
	}
	return skip_value(c, depth);
}

int dmta_stats_parse(const char *buf, size_t len, struct dmta_stats *s)
{
	struct cur c = {buf, buf + len};
	struct pctx x = {.s = s};
	int rc;

	if (len > INT32_MAX)
		return MALFORMED;
	memset(s, 0, sizeof(*s));
	rc = object(&c, member_of_top, &x, 0);
	if (rc != 0)
		return rc;
	if (!x.version || !x.pid || !x.time || s->pid == DMTA_STATS_NA ||
	    s->time_ms == DMTA_STATS_NA)
		return MALFORMED;
	return (int)(c.p - buf);
}

static void walk(const void *base, const struct field *f, size_t n, dmta_stats_walk_fn *fn,
		 void *arg)
{
	for (size_t i = 0; i < n; i++)
		fn(arg, f[i].group, f[i].name, f[i].type == F_F64,
		   f[i].type == F_U64 ? *u64_at((void *)base, &f[i]) : 0,
		   f[i].type == F_F64 ? *f64_at((void *)base, &f[i]) : 0);
}

void dmta_stats_walk(const struct dmta_stats *s, dmta_stats_walk_fn *fn, void *arg)
{
	walk(s, fields, NFIELDS, fn, arg);
}

void dmta_stats_walk_worker(const struct dmta_stats_worker *w, dmta_stats_walk_fn *fn, void *arg)
{
	walk(w, wfields, NWFIELDS, fn, arg);
}

/* ---- text ---- */

static void na_or(FILE *out, const char *label, uint64_t v)
{
	if (v == DMTA_STATS_NA)
		fprintf(out, "%s n/a", label);
	else
		fprintf(out, "%" PRIu64 " %s", v, label);
}

void dmta_stats_print(FILE *out, const struct dmta_stats *s, double age_s)
{
	uint64_t up = s->time_ms > s->started_ms ? (s->time_ms - s->started_ms) / 1000 : 0;

	fprintf(out,
		"daemon:      running, pid %" PRIu64 ", backend %s, up %" PRIu64
		" s (view %.1f s old)\n",
		s->pid, s->backend[0] ? s->backend : "?", up, age_s < 0 ? 0.0 : age_s);
	fprintf(out,
		"scheduled:   %" PRIu64 " messages (waiting %" PRIu64 ", ready %" PRIu64
		", in flight %" PRIu64 ", held %" PRIu64 ") for %" PRIu64 " destinations (%" PRIu64
		" suspended)\n",
		s->messages, s->waiting, s->ready, s->in_flight, s->held, s->dests, s->suspended);
	if (s->sites || s->throttled)
		fprintf(out, "sites:       %" PRIu64 " (%" PRIu64 " throttled)\n", s->sites,
			s->throttled);
	for (unsigned k = 0; k < s->nsusp && k < DMTA_STATS_MAX_SUSP; k++) {
		const struct dmta_stats_susp *u = &s->susp[k];
		char until[48];

		if (u->until_ms == DMTA_STATS_NA)
			snprintf(until, sizeof(until), "until resumed");
		else
			snprintf(until, sizeof(until), "%" PRIu64 " s more",
				 u->until_ms > s->time_ms ? (u->until_ms - s->time_ms + 999) / 1000
							  : 0);
		fprintf(out, "%-12s %s %s%s%s%s: %s (%s)\n", "suspended:", u->kind, u->name,
			u->source[0] ? " from source " : "", u->source,
			u->throttled ? " throttled" : "", until, u->why);
	}
	fprintf(out, "jobs:        %" PRIu64 " in flight, %" PRIu64 " waiting for DNS\n",
		s->jobs_busy, s->jobs_dns);
	fprintf(out,
		"delivery:    %" PRIu64 " attempts: %" PRIu64 " delivered, %" PRIu64
		" deferred, %" PRIu64 " bounced, %" PRIu64 " expired (recipients)\n",
		s->attempts, s->delivered, s->deferred, s->bounced, s->expired);
	fprintf(out, "rate:        %.1f/s over the last 10 s, %.1f/s since start\n", s->rate_10s,
		s->rate);
	fprintf(out, "bounces:     %" PRIu64 " generated, %" PRIu64 " delay warnings\n", s->bounces,
		s->delay_dsns);
	{
		const char *sep = "failures:   ";
		bool any = false;

		for (size_t i = 0; i < NFIELDS; i++)
			if (fields[i].group != NULL && strcmp(fields[i].group, "classes") == 0 &&
			    *u64_at((void *)s, &fields[i]) != 0) {
				fprintf(out, "%s %" PRIu64 " %s", sep,
					*u64_at((void *)s, &fields[i]), fields[i].name);
				sep = ",";
				any = true;
			}
		if (any)
			fputs(" (recipients, by class)\n", out);
	}
	fprintf(out,
		"dns cache:   %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " entries (%" PRIu64
		" negative), %" PRIu64 " queries in flight, %" PRIu64 " failures\n",
		s->dns_hits, s->dns_misses, s->dns_entries, s->dns_negative, s->dns_in_flight,
		s->dns_failures);
	for (unsigned w = 0; w < s->nworkers && w < DMTA_STATS_MAX_WORKERS; w++) {
		const struct dmta_stats_worker *k = &s->workers[w];
		char label[24];

		snprintf(label, sizeof(label), "worker %u:", w);
		fprintf(out,
			"%-12s %" PRIu64 " sessions (%" PRIu64 " connecting, %" PRIu64
			" idle), %" PRIu64 " jobs, %" PRIu64 " opened, %" PRIu64 " failed, ",
			label, k->sessions, k->connecting, k->idle, k->jobs, k->opened,
			k->connect_failed);
		na_or(out, "TCP retransmissions", k->retransmits);
		fputc('\n', out);
	}
}

/* ---- files ---- */

static int spool_file(char *buf, size_t cap, const char *spool_path, const char *name)
{
	if ((size_t)snprintf(buf, cap, "%s/%s", spool_path, name) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int dmta_stats_publish(const char *spool_path, const struct dmta_stats *s)
{
	char path[4096], tmp[4096];
	size_t cap = 2048 + (size_t)s->nworkers * 256 + (size_t)s->nsusp * 512;
	char *buf = malloc(cap);
	int fd, n, rc;

	if (buf == NULL)
		return -ENOMEM;
	rc = spool_file(path, sizeof(path), spool_path, DMTA_STATS_FILE);
	if (rc == 0)
		rc = spool_file(tmp, sizeof(tmp), spool_path, DMTA_STATS_FILE ".tmp");
	n = rc == 0 ? dmta_stats_format(s, buf, cap - 1) : rc;
	if (n < 0) {
		free(buf);
		return n;
	}
	buf[n++] = '\n';
	/* No fsync: after a crash the file is stale either way, and the lock
	 * on dmtad.pid tells readers so. A fresh file each time, never through
	 * a link: whoever planted one at this fixed name gets nothing
	 * written or truncated for them. */
	if (unlink(tmp) != 0 && errno != ENOENT) {
		free(buf);
		return -errno;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	rc = write_all(fd, buf, (size_t)n);
	free(buf);
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

void dmta_stats_unpublish(const char *spool_path)
{
	char path[4096];

	if (spool_file(path, sizeof(path), spool_path, DMTA_STATS_FILE) == 0)
		unlink(path);
}

int dmta_stats_lock(const char *spool_path, int64_t *owner)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char path[4096], pid[32];
	int fd, rc, n;

	*owner = 0;
	rc = spool_file(path, sizeof(path), spool_path, DMTA_STATS_LOCK_FILE);
	if (rc != 0)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	/*
	 * A POSIX record lock rather than flock(): another process can ask who
	 * holds it (F_GETLK) without taking it, so dmta-queue never makes a
	 * starting dmtad fail, and the answer carries the holder's pid.
	 */
	if (fcntl(fd, F_SETLK, &fl) != 0) {
		rc = errno == EACCES || errno == EAGAIN ? -EAGAIN : -errno;
		close(fd);
		if (rc == -EAGAIN) {
			int64_t o = dmta_stats_owner(spool_path);

			*owner = o > 0 ? o : 0;
		}
		return rc;
	}
	/* The pid in the file is for people (the lock itself names its
	 * holder): a full disk must not keep dmtad from starting, for only a
	 * running dmtad empties the spool. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		dmta_warn("%s: pid not written: %s", path, strerror(errno));
	return fd;
}

int64_t dmta_stats_owner(const char *spool_path)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char path[4096];
	int fd, rc = spool_file(path, sizeof(path), spool_path, DMTA_STATS_LOCK_FILE);

	if (rc != 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = fcntl(fd, F_GETLK, &fl);
	close(fd);
	if (rc != 0)
		return -errno;
	return fl.l_type == F_UNLCK ? 0 : (int64_t)fl.l_pid;
}

int dmta_stats_load(const char *spool_path, uint64_t now_ns, struct dmta_stats_live *live)
{
	char path[4096];
	int64_t pid = dmta_stats_owner(spool_path);
	size_t cap = 1 << 18, len = 0;
	char *buf;
	int fd, rc;

	memset(live, 0, sizeof(*live));
	live->age_s = -1;
	if (pid < 0)
		return (int)pid;
	live->pid = pid;
	if (pid == 0)
		return 0; /* whatever file there is was left by a daemon that is gone */
	if (spool_file(path, sizeof(path), spool_path, DMTA_STATS_FILE) != 0)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* not published (yet) */
	buf = malloc(cap);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, cap - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == cap)
			break; /* too big to be ours: the parse fails */
	}
	close(fd);
	rc = dmta_stats_parse(buf, len, &live->stats);
	if (rc > 0) {
		uint64_t now_ms = now_ns / DMTA_NS_PER_MS;
		uint64_t slack_ms = 2 * live->stats.interval_ms + 2000;
		double age = ((double)now_ms - (double)live->stats.time_ms) / 1000.0;

		live->age_s = age;
		/* Its own view, taken lately (a little in the future is clock skew
		 * between threads' reads, not a reason to distrust it). */
		live->fresh = (int64_t)live->stats.pid == pid && age * 1000.0 <= (double)slack_ms &&
			      age >= -2.0;
		if (age < 0)
			live->age_s = 0; /* < 0 means "no view" to callers */
	}
	free(buf);
	return 0;
}

/* ---- rate ---- */

void dmta_stats_rate_push(struct dmta_stats_rate *r, uint64_t t_ns, uint64_t v)
{
	r->head = (r->head + 1) % DMTA_STATS_RATE_SLOTS;
	r->t[r->head] = t_ns;
	r->v[r->head] = v;
	if (r->n < DMTA_STATS_RATE_SLOTS)
		r->n++;
}

double dmta_stats_rate(const struct dmta_stats_rate *r, uint64_t window_ns)
{
	unsigned newest = r->head, pick;

	if (r->n < 2)
		return 0;
	pick = (newest + DMTA_STATS_RATE_SLOTS - 1) % DMTA_STATS_RATE_SLOTS;
	for (unsigned k = 2; k < r->n; k++) {
		unsigned i = (newest + DMTA_STATS_RATE_SLOTS - k) % DMTA_STATS_RATE_SLOTS;

		if (r->t[newest] - r->t[i] > window_ns)
			break;
		pick = i;
	}
	if (r->t[newest] <= r->t[pick] || r->v[newest] < r->v[pick])
		return 0;
	return (double)(r->v[newest] - r->v[pick]) * 1e9 / (double)(r->t[newest] - r->t[pick]);
}
