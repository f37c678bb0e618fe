/*
 * dmta_worker.c - see dmta_worker.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "core/base/dmta_log.h"
#include "core/dmta_worker.h"

#define WORKER_BURST 32
/* Empty polls before an idle sleep, when idle sleeping is on. */
#define WORKER_IDLE_POLLS 1024

static atomic_bool workers_quit;

void dmta_workers_stop(void)
{
	atomic_store_explicit(&workers_quit, true, memory_order_release);
}

int dmta_worker_init(struct dmta_worker *w, unsigned int id, const struct dmta_port *port,
		     const struct tcp_netif_conf *netconf, uint32_t idle_sleep_us)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->port_id = port->port_id;
	w->queue_id = (uint16_t)id;
	w->idle_sleep_us = idle_sleep_us;
	w->nif = tcp_netif_create(netconf, port->pool[id], port->socket_id);
	if (w->nif == NULL)
		return -errno;
	return 0;
}

static void worker_tx(struct dmta_worker *w)
{
	struct rte_mbuf *tx[WORKER_BURST];
	uint16_t n, sent;

	while ((n = tcp_netif_tx_drain(w->nif, tx, WORKER_BURST)) > 0) {
		sent = rte_eth_tx_burst(w->port_id, w->queue_id, tx, n);
		w->stats.tx_frames += sent;
		if (sent < n) {
			rte_pktmbuf_free_bulk(tx + sent, n - sent);
			w->stats.tx_dropped += (uint64_t)(n - sent);
		}
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

	while (!atomic_load_explicit(&workers_quit, memory_order_acquire)) {
		uint64_t now = rte_rdtsc();
		uint16_t n = rte_eth_rx_burst(w->port_id, w->queue_id, rx, WORKER_BURST);

		w->stats.loops++;
		if (n > 0) {
			w->stats.rx_bursts++;
			w->stats.rx_frames += n;
			tcp_netif_input(w->nif, rx, n, now);
			idle = 0;
		}
		if (now - last_tick >= tick) {
			tcp_netif_tick(w->nif, now);
			last_tick = now;
		}
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
	return 0;
}

void dmta_worker_fini(struct dmta_worker *w)
{
	tcp_netif_free(w->nif);
	w->nif = NULL;
}
