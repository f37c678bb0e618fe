/*
 * dmta_telemetry.c - see dmta_telemetry.h.
 *
 * Callbacks run on DPDK's telemetry thread. A mutex (never taken by the
 * workers) keeps them away from the worker array while dmtad shuts down.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <rte_telemetry.h>

#include "core/base/dmta_log.h"
#include "core/dmta_telemetry.h"

static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dmta_worker *tel_workers;
static unsigned int tel_nb_workers;
static const struct dmta_port *tel_port;
static char tel_address[64];

static const struct {
	const char *name;
	size_t offset;
} worker_stat_names[] = {
    {"loops", offsetof(struct dmta_worker_stats, loops)},
    {"rx_bursts", offsetof(struct dmta_worker_stats, rx_bursts)},
    {"port_rx_frames", offsetof(struct dmta_worker_stats, rx_frames)},
    {"port_tx_frames", offsetof(struct dmta_worker_stats, tx_frames)},
    {"port_tx_dropped", offsetof(struct dmta_worker_stats, tx_dropped)},
    {"port_tx_retried", offsetof(struct dmta_worker_stats, tx_retried)},
    {"idle_sleeps", offsetof(struct dmta_worker_stats, idle_sleeps)},
    {"stray_out", offsetof(struct dmta_worker_stats, stray_out)},
    {"stray_in", offsetof(struct dmta_worker_stats, stray_in)},
    {"stray_drop", offsetof(struct dmta_worker_stats, stray_drop)},
    {"arp_shared", offsetof(struct dmta_worker_stats, arp_shared)},
};

static uint64_t load_u64(const void *base, size_t offset)
{
	return *(const volatile uint64_t *)((const char *)base + offset);
}

/* Add worker w's counters (or all workers' summed, when w is NULL) to d. */
static void tel_add_counters(struct rte_tel_data *d, const struct dmta_worker *w)
{
	size_t n_nif, n_stk;
	const struct tcp_stat_name *nif_names = tcp_netif_stat_names(&n_nif);
	const struct tcp_stat_name *stk_names = tcp_stack_stat_names(&n_stk);
	unsigned int first = w ? w->id : 0, last = w ? w->id + 1 : tel_nb_workers;

	for (size_t i = 0; i < RTE_DIM(worker_stat_names); i++) {
		uint64_t v = 0;

		for (unsigned int k = first; k < last; k++)
			v += load_u64(&tel_workers[k].stats, worker_stat_names[i].offset);
		rte_tel_data_add_dict_u64(d, worker_stat_names[i].name, v);
	}
	for (size_t i = 0; i < n_nif; i++) {
		uint64_t v = 0;

		for (unsigned int k = first; k < last; k++)
			v += load_u64(tcp_netif_stats(tel_workers[k].nif), nif_names[i].offset);
		rte_tel_data_add_dict_u64(d, nif_names[i].name, v);
	}
	for (size_t i = 0; i < n_stk; i++) {
		char name[64];
		uint64_t v = 0;

		for (unsigned int k = first; k < last; k++)
			v += load_u64(tcp_stack_stats(tel_workers[k].stk), stk_names[i].offset);
		snprintf(name, sizeof(name), "tcp_%s", stk_names[i].name);
		rte_tel_data_add_dict_u64(d, name, v);
	}
}

static int tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	pthread_mutex_lock(&tel_lock);
	if (tel_workers == NULL) {
		pthread_mutex_unlock(&tel_lock);
		return -EAGAIN;
	}
	rte_tel_data_start_dict(d);
	tel_add_counters(d, NULL);
	pthread_mutex_unlock(&tel_lock);
	return 0;
}

static int tel_worker(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char *end;
	unsigned long id;

	if (params == NULL || params[0] == '\0')
		return -EINVAL;
	id = strtoul(params, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	pthread_mutex_lock(&tel_lock);
	if (tel_workers == NULL || id >= tel_nb_workers) {
		pthread_mutex_unlock(&tel_lock);
		return -EINVAL;
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "worker", id);
	tel_add_counters(d, &tel_workers[id]);
	pthread_mutex_unlock(&tel_lock);
	return 0;
}

static int tel_info(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char mac[RTE_ETHER_ADDR_FMT_SIZE];

	pthread_mutex_lock(&tel_lock);
	if (tel_workers == NULL) {
		pthread_mutex_unlock(&tel_lock);
		return -EAGAIN;
	}
	rte_ether_format_addr(mac, sizeof(mac), &tel_port->mac);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "version", DMTA_VERSION);
	rte_tel_data_add_dict_u64(d, "workers", tel_nb_workers);
	rte_tel_data_add_dict_string(d, "port", tel_port->name);
	rte_tel_data_add_dict_string(d, "mac", mac);
	rte_tel_data_add_dict_string(d, "address", tel_address);
	rte_tel_data_add_dict_u64(d, "mtu", tel_port->mtu);
	rte_tel_data_add_dict_u64(d, "rx_queues", tel_port->nb_rxq);
	rte_tel_data_add_dict_string(d, "steering",
				     tel_nb_workers < 2 ? "none"
				     : tel_port->rss	? "rss"
							: "software");
	pthread_mutex_unlock(&tel_lock);
	return 0;
}

int dmta_telemetry_init(struct dmta_worker *workers, unsigned int nb_workers,
			const struct dmta_port *port, const char *address)
{
	int rc;

	pthread_mutex_lock(&tel_lock);
	tel_workers = workers;
	tel_nb_workers = nb_workers;
	tel_port = port;
	snprintf(tel_address, sizeof(tel_address), "%s", address);
	pthread_mutex_unlock(&tel_lock);
	rc = rte_telemetry_register_cmd("/dmta/stats", tel_stats,
					"Every dmtad counter, summed over workers. No parameters");
	if (rc == 0)
		rc = rte_telemetry_register_cmd("/dmta/worker", tel_worker,
						"One worker's counters. Parameter: worker id");
	if (rc == 0)
		rc = rte_telemetry_register_cmd("/dmta/info", tel_info,
						"dmtad version, port and address. No parameters");
	return rc;
}

void dmta_telemetry_fini(void)
{
	pthread_mutex_lock(&tel_lock);
	tel_workers = NULL;
	tel_nb_workers = 0;
	pthread_mutex_unlock(&tel_lock);
}
