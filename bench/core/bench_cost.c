/*
 * bench_cost.c - what one delivered message costs, on the worker and on the
 *	control thread apart, for callgrind.
 *
 * SYNOPSIS
 *	bench_cost worker N [BYTES]
 *	bench_cost control N [BYTES]
 *
 * DESCRIPTION
 *	worker: the DPDK worker's delivery path without the NIC. A session
 *	pool (dmta_pool.h) over the pool's TCP transport (dmta_tcpx.h) on one
 *	userspace stack sends N messages of BYTES (default 4096) to one
 *	destination, one recipient each, PIPELINING, up to 8 connections
 *	reused for up to 1,000 messages; the peer is a second stack in the
 *	same process running the SMTP server engine as a sink (tcp_wire.h's
 *	endpoints, moved frame by frame by this program). The worker's side
 *	runs in worker_turn() and only there: callgrind's
 *	--toggle-collect=worker_turn counts it alone (the sink's side and the
 *	wire's frame copies are left out; freeing sent frames, as a NIC's TX
 *	completion would, is counted).
 *
 *	control: the control thread's path without the network. dmtad's
 *	control module (dmta_control.h) runs over a temporary spool filled
 *	with N messages beforehand, with an instant backend that answers
 *	every job "250" on the next turn: loading, scheduling, job making
 *	(the message copied out of the spool), results, group commits, the
 *	delivery log, until the spool is empty. Everything after the fill
 *	runs in control_lifetime() and, for the group commits, in the queue's
 *	committer thread: --toggle-collect=control_lifetime
 *	--toggle-collect=queue_ctl_committer.
 *
 *	The difference between two runs with different N, divided by the
 *	difference in N, is the cost of one message, free of start-up.
 *	bench/core/bench-cost does that and writes bench/results/cost.json.
 *
 * DIAGNOSTICS
 *	Exit 0 when every message was delivered (and, for control, the spool
 *	is empty); 1 otherwise, with a line on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "core/control/dmta_control.h"
#include "core/control/dmta_job.h"
#include "core/control/dmta_pool.h"
#include "core/dataplane/dmta_tcpx.h"
#include "queue/spool.h"
#include "smtp/smtp_server.h"
#include "tcp/tcp_wire.h"

#define PARALLEL 64 /* jobs out at once */
#define BURST	 64

static unsigned target, submitted, delivered, failed;
static size_t msg_bytes = 4096;
static char *message;

static void make_message(void)
{
	size_t n;

	message = malloc(msg_bytes + 128);
	if (message == NULL)
		exit(1);
	n = (size_t)snprintf(
	    message, 128, "From: bench@bench.test\r\nTo: r@b.bench.test\r\nSubject: cost\r\n\r\n");
	while (n + 78 <= msg_bytes) {
		memset(message + n, 'x', 76);
		memcpy(message + n + 76, "\r\n", 2);
		n += 78;
	}
	msg_bytes = n;
}

/* ---- worker ---- */

static struct wire w;
static struct dmta_pool *pool;
static struct dmta_tcpx tcpx;
static struct rte_mbuf *sent_frames[2][4096];
static unsigned nsent[2];

struct bjob {
	struct dmta_job job;
	struct dns_dest dest;
	struct dns_host host;
	struct in_addr v4;
	struct dmta_route route;
	struct smtp_chunk chunk;
	struct smtp_rcpt rcpt;
	int code;
	char *text;
};

static struct bjob jobs[PARALLEL];

static uint64_t wire_tsc(void *arg)
{
	return w.now;
}

static void job_init(struct bjob *b)
{
	memset(b, 0, sizeof(*b));
	b->v4.s_addr = wire_ip[1];
	b->host = (struct dns_host){.name = "mx.bench.test", .pref = 10, .n_v4 = 1, .v4 = &b->v4};
	b->dest = (struct dns_dest){
	    .domain = "bench.test", .verdict = DNS_VERDICT_OK, .n_hosts = 1, .hosts = &b->host};
	b->route = (struct dmta_route){.dest = &b->dest, .refs = 1};
	b->chunk = (struct smtp_chunk){.p = message, .len = msg_bytes};
	b->rcpt.addr = "r@bench.test";
	b->job.sjob.domain = "bench.test";
	b->job.sjob.nrcpt = 1;
	b->job.sjob.max_messages_per_connection = 1000;
	b->job.sjob.max_connections = 8;
	b->job.route = &b->route;
	b->job.policy.tls = SMTP_TLS_NONE;
	b->job.code = &b->code;
	b->job.text = &b->text;
	b->job.msg = (struct smtp_msg){.from = "bench@bench.test",
				       .rcpts = &b->rcpt,
				       .nrcpts = 1,
				       .body = &b->chunk,
				       .nbody = 1,
				       .user = &b->job};
}

static void submit(struct bjob *b)
{
	job_init(b);
	if (dmta_pool_submit(pool, &b->job) != 0) {
		fprintf(stderr, "bench_cost: the pool refused a job\n");
		exit(1);
	}
	submitted++;
}

static void on_done(void *ctl, struct dmta_job *job)
{
	struct bjob *b = (struct bjob *)job;

	if (job->connected && b->code >= 200 && b->code < 300)
		delivered++;
	else
		failed++;
	free(b->text);
	b->text = NULL;
	if (submitted < target)
		submit(b);
}

/* The worker's turn: what dmta_worker_main does between rx and tx bursts. */
__attribute__((noinline)) static void worker_turn(void)
{
	struct tcp_event ev[BURST];
	uint16_t n;

	/* TX completion of the frames the wire took last time. */
	rte_pktmbuf_free_bulk(sent_frames[0], nsent[0]);
	nsent[0] = 0;
	tcp_netif_tick(w.nif[0], w.now);
	tcp_stack_tick(w.stk[0], w.now);
	while ((n = tcp_stack_poll(w.stk[0], ev, BURST)) > 0)
		dmta_tcpx_events(ev, n);
	dmta_pool_tick(pool);
}

/* ---- the sink, on the other stack ---- */

static const struct smtp_server_config sink_cfg = {.hostname = "sink.bench.test"};
static unsigned sink_sessions;

static void sink_flush(struct tcp_conn *c, struct smtp_server *s)
{
	struct iovec iov[8];
	size_t k;

	while ((k = smtp_server_tx_iov(s, iov, 8)) > 0) {
		size_t sent = 0;

		for (size_t i = 0; i < k; i++) {
			ssize_t r = tcp_send(c, iov[i].iov_base, iov[i].iov_len, w.now);

			if (r <= 0)
				break;
			sent += (size_t)r;
			if ((size_t)r < iov[i].iov_len)
				break;
		}
		if (sent == 0)
			break;
		smtp_server_tx_done(s, sent);
	}
}

static void sink_read(struct tcp_conn *c, struct smtp_server *s)
{
	struct smtp_server_event ev;
	ssize_t r;

	for (;;) {
		uint8_t *p;
		size_t room = smtp_server_rx_space(s, &p);

		if (room == 0)
			break;
		r = tcp_recv(c, p, room, w.now);
		if (r <= 0) {
			if (r == 0)
				smtp_server_eof(s);
			break;
		}
		smtp_server_rx_commit(s, (size_t)r);
		while (smtp_server_event(s, &ev))
			switch (ev.type) {
			case SMTP_SEV_MAIL:
			case SMTP_SEV_RCPT:
				smtp_server_reply(s, 0, NULL);
				break;
			case SMTP_SEV_DATA_END:
				smtp_server_reply(s, 250, "2.0.0 Ok");
				break;
			default:
				break;
			}
	}
	sink_flush(c, s);
	if (smtp_server_closed(s) && smtp_server_tx_pending(s) == 0) {
		tcp_conn_set_user(c, NULL);
		tcp_close(c, w.now);
		smtp_server_free(s);
		sink_sessions--;
	}
}

static void sink_turn(void)
{
	struct tcp_event ev[BURST];
	uint16_t n;

	rte_pktmbuf_free_bulk(sent_frames[1], nsent[1]);
	nsent[1] = 0;
	tcp_netif_tick(w.nif[1], w.now);
	tcp_stack_tick(w.stk[1], w.now);
	while ((n = tcp_stack_poll(w.stk[1], ev, BURST)) > 0)
		for (uint16_t i = 0; i < n; i++) {
			struct smtp_server *s = ev[i].user;

			if (ev[i].events & TCP_EV_ACCEPTED) {
				s = smtp_server_new(&sink_cfg);
				if (s == NULL)
					exit(1);
				sink_sessions++;
				tcp_conn_set_user(ev[i].conn, s);
				sink_flush(ev[i].conn, s);
			}
			if (s == NULL)
				continue;
			if (ev[i].events & TCP_EV_ERROR) {
				tcp_conn_set_user(ev[i].conn, NULL);
				smtp_server_free(s);
				sink_sessions--;
				continue;
			}
			if (ev[i].events & (TCP_EV_READABLE | TCP_EV_PEER_CLOSED | TCP_EV_WRITABLE))
				sink_read(ev[i].conn, s);
		}
}

/* The wire: frames one side sent, copied into fresh mbufs for the other. */
static void wire_move(int from)
{
	struct rte_mbuf *out[BURST];
	uint16_t n;

	while ((n = tcp_netif_tx_drain(w.nif[from], out, BURST)) > 0) {
		for (uint16_t i = 0; i < n; i++) {
			struct rte_mbuf *c = rte_pktmbuf_alloc(w.pool);
			uint32_t len = rte_pktmbuf_pkt_len(out[i]);
			char *d = c ? rte_pktmbuf_append(c, (uint16_t)len) : NULL;

			if (d == NULL) {
				fprintf(stderr, "bench_cost: the wire has no mbuf\n");
				exit(1);
			}
			if (rte_pktmbuf_read(out[i], 0, len, d) != d)
				memcpy(d, rte_pktmbuf_read(out[i], 0, len, d), len);
			if (nsent[from] == sizeof(sent_frames[0]) / sizeof(sent_frames[0][0]))
				rte_pktmbuf_free(out[i]);
			else
				sent_frames[from][nsent[from]++] = out[i];
			tcp_netif_input(w.nif[1 - from], &c, 1, w.now);
		}
	}
}

static void step(void)
{
	w.now += 20; /* us */
	worker_turn();
	wire_move(0);
	sink_turn();
	wire_move(1);
}

static int run_worker(void)
{
	char *eal[] = {
	    "bench_cost",     "--no-huge",	   "-m", "512", "--no-pci", "--no-shconf",
	    "--no-telemetry", "--log-level=error", NULL};
	struct dmta_pool_conf pc = {
	    .helo_name = "bench.test", .connect_timeout_ms = 30000, .idle_ms = 5000};
	struct dmta_pool_xport xp;
	struct tcp_stack_conf conf;
	struct rte_mempool *mp;
	uint64_t guard, t0;

	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "bench_cost: rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	mp = rte_pktmbuf_pool_create("cost", 65535, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				     SOCKET_ID_ANY);
	if (mp == NULL) {
		fprintf(stderr, "bench_cost: no mempool\n");
		return 1;
	}
	conf = wire_stack_conf();
	conf.port_lo = 10000;
	conf.port_hi = 60000;
	/* BENCH_COST_CC=bbr: the cost with BBR and pacing on both ends. */
	if (getenv("BENCH_COST_CC") != NULL && strcmp(getenv("BENCH_COST_CC"), "bbr") == 0)
		conf.congestion_control = TCP_CC_BBR;
	wire_init_conf(&w, mp, 1, &conf);
	if (tcp_listen(w.stk[1], 25, NULL) != 0)
		return 1;
	tcpx = (struct dmta_tcpx){
	    .stk = w.stk[0], .now_tsc = wire_tsc, .ns_per_tsc_q32 = 1000ULL << 32};
	dmta_tcpx_xport(&tcpx, &xp);
	pool = dmta_pool_new(&pc, &xp, on_done, NULL);
	if (pool == NULL)
		return 1;
	t0 = w.now;
	for (unsigned i = 0; i < PARALLEL && submitted < target; i++)
		submit(&jobs[i]);
	/* Bounded: a message needs a few simulated milliseconds at most. */
	for (guard = 0; delivered + failed < target && guard < 100000ULL + 100ULL * target; guard++)
		step();
	/* Goodbyes: the sessions say QUIT, the sink closes. */
	dmta_pool_drain(pool);
	for (guard = 0; (sink_sessions > 0 || dmta_pool_busy(pool) > 0) && guard < 100000; guard++)
		step();
	printf("worker: %u delivered, %u failed, %u bytes each, %llu simulated us\n", delivered,
	       failed, (unsigned)msg_bytes, (unsigned long long)(w.now - t0));
	dmta_pool_free(pool);
	rte_pktmbuf_free_bulk(sent_frames[0], nsent[0]);
	rte_pktmbuf_free_bulk(sent_frames[1], nsent[1]);
	wire_free(&w);
	rte_mempool_free(mp);
	rte_eal_cleanup();
	return delivered == target && sink_sessions == 0 ? 0 : 1;
}

/* ---- control ---- */

struct instant {
	struct dmta_backend ops;
	dmta_job_done_fn *done;
	void *ctl;
	struct dmta_job **q;
	size_t n, cap;
	int stop_fd;
};

static int in_submit(void *be, struct dmta_job *job)
{
	struct instant *in = be;

	if (in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 1024;
		struct dmta_job **v = realloc(in->q, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		in->q = v;
		in->cap = cap;
	}
	in->q[in->n++] = job;
	return 0;
}

static int in_next_timeout_ms(void *be)
{
	return ((struct instant *)be)->n > 0 ? 0 : -1;
}

/* Every job answered as a receiver would: 250 for each recipient. */
static void in_tick(void *be)
{
	struct instant *in = be;
	size_t n = in->n;

	in->n = 0;
	for (size_t i = 0; i < n; i++) {
		struct dmta_job *job = in->q[i];

		job->connected = true;
		snprintf(job->mx, sizeof(job->mx), "mx.bench.test");
		snprintf(job->ip, sizeof(job->ip), "198.18.5.2");
		for (uint32_t k = 0; k < job->sjob.nrcpt; k++) {
			job->code[k] = 250;
			job->text[k] = strdup("250 2.0.0 Ok: queued");
		}
		delivered += job->sjob.nrcpt;
		in->done(in->ctl, job);
	}
	if (delivered >= target) {
		uint64_t one = 1;

		if (write(in->stop_fd, &one, sizeof(one)) < 0)
			exit(1);
	}
}

static void in_drain(void *be)
{
}

static unsigned in_busy(void *be)
{
	return (unsigned)((struct instant *)be)->n;
}

static void in_free(void *be)
{
	struct instant *in = be;

	for (size_t i = 0; i < in->n; i++) {
		in->q[i]->connected = false;
		snprintf(in->q[i]->reply, sizeof(in->q[i]->reply), "451 4.3.2 stopping");
		in->done(in->ctl, in->q[i]);
	}
	in->n = 0;
}

static struct instant instant;

static struct dmta_backend *instant_new(void *arg, struct dmta_loop *loop, dmta_job_done_fn *done,
					void *ctl)
{
	instant.ops = (struct dmta_backend){.name = "instant",
					    .submit = in_submit,
					    .next_timeout_ms = in_next_timeout_ms,
					    .tick = in_tick,
					    .drain = in_drain,
					    .busy = in_busy,
					    .free = in_free,
					    .be = &instant};
	instant.done = done;
	instant.ctl = ctl;
	return &instant.ops;
}

static int fill_spool(const struct dmta_conf *conf)
{
	struct spool_opts so = {0};
	struct spool *sp;
	char err[256];

	if (spool_opts_from_conf(conf, &so) != 0)
		return -1;
	so.create = true;
	sp = spool_open(&so, err, sizeof(err));
	if (sp == NULL) {
		fprintf(stderr, "bench_cost: %s\n", err);
		return -1;
	}
	for (unsigned i = 0; i < target;) {
		struct spool_txn *t;

		if (spool_begin(sp, true, &t) != 0)
			return -1;
		for (unsigned k = 0; k < 1000 && i < target; k++, i++) {
			struct queue_env e = {0};
			char rcpt[64];

			snprintf(rcpt, sizeof(rcpt), "r%u@b%u.bench.test", i, i % 8);
			if (queue_env_set_sender(&e, "bench@bench.test") != 0 ||
			    queue_env_add_rcpt(&e, rcpt, NULL, 0) != 0)
				return -1;
			e.arrival_ns = dmta_wall_ns();
			if (spool_put(t, &e, message, msg_bytes) != 0)
				return -1;
			queue_env_free(&e);
		}
		if (spool_commit(t) != 0)
			return -1;
	}
	spool_close(sp);
	return 0;
}

/* Everything the control thread does for the messages, start to stop. */
__attribute__((noinline)) static int control_lifetime(const struct dmta_conf *conf)
{
	char err[512];
	struct dmta_control *ctl = dmta_control_new(conf, instant_new, NULL, 1, err, sizeof(err));
	int rc;

	if (ctl == NULL) {
		fprintf(stderr, "bench_cost: %s\n", err);
		return -1;
	}
	rc = dmta_control_run(ctl, instant.stop_fd);
	dmta_control_free(ctl);
	return rc;
}

static int run_control(void)
{
	char dir[] = "/tmp/dmta-cost-XXXXXX", path[128], cmd[160];
	struct dmta_conf *conf = dmta_conf_new();
	int rc = 1;

	if (conf == NULL || mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/spool", dir);
	dmta_conf_set(conf, "spool", "path", path);
	/* Never asked: every domain has a route to an address. */
	dmta_conf_set(conf, "dns", "servers", "127.0.0.1");
	for (unsigned d = 0; d < 8; d++) {
		char dom[32];

		snprintf(dom, sizeof(dom), "b%u.bench.test", d);
		dmta_conf_set(conf, "routes", dom, "198.18.5.2");
	}
	dmta_conf_set(conf, "queue", "dest_max_messages_per_connection", "1000");
	dmta_conf_set(conf, "control", "stats_interval", "0");
	instant.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (instant.stop_fd < 0 || fill_spool(conf) != 0) {
		fprintf(stderr, "bench_cost: cannot fill the spool in %s\n", dir);
		goto out;
	}
	if (control_lifetime(conf) == 0 && delivered == target) {
		struct spool_opts so = {0};
		struct spool_stats st;
		struct spool_txn *t = NULL;
		struct spool *sp;
		char err[256];

		spool_opts_from_conf(conf, &so);
		sp = spool_open(&so, err, sizeof(err));
		if (sp != NULL && spool_begin(sp, false, &t) == 0 && spool_get_stats(t, &st) == 0 &&
		    st.messages == 0)
			rc = 0;
		else
			fprintf(stderr, "bench_cost: the spool is not empty after the run\n");
		if (t != NULL)
			spool_abort(t);
		spool_close(sp);
	}
	printf("control: %u delivered, %u bytes each\n", delivered, (unsigned)msg_bytes);
out:
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = 1;
	dmta_conf_free(conf);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "worker") != 0 && strcmp(argv[1], "control") != 0)) {
		fprintf(stderr, "usage: bench_cost worker|control N [BYTES]\n");
		return 2;
	}
	target = (unsigned)atoi(argv[2]);
	if (argc > 3)
		msg_bytes = (size_t)atoi(argv[3]);
	if (target == 0 || msg_bytes < 100 || msg_bytes > (1 << 24)) {
		fprintf(stderr, "bench_cost: N at least 1, BYTES from 100 to 16M\n");
		return 2;
	}
	dmta_log_init("bench_cost", DMTA_LOG_WARN);
	make_message();
	return strcmp(argv[1], "worker") == 0 ? run_worker() : run_control();
}
