/*
 * dmta_telemetry.c - see dmta_telemetry.h.
 *
 * Callbacks run on DPDK's telemetry thread. A mutex (never taken by the
 * workers) keeps them away from the worker array while dmtad shuts down.
 */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <rte_telemetry.h>

#include "core/base/dmta_log.h"
#include "core/dataplane/dmta_telemetry.h"

static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dmta_worker *tel_workers;
static unsigned int tel_nb_workers;
static const struct dmta_port *tel_port;
static char tel_address[64];
static struct dmta_stats *tel_control; /* the control thread's last view */

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
	free(tel_control);
	tel_control = NULL;
	pthread_mutex_unlock(&tel_lock);
}

/*
 * Building /dmta/control: a dict per group (and per worker, "worker_N"),
 * when this DPDK takes a dict inside a dict; else flat keys
 * ("queue_messages", "worker_0_sessions"). Arrays of dicts are not to be
 * had in a dict, whatever the version.
 */
static bool tel_nested;

struct tel_walk {
	struct rte_tel_data *top, *grp;
	const char *prefix; /* the group (or worker) being built */
};

static void tel_walk_flush(struct tel_walk *tw)
{
	if (tw->grp != NULL &&
	    rte_tel_data_add_dict_container(tw->top, tw->prefix, tw->grp, 0) != 0)
		rte_tel_data_free(tw->grp);
	tw->grp = NULL;
}

static void tel_walk_one(void *arg, const char *group, const char *key, bool is_double, uint64_t u,
			 double x)
{
	struct tel_walk *tw = arg;
	struct rte_tel_data *d = tw->top;
	char num[32], name[RTE_TEL_MAX_STRING_LEN];

	if (group != NULL && tel_nested) {
		if (tw->grp == NULL || strcmp(group, tw->prefix) != 0) {
			tel_walk_flush(tw);
			tw->prefix = group;
			tw->grp = rte_tel_data_alloc();
			if (tw->grp == NULL)
				return;
			rte_tel_data_start_dict(tw->grp);
		}
		d = tw->grp;
	}
	if (group != NULL && !tel_nested)
		snprintf(name, sizeof(name), "%s_%s", group, key);
	else
		snprintf(name, sizeof(name), "%s", key);
	if (is_double) {
		/* Telemetry has no floating point type: rates go as text. */
		snprintf(num, sizeof(num), "%.3f", x);
		rte_tel_data_add_dict_string(d, name, num);
	} else if (u != DMTA_STATS_NA) { /* not applicable: left out */
		rte_tel_data_add_dict_u64(d, name, u);
	}
}

struct tel_group {
	struct tel_walk *tw;
	const char *name;
};

static void tel_walk_group(void *arg, const char *group, const char *key, bool is_double,
			   uint64_t u, double x)
{
	struct tel_group *g = arg;

	tel_walk_one(g->tw, g->name, key, is_double, u, x);
}

static int tel_control_cmd(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct tel_walk tw = {.top = d};

	pthread_mutex_lock(&tel_lock);
	if (tel_control == NULL) {
		pthread_mutex_unlock(&tel_lock);
		return -EAGAIN;
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "backend", tel_control->backend);
	dmta_stats_walk(tel_control, tel_walk_one, &tw);
	tel_walk_flush(&tw);
	rte_tel_data_add_dict_u64(d, "workers", tel_control->nworkers);
	for (unsigned i = 0; i < tel_control->nworkers; i++) {
		char wname[32];

		snprintf(wname, sizeof(wname), "worker_%u", i);
		/* A worker's counters are a group of their own. */
		tw = (struct tel_walk){.top = d};
		dmta_stats_walk_worker(&tel_control->workers[i], tel_walk_group,
				       &(struct tel_group){&tw, wname});
		tel_walk_flush(&tw);
	}
	pthread_mutex_unlock(&tel_lock);
	return 0;
}

int dmta_telemetry_control_init(void)
{
	struct rte_tel_data *a = rte_tel_data_alloc(), *b = rte_tel_data_alloc();

	/* Does this DPDK take a dict inside a dict? */
	if (a != NULL && b != NULL) {
		rte_tel_data_start_dict(a);
		rte_tel_data_start_dict(b);
		tel_nested = rte_tel_data_add_dict_container(a, "probe", b, 1) == 0;
	}
	rte_tel_data_free(a);
	rte_tel_data_free(b);
	return rte_telemetry_register_cmd(
	    "/dmta/control", tel_control_cmd,
	    "The control thread's view: queue, jobs, delivery counters and rate, DNS cache, "
	    "sessions per worker. No parameters");
}

void dmta_telemetry_control_publish(const struct dmta_stats *s)
{
	struct dmta_stats *copy = malloc(sizeof(*copy));

	/* Copied outside the lock; the lock is held for a pointer swap. */
	if (copy == NULL)
		return;
	*copy = *s;
	pthread_mutex_lock(&tel_lock);
	free(tel_control);
	tel_control = copy;
	pthread_mutex_unlock(&tel_lock);
}
