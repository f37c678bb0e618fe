/*
 * test_control.c - the control thread over a backend of the test's own,
 *	which takes jobs and keeps them: what the control thread hands out
 *	while nothing comes back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_control.h"
#include "core/control/dmta_job.h"
#include "queue/spool.h"

/* A backend that holds every job it takes until it is freed. */
struct hold {
	struct dmta_backend ops;
	void (*done)(void *ctl, struct dmta_job *job);
	void *ctl;
	struct dmta_job *jobs[4096];
	unsigned n;
	size_t bytes, max_bytes;
	unsigned max_n;
	void (*check)(struct hold *h, const struct dmta_job *job); /* optional, at submit */
	unsigned checked;
};

static int hold_submit(void *be, struct dmta_job *job)
{
	struct hold *h = be;

	if (h->n == sizeof(h->jobs) / sizeof(h->jobs[0]))
		return -ENOBUFS;
	if (h->check != NULL)
		h->check(h, job);
	h->jobs[h->n++] = job;
	h->bytes += job->len;
	if (h->n > h->max_n)
		h->max_n = h->n;
	if (h->bytes > h->max_bytes)
		h->max_bytes = h->bytes;
	return 0;
}

static int hold_next_timeout_ms(void *be)
{
	return -1;
}

static void hold_tick(void *be)
{
}

static void hold_drain(void *be)
{
}

static unsigned hold_busy(void *be)
{
	return 0; /* stop at once: the jobs come back from free() */
}

static void hold_free(void *be)
{
	struct hold *h = be;

	for (unsigned i = 0; i < h->n; i++) {
		h->jobs[i]->connected = false;
		h->jobs[i]->local = true;
		snprintf(h->jobs[i]->reply, sizeof(h->jobs[i]->reply), "451 4.3.2 stopped");
		h->done(h->ctl, h->jobs[i]);
	}
	h->n = 0;
}

static struct dmta_backend *hold_new(void *arg, struct dmta_loop *loop,
				     void (*done)(void *ctl, struct dmta_job *job), void *ctl)
{
	struct hold *h = arg;

	h->done = done;
	h->ctl = ctl;
	h->ops = (struct dmta_backend){.name = "hold",
				       .submit = hold_submit,
				       .next_timeout_ms = hold_next_timeout_ms,
				       .tick = hold_tick,
				       .drain = hold_drain,
				       .busy = hold_busy,
				       .free = hold_free,
				       .be = h};
	return &h->ops;
}

/* @p n messages of @p size bytes, to d0.example, d1.example, ... (one
 * domain each), or to @p ndom domains in turn when it is not 0. */
static void spool_msgs_to(const char *dir, unsigned n, size_t size, unsigned ndom)
{
	struct spool_opts so = {.path = dir, .create = true};
	char err[256];
	struct spool *sp = spool_open(&so, err, sizeof(err));
	char *body = malloc(size);

	if (sp == NULL)
		fail_msg("spool_open: %s", err);
	assert_non_null(body);
	memset(body, 'x', size);
	memcpy(body, "Subject: t\r\n\r\n", 14);
	for (unsigned i = 0; i < n; i++) {
		struct spool_txn *t;
		struct queue_env e = {0};
		char rcpt[64];

		/* One destination each: no destination limit holds them back. */
		snprintf(rcpt, sizeof(rcpt), "u@d%u.example", ndom ? i % ndom : i);
		assert_int_equal(queue_env_set_sender(&e, "s@x.example"), 0);
		assert_int_equal(queue_env_add_rcpt(&e, rcpt, NULL, 0), 0);
		e.arrival_ns = dmta_wall_ns();
		e.next_attempt_ns = e.arrival_ns;
		assert_int_equal(spool_begin(sp, true, &t), 0);
		assert_int_equal(spool_put(t, &e, body, size), 0);
		assert_int_equal(spool_commit(t), 0);
		queue_env_free(&e);
	}
	free(body);
	spool_close(sp);
}

static void spool_msgs(const char *dir, unsigned n, size_t size)
{
	spool_msgs_to(dir, n, size, 0);
}

/* One turn of the loop with @p conf over @p nmsg spooled messages. */
static void one_turn(struct dmta_conf *conf, struct hold *h)
{
	char err[256];
	struct dmta_control *ctl = dmta_control_new(conf, hold_new, h, 1, err, sizeof(err));
	int stop = eventfd(1, EFD_CLOEXEC); /* readable at once: one turn */

	if (ctl == NULL)
		fail_msg("dmta_control_new: %s", err);
	assert_true(stop >= 0);
	assert_int_equal(dmta_control_run(ctl, stop), 0);
	dmta_control_free(ctl);
	close(stop);
}

static struct dmta_conf *conf_for(const char *dir)
{
	struct dmta_conf *conf = dmta_conf_new();
	char logpath[256];

	snprintf(logpath, sizeof(logpath), "%s/delivery.log", dir);
	assert_int_equal(dmta_conf_set(conf, "spool", "path", dir), 0);
	assert_int_equal(dmta_conf_set(conf, "log", "delivery", logpath), 0);
	assert_int_equal(dmta_conf_set(conf, "control", "stop_timeout", "0"), 0);
	assert_int_equal(dmta_conf_set(conf, "control", "stats_interval", "0"), 0);
	assert_int_equal(dmta_conf_set(conf, "routes", ".example", "198.18.0.9:2525"), 0);
	/* Never asked: every destination has a route. */
	assert_int_equal(dmta_conf_set(conf, "dns", "servers", "127.0.0.1:53"), 0);
	return conf;
}

static void rm_rf(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* With nothing coming back, no more than max_jobs jobs go out. */
static void test_max_jobs(void **state)
{
	char dir[] = "/tmp/dmta-test-control-XXXXXX";
	struct dmta_conf *conf;
	struct hold *h = calloc(1, sizeof(*h));

	(void)state;
	assert_non_null(h);
	assert_non_null(mkdtemp(dir));
	spool_msgs(dir, 40, 100);
	conf = conf_for(dir);
	assert_int_equal(dmta_conf_set(conf, "control", "max_jobs", "7"), 0);
	one_turn(conf, h);
	if (h->max_n != 7)
		fail_msg("got %u jobs out at once, want max_jobs 7", h->max_n);
	dmta_conf_free(conf);
	rm_rf(dir);
	free(h);
}

/* The bytes bound: once the jobs out hold max_job_bytes, none more. */
static void test_max_job_bytes(void **state)
{
	char dir[] = "/tmp/dmta-test-control-XXXXXX";
	struct dmta_conf *conf;
	struct hold *h = calloc(1, sizeof(*h));

	(void)state;
	assert_non_null(h);
	assert_non_null(mkdtemp(dir));
	/* 100 messages of 64 KiB; the bound is 1 MiB: 16 of them, and at most
	 * the one message that crosses it. */
	spool_msgs(dir, 100, 64 * 1024);
	conf = conf_for(dir);
	assert_int_equal(dmta_conf_set(conf, "control", "max_job_bytes", "1m"), 0);
	one_turn(conf, h);
	if (h->max_bytes < (1u << 20) || h->max_bytes > (1u << 20) + 64 * 1024)
		fail_msg("got %zu bytes out at once, want 1 MiB plus at most one message",
			 h->max_bytes);
	if (h->max_n >= 100)
		fail_msg("got all %u jobs out, want the bytes bound to stop them", h->max_n);
	dmta_conf_free(conf);
	rm_rf(dir);
	free(h);
}

/* The message of test_job_contents: every byte value, so a short or shifted copy shows. */
#define JOB_BODY_LEN 5000
static unsigned char job_body[JOB_BODY_LEN];

static void check_job(struct hold *h, const struct dmta_job *job)
{
	static const char *const notify[] = {NULL, "SUCCESS", "FAILURE", "SUCCESS,FAILURE",
					     "DELAY"};
	uint32_t n = job->sjob.nrcpt;

	if (n == 0 || n > 2)
		fail_msg("got a job of %u recipients, want 1 or 2 (dest_max_recipients 2)", n);
	if (job->len != JOB_BODY_LEN || memcmp(job->bytes, job_body, JOB_BODY_LEN) != 0)
		fail_msg("got %zu message bytes that differ from the %d spooled", job->len,
			 JOB_BODY_LEN);
	if (job->msg.body != &job->chunk || job->chunk.p != job->bytes ||
	    job->chunk.len != job->len || job->msg.nrcpts != n || job->msg.rcpts != job->rcpts)
		fail_msg("the SMTP message does not describe the job");
	assert_string_equal(job->msg.from, "s@x.example");
	assert_string_equal(job->env.sender, "s@x.example");
	assert_string_equal(job->msg.envid, "ENV-ID+2Bx");
	/* The job's own copies, never the scheduler's strings. */
	assert_string_equal(job->env.pool, "bulk-pool");
	assert_string_equal(job->env.tenant, "t.1");
	if ((const char *)job->env.pool < (const char *)job ||
	    (const char *)job->env.pool >= (const char *)job->bytes ||
	    (const char *)job->env.tenant < (const char *)job ||
	    (const char *)job->env.tenant >= (const char *)job->bytes)
		fail_msg("the job's pool and tenant are not in the job");
	assert_int_equal(job->env.nrcpt, n);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = job->sjob.rcpt[i]; /* the recipient's index in the message */
		char addr[64], orcpt[80];

		snprintf(addr, sizeof(addr), "u%u@d.example", k);
		snprintf(orcpt, sizeof(orcpt), "rfc822;o%u@d.example", k);
		if (k >= 5 || strcmp(job->rcpts[i].addr, addr) != 0 ||
		    strcmp(job->env.rcpt[i].addr, addr) != 0)
			fail_msg("job recipient %u: got %s, want %s", i, job->rcpts[i].addr, addr);
		if (k % 2 ? job->rcpts[i].orcpt != NULL : strcmp(job->rcpts[i].orcpt, orcpt) != 0)
			fail_msg("recipient %s: got ORCPT %s", addr,
				 job->rcpts[i].orcpt ? job->rcpts[i].orcpt : "(none)");
		if ((job->rcpts[i].notify == NULL) != (notify[k] == NULL) ||
		    (notify[k] != NULL && strcmp(job->rcpts[i].notify, notify[k]) != 0))
			fail_msg("recipient %s: got NOTIFY %s, want %s", addr,
				 job->rcpts[i].notify ? job->rcpts[i].notify : "(none)",
				 notify[k] ? notify[k] : "(none)");
		if (job->code[i] != 0 || job->text[i] != NULL)
			fail_msg("recipient %s: the result fields are not empty", addr);
	}
	h->checked += n;
}

/* What a job holds: the message byte for byte, and its own recipients (a
 * message of 5, two a job) with their DSN parameters. */
static void test_job_contents(void **state)
{
	char dir[] = "/tmp/dmta-test-control-XXXXXX", err[256];
	struct spool_opts so = {.create = true};
	struct dmta_conf *conf;
	struct hold *h = calloc(1, sizeof(*h));
	struct queue_env e = {0};
	struct spool_txn *t;
	struct spool *sp;

	(void)state;
	assert_non_null(h);
	assert_non_null(mkdtemp(dir));
	so.path = dir;
	sp = spool_open(&so, err, sizeof(err));
	if (sp == NULL)
		fail_msg("spool_open: %s", err);
	for (size_t i = 0; i < JOB_BODY_LEN; i++)
		job_body[i] = (unsigned char)(i * 7 + i / 256);
	assert_int_equal(queue_env_set_sender(&e, "s@x.example"), 0);
	assert_int_equal(queue_env_set_envid(&e, "ENV-ID+2Bx"), 0);
	assert_int_equal(queue_env_set_pool(&e, "bulk-pool"), 0);
	assert_int_equal(queue_env_set_tenant(&e, "t.1"), 0);
	for (unsigned k = 0; k < 5; k++) {
		char addr[64], orcpt[80];

		snprintf(addr, sizeof(addr), "u%u@d.example", k);
		snprintf(orcpt, sizeof(orcpt), "rfc822;o%u@d.example", k);
		assert_int_equal(queue_env_add_rcpt(&e, addr, k % 2 ? NULL : orcpt, (uint8_t)k), 0);
	}
	e.arrival_ns = dmta_wall_ns();
	assert_int_equal(spool_begin(sp, true, &t), 0);
	assert_int_equal(spool_put(t, &e, job_body, JOB_BODY_LEN), 0);
	assert_int_equal(spool_commit(t), 0);
	queue_env_free(&e);
	spool_close(sp);
	conf = conf_for(dir);
	assert_int_equal(dmta_conf_set(conf, "queue", "dest_max_recipients", "2"), 0);
	h->check = check_job;
	one_turn(conf, h);
	if (h->checked != 5)
		fail_msg("got %u recipients in jobs, want 5", h->checked);
	dmta_conf_free(conf);
	rm_rf(dir);
	free(h);
}

/* At submit: the route is for the job's domain, and one per domain. */
static const struct dmta_route *seen_route[2];

static void check_route(struct hold *h, const struct dmta_job *job)
{
	unsigned k = strcmp(job->sjob.domain, "d0.example") == 0 ? 0 : 1;

	assert_non_null(job->route);
	if (strcmp(job->route->dest->domain, job->sjob.domain) != 0)
		fail_msg("job for %s got the route of %s", job->sjob.domain,
			 job->route->dest->domain);
	if (seen_route[k] == NULL)
		seen_route[k] = job->route;
	else if (seen_route[k] != job->route)
		fail_msg("jobs for %s got different routes", job->sjob.domain);
	h->checked++;
}

/* The jobs of a domain share its route; each domain has its own. */
static void test_route_shared(void **state)
{
	struct hold *h = calloc(1, sizeof(*h));
	char dir[] = "/tmp/dmta-test-control-XXXXXX";
	struct dmta_conf *conf;

	(void)state;
	assert_non_null(h);
	h->check = check_route;
	assert_non_null(mkdtemp(dir));
	spool_msgs_to(dir, 8, 100, 2); /* d0.example, d1.example, d0.example, ... */
	one_turn(conf = conf_for(dir), h);
	dmta_conf_free(conf);
	rm_rf(dir);
	if (h->checked != 8)
		fail_msg("got %u jobs, want 8", h->checked);
	assert_non_null(seen_route[0]);
	assert_non_null(seen_route[1]);
	assert_ptr_not_equal(seen_route[0], seen_route[1]);
	free(h);
}

static int write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return chmod(path, mode);
}

/* Configuration that is refused at start, with the reason. */
static void test_refused_settings(void **state)
{
	char dir[] = "/tmp/dmta-test-control-XXXXXX", pw[256], err[256];
	static char long_pw[2000];
	static const struct {
		const char *what, *key, *value, *pw;
		mode_t mode;
		const char *why; /* NULL: accepted */
	} cases[] = {
	    {"relay tls opportunistic", "tls", "opportunistic", NULL, 0, "[relay] tls"},
	    {"password readable by others", "tls", "none", "secret\n", 0644, "password_file"},
	    {"password writable by the group", "tls", "none", "secret\n", 0660, "password_file"},
	    {"password too long", "tls", "none", long_pw, 0600, "longer than 1024"},
	    {"password 0600", "tls", "none", "secret\n", 0600, NULL},
	    {"password 0640", "tls", "none", "secret\n", 0640, NULL},
	};

	(void)state;
	memset(long_pw, 'p', sizeof(long_pw) - 1);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct dmta_conf *conf;
		struct hold *h = calloc(1, sizeof(*h));
		struct dmta_control *ctl;

		assert_non_null(h);
		assert_non_null(mkdtemp(dir));
		conf = conf_for(dir);
		assert_int_equal(dmta_conf_set(conf, "relay", "host", "198.18.0.9:2525"), 0);
		assert_int_equal(dmta_conf_set(conf, "relay", cases[k].key, cases[k].value), 0);
		if (cases[k].pw != NULL) {
			snprintf(pw, sizeof(pw), "%s/relay.secret", dir);
			assert_int_equal(
			    write_file(pw, cases[k].pw, strlen(cases[k].pw), cases[k].mode), 0);
			assert_int_equal(dmta_conf_set(conf, "relay", "user", "u"), 0);
			assert_int_equal(dmta_conf_set(conf, "relay", "password_file", pw), 0);
			assert_int_equal(dmta_conf_set(conf, "relay", "auth_plaintext", "yes"), 0);
		}
		err[0] = '\0';
		ctl = dmta_control_new(conf, hold_new, h, 1, err, sizeof(err));
		if (cases[k].why == NULL && ctl == NULL)
			fail_msg("%s: refused (%s), want accepted", cases[k].what, err);
		if (cases[k].why != NULL && ctl != NULL)
			fail_msg("%s: accepted, want refused", cases[k].what);
		if (cases[k].why != NULL && strstr(err, cases[k].why) == NULL)
			fail_msg("%s: got \"%s\", want it to name %s", cases[k].what, err,
				 cases[k].why);
		dmta_control_free(ctl);
		dmta_conf_free(conf);
		rm_rf(dir);
		strcpy(dir, "/tmp/dmta-test-control-XXXXXX");
		free(h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_max_jobs),	     cmocka_unit_test(test_max_job_bytes),
	    cmocka_unit_test(test_job_contents),     cmocka_unit_test(test_route_shared),
	    cmocka_unit_test(test_refused_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
