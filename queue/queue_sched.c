/*
 * queue_sched.c - see queue_sched.h.
 *
 * A message is WAITING (in the due heap), READY (its recipients sit as
 * items in destination queues or in jobs) or HELD. Items are dropped
 * lazily: an item whose message has gone, is held or has no active
 * recipient left is discarded when its destination's queue reaches it.
 * A round ends when a READY message has no item queued and no job out;
 * then its attempt count, backoff and DSNs are settled at once, so a
 * message with recipients at several destinations is rescheduled once.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/queue_egress.h"
#include "queue/queue_names.h"
#include "queue/queue_sched.h"

enum sm_state { SM_WAITING, SM_READY, SM_HELD };

struct sm {
	struct queue_env env; /* owned */
	uint64_t expire_ns;
	uint32_t queued;   /* items in destination queues */
	uint32_t inflight; /* jobs out */
	uint8_t state;	   /* enum sm_state */
	bool held;
	bool tried;	 /* a job of this round came back */
	bool expire_due; /* expired while a job was out */
	struct sm *next; /* hash chain */
};

struct item {
	struct item *next;
	struct item *fprev, *fnext; /* the in-flight list, while a job runs */
	uint64_t qid;
	struct dest *d;
	struct site *site; /* the site this job counts at, while it runs */
	uint32_t n;
	uint32_t rcpt[];
};

/*
 * What limits a destination and a site alike: connections, a token bucket,
 * suspensions, and a rule's temporary throttle.
 */
struct gate {
	struct queue_dest_limits lim; /* a site's 0s: no limit */
	uint32_t active;	      /* jobs out */
	double tokens;
	uint64_t tok_ns;
	uint64_t suspended_until; /* connection failures (destinations), rules */
	uint64_t manual_until;	  /* dmta-queue suspend; UINT64_MAX: until resumed */
	uint64_t thr_until;	  /* a rule's lower limits, until then */
	uint64_t thr_rate;
	uint32_t thr_conns;
	char why[48]; /* what suspended or throttled it */
};

/* One tenant's items in one priority lane. */
struct tenant_q {
	char *tenant; /* "" for messages with none */
	struct item *head, *tail;
};

struct lane {
	struct tenant_q *q;
	unsigned n, cap, rr;
};

#define LANES 3 /* served in this order: */
static const uint8_t lane_order[LANES] = {QUEUE_PRIO_HIGH, QUEUE_PRIO_NORMAL, QUEUE_PRIO_BULK};

struct site {
	uint64_t key;
	unsigned source;
	unsigned shard;
	char *pool_key; /* "site:" and the first exchanger */
	char **mx;	/* the exchangers, first one names the site */
	unsigned nmx;
	struct gate g;
	struct site *next; /* hash chain */
};

struct dest {
	char *name;
	unsigned source;
	unsigned shard;
	struct gate g;
	uint32_t fails; /* consecutive connection failures */
	uint64_t suspend_cur_ms;
	bool probing; /* resumed after a suspension: one job until a success */
	bool proven;  /* the last job connected: jobs may wait for its sessions */
	struct site *site;
	uint32_t queued; /* items in the lanes */
	struct lane lanes[LANES];
	struct dest *next; /* hash chain */
};

/* A suspension by dmta-queue, kept for destinations and sites to come. */
struct manual {
	char kind; /* 'd'omain, 's'ite, 'o' source */
	char *pat;
	uint64_t until;
};

struct source_state {
	uint64_t manual_until;
};

struct hent {
	uint64_t when, qid;
};

struct heap {
	struct hent *v;
	size_t n, cap;
};

struct queue_sched {
	struct queue_sched_conf c;
	struct queue_sched_ops ops;
	uint64_t rng;
	struct sm **mt;
	size_t mcap, mcount;
	struct dest **dt;
	size_t dcap;
	struct dest **dlist;
	size_t nd, dlcap, rr;
	struct site **st; /* sites by (source, key) */
	size_t stcap, nsites;
	struct manual *manual;
	size_t nmanual;
	struct source_state *src;
	unsigned nsrc;
	struct queue_egress *egress;
	uint64_t last_ns; /* the time of the last queue_sched_jobs(), for queue_sched_job_site() */
	/* Pools named with no [pool] section, and when that was said (the
	 * oldest entry makes room). */
	struct {
		char name[QUEUE_TAG_MAX + 1];
		uint64_t at;
	} pool_warned[8];
	unsigned pool_warned_next;
	bool site_limits; /* [queue] site_* or a [site PATTERN] section sets a limit */
	struct heap due, exp;
	struct item *flight; /* items of the jobs out, freed with the scheduler */
};

/* Configuration. */

#define DEST(m) DMTA_CONF_AT(struct queue_dest_limits, m)
static const struct dmta_conf_key dest_keys[] = {
    {.name = "max_connections",
     .type = DMTA_CONF_U64,
     .def = "10",
     .example = "2",
     .min = 1,
     .max = 100000,
     DEST(max_connections)},
    {.name = "max_messages_per_connection",
     .type = DMTA_CONF_U64,
     .def = "100",
     .min = 1,
     .max = 1000000,
     DEST(max_messages_per_connection)},
    {.name = "max_recipients",
     .type = DMTA_CONF_U64,
     .def = "50",
     .min = 1,
     .max = QUEUE_JOB_MAX_RCPT,
     DEST(max_recipients)},
    {.name = "rate",
     .type = DMTA_CONF_RATE,
     .def = "0",
     .example = "5/s",
     .max = 1000000ULL * 86400,
     DEST(rate),
     .help = "transactions per second, minute, hour or day (20/s, 600/min,\n"
	     "3600/h, 10000/day; a bare number is per second), 0 = unlimited"},
};

static const struct dmta_conf_key site_keys[] = {
    {.name = "max_connections",
     .type = DMTA_CONF_U64,
     .def = "0",
     .example = "20",
     .max = 100000,
     DEST(max_connections),
     .help = "0 for any of these: no limit at site level"},
    {.name = "max_messages_per_connection",
     .type = DMTA_CONF_U64,
     .def = "0",
     .max = 1000000,
     DEST(max_messages_per_connection)},
    {.name = "max_recipients",
     .type = DMTA_CONF_U64,
     .def = "0",
     .max = QUEUE_JOB_MAX_RCPT,
     DEST(max_recipients)},
    {.name = "rate",
     .type = DMTA_CONF_RATE,
     .def = "0",
     .example = "1000/h",
     .max = 1000000ULL * 86400,
     DEST(rate)},
};

const struct dmta_conf_section queue_site_conf_section = {
    .name = "site *.mail.protection.outlook.com",
    .help = "One MX site's limits, per source, over [queue] site_*: the first section\n"
	    "whose pattern (a glob) matches one of the site's exchangers. A site is the\n"
	    "set of domains with the same exchangers.",
    .keys = site_keys,
    .nkeys = DMTA_CONF_NKEYS(site_keys),
    .family = true,
};

const struct dmta_conf_section queue_dest_conf_section = {
    .name = "dest example.org",
    .help = "One recipient domain's own limits, over [queue] dest_*:",
    .keys = dest_keys,
    .nkeys = DMTA_CONF_NKEYS(dest_keys),
    .family = true,
};

#define QUEUE(m) DMTA_CONF_AT(struct queue_sched_conf, m)
static const struct dmta_conf_key queue_keys[] = {
    {.name = "min_backoff",
     .type = DMTA_CONF_DURATION,
     .def = "5m",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_DAY(1),
     QUEUE(min_backoff_ms),
     .help = "Retries: min_backoff * 2^(attempts-1), at most max_backoff, +-jitter %."},
    {.name = "max_backoff",
     .type = DMTA_CONF_DURATION,
     .def = "4h",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_DAY(30),
     QUEUE(max_backoff_ms)},
    {.name = "backoff_jitter", .type = DMTA_CONF_U64, .def = "20", .max = 90, QUEUE(jitter_pct)},
    {.name = "lifetime",
     .type = DMTA_CONF_DURATION,
     .def = "5d",
     .max = DMTA_CONF_DAY(100),
     QUEUE(lifetime_ms),
     .help = "Give up (bounce with 4.4.7) after:"},
    {.name = "delay_warning",
     .type = DMTA_CONF_DURATION,
     .def = "4h",
     .max = DMTA_CONF_DAY(100),
     QUEUE(delay_warning_ms),
     .help = "Tell the sender once that a message is still undelivered after this\n"
	     "long (an RFC 3464 \"delayed\" DSN); 0: never."},
    {.name = "suspend_after",
     .type = DMTA_CONF_U64,
     .def = "5",
     .min = 1,
     .max = 1000,
     QUEUE(suspend_after),
     .help = "Suspend a destination after this many connection failures in a row,\n"
	     "for suspend_time (doubling while it stays down, at most max_suspend_time)."},
    {.name = "suspend_time",
     .type = DMTA_CONF_DURATION,
     .def = "10m",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_DAY(1),
     QUEUE(suspend_ms)},
    {.name = "max_suspend_time",
     .type = DMTA_CONF_DURATION,
     .def = "2h",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_DAY(7),
     QUEUE(max_suspend_ms)},
    {.name = "workers",
     .type = DMTA_CONF_U64,
     .def = "1",
     .min = 1,
     .max = 1024,
     QUEUE(workers),
     .help = "Shards (worker cores) destinations are spread over."},
    {.name = "dest_",
     .type = DMTA_CONF_GROUP,
     .group = &queue_dest_conf_section,
     QUEUE(dest),
     .help = "Limits per destination (a recipient domain); override per domain in a\n"
	     "section [dest example.org] with the same keys without \"dest_\"."},
    {.name = "site_",
     .type = DMTA_CONF_GROUP,
     .group = &queue_site_conf_section,
     QUEUE(site),
     .help = "Limits per MX site (domains sharing exchangers), per source; override\n"
	     "per site in [site PATTERN] with the same keys without \"site_\"."},
};

const struct dmta_conf_section queue_conf_section = {
    .name = "queue",
    .keys = queue_keys,
    .nkeys = DMTA_CONF_NKEYS(queue_keys),
};

struct queue_host_keys {
	const char *myhostname;
};

static const struct dmta_conf_key queue_host_keys[] = {
    {.name = "myhostname",
     .type = DMTA_CONF_STR,
     .example = "mail.example.org",
     DMTA_CONF_AT(struct queue_host_keys, myhostname),
     .help = "The name of this mail system in bounces, delay notices and Message-IDs,\n"
	     "and the default [smtp] helo_name (default: this host's name)."},
};

const struct dmta_conf_section queue_host_conf_section = {
    .name = "queue",
    .keys = queue_host_keys,
    .nkeys = DMTA_CONF_NKEYS(queue_host_keys),
};

const char *queue_myhostname(const struct dmta_conf *conf, char *buf, size_t len)
{
	struct queue_host_keys k = {0};

	/* A string key cannot be invalid: the result can be ignored. */
	(void)dmta_conf_read(conf, &queue_host_conf_section, &k);
	if (k.myhostname != NULL && k.myhostname[0] != '\0')
		snprintf(buf, len, "%s", k.myhostname);
	else if (gethostname(buf, len - 1) != 0)
		snprintf(buf, len, "localhost");
	buf[len - 1] = '\0';
	return buf;
}

int queue_sched_conf_load(const struct dmta_conf *conf, struct queue_sched_conf *c)
{
	memset(c, 0, sizeof(*c));
	if (dmta_conf_read(conf, &queue_conf_section, c) != 0)
		return -EINVAL;
	c->conf = conf;
	if (c->max_backoff_ms < c->min_backoff_ms)
		c->max_backoff_ms = c->min_backoff_ms;
	if (c->max_suspend_ms < c->suspend_ms)
		c->max_suspend_ms = c->suspend_ms;
	return 0;
}

uint64_t queue_sched_backoff_ms(const struct queue_sched_conf *c, uint32_t attempts)
{
	uint64_t d = c->min_backoff_ms;

	for (uint32_t i = 1; i < attempts && d < c->max_backoff_ms; i++)
		d *= 2;
	return d < c->max_backoff_ms ? d : c->max_backoff_ms;
}

/* Random numbers: xorshift64*, seeded by the caller so tests repeat. */
static uint64_t rnd(struct queue_sched *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 0x2545f4914f6cdd1dULL;
}

static uint64_t jitter(struct queue_sched *s, uint64_t ms)
{
	double u = (double)(rnd(s) >> 11) / (double)(1ULL << 53); /* [0, 1) */
	double f = 1.0 + (double)s->c.jitter_pct / 100.0 * (2.0 * u - 1.0);

	return (uint64_t)((double)ms * f);
}

static uint64_t hash_name(const char *p)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;

		h ^= (c >= 'A' && c <= 'Z') ? c + 32 : c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t hash_qid(uint64_t q)
{
	q ^= q >> 33;
	q *= 0xff51afd7ed558ccdULL;
	return q ^ (q >> 33);
}

unsigned queue_sched_shard(const struct queue_sched *s, const char *domain)
{
	return (unsigned)(hash_name(domain) % s->c.workers);
}

/* Heaps of (when, qid), earliest first; entries are checked when popped. */

static int heap_push(struct heap *h, uint64_t when, uint64_t qid)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct hent *v = realloc(h->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	for (i = h->n++; i > 0; i = (i - 1) / 2) {
		struct hent *p = &h->v[(i - 1) / 2];

		if (p->when <= when)
			break;
		h->v[i] = *p;
	}
	h->v[i] = (struct hent){when, qid};
	return 0;
}

static struct hent heap_pop(struct heap *h)
{
	struct hent top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1].when < h->v[c].when)
			c++;
		if (last.when <= h->v[c].when)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* Messages by queue id. */

static struct sm *sm_find(const struct queue_sched *s, uint64_t qid)
{
	for (struct sm *m = s->mt[hash_qid(qid) & (s->mcap - 1)]; m; m = m->next)
		if (m->env.qid == qid)
			return m;
	return NULL;
}

static int sm_grow(struct queue_sched *s)
{
	size_t cap = s->mcap * 2;
	struct sm **t = calloc(cap, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < s->mcap; i++)
		for (struct sm *m = s->mt[i], *n; m; m = n) {
			size_t b = hash_qid(m->env.qid) & (cap - 1);

			n = m->next;
			m->next = t[b];
			t[b] = m;
		}
	free(s->mt);
	s->mt = t;
	s->mcap = cap;
	return 0;
}

static void sm_free(struct queue_sched *s, struct sm *m)
{
	struct sm **pp = &s->mt[hash_qid(m->env.qid) & (s->mcap - 1)];

	while (*pp != m)
		pp = &(*pp)->next;
	*pp = m->next;
	s->mcount--;
	queue_env_free(&m->env);
	free(m);
}

/* Destinations. */

/* Gates: the limits a destination and a site share. */

static uint64_t gate_rate(const struct gate *g, uint64_t now_ns)
{
	uint64_t r = g->lim.rate;

	if (g->thr_until > now_ns && g->thr_rate && (r == 0 || g->thr_rate < r))
		r = g->thr_rate;
	return r;
}

static uint32_t gate_conns(const struct gate *g, uint64_t now_ns)
{
	uint32_t c = g->lim.max_connections;

	if (g->thr_until > now_ns && g->thr_conns && (c == 0 || g->thr_conns < c))
		c = g->thr_conns;
	return c;
}

/* One second's worth of jobs, at least one: a slow rate sends evenly. */
static double gate_burst(uint64_t rate)
{
	double b = (double)rate / 86400.0;

	return b < 1.0 ? 1.0 : b;
}

/* A full bucket; the clock starts at the first refill. */
static void gate_init(struct gate *g, const struct queue_dest_limits *lim)
{
	g->lim = *lim;
	g->tokens = gate_burst(lim->rate);
}

static void gate_refill(struct gate *g, uint64_t now_ns)
{
	uint64_t rate = gate_rate(g, now_ns);
	double burst = gate_burst(rate);

	if (rate != 0 && g->tok_ns != 0 && now_ns > g->tok_ns)
		g->tokens += (double)(now_ns - g->tok_ns) * (double)rate / (86400.0 * 1e9);
	/* A lower rate (a reload, a rule) takes effect at once, not after the old burst. */
	if (g->tokens > burst)
		g->tokens = burst;
	g->tok_ns = now_ns;
}

/* Room for a job: under the rate, and under @p per_conn jobs per connection
 * allowed (@p cap, when not 0, caps the connections). */
static bool gate_open(const struct gate *g, uint64_t now_ns, uint32_t cap, uint32_t per_conn)
{
	uint32_t c = gate_conns(g, now_ns);

	if (cap != 0 && (c == 0 || cap < c))
		c = cap;
	else
		c *= per_conn;
	return g->suspended_until <= now_ns && g->manual_until <= now_ns &&
	       (c == 0 || g->active < c) && (gate_rate(g, now_ns) == 0 || g->tokens >= 1.0);
}

static void gate_take(struct gate *g, uint64_t now_ns)
{
	g->active++;
	if (gate_rate(g, now_ns) != 0)
		g->tokens -= 1.0;
}

/* The smaller of two limits where 0 means none. */
static uint32_t min_limit(uint32_t a, uint32_t b)
{
	return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

/* Manual suspensions: what matches @p kind and @p name now. */
static uint64_t manual_until(const struct queue_sched *s, char kind, const char *const *names,
			     unsigned n)
{
	uint64_t until = 0;

	for (size_t i = 0; i < s->nmanual; i++) {
		const struct manual *m = &s->manual[i];

		if (m->kind != kind || m->until <= until)
			continue;
		for (unsigned k = 0; k < n; k++)
			if (fnmatch(m->pat, names[k], FNM_CASEFOLD) == 0) {
				until = m->until;
				break;
			}
	}
	return until;
}

static uint64_t dest_hash(unsigned source, const char *domain)
{
	return hash_name(domain) ^ ((uint64_t)source * 0x9e3779b97f4a7c15ULL);
}

static struct dest *dest_get(struct queue_sched *s, unsigned source, const char *domain)
{
	size_t b = dest_hash(source, domain) & (s->dcap - 1);
	struct dest *d;

	for (d = s->dt[b]; d; d = d->next)
		if (d->source == source && strcasecmp(d->name, domain) == 0)
			return d;
	if (s->nd * 2 >= s->dcap) {
		size_t cap = s->dcap * 2;
		struct dest **t = calloc(cap, sizeof(*t));

		if (t == NULL)
			return NULL;
		for (size_t i = 0; i < s->nd; i++) {
			struct dest *x = s->dlist[i];
			size_t xb = dest_hash(x->source, x->name) & (cap - 1);

			x->next = t[xb];
			t[xb] = x;
		}
		free(s->dt);
		s->dt = t;
		s->dcap = cap;
		b = dest_hash(source, domain) & (cap - 1);
	}
	if (s->nd == s->dlcap) {
		/* Doubling: a message may bring thousands of new domains. */
		size_t cap = s->dlcap ? s->dlcap * 2 : 64;
		struct dest **dl = realloc(s->dlist, cap * sizeof(*dl));

		if (dl == NULL)
			return NULL;
		s->dlist = dl;
		s->dlcap = cap;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL || (d->name = strdup(domain)) == NULL) {
		free(d);
		return NULL;
	}
	for (char *p = d->name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	d->source = source;
	d->shard = (unsigned)(dest_hash(source, d->name) % s->c.workers);
	{
		struct queue_dest_limits lim = queue_sched_limits(s, d->name);
		const char *name = d->name;

		gate_init(&d->g, &lim);
		d->g.manual_until = manual_until(s, 'd', &name, 1);
	}
	d->next = s->dt[b];
	s->dt[b] = d;
	s->dlist[s->nd++] = d;
	return d;
}

struct queue_dest_limits queue_sched_limits(struct queue_sched *s, const char *domain)
{
	struct queue_dest_limits l = s->c.dest;
	char sect[300];

	if (s->c.conf == NULL)
		return l;
	snprintf(sect, sizeof(sect), "dest %s", domain);
	/* A bad value is reported and the [queue] default kept. */
	(void)dmta_conf_read_over(s->c.conf, sect, &queue_dest_conf_section, &l);
	return l;
}

bool queue_sched_suspended(struct queue_sched *s, const char *domain, uint64_t now_ns)
{
	for (unsigned src = 0; src < s->nsrc; src++) {
		struct dest *d = dest_get(s, src, domain);

		if (d && (d->g.suspended_until > now_ns || d->g.manual_until > now_ns))
			return true;
	}
	return false;
}

/* Sites. */

struct site_match {
	const struct site *site;
	const struct dmta_conf *conf;
	struct queue_dest_limits *lim;
	bool found;
};

static void site_section(const char *sect, void *arg)
{
	struct site_match *sm = arg;
	const char *pat = sect + strlen("site ");

	if (sm->found)
		return;
	for (unsigned i = 0; i < sm->site->nmx; i++)
		if (fnmatch(pat, sm->site->mx[i], FNM_CASEFOLD) == 0) {
			sm->found = true;
			(void)dmta_conf_read_over(sm->conf, sect, &queue_site_conf_section,
						  sm->lim);
			return;
		}
}

static struct queue_dest_limits site_limits(const struct queue_sched *s, const struct site *site)
{
	struct queue_dest_limits l = s->c.site;
	struct site_match sm = {site, s->c.conf, &l, false};

	if (s->c.conf != NULL)
		dmta_conf_sections(s->c.conf, "site ", site_section, &sm);
	return l;
}

static void count_section(const char *sect, void *arg)
{
	(*(unsigned *)arg)++;
}

/* Whether any site has a limit of its own (else a site's gate only holds rules' throttles). */
static bool any_site_limits(const struct queue_sched_conf *c)
{
	const struct queue_dest_limits *l = &c->site;
	unsigned n = 0;

	if (l->max_connections || l->max_messages_per_connection || l->max_recipients || l->rate)
		return true;
	if (c->conf != NULL)
		dmta_conf_sections(c->conf, "site ", count_section, &n);
	return n > 0;
}

static uint64_t site_hash(unsigned source, uint64_t key)
{
	return hash_qid(key ^ ((uint64_t)source * 0x9e3779b97f4a7c15ULL));
}

static struct site *site_get(struct queue_sched *s, unsigned source, uint64_t key,
			     const char *const *mx, unsigned nmx)
{
	size_t b;
	struct site *x;

	if (s->stcap == 0 || s->nsites * 2 >= s->stcap) {
		size_t cap = s->stcap ? s->stcap * 2 : 64;
		struct site **t = calloc(cap, sizeof(*t));

		if (t == NULL)
			return NULL;
		for (size_t i = 0; i < s->stcap; i++)
			for (struct site *y = s->st[i], *n; y; y = n) {
				n = y->next;
				y->next = t[site_hash(y->source, y->key) & (cap - 1)];
				t[site_hash(y->source, y->key) & (cap - 1)] = y;
			}
		free(s->st);
		s->st = t;
		s->stcap = cap;
	}
	b = site_hash(source, key) & (s->stcap - 1);
	for (x = s->st[b]; x; x = x->next)
		if (x->source == source && x->key == key)
			return x;
	x = calloc(1, sizeof(*x));
	if (x == NULL || (x->mx = calloc(nmx, sizeof(*x->mx))) == NULL) {
		free(x);
		return NULL;
	}
	for (; x->nmx < nmx; x->nmx++)
		if ((x->mx[x->nmx] = strdup(mx[x->nmx])) == NULL) {
			for (unsigned i = 0; i < x->nmx; i++)
				free(x->mx[i]);
			free(x->mx);
			free(x);
			return NULL;
		}
	if (asprintf(&x->pool_key, "site:%s", x->mx[0]) < 0) {
		for (unsigned i = 0; i < x->nmx; i++)
			free(x->mx[i]);
		free(x->mx);
		free(x);
		return NULL;
	}
	x->key = key;
	x->source = source;
	x->shard = (unsigned)(site_hash(source, key) % s->c.workers);
	{
		struct queue_dest_limits lim = site_limits(s, x);

		gate_init(&x->g, &lim);
		x->g.manual_until = manual_until(s, 's', (const char *const *)x->mx, x->nmx);
	}
	x->next = s->st[b];
	s->st[b] = x;
	s->nsites++;
	return x;
}

unsigned queue_sched_job_site(struct queue_sched *s, struct queue_job *job, uint64_t site,
			      const char *const *mx, unsigned nmx, bool shard_by_site)
{
	struct item *it = job->priv;
	struct dest *d = it->d;

	if (site == 0 || nmx == 0)
		return job->shard;
	if (d->site == NULL || d->site->key != site) {
		struct site *x = site_get(s, d->source, site, mx, nmx);

		if (x == NULL)
			return job->shard; /* out of memory: the domain's own limits still hold */
		d->site = x;
		/* A site whose connections are limited is kept by one worker's pool. */
		if (shard_by_site || x->g.lim.max_connections != 0)
			d->shard = x->shard;
	}
	if (it->site == NULL) {
		/* The job that went before the site was known (the only one:
		 * queue_sched_jobs() waits for it) counts there now, for its
		 * connection and for the rate. */
		it->site = d->site;
		it->site->g.active++;
		gate_refill(&it->site->g, s->last_ns);
		if (gate_rate(&it->site->g, s->last_ns) != 0)
			it->site->g.tokens -= 1.0;
	}
	job->shard = d->shard;
	{
		uint32_t conns = gate_conns(&d->site->g, s->last_ns);

		if (conns != 0) {
			job->pool_key = d->site->pool_key;
			job->max_connections = conns;
		}
	}
	return job->shard;
}

const char *queue_sched_job_site_name(const struct queue_sched *s, const struct queue_job *job)
{
	const struct item *it = job->priv;
	const struct site *x = it->site ? it->site : it->d->site;

	(void)s;
	return x ? x->mx[0] : NULL;
}

/* Source @p i's name: the egress's, or "default" with one implicit source. */
static const char *src_name(const struct queue_sched *s, unsigned i)
{
	return s->egress ? queue_egress_source_name(s->egress, i) : "default";
}

void queue_sched_throttle(struct queue_sched *s, const struct queue_job *job,
			  const struct queue_throttle *t, uint64_t now_ns)
{
	const struct item *it = job->priv;
	struct site *x = it->site ? it->site : it->d->site;
	struct gate *g = x ? &x->g : &it->d->g;
	uint64_t until = now_ns + t->duration_ms * DMTA_NS_PER_MS;

	if (t->suspend) {
		if (until > g->suspended_until)
			g->suspended_until = until;
	} else {
		g->thr_until = until;
		g->thr_rate = t->rate;
		g->thr_conns = t->max_connections;
	}
	snprintf(g->why, sizeof(g->why), "%s", t->why ? t->why : "rule");
	dmta_warn("queue: %s %s (source %s) %s for %llu s: %s", x ? "site" : "destination",
		  x ? x->mx[0] : it->d->name, src_name(s, it->d->source),
		  t->suspend ? "suspended" : "throttled",
		  (unsigned long long)(t->duration_ms / 1000), g->why);
}

/* Manual suspension. */

static int target_parse(const char *target, char *kind, const char **pat)
{
	if (strncmp(target, "site:", 5) == 0) {
		*kind = 's';
		*pat = target + 5;
	} else if (strncmp(target, "source:", 7) == 0) {
		*kind = 'o';
		*pat = target + 7;
	} else {
		*kind = 'd';
		*pat = target;
	}
	return **pat ? 0 : -EINVAL;
}

/* Set manual_until on everything @p kind/@p pat names now. Count of changes. */
static int manual_apply(struct queue_sched *s, char kind, const char *pat, uint64_t until)
{
	int n = 0;

#define SET(field)                                                                                 \
	do {                                                                                       \
		n += (field) != until;                                                             \
		(field) = until;                                                                   \
	} while (0)
	if (kind == 'o') {
		for (unsigned i = 0; i < s->nsrc; i++)
			if (fnmatch(pat, src_name(s, i), 0) == 0)
				SET(s->src[i].manual_until);
		return n;
	}
	if (kind == 'd') {
		for (size_t i = 0; i < s->nd; i++)
			if (fnmatch(pat, s->dlist[i]->name, FNM_CASEFOLD) == 0)
				SET(s->dlist[i]->g.manual_until);
		return n;
	}
	for (size_t i = 0; i < s->stcap; i++)
		for (struct site *x = s->st[i]; x; x = x->next)
			for (unsigned k = 0; k < x->nmx; k++)
				if (fnmatch(pat, x->mx[k], FNM_CASEFOLD) == 0) {
					SET(x->g.manual_until);
					break;
				}
#undef SET
	return n;
}

/* Whether source @p pat names one. */
static bool source_exists(const struct queue_sched *s, const char *pat)
{
	for (unsigned i = 0; i < s->nsrc; i++)
		if (fnmatch(pat, src_name(s, i), 0) == 0)
			return true;
	return false;
}

int queue_sched_suspend(struct queue_sched *s, const char *target, uint64_t duration_ms,
			uint64_t now_ns)
{
	uint64_t until = duration_ms ? now_ns + duration_ms * DMTA_NS_PER_MS : UINT64_MAX;
	struct manual *v;
	const char *pat;
	char kind;

	if (target_parse(target, &kind, &pat) != 0)
		return -EINVAL;
	if (kind == 'o' && !source_exists(s, pat))
		return -EINVAL;
	for (size_t i = 0; i < s->nmanual; i++)
		if (s->manual[i].kind == kind && strcmp(s->manual[i].pat, pat) == 0) {
			s->manual[i].until = until;
			manual_apply(s, kind, pat, until);
			return 0;
		}
	v = realloc(s->manual, (s->nmanual + 1) * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	s->manual = v;
	v[s->nmanual] = (struct manual){.kind = kind, .pat = strdup(pat), .until = until};
	if (v[s->nmanual].pat == NULL)
		return -ENOMEM;
	s->nmanual++;
	manual_apply(s, kind, pat, until);
	dmta_info("queue: %s suspended by the operator%s", target,
		  duration_ms ? "" : " until resumed");
	return 0;
}

/* End a gate's suspension and throttle; whether one was in force. */
static bool gate_lift(struct gate *g, uint64_t now_ns)
{
	bool was = g->suspended_until > now_ns || g->thr_until > now_ns;

	g->suspended_until = g->thr_until = 0;
	return was;
}

int queue_sched_resume(struct queue_sched *s, const char *target, uint64_t now_ns)
{
	const char *pat;
	char kind;
	int n = 0;

	if (target_parse(target, &kind, &pat) != 0)
		return -EINVAL;
	for (size_t i = 0; i < s->nmanual; i++)
		if (s->manual[i].kind == kind && strcmp(s->manual[i].pat, pat) == 0) {
			free(s->manual[i].pat);
			s->manual[i--] = s->manual[--s->nmanual];
			n++;
		}
	n += manual_apply(s, kind, pat, 0);
	/* Resuming also lifts what rules and failures started there. */
	if (kind == 'd')
		for (size_t i = 0; i < s->nd; i++)
			if (fnmatch(pat, s->dlist[i]->name, FNM_CASEFOLD) == 0) {
				struct dest *d = s->dlist[i];

				n += gate_lift(&d->g, now_ns);
				d->fails = 0;
				if (d->site)
					n += gate_lift(&d->site->g, now_ns);
			}
	if (kind == 's')
		for (size_t i = 0; i < s->stcap; i++)
			for (struct site *x = s->st[i]; x; x = x->next)
				for (unsigned k = 0; k < x->nmx; k++)
					if (fnmatch(pat, x->mx[k], FNM_CASEFOLD) == 0) {
						n += gate_lift(&x->g, now_ns);
						break;
					}
	return n ? 0 : -ENOENT;
}

static bool gate_listed(const struct gate *g, uint64_t now_ns)
{
	return g->suspended_until > now_ns || g->manual_until > now_ns || g->thr_until > now_ns;
}

static void gate_suspension(const struct gate *g, uint64_t now_ns, struct queue_suspension *v)
{
	if (g->manual_until > now_ns) {
		v->why = "manual";
		v->until_ns = g->manual_until;
	} else if (g->suspended_until > now_ns) {
		v->why = g->why[0] ? g->why : "connection failures";
		v->until_ns = g->suspended_until;
	} else {
		v->why = g->why[0] ? g->why : "rule";
		v->throttled = true;
		v->until_ns = g->thr_until;
	}
}

size_t queue_sched_suspensions(const struct queue_sched *s, uint64_t now_ns,
			       struct queue_suspension *v, size_t max)
{
	size_t n = 0;

	for (unsigned i = 0; i < s->nsrc && n < max; i++)
		if (s->src[i].manual_until > now_ns)
			v[n++] = (struct queue_suspension){
			    "source", src_name(s, i), "", "manual", false, s->src[i].manual_until};
	for (size_t i = 0; i < s->stcap && n < max; i++)
		for (const struct site *x = s->st[i]; x && n < max; x = x->next)
			if (gate_listed(&x->g, now_ns)) {
				v[n] = (struct queue_suspension){.kind = "site",
								 .name = x->mx[0],
								 .source = src_name(s, x->source)};
				gate_suspension(&x->g, now_ns, &v[n++]);
			}
	for (size_t i = 0; i < s->nd && n < max; i++) {
		const struct dest *d = s->dlist[i];

		if (gate_listed(&d->g, now_ns)) {
			v[n] = (struct queue_suspension){
			    .kind = "domain", .name = d->name, .source = src_name(s, d->source)};
			gate_suspension(&d->g, now_ns, &v[n++]);
		}
	}
	return n;
}

/* Life cycle. */

struct queue_sched *queue_sched_new(const struct queue_sched_conf *c,
				    const struct queue_sched_ops *ops, uint64_t seed)
{
	struct queue_sched *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->c = *c;
	if (s->c.workers == 0)
		s->c.workers = 1;
	s->ops = *ops;
	s->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	s->mcap = 1024;
	s->dcap = 64;
	s->egress = c->egress;
	s->nsrc = s->egress ? queue_egress_nsources(s->egress) : 1;
	s->site_limits = any_site_limits(c);
	s->mt = calloc(s->mcap, sizeof(*s->mt));
	s->dt = calloc(s->dcap, sizeof(*s->dt));
	s->src = calloc(s->nsrc, sizeof(*s->src));
	if (s->mt == NULL || s->dt == NULL || s->src == NULL) {
		free(s->mt);
		free(s->dt);
		free(s->src);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

void queue_sched_free(struct queue_sched *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->mcap; i++)
		for (struct sm *m = s->mt[i], *n; m; m = n) {
			n = m->next;
			queue_env_free(&m->env);
			free(m);
		}
	for (struct item *it = s->flight, *n; it; it = n) {
		n = it->fnext;
		free(it);
	}
	for (size_t i = 0; i < s->nd; i++) {
		struct dest *d = s->dlist[i];

		for (unsigned l = 0; l < LANES; l++) {
			for (unsigned q = 0; q < d->lanes[l].n; q++) {
				for (struct item *it = d->lanes[l].q[q].head, *n; it; it = n) {
					n = it->next;
					free(it);
				}
				free(d->lanes[l].q[q].tenant);
			}
			free(d->lanes[l].q);
		}
		free(d->name);
		free(d);
	}
	for (size_t i = 0; i < s->stcap; i++)
		for (struct site *x = s->st[i], *n; x; x = n) {
			n = x->next;
			for (unsigned k = 0; k < x->nmx; k++)
				free(x->mx[k]);
			free(x->mx);
			free(x->pool_key);
			free(x);
		}
	for (size_t i = 0; i < s->nmanual; i++)
		free(s->manual[i].pat);
	free(s->manual);
	free(s->st);
	free(s->src);
	free(s->mt);
	free(s->dt);
	free(s->dlist);
	free(s->due.v);
	free(s->exp.v);
	free(s);
}

void queue_sched_reconfigure(struct queue_sched *s, const struct queue_sched_conf *c)
{
	unsigned workers = s->c.workers;

	s->c = *c;
	s->c.workers = workers;
	s->c.egress = s->egress; /* sources are indices into the first one */
	s->site_limits = any_site_limits(&s->c);
	for (size_t i = 0; i < s->nd; i++) {
		struct dest *d = s->dlist[i];

		d->g.lim = queue_sched_limits(s, d->name);
	}
	for (size_t i = 0; i < s->stcap; i++)
		for (struct site *x = s->st[i]; x; x = x->next)
			x->g.lim = site_limits(s, x);
}

static bool rcpt_active(const struct queue_rcpt *r)
{
	return r->state == QUEUE_RCPT_PENDING || r->state == QUEUE_RCPT_DEFERRED;
}

int queue_sched_add(struct queue_sched *s, const struct queue_env *env, uint64_t now_ns)
{
	struct sm *m;
	size_t b;
	int rc;

	if (sm_find(s, env->qid))
		return -EEXIST;
	if (s->mcount >= s->mcap && sm_grow(s) < 0)
		return -ENOMEM;
	m = malloc(sizeof(*m)); /* malloc has a per-thread cache, calloc not */
	if (m == NULL)
		return -ENOMEM;
	*m = (struct sm){0};
	if (queue_env_dup(&m->env, env) < 0) {
		free(m);
		return -ENOMEM;
	}
	m->expire_ns = env->arrival_ns + s->c.lifetime_ms * DMTA_NS_PER_MS;
	m->held = env->flags & QUEUE_F_HOLD;
	m->state = m->held ? SM_HELD : SM_WAITING;
	b = hash_qid(env->qid) & (s->mcap - 1);
	m->next = s->mt[b];
	s->mt[b] = m;
	s->mcount++;
	rc = heap_push(&s->exp, m->expire_ns, env->qid);
	if (rc == 0 && !m->held)
		rc = heap_push(&s->due, m->env.next_attempt_ns, env->qid);
	(void)now_ns;
	return rc;
}

int queue_sched_remove(struct queue_sched *s, uint64_t qid)
{
	struct sm *m = sm_find(s, qid);

	if (m == NULL)
		return -ENOENT;
	if (m->inflight)
		return -EBUSY;
	sm_free(s, m); /* its queued items are dropped when reached */
	return 0;
}

int queue_sched_hold(struct queue_sched *s, uint64_t qid)
{
	struct sm *m = sm_find(s, qid);

	if (m == NULL)
		return -ENOENT;
	m->held = true;
	m->env.flags |= QUEUE_F_HOLD;
	if (m->state == SM_WAITING)
		m->state = SM_HELD;
	s->ops.store(s->ops.ctx, &m->env);
	return 0;
}

int queue_sched_release(struct queue_sched *s, uint64_t qid, uint64_t now_ns)
{
	struct sm *m = sm_find(s, qid);
	int rc = 0;

	if (m == NULL)
		return -ENOENT;
	m->held = false;
	m->env.flags &= ~(uint32_t)QUEUE_F_HOLD;
	if (m->state == SM_HELD) {
		m->state = SM_WAITING;
		m->env.next_attempt_ns = now_ns;
		rc = heap_push(&s->due, now_ns, qid);
		/* Held messages do not expire; a released one may be overdue. */
		if (rc == 0)
			rc = heap_push(&s->exp, m->expire_ns, qid);
	}
	s->ops.store(s->ops.ctx, &m->env);
	return rc;
}

int queue_sched_flush(struct queue_sched *s, const char *domain, uint64_t now_ns)
{
	int n = 0;

	for (size_t i = 0; i < s->nd; i++) {
		struct dest *d = s->dlist[i];

		if (domain == NULL || strcasecmp(d->name, domain) == 0) {
			d->g.suspended_until = 0;
			d->fails = 0;
		}
	}
	for (size_t i = 0; i < s->mcap; i++)
		for (struct sm *m = s->mt[i]; m; m = m->next) {
			bool hit = domain == NULL;

			if (m->state != SM_WAITING || m->env.next_attempt_ns <= now_ns)
				continue;
			for (uint32_t k = 0; k < m->env.nrcpt && !hit; k++)
				hit =
				    rcpt_active(&m->env.rcpt[k]) &&
				    strcasecmp(queue_addr_domain(m->env.rcpt[k].addr), domain) == 0;
			if (!hit)
				continue;
			m->env.next_attempt_ns = now_ns;
			if (heap_push(&s->due, now_ns, m->env.qid) < 0)
				return -ENOMEM;
			n++;
		}
	return n;
}

/* Send one DSN for the recipients that failed for good since the last one. */
static void report_bounces(struct queue_sched *s, struct sm *m)
{
	struct queue_env *e = &m->env;
	uint32_t *v = NULL, n = 0;
	bool any = false;

	for (uint32_t i = 0; i < e->nrcpt; i++) {
		struct queue_rcpt *r = &e->rcpt[i];

		if (r->state != QUEUE_RCPT_BOUNCED || (r->rflags & QUEUE_RCPT_F_DSN_SENT))
			continue;
		r->rflags |= QUEUE_RCPT_F_DSN_SENT; /* never reported twice */
		any = true;
		/* None to <>, never for a DSN, and only when NOTIFY asks for it. */
		if (e->sender[0] == 0 || (e->flags & QUEUE_F_DSN) ||
		    (r->notify != QUEUE_NOTIFY_DEFAULT && !(r->notify & QUEUE_NOTIFY_FAILURE)))
			continue;
		if (v == NULL && (v = malloc(e->nrcpt * sizeof(*v))) == NULL) {
			dmta_err("queue: out of memory; DSN lost for a message");
			return;
		}
		v[n++] = i;
	}
	if (n > 0)
		s->ops.dsn(s->ops.ctx, e, v, n);
	free(v);
	(void)any;
}

/* One "delayed" DSN per message, once it has waited delay_warning. */
static void warn_delay(struct queue_sched *s, struct sm *m, uint64_t now_ns)
{
	struct queue_env *e = &m->env;
	uint32_t *v, n = 0;

	if (s->c.delay_warning_ms == 0 || s->ops.delay == NULL || (e->flags & QUEUE_F_WARNED) ||
	    now_ns < e->arrival_ns + s->c.delay_warning_ms * DMTA_NS_PER_MS)
		return;
	e->flags |= QUEUE_F_WARNED;
	if (e->sender[0] == 0 || (e->flags & QUEUE_F_DSN))
		return;
	v = malloc(e->nrcpt * sizeof(*v));
	if (v == NULL)
		return;
	for (uint32_t i = 0; i < e->nrcpt; i++) {
		const struct queue_rcpt *r = &e->rcpt[i];

		if (r->state == QUEUE_RCPT_DEFERRED &&
		    (r->notify == QUEUE_NOTIFY_DEFAULT || (r->notify & QUEUE_NOTIFY_DELAY)))
			v[n++] = i;
	}
	if (n > 0)
		s->ops.delay(s->ops.ctx, e, v, n);
	free(v);
}

/* A round is over: settle DSNs, backoff and storage. */
static void finish_round(struct queue_sched *s, struct sm *m, uint64_t now_ns)
{
	report_bounces(s, m);
	if (!queue_env_active(&m->env)) {
		s->ops.done(s->ops.ctx, &m->env);
		sm_free(s, m);
		return;
	}
	if (m->tried)
		warn_delay(s, m, now_ns);
	if (m->tried) {
		uint64_t next;

		m->env.attempts++;
		next = now_ns +
		       jitter(s, queue_sched_backoff_ms(&s->c, m->env.attempts)) * DMTA_NS_PER_MS;
		/* Never sleep past the give-up time: expiry must come on time. */
		m->env.next_attempt_ns = next < m->expire_ns ? next : m->expire_ns;
	} else if (m->env.next_attempt_ns < now_ns) {
		m->env.next_attempt_ns = now_ns;
	}
	m->tried = false;
	if (m->held) {
		m->state = SM_HELD;
	} else {
		m->state = SM_WAITING;
		if (heap_push(&s->due, m->env.next_attempt_ns, m->env.qid) < 0)
			dmta_err("queue: out of memory; a message waits for the next restart");
	}
	s->ops.store(s->ops.ctx, &m->env);
}

static void expire(struct queue_sched *s, struct sm *m, uint64_t now_ns)
{
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		struct queue_rcpt *r = &m->env.rcpt[i];

		if (!rcpt_active(r))
			continue;
		r->state = QUEUE_RCPT_BOUNCED;
		if (r->reply == NULL)
			queue_env_set_reply(&m->env, i, "4.4.7 delivery time expired");
	}
	m->queued = 0; /* queued items are stale now; dropped when reached */
	finish_round(s, m, now_ns);
}

/* Queue @p it in its destination's lane for @p m's priority, behind its tenant's items. */
static int dest_append(struct sm *m, struct item *it)
{
	struct dest *d = it->d;
	struct lane *l = &d->lanes[m->env.priority < LANES ? m->env.priority : QUEUE_PRIO_NORMAL];
	const char *tenant = m->env.tenant ? m->env.tenant : "";
	struct tenant_q *q = NULL;

	for (unsigned i = 0; i < l->n; i++)
		if (strcmp(l->q[i].tenant, tenant) == 0) {
			q = &l->q[i];
			break;
		}
	if (q == NULL) {
		if (l->n == l->cap) {
			unsigned cap = l->cap ? l->cap * 2 : 2;
			struct tenant_q *v = realloc(l->q, cap * sizeof(*v));

			if (v == NULL)
				return -ENOMEM;
			l->q = v;
			l->cap = cap;
		}
		q = &l->q[l->n];
		*q = (struct tenant_q){.tenant = strdup(tenant)};
		if (q->tenant == NULL)
			return -ENOMEM;
		l->n++;
	}
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	d->queued++;
	m->queued++;
	return 0;
}

/* The next item of @p d: the highest lane first, its tenants in turn. */
static struct item *dest_next(struct dest *d)
{
	for (unsigned k = 0; k < LANES; k++) {
		struct lane *l = &d->lanes[lane_order[k]];

		for (unsigned i = 0; i < l->n; i++) {
			struct tenant_q *q = &l->q[(l->rr + i) % l->n];
			struct item *it = q->head;

			if (it == NULL)
				continue;
			q->head = it->next;
			if (q->head == NULL)
				q->tail = NULL;
			it->next = NULL;
			l->rr = (l->rr + i + 1) % l->n;
			d->queued--;
			return it;
		}
	}
	return NULL;
}

/* A destination's item being filled while make_ready() goes through the recipients. */
struct open_item {
	struct dest *d;
	struct item *it;
	uint32_t max;	 /* recipients per item */
	const char *dom; /* as the first recipient for it spells it */
};

/* Up to this many recipients, make_ready() works on the stack and finds
 * repeated domains by comparing: most messages have one recipient, and an
 * allocation and a hash set per round were most of its cost. */
#define READY_FEW_RCPT 8

/*
 * @p m's pool has no [pool] section: it was queued before the section was
 * removed (submission refuses such names). Said once a minute per name at
 * most, as every message of the pool comes here each round.
 */
static void pool_gone(struct queue_sched *s, const struct sm *m, uint64_t now_ns)
{
	unsigned n = sizeof(s->pool_warned) / sizeof(s->pool_warned[0]), i;

	for (i = 0; i < n; i++)
		if (strcmp(s->pool_warned[i].name, m->env.pool) == 0)
			break;
	if (i < n && now_ns < s->pool_warned[i].at + 60 * DMTA_NS_PER_S)
		return;
	if (i == n) {
		i = s->pool_warned_next;
		s->pool_warned_next = (i + 1) % n;
		snprintf(s->pool_warned[i].name, sizeof(s->pool_warned[i].name), "%s", m->env.pool);
	}
	s->pool_warned[i].at = now_ns;
	dmta_warn("queue: no [pool %s] for its queued messages (%llu first): they go from the "
		  "default pool",
		  m->env.pool, (unsigned long long)m->env.qid);
}

/* The source for this round of @p m: its pool's next, by weight. */
static unsigned pick_source(struct queue_sched *s, const struct sm *m, uint64_t now_ns)
{
	int pool;

	if (s->egress == NULL)
		return 0;
	pool = queue_egress_pool(s->egress, m->env.pool);
	if (pool < 0) {
		pool_gone(s, m, now_ns);
		pool = queue_egress_pool(s->egress, NULL);
	}
	return queue_egress_pick(s->egress, pool);
}

/*
 * Queue the active recipients at their destinations, max_recipients per
 * item, in one pass: a message may have a great many recipients and
 * domains. Each destination's full items go first, its partial one last.
 */
static int make_ready(struct queue_sched *s, struct sm *m, uint64_t now_ns)
{
	struct queue_env *e = &m->env;
	bool few = e->nrcpt <= READY_FEW_RCPT;
	struct open_item stack[READY_FEW_RCPT] = {0};
	struct open_item *open = few ? stack : calloc(e->nrcpt, sizeof(*open));
	struct queue_names doms;
	unsigned source;
	uint32_t nopen = 0;
	int rc = -ENOMEM;

	if (open == NULL)
		return -ENOMEM;
	if (!few && queue_names_init(&doms, e->nrcpt, true) != 0) {
		free(open);
		return -ENOMEM;
	}
	m->state = SM_READY;
	m->tried = false;
	source = pick_source(s, m, now_ns);
	for (uint32_t i = 0; i < e->nrcpt; i++) {
		const char *dom = queue_addr_domain(e->rcpt[i].addr);
		struct open_item *o;
		uint32_t *slot, k = 0;

		if (!rcpt_active(&e->rcpt[i]))
			continue;
		if (few) {
			while (k < nopen && strcasecmp(open[k].dom, dom) != 0)
				k++;
			slot = &k;
		}
		if (few ? k == nopen : queue_names_put(&doms, dom, &slot) == 1) {
			open[nopen].d = dest_get(s, source, dom);
			if (open[nopen].d == NULL)
				goto out;
			open[nopen].dom = dom;
			*slot = nopen++;
		}
		o = &open[*slot];
		if (o->it == NULL) {
			o->max = min_limit(o->d->g.lim.max_recipients,
					   o->d->site ? o->d->site->g.lim.max_recipients : 0);
			o->it = malloc(sizeof(*o->it) + o->max * sizeof(uint32_t));
			if (o->it == NULL)
				goto out;
			*o->it = (struct item){.qid = e->qid, .d = o->d};
		}
		o->it->rcpt[o->it->n++] = i;
		if (o->it->n == o->max) {
			if (dest_append(m, o->it) != 0)
				goto out;
			o->it = NULL;
		}
	}
	for (uint32_t k = 0; k < nopen; k++)
		if (open[k].it != NULL) {
			if (dest_append(m, open[k].it) != 0)
				goto out;
			open[k].it = NULL;
		}
	rc = 0;
out:
	/* Items still open after a failure: the queued ones stay (they are
	 * dropped lazily when the message goes), these never made it. */
	for (uint32_t k = 0; k < nopen; k++)
		free(open[k].it);
	if (!few) {
		free(open);
		queue_names_free(&doms);
	}
	if (rc == 0 && m->queued == 0)
		finish_round(s, m, m->env.next_attempt_ns);
	return rc;
}

int queue_sched_tick(struct queue_sched *s, uint64_t now_ns)
{
	int expired = 0;

	while (s->due.n && s->due.v[0].when <= now_ns) {
		struct hent h = heap_pop(&s->due);
		struct sm *m = sm_find(s, h.qid);

		if (m == NULL || m->state != SM_WAITING || m->env.next_attempt_ns != h.when)
			continue; /* stale entry */
		if (make_ready(s, m, now_ns) < 0)
			return -ENOMEM;
	}
	while (s->exp.n && s->exp.v[0].when <= now_ns) {
		struct hent h = heap_pop(&s->exp);
		struct sm *m = sm_find(s, h.qid);

		if (m == NULL || m->expire_ns != h.when || m->held)
			continue;
		if (m->inflight) {
			m->expire_due = true;
			continue;
		}
		expire(s, m, now_ns);
		expired++;
	}
	return expired;
}

/* Take an item off a destination's queue; drop it when it has gone stale. */
static struct item *dest_pop(struct queue_sched *s, struct dest *d, struct sm **mp)
{
	struct item *it;

	while ((it = dest_next(d)) != NULL) {
		struct sm *m = sm_find(s, it->qid);
		uint32_t n = 0;

		if (m == NULL || m->state != SM_READY) {
			free(it);
			continue;
		}
		m->queued--;
		for (uint32_t i = 0; i < it->n; i++)
			if (rcpt_active(&m->env.rcpt[it->rcpt[i]]))
				it->rcpt[n++] = it->rcpt[i];
		it->n = n;
		if (n == 0 || m->held) {
			free(it);
			if (m->queued == 0 && m->inflight == 0)
				finish_round(s, m, m->env.next_attempt_ns);
			continue;
		}
		*mp = m;
		return it;
	}
	return NULL;
}

int queue_sched_jobs(struct queue_sched *s, uint64_t now_ns, struct queue_job *jobs, int max)
{
	int n = 0;

	s->last_ns = now_ns;
	for (size_t k = 0; k < s->nd && n < max; k++) {
		struct dest *d = s->dlist[(s->rr + k) % s->nd];
		struct site *x = d->site;

		if (d->queued == 0 || s->src[d->source].manual_until > now_ns)
			continue;
		gate_refill(&d->g, now_ns);
		if (x != NULL)
			gate_refill(&x->g, now_ns);
		while (n < max && d->queued) {
			struct item *it;
			struct sm *m;

			/* Until DNS has named the site, one job at a time when
			 * sites have limits: they cannot be checked yet. */
			uint32_t per = d->proven ? QUEUE_JOBS_PER_CONNECTION : 1;

			if (!gate_open(&d->g, now_ns,
				       d->probing || (x == NULL && s->site_limits) ? 1 : 0, per) ||
			    (x != NULL && !gate_open(&x->g, now_ns, 0, per)))
				break;
			it = dest_pop(s, d, &m);
			if (it == NULL)
				break;
			gate_take(&d->g, now_ns);
			if (x != NULL) {
				gate_take(&x->g, now_ns);
				it->site = x;
			}
			m->inflight++;
			it->fprev = NULL;
			it->fnext = s->flight;
			if (s->flight)
				s->flight->fprev = it;
			s->flight = it;
			jobs[n++] = (struct queue_job){
			    .qid = it->qid,
			    .domain = d->name,
			    .shard = d->shard,
			    .source = d->source,
			    .max_messages_per_connection =
				min_limit(d->g.lim.max_messages_per_connection,
					  x ? x->g.lim.max_messages_per_connection : 0),
			    .max_connections = gate_conns(&d->g, now_ns),
			    .pool_key = d->name,
			    .nrcpt = it->n,
			    .rcpt = it->rcpt,
			    .priv = it,
			};
		}
	}
	if (s->nd)
		s->rr = (s->rr + 1) % s->nd;
	return n;
}

static void suspend(struct queue_sched *s, struct dest *d, uint64_t now_ns)
{
	d->suspend_cur_ms = d->suspend_cur_ms ? d->suspend_cur_ms * 2 : s->c.suspend_ms;
	if (d->suspend_cur_ms > s->c.max_suspend_ms)
		d->suspend_cur_ms = s->c.max_suspend_ms;
	d->g.suspended_until = now_ns + d->suspend_cur_ms * DMTA_NS_PER_MS;
	d->g.why[0] = '\0';
	d->probing = true;
	d->fails = 0;
	dmta_warn("queue: destination %s suspended for %llu s after connection failures", d->name,
		  (unsigned long long)(d->suspend_cur_ms / 1000));
}

int queue_sched_result(struct queue_sched *s, struct queue_job *job, const struct queue_result *res,
		       uint64_t now_ns)
{
	struct item *it = job->priv;
	struct dest *d = it->d;
	struct sm *m = sm_find(s, job->qid);

	if (d->g.active == 0)
		dmta_panic("queue: result for %s with no job out", d->name);
	d->g.active--;
	if (it->site != NULL && it->site->g.active > 0)
		it->site->g.active--;
	if (res->local) {
		/* Says nothing about the destination. */
	} else if (!res->connected) {
		/*
		 * Jobs that were out when the destination was suspended fail too;
		 * they belong to the same outage and do not lengthen it.
		 */
		d->proven = false;
		if (d->g.suspended_until <= now_ns) {
			d->fails++;
			if (d->probing || d->fails >= s->c.suspend_after)
				suspend(s, d, now_ns);
		}
	} else {
		d->fails = 0;
		d->proven = true;
		if (d->probing) {
			d->probing = false;
			d->suspend_cur_ms = 0;
		}
	}
	if (m == NULL)
		dmta_panic("queue: result for a message that is gone");
	for (uint32_t i = 0; i < job->nrcpt; i++) {
		uint32_t k = job->rcpt[i];
		struct queue_rcpt *r = &m->env.rcpt[k];
		int code = res->connected ? res->code[i] : 421;
		const char *text = res->connected ? res->text[i] : res->reply;

		if (!rcpt_active(r))
			continue;
		r->attempts++;
		r->last_attempt_ns = now_ns;
		if (code >= 200 && code < 300)
			r->state = QUEUE_RCPT_DELIVERED;
		else if (code >= 500 && code < 600)
			r->state = QUEUE_RCPT_BOUNCED;
		else
			r->state = QUEUE_RCPT_DEFERRED;
		if (text && queue_env_set_reply(&m->env, k, text) < 0)
			dmta_err("queue: out of memory; reply not kept");
	}
	if (it->fprev)
		it->fprev->fnext = it->fnext;
	else
		s->flight = it->fnext;
	if (it->fnext)
		it->fnext->fprev = it->fprev;
	free(it);
	m->inflight--;
	m->tried = true;
	if (m->inflight == 0 && (m->expire_due || (!m->held && now_ns >= m->expire_ns))) {
		m->expire_due = false;
		expire(s, m, now_ns);
	} else if (m->inflight == 0 && m->queued == 0) {
		finish_round(s, m, now_ns);
	}
	return 0;
}

uint64_t queue_sched_next_due(const struct queue_sched *s)
{
	uint64_t t = UINT64_MAX;

	if (s->due.n)
		t = s->due.v[0].when;
	if (s->exp.n && s->exp.v[0].when < t)
		t = s->exp.v[0].when;
	return t;
}

const struct queue_env *queue_sched_env(const struct queue_sched *s, uint64_t qid)
{
	struct sm *m = sm_find(s, qid);

	return m ? &m->env : NULL;
}

void queue_sched_get_stats(const struct queue_sched *s, struct queue_sched_stats *st)
{
	uint64_t now = dmta_wall_ns();

	memset(st, 0, sizeof(*st));
	st->messages = s->mcount;
	for (size_t i = 0; i < s->mcap; i++)
		for (struct sm *m = s->mt[i]; m; m = m->next) {
			st->waiting += m->state == SM_WAITING;
			st->ready += m->state == SM_READY;
			st->held += m->state == SM_HELD;
			st->inflight += m->inflight;
		}
	st->dests = s->nd;
	st->sites = s->nsites;
	/* Stats are for people: suspensions as of the wall clock. */
	for (size_t i = 0; i < s->nd; i++) {
		const struct dest *d = s->dlist[i];

		st->suspended += (d->g.suspended_until > 0 && d->probing) ||
				 d->g.manual_until > now || d->g.suspended_until > now;
		st->throttled += d->g.thr_until > now;
	}
	for (size_t i = 0; i < s->stcap; i++)
		for (const struct site *x = s->st[i]; x; x = x->next) {
			st->suspended += x->g.suspended_until > now || x->g.manual_until > now;
			st->throttled += x->g.thr_until > now;
		}
	for (unsigned i = 0; i < s->nsrc; i++)
		st->suspended += s->src[i].manual_until > now;
}

size_t queue_sched_ids(const struct queue_sched *s, uint64_t *ids, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < s->mcap; i++)
		for (struct sm *m = s->mt[i]; m && n < max; m = m->next)
			ids[n++] = m->env.qid;
	return n;
}
