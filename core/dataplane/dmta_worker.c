/*
 * dmta_worker.c - see dmta_worker.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_errno.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "core/base/dmta_log.h"
#include "core/dataplane/dmta_worker.h"

#define WORKER_BURST 32
/* Empty polls before an idle sleep, when idle sleeping is on. */
#define WORKER_IDLE_POLLS 128
/* Frames other workers may have forwarded to one worker and not yet taken. */
#define WORKER_INBOX 8192
/* Inbox bursts taken a loop at most, while they come full. */
#define WORKER_INBOX_BURSTS 8

/* After dmta_workers_stop(), workers have this long to return. */
#define WORKER_STOP_GRACE_S 10

static atomic_bool workers_quit;
static atomic_uint workers_running;

/*
 * A worker that has not returned WORKER_STOP_GRACE_S after the stop (a
 * loop inside the stack, whatever a peer made it do) must not keep the
 * process from stopping on SIGTERM: the process ends here, loudly.
 */
static void *stop_watchdog(void *arg)
{
	(void)arg;
	for (int i = 0; i < WORKER_STOP_GRACE_S * 10; i++) {
		if (atomic_load_explicit(&workers_running, memory_order_acquire) == 0)
			return NULL;
		usleep(100 * 1000);
	}
	dmta_err("%u worker(s) did not stop within %d s of the stop: exiting",
		 atomic_load(&workers_running), WORKER_STOP_GRACE_S);
	_exit(70); /* EX_SOFTWARE */
}

void dmta_workers_stop(void)
{
	static atomic_flag watched = ATOMIC_FLAG_INIT;
	pthread_t t;

	atomic_store_explicit(&workers_quit, true, memory_order_release);
	if (atomic_load_explicit(&workers_running, memory_order_acquire) > 0 &&
	    !atomic_flag_test_and_set(&watched) &&
	    pthread_create(&t, NULL, stop_watchdog, NULL) == 0)
		pthread_detach(t);
}

static const struct dmta_conf_enum tcp_ccs[] = {
    {"cubic", TCP_CC_CUBIC}, {"bbr", TCP_CC_BBR}, {NULL, 0}};

#define TCP(m) DMTA_CONF_AT(struct tcp_stack_conf, m)
static const struct dmta_conf_key tcp_keys[] = {
    {.name = "port_lo",
     .type = DMTA_CONF_U64,
     .def = "10000",
     .min = 1024,
     .max = 65535,
     TCP(port_lo),
     .help = "The userspace TCP of each worker. Local ports for connections out: each\n"
	     "worker takes its own slice of port_lo..port_hi."},
    {.name = "port_hi",
     .type = DMTA_CONF_U64,
     .def = "60999",
     .min = 1024,
     .max = 65535,
     TCP(port_hi)},
    {.name = "max_conns",
     .type = DMTA_CONF_U64,
     .def = "16384",
     .min = 16,
     .max = 4194304,
     TCP(max_conns),
     .help = "connections per worker, all states; each takes 6 KiB of hugepage\n"
	     "memory (send and receive queues of 256 segments each)"},
    {.name = "sndbuf",
     .type = DMTA_CONF_SIZE,
     .def = "256k",
     .min = 4096,
     .max = 64 << 20,
     TCP(sndbuf)},
    {.name = "rcvbuf",
     .type = DMTA_CONF_SIZE,
     .def = "256k",
     .min = 4096,
     .max = 64 << 20,
     TCP(rcvbuf)},
    {.name = "rto_min",
     .type = DMTA_CONF_DURATION,
     .def = "200ms",
     .min = 1,
     .max = DMTA_CONF_MIN(1),
     TCP(rto_min_ms)},
    {.name = "rto_max",
     .type = DMTA_CONF_DURATION,
     .def = "120s",
     .min = DMTA_CONF_MIN(1),
     .max = DMTA_CONF_MIN(10),
     TCP(rto_max_ms)},
    {.name = "syn_retries", .type = DMTA_CONF_U64, .def = "5", .max = 20, TCP(syn_retries)},
    {.name = "max_retries",
     .type = DMTA_CONF_U64,
     .def = "15",
     .min = 1,
     .max = 50,
     TCP(max_retries)},
    {.name = "connect_timeout",
     .type = DMTA_CONF_DURATION,
     .def = "30s",
     .max = DMTA_CONF_MIN(10),
     TCP(connect_timeout_ms)},
    {.name = "time_wait",
     .type = DMTA_CONF_DURATION,
     .def = "60s",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_MIN(4),
     TCP(time_wait_ms)},
    {.name = "congestion_control",
     .type = DMTA_CONF_ENUM,
     .def = "bbr",
     .values = tcp_ccs,
     TCP(congestion_control),
     .help = "cubic: loss-based (RFC 9438); segments leave as the window allows.\n"
	     "bbr: model-based (BBR v1), paced; random loss does not slow it down.\n"
	     "bbr takes 0.2 KiB more hugepage memory per max_conns slot."},
};

const struct dmta_conf_section dmta_tcp_conf_section = {
    .name = "tcp",
    .keys = tcp_keys,
    .nkeys = DMTA_CONF_NKEYS(tcp_keys),
};

int dmta_worker_tcp_conf(const struct dmta_conf *conf, unsigned int id, unsigned int nb_workers,
			 struct tcp_stack_conf *sc)
{
	uint32_t lo, hi, span;

	memset(sc, 0, sizeof(*sc));
	if (dmta_conf_read(conf, &dmta_tcp_conf_section, sc) != 0)
		return -EINVAL;
	lo = sc->port_lo;
	hi = sc->port_hi;
	if (hi < lo || (hi - lo + 1) / nb_workers < 64) {
		dmta_err("%s: [tcp] port_lo..port_hi leaves fewer than 64 ports per worker",
			 dmta_conf_source(conf));
		return -EINVAL;
	}
	/* Disjoint slices, so that replies can be steered by local port. */
	span = (hi - lo + 1) / nb_workers;
	sc->port_lo = (uint16_t)(lo + span * id);
	sc->port_hi = (uint16_t)(lo + span * (id + 1) - 1);
	sc->rto_init_ms = 1000;
	sc->delack_ms = 40;
	return 0;
}

bool dmta_worker_port_ok(void *arg, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport)
{
	const struct dmta_worker *w = arg;

	return w->steer == NULL || dmta_steer_port_ok(w->steer, w->id, laddr, lport, raddr, rport);
}

int dmta_worker_init(struct dmta_worker *w, unsigned int id, const struct dmta_port *port,
		     const struct tcp_netif_conf *netconf, const struct tcp_stack_conf *stackconf,
		     uint32_t idle_sleep_us, const struct dmta_steer *steer,
		     struct dmta_worker *peers)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->port_id = port->port_id;
	w->queue_id = (uint16_t)id;
	w->has_rxq = id < port->nb_rxq;
	w->idle_sleep_us = idle_sleep_us;
	w->pool = port->pool[id];
	if (steer != NULL && steer->nb_workers > 1) {
		char name[RTE_RING_NAMESIZE];

		w->steer = steer;
		w->peers = peers;
		snprintf(name, sizeof(name), "dmta_inbox_%u", id);
		w->inbox = rte_ring_create(name, WORKER_INBOX, port->socket_id, RING_F_SC_DEQ);
		if (w->inbox == NULL)
			return -rte_errno;
	}
	w->nif = tcp_netif_create(netconf, port->pool[id], port->socket_id);
	if (w->nif == NULL) {
		int e = errno;

		rte_ring_free(w->inbox);
		w->inbox = NULL;
		return -e;
	}
	w->stk = tcp_stack_create(stackconf, w->nif, port->pool[id], port->socket_id, rte_rdtsc());
	if (w->stk == NULL) {
		int e = errno;

		tcp_netif_free(w->nif);
		w->nif = NULL;
		rte_ring_free(w->inbox);
		w->inbox = NULL;
		return -e;
	}
	return 0;
}

void dmta_worker_set_app(struct dmta_worker *w, const struct dmta_worker_app *app)
{
	w->app = *app;
}

/* Offer the held frames, then what the stack queued; keep what the port
 * refuses (a full TX ring is a moment, not a reason to lose a segment). */
static void worker_tx(struct dmta_worker *w)
{
	struct rte_mbuf *tx[WORKER_BURST];
	uint16_t n, sent;

	if (w->held > 0) {
		sent = rte_eth_tx_burst(w->port_id, w->queue_id, w->hold, w->held);
		w->stats.tx_frames += sent;
		w->stats.tx_retried += sent;
		if (sent < w->held) {
			memmove(w->hold, w->hold + sent, (w->held - sent) * sizeof(w->hold[0]));
			w->held -= sent;
			return; /* still full: the stack's frames wait in its FIFO */
		}
		w->held = 0;
	}
	while ((n = tcp_netif_tx_drain(w->nif, tx, WORKER_BURST)) > 0) {
		sent = rte_eth_tx_burst(w->port_id, w->queue_id, tx, n);
		w->stats.tx_frames += sent;
		if (sent < n) {
			uint16_t keep = RTE_MIN((uint16_t)(n - sent),
						(uint16_t)(DMTA_WORKER_TX_HOLD - w->held));

			memcpy(w->hold + w->held, tx + sent, keep * sizeof(tx[0]));
			w->held += keep;
			if (sent + keep < n) {
				rte_pktmbuf_free_bulk(tx + sent + keep, n - sent - keep);
				w->stats.tx_dropped += (uint64_t)(n - sent - keep);
			}
			break;
		}
		if (n < WORKER_BURST)
			break;
	}
}

/* Give another worker a frame of its own; a full inbox loses it (TCP
 * recovers one lost segment; the count says how often). */
static void worker_forward(struct dmta_worker *w, uint32_t to, struct rte_mbuf *m)
{
	if (rte_ring_mp_enqueue(w->peers[to].inbox, m) != 0) {
		rte_pktmbuf_free(m);
		w->stats.stray_drop++;
		return;
	}
	w->stats.stray_out++;
}

/* Keep in rx what this worker owns; forward the rest; copy ARP to all. */
static uint16_t worker_dispatch(struct dmta_worker *w, struct rte_mbuf **rx, uint16_t n)
{
	uint16_t keep = 0;

	for (uint16_t i = 0; i < n; i++) {
		uint32_t owner = dmta_steer_owner(w->steer, rx[i], w->id);

		if (owner == DMTA_STEER_ALL) {
			for (uint32_t k = 0; k < w->steer->nb_workers; k++) {
				struct rte_mbuf *c;

				if (k == w->id)
					continue;
				c = rte_pktmbuf_copy(rx[i], w->pool, 0, UINT32_MAX);
				if (c == NULL) {
					w->stats.stray_drop++;
					continue;
				}
				w->stats.arp_shared++;
				worker_forward(w, k, c);
			}
			rx[keep++] = rx[i];
		} else if (owner == w->id) {
			rx[keep++] = rx[i];
		} else {
			worker_forward(w, owner, rx[i]);
		}
	}
	return keep;
}

/* Frames other workers forwarded: segments of this worker's connections,
 * and copies of ARP frames (learned from, never answered twice). */
static uint16_t worker_inbox(struct dmta_worker *w, uint64_t now)
{
	struct rte_mbuf *in[WORKER_BURST];
	unsigned int n = rte_ring_sc_dequeue_burst(w->inbox, (void **)in, WORKER_BURST, NULL);
	uint16_t keep = 0;

	if (n == 0)
		return 0;
	w->stats.stray_in += n;
	for (unsigned int i = 0; i < n; i++) {
		const struct rte_ether_hdr *eth =
		    rte_pktmbuf_mtod(in[i], const struct rte_ether_hdr *);

		if (rte_pktmbuf_data_len(in[i]) >= RTE_ETHER_HDR_LEN &&
		    eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
			tcp_netif_arp_learn(w->nif, in[i], now);
		else
			in[keep++] = in[i];
	}
	tcp_netif_input(w->nif, in, keep, now);
	return (uint16_t)n;
}

/* Hand the stack's news to the application (or close what nobody owns). */
static void worker_events(struct dmta_worker *w, uint64_t now)
{
	struct tcp_event ev[WORKER_BURST];
	uint16_t n;

	while ((n = tcp_stack_poll(w->stk, ev, WORKER_BURST)) > 0) {
		if (w->app.events != NULL)
			w->app.events(w->app.arg, w, ev, n, now);
		if (n < WORKER_BURST)
			break;
	}
}

int dmta_worker_main(void *arg)
{
	struct dmta_worker *w = arg;
	struct rte_mbuf *rx[WORKER_BURST];
	const uint64_t tick = rte_get_tsc_hz() / 1000;
	uint64_t last_tick = rte_rdtsc();
	unsigned int idle = 0;

	/* A worker that sleeps when idle must wake when asked: the default
	 * 50 us of timer slack would double each sleep. */
	if (w->idle_sleep_us != 0)
		(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	atomic_fetch_add_explicit(&workers_running, 1, memory_order_acq_rel);
	while (!atomic_load_explicit(&workers_quit, memory_order_acquire)) {
		uint64_t now = rte_rdtsc();
		uint16_t n = 0, mine;

		if (w->has_rxq)
			n = rte_eth_rx_burst(w->port_id, w->queue_id, rx, WORKER_BURST);
		w->stats.loops++;
		if (n > 0) {
			w->stats.rx_bursts++;
			w->stats.rx_frames += n;
			mine = w->steer != NULL ? worker_dispatch(w, rx, n) : n;
			tcp_netif_input(w->nif, rx, mine, now);
			idle = 0;
		}
		/* The inbox, a burst a time while it is full ones: a backlog
		 * built while this worker was off its CPU (shared cores) must
		 * drain faster than a peer's rx refills it, or frames are lost. */
		if (w->inbox != NULL) {
			uint16_t got;

			for (int b = 0; b < WORKER_INBOX_BURSTS && (got = worker_inbox(w, now)) > 0;
			     b++) {
				n = 1; /* not idle */
				idle = 0;
				if (got < WORKER_BURST)
					break;
			}
		}
		if (now - last_tick >= tick) {
			tcp_netif_tick(w->nif, now);
			tcp_stack_tick(w->stk, now);
			if (w->app.tick != NULL)
				w->app.tick(w->app.arg, w, now);
			last_tick = now;
		}
		if (w->app.poll != NULL)
			w->app.poll(w->app.arg, w, now);
		worker_events(w, now);
		worker_tx(w);
		if (n == 0) {
			if (w->idle_sleep_us != 0 && ++idle >= WORKER_IDLE_POLLS) {
				/* The one syscall a worker may make, and only
				 * when configured to share its core. */
				rte_delay_us_sleep(w->idle_sleep_us);
				w->stats.idle_sleeps++;
			} else {
				rte_pause();
			}
		}
	}
	atomic_fetch_sub_explicit(&workers_running, 1, memory_order_acq_rel);
	return 0;
}

void dmta_worker_fini(struct dmta_worker *w)
{
	rte_pktmbuf_free_bulk(w->hold, w->held);
	w->held = 0;
	if (w->inbox != NULL) {
		struct rte_mbuf *m;

		while (rte_ring_sc_dequeue(w->inbox, (void **)&m) == 0)
			rte_pktmbuf_free(m);
		rte_ring_free(w->inbox);
		w->inbox = NULL;
	}
	tcp_stack_free(w->stk);
	w->stk = NULL;
	tcp_netif_free(w->nif);
	w->nif = NULL;
}
