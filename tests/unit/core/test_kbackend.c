/*
 * test_kbackend.c - the kernel backend's source address, over the kernel's
 *	own TCP on loopback.
 *
 * DESCRIPTION
 *	A small SMTP server on 127.0.0.1 (a thread with blocking sockets)
 *	records the peer address of every connection it accepts. Jobs go
 *	through the kernel backend (dmta_kbackend.h) in this thread's loop:
 *	one with no source address, one from 127.0.0.2 (the whole of 127/8 is
 *	this host's), and one from an address this host does not have, which
 *	must fail at once as a local failure naming the address, without a
 *	connection. Everything is bounded in time: a stuck job fails the test
 *	after a few seconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

#include "core/base/dmta_time.h"
#include "core/control/dmta_kbackend.h"
#include "core/control/dmta_loop.h"

#define MAX_PEERS 8

/* ---- the server ---- */

struct server {
	int lfd;
	uint16_t port;
	pthread_t thread;
	pthread_mutex_t lock;
	struct in_addr peers[MAX_PEERS]; /* peer address of each connection */
	unsigned npeers, nmsgs;
	volatile int stop;
};

static void say(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) < 0) {
		/* the client went away: its session reads the end */
	}
}

/* One line (CRLF kept) into @p line; false at the end of the stream. */
static bool read_line(int fd, char *line, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		char ch;

		if (read(fd, &ch, 1) != 1)
			return false;
		line[n++] = ch;
		if (ch == '\n')
			break;
	}
	line[n] = '\0';
	return true;
}

static void serve_one(struct server *sv, int fd)
{
	char line[1024];
	bool body = false;

	say(fd, "220 peer.test ESMTP\r\n");
	while (read_line(fd, line, sizeof(line))) {
		if (body) {
			if (strcmp(line, ".\r\n") == 0) {
				body = false;
				pthread_mutex_lock(&sv->lock);
				sv->nmsgs++;
				pthread_mutex_unlock(&sv->lock);
				say(fd, "250 2.0.0 queued\r\n");
			}
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			body = true;
			say(fd, "354 go on\r\n");
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			say(fd, "221 2.0.0 bye\r\n");
			break;
		} else if (strncasecmp(line, "EHLO", 4) == 0) {
			say(fd, "250 peer.test\r\n");
		} else {
			say(fd, "250 ok\r\n");
		}
	}
	close(fd);
}

static void *serve(void *arg)
{
	struct server *sv = arg;

	while (!sv->stop) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		int fd = accept(sv->lfd, (struct sockaddr *)&peer, &len);

		if (fd < 0)
			continue; /* the receive timeout: look at stop again */
		/* Accepted sockets inherit the listener's short timeout: a
		 * session gets 5 s between lines instead. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){.tv_sec = 5},
			   sizeof(struct timeval));
		pthread_mutex_lock(&sv->lock);
		if (sv->npeers < MAX_PEERS)
			sv->peers[sv->npeers++] = peer.sin_addr;
		pthread_mutex_unlock(&sv->lock);
		serve_one(sv, fd);
	}
	return NULL;
}

static void server_start(struct server *sv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	socklen_t len = sizeof(sin);

	memset(sv, 0, sizeof(*sv));
	pthread_mutex_init(&sv->lock, NULL);
	sv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(sv->lfd >= 0);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(sv->lfd, 8), 0);
	assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&sin, &len), 0);
	setsockopt(sv->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sv->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&sv->thread, NULL, serve, sv), 0);
}

static void server_stop(struct server *sv)
{
	sv->stop = 1;
	pthread_join(sv->thread, NULL);
	close(sv->lfd);
	pthread_mutex_destroy(&sv->lock);
}

/* ---- jobs through the backend ---- */

struct tjob {
	struct dmta_job job; /* first: done() gives it back */
	struct dmta_route route;
	struct dns_dest dest;
	struct dns_host host;
	struct in_addr v4;
	struct smtp_rcpt rcpt;
	struct smtp_chunk chunk;
	int code[1];
	char *text[1];
	unsigned ndone;
};

static void on_done(void *ctl, struct dmta_job *job)
{
	((struct tjob *)job)->ndone++;
}

static void job_init(struct tjob *tj, uint16_t port, const char *src)
{
	static const char body[] = "Subject: source address\r\n\r\nhello\r\n";

	memset(tj, 0, sizeof(*tj));
	tj->v4.s_addr = htonl(INADDR_LOOPBACK);
	tj->host = (struct dns_host){.name = "localhost", .port = port, .n_v4 = 1, .v4 = &tj->v4};
	tj->dest = (struct dns_dest){
	    .domain = "peer.test", .verdict = DNS_VERDICT_OK, .n_hosts = 1, .hosts = &tj->host};
	tj->route = (struct dmta_route){.dest = &tj->dest, .refs = 1};
	tj->rcpt.addr = "r@peer.test";
	tj->chunk = (struct smtp_chunk){.p = body, .len = sizeof(body) - 1};
	tj->job.sjob.domain = "peer.test";
	tj->job.sjob.nrcpt = 1;
	tj->job.sjob.max_messages_per_connection = 1;
	tj->job.route = &tj->route;
	tj->job.policy.tls = SMTP_TLS_NONE;
	tj->job.policy.private_ok = true; /* loopback, named by the test */
	tj->job.code = tj->code;
	tj->job.text = tj->text;
	tj->job.msg = (struct smtp_msg){.from = "a@dmta.test",
					.rcpts = &tj->rcpt,
					.nrcpts = 1,
					.body = &tj->chunk,
					.nbody = 1,
					.user = &tj->job};
	if (src != NULL)
		assert_int_equal(inet_pton(AF_INET, src, &tj->job.src), 1);
}

/* Run the loop until @p tj is done (5 s at most). */
static void run_until_done(struct dmta_backend *be, struct dmta_loop *loop, struct tjob *tj)
{
	uint64_t end = dmta_now_ns() + 5 * DMTA_NS_PER_S;

	assert_int_equal(be->submit(be->be, &tj->job), 0);
	while (tj->ndone == 0 && dmta_now_ns() < end) {
		int ms = be->next_timeout_ms(be->be);

		dmta_loop_once(loop, ms < 0 || ms > 50 ? 50 : ms);
		be->tick(be->be);
	}
	if (tj->ndone != 1)
		fail_msg("job done %u times after 5 s, want once", tj->ndone);
}

static void want_peer(struct server *sv, unsigned i, const char *want)
{
	char got[INET_ADDRSTRLEN];

	pthread_mutex_lock(&sv->lock);
	if (i >= sv->npeers) {
		pthread_mutex_unlock(&sv->lock);
		fail_msg("the server saw %u connections, want connection %u from %s", sv->npeers,
			 i + 1, want);
	}
	inet_ntop(AF_INET, &sv->peers[i], got, sizeof(got));
	pthread_mutex_unlock(&sv->lock);
	if (strcmp(got, want) != 0)
		fail_msg("connection %u came from %s, want %s", i + 1, got, want);
}

static void test_source_bound(void **state)
{
	struct dmta_pool_conf pc = {
	    .helo_name = "dmta.test",
	    .connect_timeout_ms = 2000,
	    .idle_ms = 0,
	    .job_timeout_ms = 5000,
	};
	struct server sv;
	struct dmta_loop *loop;
	struct dmta_backend *be;
	struct tjob plain, from2, stranger;
	uint64_t end;

	(void)state;
	server_start(&sv);
	loop = dmta_loop_new();
	assert_non_null(loop);
	be = dmta_kbackend_new(&pc, loop, on_done, NULL);
	assert_non_null(be);

	job_init(&plain, sv.port, NULL);
	run_until_done(be, loop, &plain);
	if (!plain.job.connected || plain.code[0] != 250)
		fail_msg("no source: connected %d code %d reply \"%s\"", plain.job.connected,
			 plain.code[0], plain.job.reply);
	want_peer(&sv, 0, "127.0.0.1");

	job_init(&from2, sv.port, "127.0.0.2");
	run_until_done(be, loop, &from2);
	if (!from2.job.connected || from2.code[0] != 250)
		fail_msg("from 127.0.0.2: connected %d code %d reply \"%s\"", from2.job.connected,
			 from2.code[0], from2.job.reply);
	want_peer(&sv, 1, "127.0.0.2");

	/* TEST-NET-1 (RFC 5737): never this host's. */
	job_init(&stranger, sv.port, "192.0.2.1");
	run_until_done(be, loop, &stranger);
	if (stranger.job.connected || !stranger.job.local ||
	    strstr(stranger.job.reply, "source address 192.0.2.1") == NULL)
		fail_msg("from 192.0.2.1: connected %d local %d reply \"%s\"; want a local "
			 "failure naming the address",
			 stranger.job.connected, stranger.job.local, stranger.job.reply);

	/* Let the sessions say goodbye, then nothing is left. */
	be->drain(be->be);
	end = dmta_now_ns() + 5 * DMTA_NS_PER_S;
	while (be->busy(be->be) > 0 && dmta_now_ns() < end) {
		dmta_loop_once(loop, 50);
		be->tick(be->be);
	}
	assert_int_equal(be->busy(be->be), 0);
	be->free(be->be);
	dmta_loop_free(loop);
	server_stop(&sv);
	if (sv.npeers != 2 || sv.nmsgs != 2)
		fail_msg("the server saw %u connections and %u messages, want 2 and 2", sv.npeers,
			 sv.nmsgs);
	for (unsigned i = 0; i < 1; i++) {
		free(plain.text[i]);
		free(from2.text[i]);
		free(stranger.text[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_source_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
