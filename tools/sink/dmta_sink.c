/*
 * dmta_sink.c - dmta-sink: an SMTP receiver on dmta's userspace TCP stack
 *	that counts what it is given and stores nothing.
 *
 * SYNOPSIS
 *	dmta-sink [-c dmta.conf] [options]
 *
 * DESCRIPTION
 *	Brings up the data plane from dmta.conf (EAL, the port, the workers;
 *	dmta_dataplane.h) and listens on [net] address, port 25 (--port), on
 *	every worker. Each connection runs the SMTP server engine
 *	(smtp_server.h: PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8, DSN, SIZE);
 *	every message that reaches its end of data gets 250 at once unless a
 *	knob below says otherwise. Nothing is stored.
 *
 *	It counts connections, transactions (MAIL accepted), recipients,
 *	messages and body bytes, and keeps an order-independent digest of
 *	every accepted body: for each message h = mix64((size << 32) |
 *	crc32(body)), with zlib's CRC-32 of the body as the engine gives it
 *	(de-dot-stuffed, CRLF line ends) and mix64 MurmurHash3's 64-bit
 *	finaliser (CRC-32 is linear, so a plain XOR of CRCs of messages of
 *	one length can cancel out); h is added into digest_sum and XOR-ed
 *	into digest_xor (both modulo 2^64). A sender that computes the same
 *	over what it injected proves that every message arrived byte for
 *	byte, in any order.
 *
 *	Counters: DPDK telemetry /dmta_sink/stats (summed over workers) next
 *	to /dmta/stats and /dmta/worker,ID (the data plane's own), through
 *	dpdk-telemetry.py -f FILE_PREFIX; and one summary line of key=value
 *	pairs on stderr at exit (SIGTERM, SIGINT, --timeout, --exit-after) and
 *	on SIGUSR1.
 *
 *	Fault knobs, deterministic (every k-th, evenly spread, so runs are
 *	repeatable), as smtp-sink has them:
 *	  --tempfail-rcpt PCT  --reject-rcpt PCT   450 4.2.0 / 550 5.1.1 for
 *	                                           PCT% of the recipients
 *	                                           (both: those picked by
 *	                                           both are rejected; so for
 *	                                           --*-data)
 *	  --tempfail-data PCT  --reject-data PCT   451 4.3.0 / 554 5.6.0 at end
 *	                                           of data for PCT% of messages
 *	  --delay MS           answer every end of data MS ms late
 *	  --close-after N      close the connection after its N-th message's
 *	                       reply (the client sees the connection drop)
 *
 *	Each worker serves the connections steered to it; one worker holds
 *	thousands of connections (--max-conns, default 16384 per worker,
 *	raises [tcp] max_conns). The engine's deadlines are checked in a
 *	sweep over a slice of the connections each millisecond.
 *
 * OPTIONS
 *	-c FILE              configuration (default $DMTA_CONFIG or the system one)
 *	-p, --port N         listening port (default 25)
 *	-H, --hostname NAME  in the greeting and EHLO reply (default dmta-sink.test)
 *	-n, --max-conns N    connections per worker (default 16384)
 *	-x, --exit-after N   exit once N messages were accepted
 *	-t, --timeout T      exit after T (e.g. 60s; default 1h): a bound for tests
 *	-q, --quiet          no summary at exit
 *	-v                   debug logging
 *
 * EXIT STATUS
 *	0 after SIGTERM/SIGINT, --timeout or --exit-after; 64 usage; 71
 *	data-plane setup failed; 78 configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_telemetry.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/dataplane/dmta_dataplane.h"
#include "core/dataplane/dmta_telemetry.h"
#include "core/dataplane/dmta_worker.h"
#include "smtp/smtp_server.h"
#include "tcp/tcp_stack.h"

enum {
	SINK_EX_OK = 0,
	SINK_EX_USAGE = 64,
	SINK_EX_OSERR = 71,
	SINK_EX_CONFIG = 78,
};

#define SINK_MAX_CONNS	   16384
#define SINK_SWEEP_PER_MS  256 /* connections whose deadline is checked per tick */
#define SINK_DEFAULT_LIMIT (3600ull * 1000)

/* The counters, one set per worker (in the worker's own lines). */
struct sink_counters {
	uint64_t conns;		/* accepted */
	uint64_t conns_active;	/* gauge */
	uint64_t conns_peak;	/* gauge */
	uint64_t conns_dropped; /* closed by --close-after */
	uint64_t conns_failed;	/* reset, timed out, no memory */
	uint64_t transactions;	/* MAIL accepted */
	uint64_t rcpts;		/* accepted */
	uint64_t rcpts_tempfailed;
	uint64_t rcpts_rejected;
	uint64_t msgs; /* accepted at end of data */
	uint64_t msgs_tempfailed;
	uint64_t msgs_rejected;
	uint64_t msgs_bdat;	/* of msgs: by BDAT */
	uint64_t resets;	/* transactions ended without a message */
	uint64_t bytes;		/* body bytes of accepted messages */
	uint64_t digest_sum;	/* sum of (size << 32 | crc32) */
	uint64_t digest_xor;	/* xor of the same */
	uint64_t first_msg_tsc; /* first accepted message's end of data */
	uint64_t last_msg_tsc;
	uint64_t smtp_errors; /* engine: error replies to the client's mistakes */
	uint64_t timeouts;    /* engine deadlines that expired */
};

static const char *const counter_names[] = {
    "conns",	       "conns_active",	"conns_peak",	    "conns_dropped",  "conns_failed",
    "transactions",    "rcpts",		"rcpts_tempfailed", "rcpts_rejected", "msgs",
    "msgs_tempfailed", "msgs_rejected", "msgs_bdat",	    "resets",	      "bytes",
    "digest_sum",      "digest_xor",	"first_msg_tsc",    "last_msg_tsc",   "smtp_errors",
    "timeouts",
};
_Static_assert(sizeof(counter_names) / sizeof(counter_names[0]) ==
		   sizeof(struct sink_counters) / sizeof(uint64_t),
	       "one name per counter");

struct sink_opts {
	const char *conf_path;
	const char *hostname;
	uint16_t port;
	uint32_t max_conns;
	unsigned tempfail_rcpt, reject_rcpt, tempfail_data, reject_data; /* percent */
	uint64_t delay_ms;
	uint64_t close_after;
	uint64_t exit_after;
	uint64_t timeout_ms;
	bool quiet, verbose;
};

struct sink_worker;

struct sink_conn {
	struct tcp_conn *c;
	struct smtp_server *s;
	struct sink_worker *sw;
	uint32_t slot;
	uint32_t crc; /* of the body so far */
	uint64_t msgs;
	uint64_t deadline; /* engine deadline (TSC), 0: none */
	uint64_t reply_at; /* delayed end-of-data reply due (TSC), 0: none */
	int reply_code;
	const char *reply_text;
	bool closing;	 /* the engine is done: close once the replies are out */
	bool drop;	 /* --close-after: close after this reply */
	bool in_delayed; /* on the worker's delayed list */
	struct sink_conn *next_delayed;
};

struct sink_worker {
	struct sink_counters n;
	const struct sink_opts *o;
	struct smtp_server_config cfg;
	struct dmta_worker *w;
	struct sink_conn **slots; /* by slot number, for the deadline sweep */
	uint32_t nslots, used, sweep;
	uint32_t *free_slots, nfree;
	struct sink_conn *delayed;
	uint64_t rcpt_seq, data_seq; /* for the deterministic knobs */
	uint64_t hz;
	bool listening;
	int listen_err;
} __rte_cache_aligned;

static struct sink_worker *sink_workers;
static unsigned int sink_nworkers;
static volatile sig_atomic_t sink_stop, sink_usr1;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		sink_usr1 = 1;
	else
		sink_stop = sig;
}

/* Counters are written by one worker and read elsewhere: relaxed atomics. */
static inline void cnt_add(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, *p + v, __ATOMIC_RELAXED);
}

static inline void cnt_set(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* MurmurHash3's fmix64: every input bit reaches every output bit. */
static inline uint64_t mix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

/* The i-th of a sequence is picked for a pct% share, evenly spread. */
static bool share_hit(uint64_t i, unsigned pct)
{
	return pct != 0 && ((i + 1) * pct) / 100 != (i * pct) / 100;
}

/* ---- worker lcore: no system calls ---- */

static void conn_free(struct sink_conn *sc, uint64_t now, bool abort_it)
{
	struct sink_worker *sw = sc->sw;

	if (sc->c != NULL) {
		if (abort_it)
			tcp_abort(sc->c, now);
		else
			tcp_close(sc->c, now);
	}
	if (sc->in_delayed) {
		struct sink_conn **pp = &sw->delayed;

		while (*pp != sc)
			pp = &(*pp)->next_delayed;
		*pp = sc->next_delayed;
	}
	sw->slots[sc->slot] = NULL;
	sw->free_slots[sw->nfree++] = sc->slot;
	sw->used--;
	smtp_server_free(sc->s);
	free(sc);
	cnt_set(&sw->n.conns_active, sw->n.conns_active - 1);
}

/* Hand the engine's replies to TCP. False when the connection is gone. */
static bool conn_flush(struct sink_conn *sc, uint64_t now)
{
	struct iovec iov[8];
	size_t k;

	while ((k = smtp_server_tx_iov(sc->s, iov, 8)) > 0) {
		size_t sent = 0;
		bool short_send = false;

		for (size_t i = 0; i < k; i++) {
			ssize_t r = tcp_send(sc->c, iov[i].iov_base, iov[i].iov_len, now);

			if (r < 0 && r != -ENOBUFS) {
				cnt_add(&sc->sw->n.conns_failed, 1);
				conn_free(sc, now, true);
				return false;
			}
			if (r > 0)
				sent += (size_t)r;
			if (r < (ssize_t)iov[i].iov_len) {
				short_send = true; /* TCP_EV_WRITABLE follows */
				break;
			}
		}
		if (sent > 0)
			smtp_server_tx_done(sc->s, sent);
		if (short_send)
			return true;
	}
	if (sc->closing) {
		conn_free(sc, now, false);
		return false;
	}
	return true;
}

static void arm(struct sink_conn *sc, uint64_t now)
{
	uint64_t ms;

	sc->deadline =
	    smtp_server_deadline(sc->s, &ms) == SMTP_DL_NONE ? 0 : now + ms * sc->sw->hz / 1000;
}

static void data_end(struct sink_conn *sc, const struct smtp_server_event *e, uint64_t now)
{
	struct sink_worker *sw = sc->sw;
	const struct sink_opts *o = sw->o;
	uint64_t i = sw->data_seq++;
	int code = 0;
	const char *text = NULL;

	if (share_hit(i, o->reject_data)) {
		code = 554;
		text = "5.6.0 Rejected by dmta-sink (--reject-data)";
		cnt_add(&sw->n.msgs_rejected, 1);
	} else if (share_hit(i, o->tempfail_data)) {
		code = 451;
		text = "4.3.0 Deferred by dmta-sink (--tempfail-data)";
		cnt_add(&sw->n.msgs_tempfailed, 1);
	} else {
		uint64_t h = mix64((e->size << 32) | sc->crc);

		cnt_add(&sw->n.msgs, 1);
		cnt_add(&sw->n.bytes, e->size);
		cnt_set(&sw->n.digest_sum, sw->n.digest_sum + h);
		cnt_set(&sw->n.digest_xor, sw->n.digest_xor ^ h);
		if (e->bdat)
			cnt_add(&sw->n.msgs_bdat, 1);
		if (sw->n.first_msg_tsc == 0)
			cnt_set(&sw->n.first_msg_tsc, now);
		cnt_set(&sw->n.last_msg_tsc, now);
	}
	sc->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	if (o->close_after != 0 && ++sc->msgs >= o->close_after)
		sc->drop = true;
	if (o->delay_ms != 0) {
		sc->reply_at = now + o->delay_ms * sw->hz / 1000;
		sc->reply_code = code;
		sc->reply_text = text;
		sc->next_delayed = sw->delayed;
		sw->delayed = sc;
		sc->in_delayed = true;
		return;
	}
	smtp_server_reply(sc->s, code, text);
}

/* Take the engine's events. False when the connection is gone. */
static bool conn_events(struct sink_conn *sc, uint64_t now)
{
	struct sink_worker *sw = sc->sw;
	const struct sink_opts *o = sw->o;
	struct smtp_server_event e;

	while (smtp_server_event(sc->s, &e)) {
		switch (e.type) {
		case SMTP_SEV_MAIL:
			cnt_add(&sw->n.transactions, 1);
			sc->crc = (uint32_t)crc32(0L, Z_NULL, 0);
			smtp_server_reply(sc->s, 0, NULL);
			break;
		case SMTP_SEV_RCPT: {
			uint64_t i = sw->rcpt_seq++;

			if (share_hit(i, o->reject_rcpt)) {
				cnt_add(&sw->n.rcpts_rejected, 1);
				smtp_server_reply(sc->s, 550,
						  "5.1.1 Rejected by dmta-sink (--reject-rcpt)");
			} else if (share_hit(i, o->tempfail_rcpt)) {
				cnt_add(&sw->n.rcpts_tempfailed, 1);
				smtp_server_reply(sc->s, 450,
						  "4.2.0 Deferred by dmta-sink (--tempfail-rcpt)");
			} else {
				cnt_add(&sw->n.rcpts, 1);
				smtp_server_reply(sc->s, 0, NULL);
			}
			break;
		}
		case SMTP_SEV_BODY:
			sc->crc = (uint32_t)crc32(sc->crc, e.data, (uInt)e.len);
			break;
		case SMTP_SEV_DATA_END:
			data_end(sc, &e, now);
			if (sc->in_delayed)
				return true; /* the rest waits for the reply */
			if (sc->drop) {
				sc->closing = true;
				cnt_add(&sw->n.conns_dropped, 1);
				conn_flush(sc, now);
				return false;
			}
			break;
		case SMTP_SEV_RESET:
			cnt_add(&sw->n.resets, 1);
			break;
		case SMTP_SEV_AUTH: /* not offered */
			smtp_server_reply(sc->s, 502, "5.5.1 Not offered");
			break;
		case SMTP_SEV_TLS_NEEDED: /* not offered either */
		case SMTP_SEV_CLOSED:
			sc->closing = true;
			return conn_flush(sc, now);
		case SMTP_SEV_HELO:
			break;
		}
	}
	arm(sc, now);
	return true;
}

/* Read what TCP has, feed the engine, answer. */
static void conn_pump(struct sink_conn *sc, uint64_t now)
{
	for (;;) {
		uint8_t *p;
		size_t room = smtp_server_rx_space(sc->s, &p);
		ssize_t r;

		if (room == 0 || sc->closing)
			break; /* a decision is awaited (--delay) or the session is over */
		r = tcp_recv(sc->c, p, room, now);
		if (r > 0) {
			smtp_server_rx_commit(sc->s, (size_t)r);
			if (!conn_events(sc, now))
				return;
			continue;
		}
		if (r == 0) {
			smtp_server_eof(sc->s);
			if (!conn_events(sc, now))
				return;
			sc->closing = true;
		} else if (r != -EAGAIN) {
			cnt_add(&sc->sw->n.conns_failed, 1);
			conn_free(sc, now, true);
			return;
		}
		break;
	}
	/* Drained: the replies to the whole pipelined group go in one piece. */
	conn_flush(sc, now);
}

/* A new connection; NULL when it could not be taken (it is reset). */
static struct sink_conn *conn_accept(struct sink_worker *sw, struct tcp_conn *c, uint64_t now)
{
	struct sink_conn *sc;

	if (sw->nfree == 0 || (sc = calloc(1, sizeof(*sc))) == NULL) {
		cnt_add(&sw->n.conns_failed, 1);
		tcp_abort(c, now);
		return NULL;
	}
	sc->s = smtp_server_new(&sw->cfg);
	if (sc->s == NULL) {
		free(sc);
		cnt_add(&sw->n.conns_failed, 1);
		tcp_abort(c, now);
		return NULL;
	}
	sc->c = c;
	sc->sw = sw;
	sc->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	sc->slot = sw->free_slots[--sw->nfree];
	sw->slots[sc->slot] = sc;
	sw->used++;
	tcp_conn_set_user(c, sc);
	cnt_add(&sw->n.conns, 1);
	cnt_set(&sw->n.conns_active, sw->n.conns_active + 1);
	if (sw->n.conns_active > sw->n.conns_peak)
		cnt_set(&sw->n.conns_peak, sw->n.conns_active);
	arm(sc, now);
	return conn_flush(sc, now) ? sc : NULL; /* the greeting */
}

static void sink_events(void *arg, struct dmta_worker *w, const struct tcp_event *ev, uint16_t n,
			uint64_t now)
{
	struct sink_worker *sw = arg;

	(void)w;
	for (uint16_t i = 0; i < n; i++) {
		struct sink_conn *sc = ev[i].user;

		if (ev[i].events & TCP_EV_ACCEPTED)
			sc = conn_accept(sw, ev[i].conn, now);
		if (sc == NULL || sc == (void *)sw)
			continue;
		if (ev[i].events & TCP_EV_ERROR) {
			sc->c = NULL; /* failed: released below without another RST */
			tcp_close(ev[i].conn, now);
			cnt_add(&sw->n.conns_failed, 1);
			conn_free(sc, now, false);
			continue;
		}
		if (ev[i].events & (TCP_EV_READABLE | TCP_EV_PEER_CLOSED))
			conn_pump(sc, now);
		else if (ev[i].events & TCP_EV_WRITABLE)
			conn_flush(sc, now);
	}
}

static void sink_tick(void *arg, struct dmta_worker *w, uint64_t now)
{
	struct sink_worker *sw = arg;
	struct sink_conn *sc, *next, *due = NULL;

	if (!sw->listening && sw->listen_err == 0) {
		int rc = tcp_listen(w->stk, sw->o->port, sw);

		if (rc != 0)
			sw->listen_err = rc;
		sw->listening = rc == 0;
	}
	/* Delayed replies that are due: take them off the list first. */
	for (struct sink_conn **pp = &sw->delayed; (sc = *pp) != NULL;) {
		if (now >= sc->reply_at) {
			*pp = sc->next_delayed;
			sc->in_delayed = false;
			sc->next_delayed = due;
			due = sc;
		} else {
			pp = &sc->next_delayed;
		}
	}
	for (sc = due; sc != NULL; sc = next) {
		next = sc->next_delayed;
		sc->reply_at = 0;
		smtp_server_reply(sc->s, sc->reply_code, sc->reply_text);
		if (sc->drop) {
			sc->closing = true;
			cnt_add(&sw->n.conns_dropped, 1);
			conn_flush(sc, now);
			continue;
		}
		if (conn_events(sc, now))
			conn_pump(sc, now);
	}
	/* The engine's deadlines, a slice of the table at a time. */
	for (uint32_t k = 0; k < SINK_SWEEP_PER_MS && sw->used > 0; k++) {
		sw->sweep = sw->sweep + 1 >= sw->nslots ? 0 : sw->sweep + 1;
		sc = sw->slots[sw->sweep];
		if (sc == NULL || sc->deadline == 0 || now < sc->deadline)
			continue;
		cnt_add(&sw->n.timeouts, 1);
		smtp_server_timeout(sc->s);
		if (conn_events(sc, now)) {
			sc->closing = true;
			conn_flush(sc, now);
		}
	}
}

/* ---- main lcore ---- */

static void sum_counters(struct sink_counters *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned int k = 0; k < sink_nworkers; k++) {
		const uint64_t *s = (const uint64_t *)&sink_workers[k].n;
		uint64_t *d = (uint64_t *)t;

		for (size_t i = 0; i < sizeof(*t) / sizeof(uint64_t); i++) {
			uint64_t v = __atomic_load_n(&s[i], __ATOMIC_RELAXED);

			if (&d[i] == &t->first_msg_tsc)
				d[i] = d[i] == 0 || (v != 0 && v < d[i]) ? v : d[i];
			else if (&d[i] == &t->last_msg_tsc)
				d[i] = v > d[i] ? v : d[i];
			else if (&d[i] == &t->digest_xor)
				d[i] ^= v;
			else
				d[i] += v;
		}
	}
}

static int tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct sink_counters t;
	const uint64_t *v = (const uint64_t *)&t;

	(void)cmd;
	(void)params;
	sum_counters(&t);
	rte_tel_data_start_dict(d);
	for (size_t i = 0; i < sizeof(t) / sizeof(uint64_t); i++)
		rte_tel_data_add_dict_u64(d, counter_names[i], v[i]);
	rte_tel_data_add_dict_u64(d, "tsc_hz", rte_get_tsc_hz());
	rte_tel_data_add_dict_u64(d, "tsc_now", rte_rdtsc());
	return 0;
}

static void summary(uint64_t t_start)
{
	struct sink_counters t;
	uint64_t hz = rte_get_tsc_hz();
	double secs = (double)(rte_rdtsc() - t_start) / (double)hz;
	double span;

	sum_counters(&t);
	span = t.last_msg_tsc > t.first_msg_tsc
		   ? (double)(t.last_msg_tsc - t.first_msg_tsc) / (double)hz
		   : 0.0;
	fprintf(stderr,
		"dmta-sink: summary secs=%.3f conns=%llu conns_active=%llu conns_peak=%llu "
		"conns_dropped=%llu conns_failed=%llu transactions=%llu rcpts=%llu "
		"rcpts_tempfailed=%llu rcpts_rejected=%llu msgs=%llu msgs_tempfailed=%llu "
		"msgs_rejected=%llu msgs_bdat=%llu resets=%llu bytes=%llu "
		"digest_sum=%016llx digest_xor=%016llx msg_span_secs=%.3f msgs_per_s=%.0f "
		"smtp_errors=%llu timeouts=%llu\n",
		secs, (unsigned long long)t.conns, (unsigned long long)t.conns_active,
		(unsigned long long)t.conns_peak, (unsigned long long)t.conns_dropped,
		(unsigned long long)t.conns_failed, (unsigned long long)t.transactions,
		(unsigned long long)t.rcpts, (unsigned long long)t.rcpts_tempfailed,
		(unsigned long long)t.rcpts_rejected, (unsigned long long)t.msgs,
		(unsigned long long)t.msgs_tempfailed, (unsigned long long)t.msgs_rejected,
		(unsigned long long)t.msgs_bdat, (unsigned long long)t.resets,
		(unsigned long long)t.bytes, (unsigned long long)t.digest_sum,
		(unsigned long long)t.digest_xor, span,
		span > 0 ? (double)(t.msgs - 1) / span : 0.0, (unsigned long long)t.smtp_errors,
		(unsigned long long)t.timeouts);
	fflush(stderr);
}

static void usage(void)
{
	fprintf(stderr, "usage: dmta-sink [-c dmta.conf] [-p PORT] [-H HOSTNAME] [-n MAX_CONNS] "
			"[-x EXIT_AFTER] [-t TIMEOUT] [-q] [-v]\n"
			"       [--tempfail-rcpt PCT] [--reject-rcpt PCT] [--tempfail-data PCT] "
			"[--reject-data PCT] [--delay MS] [--close-after N]\n");
}

static int parse_pct(const char *name, const char *s, unsigned *out)
{
	uint64_t v;

	if (dmta_parse_u64(s, &v) != 0 || v > 100) {
		dmta_err("--%s %s: expected a percentage, 0 to 100", name, s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct sink_opts *o)
{
	static const struct option longopts[] = {
	    {"port", required_argument, NULL, 'p'},
	    {"hostname", required_argument, NULL, 'H'},
	    {"max-conns", required_argument, NULL, 'n'},
	    {"exit-after", required_argument, NULL, 'x'},
	    {"timeout", required_argument, NULL, 't'},
	    {"tempfail-rcpt", required_argument, NULL, 1},
	    {"reject-rcpt", required_argument, NULL, 2},
	    {"tempfail-data", required_argument, NULL, 3},
	    {"reject-data", required_argument, NULL, 4},
	    {"delay", required_argument, NULL, 5},
	    {"close-after", required_argument, NULL, 6},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:p:H:n:x:t:qvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->conf_path = optarg;
			break;
		case 'p':
			if (dmta_parse_u64(optarg, &v) != 0 || v < 1 || v > 65535) {
				dmta_err("--port %s: expected a port number", optarg);
				return -1;
			}
			o->port = (uint16_t)v;
			break;
		case 'H':
			o->hostname = optarg;
			break;
		case 'n':
			if (dmta_parse_u64(optarg, &v) != 0 || v < 1 || v > 1000000) {
				dmta_err("--max-conns %s: expected 1 to 1000000", optarg);
				return -1;
			}
			o->max_conns = (uint32_t)v;
			break;
		case 'x':
		case 6:
			if (dmta_parse_u64(optarg, &v) != 0 || v < 1) {
				dmta_err("%s: expected a positive count", optarg);
				return -1;
			}
			if (opt == 'x')
				o->exit_after = v;
			else
				o->close_after = v;
			break;
		case 't':
		case 5:
			if (dmta_parse_duration_ms(optarg, &v) != 0 || v > 86400000 ||
			    (opt == 't' && v == 0)) {
				dmta_err("%s: expected a duration (e.g. 5s, 500ms)", optarg);
				return -1;
			}
			if (opt == 't')
				o->timeout_ms = v;
			else
				o->delay_ms = v;
			break;
		case 1:
			if (parse_pct("tempfail-rcpt", optarg, &o->tempfail_rcpt) != 0)
				return -1;
			break;
		case 2:
			if (parse_pct("reject-rcpt", optarg, &o->reject_rcpt) != 0)
				return -1;
			break;
		case 3:
			if (parse_pct("tempfail-data", optarg, &o->tempfail_data) != 0)
				return -1;
			break;
		case 4:
			if (parse_pct("reject-data", optarg, &o->reject_data) != 0)
				return -1;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage();
			exit(0);
		default:
			usage();
			return -1;
		}
	}
	if (optind != argc) {
		usage();
		return -1;
	}
	return 0;
}

static void tune(void *arg, unsigned int worker, struct tcp_stack_conf *sc)
{
	const struct sink_opts *o = arg;

	(void)worker;
	if (sc->max_conns < o->max_conns + 64)
		sc->max_conns = o->max_conns + 64;
}

static int workers_init(struct dmta_dataplane *dp, const struct sink_opts *o)
{
	sink_nworkers = dp->nb_workers;
	sink_workers =
	    rte_zmalloc("dmta_sink", sizeof(*sink_workers) * sink_nworkers, RTE_CACHE_LINE_SIZE);
	if (sink_workers == NULL)
		return -ENOMEM;
	for (unsigned int k = 0; k < sink_nworkers; k++) {
		struct sink_worker *sw = &sink_workers[k];
		struct dmta_worker_app app = {.events = sink_events, .tick = sink_tick, .arg = sw};

		sw->o = o;
		sw->cfg = (struct smtp_server_config){
		    .hostname = o->hostname, .greeting = "ESMTP dmta-sink", .max_rcpts = 1000};
		sw->w = &dp->workers[k];
		sw->hz = rte_get_tsc_hz();
		sw->nslots = o->max_conns;
		sw->slots = calloc(sw->nslots, sizeof(*sw->slots));
		sw->free_slots = calloc(sw->nslots, sizeof(*sw->free_slots));
		if (sw->slots == NULL || sw->free_slots == NULL)
			return -ENOMEM;
		for (uint32_t i = 0; i < sw->nslots; i++)
			sw->free_slots[i] = sw->nslots - 1 - i;
		sw->nfree = sw->nslots;
		dmta_worker_set_app(&dp->workers[k], &app);
	}
	return 0;
}

static void workers_fini(void)
{
	for (unsigned int k = 0; sink_workers != NULL && k < sink_nworkers; k++) {
		struct sink_worker *sw = &sink_workers[k];

		for (uint32_t i = 0; sw->slots != NULL && i < sw->nslots; i++)
			if (sw->slots[i] != NULL) {
				smtp_server_free(sw->slots[i]->s);
				free(sw->slots[i]);
			}
		free(sw->slots);
		free(sw->free_slots);
	}
	rte_free(sink_workers);
	sink_workers = NULL;
}

int main(int argc, char **argv)
{
	struct sink_opts o = {.hostname = "dmta-sink.test",
			      .port = 25,
			      .max_conns = SINK_MAX_CONNS,
			      .timeout_ms = SINK_DEFAULT_LIMIT};
	struct dmta_dataplane dp = {0};
	struct dmta_conf *conf;
	char err[512] = "";
	uint64_t t_start, deadline;
	int rc;

	dmta_log_init("dmta-sink", DMTA_LOG_WARN);
	if (parse_args(argc, argv, &o) != 0)
		return SINK_EX_USAGE;
	if (o.verbose)
		dmta_log_set_level(DMTA_LOG_DEBUG);
	conf = dmta_conf_load(dmta_conf_path(o.conf_path), err, sizeof(err));
	if (conf == NULL) {
		dmta_err("%s", err);
		return SINK_EX_CONFIG;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGUSR1, on_signal);
	dp.tune = tune;
	dp.tune_arg = &o;
	rc = dmta_dataplane_open(&dp, conf, argv[0], err, sizeof(err));
	if (rc == 0 && workers_init(&dp, &o) != 0) {
		snprintf(err, sizeof(err), "out of memory for %u connections", o.max_conns);
		rc = -ENOMEM;
	}
	if (rc == 0) {
		int trc = dmta_telemetry_init(dp.workers, dp.nb_workers, &dp.port, dp.address);

		if (trc == 0)
			trc = rte_telemetry_register_cmd(
			    "/dmta_sink/stats", tel_stats,
			    "dmta-sink's counters, summed over workers. No parameters");
		if (trc != 0)
			dmta_warn("telemetry unavailable: %s", strerror(-trc));
	}
	if (rc == 0)
		rc = dmta_dataplane_launch(&dp, err, sizeof(err));
	if (rc != 0) {
		dmta_err("%s", err);
		dmta_dataplane_stop(&dp);
		dmta_telemetry_fini();
		workers_fini();
		dmta_dataplane_close(&dp);
		dmta_conf_free(conf);
		return rc == -EINVAL ? SINK_EX_CONFIG : SINK_EX_OSERR;
	}
	t_start = rte_rdtsc();
	deadline = t_start + o.timeout_ms * rte_get_tsc_hz() / 1000;
	rc = SINK_EX_OK;
	for (;;) {
		struct sink_counters t;
		int lerr = 0;

		if (sink_stop != 0 || rte_rdtsc() > deadline)
			break;
		for (unsigned int k = 0; k < sink_nworkers; k++)
			if (__atomic_load_n(&sink_workers[k].listen_err, __ATOMIC_RELAXED) != 0)
				lerr = sink_workers[k].listen_err;
		if (lerr != 0) {
			dmta_err("listen on port %u: %s", o.port, strerror(-lerr));
			rc = SINK_EX_OSERR;
			break;
		}
		if (sink_usr1) {
			sink_usr1 = 0;
			summary(t_start);
		}
		if (o.exit_after != 0) {
			sum_counters(&t);
			if (t.msgs >= o.exit_after)
				break;
		}
		usleep(1000);
	}
	dmta_dataplane_stop(&dp);
	if (!o.quiet)
		summary(t_start);
	dmta_telemetry_fini();
	workers_fini();
	dmta_dataplane_close(&dp);
	dmta_conf_free(conf);
	return rc;
}
