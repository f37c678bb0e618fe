/*
 * test_stats.c - dmtad's live view: the JSON round trip, the parser on
 * truncated, malformed and mutated input (each input ends right before an
 * unreadable page, so any over-read faults), the text view, the rate
 * window, and the snapshot file with the daemon lock that says whether it
 * is live.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_time.h"
#include "core/control/dmta_stats.h"

static struct dmta_stats *sample(void)
{
	struct dmta_stats *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->pid = 4242;
	snprintf(s->backend, sizeof(s->backend), "kernel");
	s->time_ms = 1763900000123ULL;
	s->started_ms = 1763899990000ULL;
	s->interval_ms = 1000;
	s->messages = 10;
	s->waiting = 2;
	s->ready = 3;
	s->in_flight = 4;
	s->held = 1;
	s->dests = 5;
	s->suspended = 6;
	s->jobs_busy = 7;
	s->jobs_dns = 8;
	s->attempts = 100;
	s->delivered = 90;
	s->deferred = 9;
	s->bounced = 1;
	s->expired = 0;
	s->rate_10s = 12.5;
	s->rate = 3.25;
	s->bounces = 11;
	s->delay_dsns = 21;
	s->loaded = 12;
	s->commits = 13;
	s->commit_errors = 14;
	s->dns_hits = 15;
	s->dns_misses = 16;
	s->dns_entries = 17;
	s->dns_negative = 18;
	s->dns_in_flight = 19;
	s->dns_failures = 20;
	s->dns_queries = UINT64_MAX - 1;
	s->nworkers = 2;
	s->workers[0] = (struct dmta_stats_worker){1, 2, 3, 4, 5, 6, DMTA_STATS_NA};
	s->workers[1] = (struct dmta_stats_worker){7, 8, 9, 10, 11, 12, 13};
	s->classes[1] = 4;
	s->classes[3] = 2;
	s->classes[11] = 1;
	s->sites = 3;
	s->throttled = 1;
	s->nsusp = 2;
	s->susp[0] =
	    (struct dmta_stats_susp){"site", "mx.big.example", "a", "gmail-rate", 1763900060123, 0};
	s->susp[1] = (struct dmta_stats_susp){"source", "b", "", "manual", DMTA_STATS_NA, 0};
	return s;
}

static void assert_same(const struct dmta_stats *a, const struct dmta_stats *b)
{
	/* Doubles go through "%.3f": compare them apart, the rest bytewise. */
	struct dmta_stats x = *a, y = *b;

	assert_true(a->rate_10s - b->rate_10s < 0.001 && b->rate_10s - a->rate_10s < 0.001);
	assert_true(a->rate - b->rate < 0.001 && b->rate - a->rate < 0.001);
	x.rate_10s = y.rate_10s = x.rate = y.rate = 0;
	assert_memory_equal(&x, &y, offsetof(struct dmta_stats, workers));
	assert_memory_equal(x.workers, y.workers, sizeof(x.workers[0]) * x.nworkers);
	assert_int_equal(x.nsusp, y.nsusp);
	for (unsigned i = 0; i < x.nsusp; i++) {
		assert_string_equal(x.susp[i].kind, y.susp[i].kind);
		assert_string_equal(x.susp[i].name, y.susp[i].name);
		assert_string_equal(x.susp[i].source, y.susp[i].source);
		assert_string_equal(x.susp[i].why, y.susp[i].why);
		assert_int_equal(x.susp[i].until_ms, y.susp[i].until_ms);
		assert_int_equal(x.susp[i].throttled, y.susp[i].throttled);
	}
}

static void test_round_trip(void **state)
{
	const char *want =
	    "{\"version\":1,\"backend\":\"kernel\",\"pid\":4242,\"time_ms\":1763900000123,"
	    "\"started_ms\":1763899990000,\"interval_ms\":1000,\"queue\":{\"messages\":10,"
	    "\"waiting\":2,\"ready\":3,\"in_flight\":4,\"held\":1,\"destinations\":5,"
	    "\"suspended\":6,\"sites\":3,\"throttled\":1},\"jobs\":{\"in_flight\":7,\"waiting_"
	    "dns\":8},"
	    "\"delivery\":{\"attempts\":100,\"delivered\":90,\"deferred\":9,\"bounced\":1,"
	    "\"expired\":0,\"rate_10s\":12.500,\"rate\":3.250},"
	    "\"classes\":{\"bad-mailbox\":4,\"inactive-mailbox\":0,\"quota\":2,\"spam-block\":0,"
	    "\"policy\":0,\"content\":0,\"dns\":0,\"routing\":0,\"protocol\":0,\"tls\":0,"
	    "\"other\":1},\"bounces\":{\"generated\":11,\"delay_warnings\":21},\"spool\":{"
	    "\"loaded\":12,"
	    "\"commits\":13,"
	    "\"commit_errors\":14},\"dns\":{\"hits\":15,\"misses\":16,\"entries\":17,"
	    "\"negative\":18,\"in_flight\":19,\"failures\":20,"
	    "\"queries\":18446744073709551614},\"workers\":[{\"id\":0,\"jobs\":1,"
	    "\"sessions\":2,\"connecting\":3,\"idle\":4,\"opened\":5,\"connect_failed\":6,"
	    "\"retransmits\":null},{\"id\":1,\"jobs\":7,\"sessions\":8,\"connecting\":9,"
	    "\"idle\":10,\"opened\":11,\"connect_failed\":12,\"retransmits\":13}],"
	    "\"suspensions\":[{\"kind\":\"site\",\"name\":\"mx.big.example\",\"source\":\"a\","
	    "\"why\":\"gmail-rate\",\"until_ms\":1763900060123,\"throttled\":0},{\"kind\":"
	    "\"source\",\"name\":\"b\",\"source\":\"\",\"why\":\"manual\",\"until_ms\":null,"
	    "\"throttled\":0}]}";
	struct dmta_stats *s = sample(), *p = calloc(1, sizeof(*p));
	char buf[8192];
	int n = dmta_stats_format(s, buf, sizeof(buf));

	assert_true(n > 0);
	assert_int_equal(strlen(buf), (size_t)n);
	/* Byte for byte what dmtad has always written: dmta-queue and scrapers read it. */
	if (strcmp(buf, want) != 0)
		fail_msg("got %s, want %s", buf, want);
	assert_int_equal(dmta_stats_parse(buf, (size_t)n, p), n);
	assert_same(s, p);
	/* Too small a buffer: -ENOSPC, never a cut object. */
	for (size_t cap = 0; cap < (size_t)n + 1; cap += 7)
		assert_int_equal(dmta_stats_format(s, buf, cap), -ENOSPC);
	/* The backend's name stays a plain string, which is all the parser takes. */
	snprintf(s->backend, sizeof(s->backend),
		 "a\"b\\\x01\xc3\xa9"
		 "c");
	n = dmta_stats_format(s, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"backend\":\"abc\","));
	assert_int_equal(dmta_stats_parse(buf, (size_t)n, p), n);
	assert_string_equal(p->backend, "abc");
	/* No workers. */
	s->nworkers = 0;
	n = dmta_stats_format(s, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"workers\":[],"));
	assert_int_equal(dmta_stats_parse(buf, (size_t)n, p), n);
	assert_int_equal(p->nworkers, 0);
	free(s);
	free(p);
}

/* @p len bytes of @p src placed to end right before a PROT_NONE page. */
static const char *at_page_end(const char *src, size_t len, void **map, size_t *maplen)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t pages = (len + (size_t)pg - 1) / (size_t)pg + 1;
	char *m = mmap(NULL, pages * (size_t)pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + (pages - 1) * (size_t)pg, (size_t)pg, PROT_NONE), 0);
	*map = m;
	*maplen = pages * (size_t)pg;
	memcpy(m + (pages - 1) * (size_t)pg - len, src, len);
	return m + (pages - 1) * (size_t)pg - len;
}

static int parse_guarded(const char *src, size_t len, struct dmta_stats *p)
{
	void *map;
	size_t maplen;
	const char *b = at_page_end(src, len, &map, &maplen);
	int rc = dmta_stats_parse(b, len, p);

	munmap(map, maplen);
	return rc;
}

static void test_truncated(void **state)
{
	struct dmta_stats *s = sample(), *p = calloc(1, sizeof(*p));
	char buf[8192];
	int n = dmta_stats_format(s, buf, sizeof(buf));

	for (int k = 0; k < n; k++) {
		int rc = parse_guarded(buf, (size_t)k, p);

		if (rc != -2)
			fail_msg("prefix of %d bytes: got %d, want -2", k, rc);
	}
	assert_int_equal(parse_guarded(buf, (size_t)n, p), n);
	/* What follows the object is the caller's. */
	memcpy(buf + n, " \nXYZ", 5);
	assert_int_equal(parse_guarded(buf, (size_t)n + 5, p), n);
	free(s);
	free(p);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
	    "[]",
	    "{}",
	    "{\"pid\":1,\"time_ms\":2}",				  /* no version */
	    "{\"version\":2,\"pid\":1,\"time_ms\":2}",			  /* a later format */
	    "{\"version\":1,\"time_ms\":2}",				  /* no pid */
	    "{\"version\":1,\"pid\":1}",				  /* no time */
	    "{\"version\":1,\"pid\":null,\"time_ms\":2}",		  /* pid n/a */
	    "{\"version\":1,\"pid\":-1,\"time_ms\":2}",			  /* negative */
	    "{\"version\":1,\"pid\":1.5,\"time_ms\":2}",		  /* fraction */
	    "{\"version\":1,\"pid\":1e3,\"time_ms\":2}",		  /* exponent */
	    "{\"version\":1,\"pid\":18446744073709551616,\"time_ms\":2}", /* 2^64 */
	    "{\"version\":1,\"pid\":01,\"time_ms\":2}",			  /* leading zero */
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,}",			  /* trailing comma */
	    "{\"version\":1 \"pid\":1,\"time_ms\":2}",			  /* no comma */
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":\"a\\qb\"}",	  /* bad escape */
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":\"a\\u12G4\"}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":\"a\tb\"}", /* raw control */
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":nul}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":tru }",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"queue\":[1]}", /* a group not an object */
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"workers\":{}}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"backend\":\"a\\\"b\"}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"backend\":\"0123456789abcdef\"}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"delivery\":{\"rate\":\"x\"}}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"delivery\":{\"rate\":-}}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":[1,]}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":[1 2]}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":.5}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":1.}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":1e}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2,\"x\":+1}",
	    "{\"version\":1,\"pid\":1,\"time_ms\":2 x}",
	    "{version:1}",
	};
	struct dmta_stats *p = calloc(1, sizeof(*p));
	char deep[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_guarded(bad[i], strlen(bad[i]), p);

		if (rc != -1)
			fail_msg("%s: got %d, want -1", bad[i], rc);
	}
	/* Nesting beyond any format of ours is refused, not recursed into. */
	memcpy(deep, "{\"version\":1,\"x\":", 17);
	memset(deep + 17, '[', sizeof(deep) - 17);
	assert_int_equal(parse_guarded(deep, sizeof(deep), p), -1);
	free(p);
}

static void test_lenient(void **state)
{
	/* Unknown keys (at any depth), white space, escapes elsewhere, extra
	 * worker fields and a later-added group all pass: fields can be added. */
	static const char doc[] =
	    " {\"version\" : 1 ,\"future\":{\"a\":[1,{\"b\":null},\"x\\u00e9\\n\"],\"c\":true},"
	    "\"pid\":7,\"time_ms\":0,\"queue\":{\"messages\":3,\"new\":-1.5e+3},"
	    "\"newgroup\":{\"k\":1},\"workers\":[{\"id\":0,\"sessions\":2,\"shiny\":false},"
	    "{\"retransmits\":null,\"idle\":1}],\"delivery\":{\"rate\":0.5,\"rate_10s\":1E2}}\t";
	struct dmta_stats *p = calloc(1, sizeof(*p));

	assert_int_equal(parse_guarded(doc, sizeof(doc) - 1, p), (int)sizeof(doc) - 2);
	assert_int_equal(p->pid, 7);
	assert_int_equal(p->messages, 3);
	assert_int_equal(p->nworkers, 2);
	assert_int_equal(p->workers[0].sessions, 2);
	assert_int_equal(p->workers[1].idle, 1);
	assert_true(p->workers[1].retransmits == DMTA_STATS_NA);
	assert_true(p->rate > 0.49 && p->rate < 0.51);
	assert_true(p->rate_10s > 99.9 && p->rate_10s < 100.1);
	free(p);
}

static void test_mutations(void **state)
{
	static const char alphabet[] = "{}[]\":,0123456789-+.eEnulltrufas\\ \t\x01\xff";
	struct dmta_stats *s = sample(), *p = calloc(1, sizeof(*p));
	char buf[8192], m[8192];
	int n = dmta_stats_format(s, buf, sizeof(buf));
	unsigned seed = 12345;

	/* Bounded: a few thousand mutants, each parsed at a page's end. */
	for (int iter = 0; iter < 3000; iter++) {
		int len = n, rc;

		memcpy(m, buf, (size_t)n);
		for (int k = 0; k < 1 + iter % 4 && len > 1; k++) {
			seed = seed * 1103515245u + 12345u;
			int pos = (int)((seed >> 8) % (unsigned)len);

			seed = seed * 1103515245u + 12345u;
			switch ((seed >> 8) % 3) {
			case 0: /* replace a byte */
				m[pos] = alphabet[(seed >> 12) % (sizeof(alphabet) - 1)];
				break;
			case 1: /* delete one */
				memmove(m + pos, m + pos + 1, (size_t)(len - pos - 1));
				len--;
				break;
			default: /* cut */
				len = pos + 1;
				break;
			}
		}
		rc = parse_guarded(m, (size_t)len, p);
		assert_true(rc == -1 || rc == -2 || (rc > 0 && rc <= len));
		assert_true(p->nworkers <= DMTA_STATS_MAX_WORKERS);
	}
	free(s);
	free(p);
}

static void test_print(void **state)
{
	struct dmta_stats *s = sample();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	dmta_stats_print(f, s, 0.42);
	fclose(f);
	assert_non_null(strstr(text, "daemon:      running, pid 4242, backend kernel, up 10 s "
				     "(view 0.4 s old)\n"));
	assert_non_null(strstr(text, "jobs:        7 in flight, 8 waiting for DNS\n"));
	assert_non_null(strstr(text, "sites:       3 (1 throttled)\n"));
	assert_non_null(
	    strstr(text, "failures:    4 bad-mailbox, 2 quota, 1 other (recipients, by class)\n"));
	assert_non_null(strstr(
	    text, "suspended:   site mx.big.example from source a: 60 s more (gmail-rate)\n"));
	assert_non_null(strstr(text, "suspended:   source b: until resumed (manual)\n"));
	assert_non_null(strstr(text, "delivery:    100 attempts: 90 delivered, 9 deferred, 1 "
				     "bounced, 0 expired (recipients)\n"));
	assert_non_null(
	    strstr(text, "rate:        12.5/s over the last 10 s, 3.2/s since start\n"));
	assert_non_null(strstr(text, "bounces:     11 generated, 21 delay warnings\n"));
	assert_non_null(strstr(text, "dns cache:   15 hits, 16 misses, 17 entries (18 negative), "
				     "19 queries in flight, 20 failures\n"));
	assert_non_null(strstr(text, "worker 0:    2 sessions (3 connecting, 4 idle), 1 jobs, 5 "
				     "opened, 6 failed, TCP retransmissions n/a\n"));
	assert_non_null(strstr(text, "worker 1:    8 sessions (9 connecting, 10 idle), 7 jobs, "
				     "11 opened, 12 failed, 13 TCP retransmissions\n"));
	free(text);
	free(s);
}

static void test_rate(void **state)
{
	struct dmta_stats_rate r;
	const uint64_t s = DMTA_NS_PER_S;

	memset(&r, 0, sizeof(r));
	assert_true(dmta_stats_rate(&r, 10 * s) == 0);
	dmta_stats_rate_push(&r, 100 * s, 0);
	assert_true(dmta_stats_rate(&r, 10 * s) == 0);
	/* 50 a second for 30 s, then 10 a second for 10 s. */
	for (int i = 1; i <= 30; i++)
		dmta_stats_rate_push(&r, (100 + (uint64_t)i) * s, (uint64_t)i * 50);
	assert_true(dmta_stats_rate(&r, 10 * s) > 49.99 && dmta_stats_rate(&r, 10 * s) < 50.01);
	for (int i = 1; i <= 10; i++)
		dmta_stats_rate_push(&r, (130 + (uint64_t)i) * s, 1500 + (uint64_t)i * 10);
	assert_true(dmta_stats_rate(&r, 10 * s) > 9.99 && dmta_stats_rate(&r, 10 * s) < 10.01);
	/* Half the window: the last 5 s only. */
	dmta_stats_rate_push(&r, 141 * s, 1700);
	assert_true(dmta_stats_rate(&r, 5 * s) > 27.99 && dmta_stats_rate(&r, 5 * s) < 28.01);
	/* Samples further apart than the window: the one before the newest. */
	dmta_stats_rate_push(&r, 200 * s, 2290);
	assert_true(dmta_stats_rate(&r, 10 * s) > 9.99 && dmta_stats_rate(&r, 10 * s) < 10.01);
	/* The ring wraps without losing the window. */
	for (int i = 1; i <= 3 * DMTA_STATS_RATE_SLOTS; i++)
		dmta_stats_rate_push(&r, (200 + (uint64_t)i) * s, 2290 + (uint64_t)i * 7);
	assert_true(dmta_stats_rate(&r, 10 * s) > 6.99 && dmta_stats_rate(&r, 10 * s) < 7.01);
	/* A counter that went back (never): 0, not a huge number. */
	dmta_stats_rate_push(&r, 1000 * s, 0);
	assert_true(dmta_stats_rate(&r, 10 * s) == 0);
}

/* The daemon's side in a child: take the lock, publish, wait to be told to go. */
static pid_t daemon_child(const char *dir, const struct dmta_stats *s, int *go_fd)
{
	int up[2], go[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct dmta_stats mine = *s;
		int64_t owner;
		int fd;

		close(up[0]);
		close(go[1]);
		fd = dmta_stats_lock(dir, &owner);

		mine.pid = (uint64_t)getpid();
		if (fd < 0 || dmta_stats_publish(dir, &mine) != 0)
			_exit(1);
		if (write(up[1], "u", 1) != 1 || read(go[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(up[1]);
	close(go[0]);
	assert_int_equal(read(up[0], &c, 1), 1);
	close(up[0]);
	*go_fd = go[1];
	return pid;
}

/* Links planted at the fixed names in the spool are not followed. */
static void test_no_follow(void **state)
{
	char dir[] = "/tmp/dmta-test-stats-XXXXXX", link[256], victim[256], buf[64];
	struct dmta_stats *s = sample();
	int64_t owner;
	FILE *f;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	f = fopen(victim, "w");
	assert_non_null(f);
	fputs("precious\n", f);
	fclose(f);
	snprintf(link, sizeof(link), "%s/%s.tmp", dir, DMTA_STATS_FILE);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(dmta_stats_publish(dir, s), 0);
	f = fopen(victim, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	if (strcmp(buf, "precious\n") != 0)
		fail_msg("the file behind %s.tmp got \"%s\", want it untouched", DMTA_STATS_FILE,
			 buf);
	/* The lock file: a link there is refused. */
	snprintf(link, sizeof(link), "%s/%s", dir, DMTA_STATS_LOCK_FILE);
	assert_int_equal(symlink(victim, link), 0);
	fd = dmta_stats_lock(dir, &owner);
	if (fd >= 0)
		fail_msg("dmta_stats_lock through a link: got fd %d, want -ELOOP", fd);
	assert_int_equal(fd, -ELOOP);
	unlink(link);
	snprintf(link, sizeof(link), "%s/%s", dir, DMTA_STATS_FILE);
	unlink(link);
	unlink(victim);
	assert_int_equal(rmdir(dir), 0);
	free(s);
}

static void test_files_and_lock(void **state)
{
	char dir[] = "/tmp/dmta-test-stats-XXXXXX", path[256];
	struct dmta_stats *s = sample();
	struct dmta_stats_live *live = calloc(1, sizeof(*live));
	int64_t owner;
	int go, st, fd;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	/* Nothing there: not running. */
	assert_int_equal(dmta_stats_owner(dir), 0);
	assert_int_equal(dmta_stats_load(dir, dmta_wall_ns(), live), 0);
	assert_int_equal(live->pid, 0);
	assert_false(live->fresh);

	/* A file left behind, with a pid that even exists (ours): still not
	 * running, as nobody holds the lock. */
	s->pid = (uint64_t)getpid();
	s->time_ms = dmta_wall_ns() / DMTA_NS_PER_MS;
	assert_int_equal(dmta_stats_publish(dir, s), 0);
	snprintf(path, sizeof(path), "%s/%s.tmp", dir, DMTA_STATS_FILE);
	assert_int_equal(access(path, F_OK), -1); /* renamed, not left */
	assert_int_equal(dmta_stats_load(dir, dmta_wall_ns(), live), 0);
	assert_int_equal(live->pid, 0);
	assert_false(live->fresh);

	/* A daemon: live, its own fresh view. */
	s->time_ms = dmta_wall_ns() / DMTA_NS_PER_MS;
	pid = daemon_child(dir, s, &go);
	assert_int_equal(dmta_stats_owner(dir), pid);
	assert_int_equal(dmta_stats_load(dir, dmta_wall_ns(), live), 0);
	assert_int_equal(live->pid, pid);
	assert_true(live->fresh);
	assert_int_equal(live->stats.pid, (uint64_t)pid);
	assert_int_equal(live->stats.delivered, 90);
	assert_true(live->age_s > -1 && live->age_s < 5);
	/* ... but not a view older than two intervals and two seconds. */
	assert_int_equal(
	    dmta_stats_load(dir, dmta_wall_ns() + 5 * DMTA_NS_PER_S + DMTA_NS_PER_S / 2, live), 0);
	assert_int_equal(live->pid, pid);
	assert_false(live->fresh);
	assert_true(live->age_s > 5);
	/* A second daemon on the same spool is refused, and told who runs. */
	fd = dmta_stats_lock(dir, &owner);
	assert_int_equal(fd, -EAGAIN);
	assert_int_equal(owner, pid);
	/* A view that names another process is not the daemon's. */
	s->pid = 1;
	assert_int_equal(dmta_stats_publish(dir, s), 0);
	assert_int_equal(dmta_stats_load(dir, dmta_wall_ns(), live), 0);
	assert_int_equal(live->pid, pid);
	assert_false(live->fresh);
	/* A damaged file: running, no view. */
	{
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, DMTA_STATS_FILE);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs("{\"version\":1,\"pid\":", f);
		fclose(f);
		assert_int_equal(dmta_stats_load(dir, dmta_wall_ns(), live), 0);
		assert_int_equal(live->pid, pid);
		assert_false(live->fresh);
	}
	/* The daemon goes (as if killed): the lock goes with it. */
	close(go);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(dmta_stats_owner(dir), 0);
	assert_int_equal(dmta_stats_load(dir, dmta_wall_ns(), live), 0);
	assert_int_equal(live->pid, 0);
	/* And the next one may start. */
	fd = dmta_stats_lock(dir, &owner);
	assert_true(fd >= 0);
	close(fd);
	dmta_stats_unpublish(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, DMTA_STATS_FILE);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/%s", dir, DMTA_STATS_LOCK_FILE);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
	free(live);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip), cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_malformed),  cmocka_unit_test(test_lenient),
	    cmocka_unit_test(test_mutations),  cmocka_unit_test(test_print),
	    cmocka_unit_test(test_rate),       cmocka_unit_test(test_files_and_lock),
	    cmocka_unit_test(test_no_follow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
