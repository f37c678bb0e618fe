/*
 * test_metrics.c - the Prometheus text: every family declared once, its
 * samples together and after its TYPE line, counters named _total, the
 * histogram cumulative; the server: GET /metrics answers the last text
 * published, other paths 404, other methods 405, a bad address is refused.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/control/dmta_metrics.h"
#include "core/control/dmta_stats.h"

static char *render(const struct dmta_stats *s, const struct dmta_metrics_extra *x)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	dmta_metrics_write(out, s, x);
	assert_int_equal(fclose(out), 0);
	return text;
}

static struct dmta_stats *sample(void)
{
	struct dmta_stats *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	snprintf(s->backend, sizeof(s->backend), "kernel");
	s->started_ms = 1763899990000ULL;
	s->waiting = 2;
	s->ready = 3;
	s->in_flight = 4;
	s->held = 1;
	s->attempts = 70;
	s->delivered = 50;
	s->deferred = 15;
	s->bounced = 5;
	s->expired = 2;
	s->rate_10s = 12.5;
	s->commits = 9;
	s->dns_hits = 7;
	s->nworkers = 2;
	s->workers[0].sessions = 3;
	s->workers[1].sessions = 4;
	s->workers[0].retransmits = 6;
	s->workers[1].retransmits = DMTA_STATS_NA;
	return s;
}

/* The value of the sample line that starts with @p prefix (name and labels). */
static long long value_of(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *l = text; l != NULL && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, n) == 0 && l[n] == ' ')
			return atoll(l + n + 1);
	fail_msg("no sample %s in:\n%s", prefix, text);
	return -1;
}

static void test_format(void **state)
{
	struct dmta_stats *s = sample();
	struct dmta_metrics_extra x = {0};
	char *text, *copy, *save = NULL, seen[256][96];
	size_t nseen = 0;
	char family[96] = "";

	x.delivered_by_route[0] = 40;
	x.delivered_by_route[2] = 10;
	dmta_metrics_count_status(x.bounced_by, "5.1.1");
	dmta_metrics_count_status(x.deferred_by, "4.7.0");
	dmta_metrics_count_status(x.deferred_by, NULL);
	x.nworkers = 2;
	x.tls_by_worker[1][1] = 5;
	dmta_metrics_count_age(&x, 0);
	dmta_metrics_count_age(&x, 59);
	dmta_metrics_count_age(&x, 60);
	dmta_metrics_count_age(&x, 86400);
	dmta_metrics_hist_observe(&x.commit, 0.0003);
	dmta_metrics_hist_observe(&x.commit, 0.004);
	dmta_metrics_hist_observe(&x.commit, 9.0);
	text = render(s, &x);

	assert_int_equal(value_of(text, "dmta_queue_messages{state=\"ready\"}"), 3);
	assert_int_equal(value_of(text, "dmta_recipient_attempts_total"), 70);
	assert_int_equal(
	    value_of(text, "dmta_recipients_total{outcome=\"delivered\",route=\"mx\"}"), 40);
	assert_int_equal(
	    value_of(text, "dmta_recipients_total{outcome=\"delivered\",route=\"relay\"}"), 10);
	assert_int_equal(
	    value_of(text, "dmta_recipients_total{outcome=\"expired\",route=\"none\"}"), 2);
	assert_int_equal(value_of(text, "dmta_bounces_by_status_total{status_class=\"5.1\"}"), 1);
	assert_int_equal(value_of(text, "dmta_deferrals_by_status_total{status_class=\"4.7\"}"), 1);
	assert_int_equal(value_of(text, "dmta_deferrals_by_status_total{status_class=\"4.0\"}"), 1);
	assert_int_equal(
	    value_of(text, "dmta_worker_smtp_transactions_total{worker=\"1\",tls=\"yes\"}"), 5);
	assert_int_equal(
	    value_of(text, "dmta_worker_smtp_transactions_total{worker=\"0\",tls=\"no\"}"), 0);
	assert_int_equal(value_of(text, "dmta_queue_messages_by_age{age=\"1m\"}"), 2);
	assert_int_equal(value_of(text, "dmta_queue_messages_by_age{age=\"5m\"}"), 1);
	assert_int_equal(value_of(text, "dmta_queue_messages_by_age{age=\"1d\"}"), 0);
	assert_int_equal(value_of(text, "dmta_queue_messages_by_age{age=\"older\"}"), 1);
	assert_int_equal(value_of(text, "dmta_worker_sessions{worker=\"1\"}"), 4);
	assert_int_equal(value_of(text, "dmta_worker_tcp_retransmits_total{worker=\"0\"}"), 6);
	/* A counter that does not apply has no sample at all. */
	assert_null(strstr(text, "dmta_worker_tcp_retransmits_total{worker=\"1\"}"));
	/* Cumulative buckets, +Inf the count. */
	assert_int_equal(value_of(text, "dmta_spool_commit_duration_seconds_bucket{le=\"0.0005\"}"),
			 1);
	assert_int_equal(value_of(text, "dmta_spool_commit_duration_seconds_bucket{le=\"0.005\"}"),
			 2);
	assert_int_equal(value_of(text, "dmta_spool_commit_duration_seconds_bucket{le=\"2.5\"}"),
			 2);
	assert_int_equal(value_of(text, "dmta_spool_commit_duration_seconds_bucket{le=\"+Inf\"}"),
			 3);
	assert_int_equal(value_of(text, "dmta_spool_commit_duration_seconds_count"), 3);

	/* Each family once; each sample belongs to the family declared last. */
	copy = strdup(text);
	for (char *l = strtok_r(copy, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		char name[96];

		if (strncmp(l, "# HELP ", 7) == 0)
			continue;
		if (strncmp(l, "# TYPE ", 7) == 0) {
			char type[16];

			assert_int_equal(sscanf(l + 7, "%95s %15s", family, type), 2);
			for (size_t i = 0; i < nseen; i++)
				if (strcmp(seen[i], family) == 0)
					fail_msg("family %s declared twice", family);
			assert_true(nseen < 256);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", family);
			if (strcmp(type, "counter") == 0) {
				size_t n = strlen(family);

				if (n < 6 || strcmp(family + n - 6, "_total") != 0)
					fail_msg("counter %s does not end in _total", family);
			}
			continue;
		}
		assert_int_equal(sscanf(l, "%95[^{ ]", name), 1);
		if (strncmp(name, family, strlen(family)) != 0)
			fail_msg("sample %s outside its family (last declared: %s)", name, family);
	}
	free(copy);
	free(text);
	free(s);
}

/* One HTTP/1.0 request to 127.0.0.1:@p port; the whole answer. */
static char *http(uint16_t port, const char *request)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	char *buf = calloc(1, 1 << 16);
	size_t n = 0;
	ssize_t r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
	while (n < (1 << 16) - 1 && (r = read(fd, buf + n, (1 << 16) - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	return buf;
}

static void test_server(void **state)
{
	char err[256] = "";
	struct dmta_metrics *m = dmta_metrics_start("127.0.0.1:0", err, sizeof(err));
	char *r;
	uint16_t port;

	assert_non_null(m);
	port = dmta_metrics_port(m);
	assert_true(port != 0);
	/* Before anything is published: an empty (valid) exposition. */
	r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	if (strncmp(r, "HTTP/1.0 200", 12) != 0 && strncmp(r, "HTTP/1.1 200", 12) != 0)
		fail_msg("got %.40s, want 200", r);
	free(r);
	dmta_metrics_publish(m, strdup("dmta_x_total 1\n"), 15);
	dmta_metrics_publish(m, strdup("dmta_x_total 2\n"), 15);
	r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "text/plain; version=0.0.4"));
	assert_non_null(strstr(r, "\r\n\r\ndmta_x_total 2\n"));
	free(r);
	r = http(port, "GET /other HTTP/1.0\r\n\r\n");
	if (strstr(r, " 404 ") == NULL)
		fail_msg("got %.40s, want 404", r);
	free(r);
	r = http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
	if (strstr(r, " 405 ") == NULL)
		fail_msg("got %.40s, want 405", r);
	free(r);
	assert_int_equal(dmta_metrics_scrapes(m), 2);
	dmta_metrics_stop(m);

	assert_null(dmta_metrics_start("localhost:9", err, sizeof(err)));
	assert_non_null(strstr(err, "[metrics] listen localhost:9"));
	assert_null(dmta_metrics_start("127.0.0.1", err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
