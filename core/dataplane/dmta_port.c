/*
 * dmta_port.c - see dmta_port.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_random.h>

#include "core/base/dmta_log.h"
#include "core/dataplane/dmta_port.h"

/* Pick the port: [port] device by name, else the only one there is. */
static int port_find(const char *name, uint16_t *port_id, char *err, size_t errlen)
{
	uint16_t nb = rte_eth_dev_count_avail();

	if (name != NULL) {
		if (rte_eth_dev_get_port_by_name(name, port_id) != 0) {
			snprintf(err, errlen,
				 "[port] device = %s: no such DPDK port (%u available; "
				 "a virtual device needs --vdev in [eal] args, a NIC must be "
				 "bound to vfio-pci)",
				 name, nb);
			return -ENODEV;
		}
		return 0;
	}
	if (nb == 0) {
		snprintf(err, errlen,
			 "no DPDK port found: add --vdev to [eal] args or bind a NIC to vfio-pci");
		return -ENODEV;
	}
	if (nb > 1) {
		snprintf(err, errlen, "%u DPDK ports found: choose one with [port] device = NAME",
			 nb);
		return -EINVAL;
	}
	RTE_ETH_FOREACH_DEV(*port_id)
	{
		return 0;
	}
	snprintf(err, errlen, "no DPDK port found");
	return -ENODEV;
}

/* How many queues, and whether RSS steers: [port] steering (see dmta_port.h). */
static int port_queues(enum dmta_port_steering mode, const struct rte_eth_dev_info *info,
		       unsigned int nb_workers, struct dmta_port *port, char *err, size_t errlen)
{
	bool can_rss = nb_workers > 1 && info->max_rx_queues >= nb_workers &&
		       (info->flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV4_TCP) != 0 &&
		       info->reta_size >= nb_workers && info->hash_key_size >= 16;

	if (info->max_tx_queues < nb_workers) {
		snprintf(err, errlen,
			 "port %s has %u TX queues but [workers] count = %u needs one per worker "
			 "(lower the count, or give the device more queues)",
			 port->name, info->max_tx_queues, nb_workers);
		return -EINVAL;
	}
	if (mode == DMTA_STEER_RSS && nb_workers > 1 && !can_rss) {
		snprintf(err, errlen,
			 "port %s cannot steer by RSS to %u workers (%u RX queues, RETA of %u, "
			 "TCP/IPv4 hashing %s): use [port] steering = software",
			 port->name, nb_workers, info->max_rx_queues, info->reta_size,
			 (info->flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV4_TCP)
			     ? "offered"
			     : "not offered");
		return -EINVAL;
	}
	port->nb_txq = (uint16_t)nb_workers;
	port->rss = can_rss && mode != DMTA_STEER_SOFTWARE;
	port->nb_rxq = (uint16_t)RTE_MIN(nb_workers, (unsigned int)info->max_rx_queues);
	if (port->nb_rxq == 0) {
		snprintf(err, errlen, "port %s has no RX queue", port->name);
		return -EINVAL;
	}
	if (port->rss) {
		/* A random key: an outsider cannot aim a flood at one worker. */
		port->rss_key_len = (uint8_t)RTE_MIN(info->hash_key_size, sizeof(port->rss_key));
		for (unsigned int i = 0; i < port->rss_key_len; i += 8) {
			uint64_t r = rte_rand();

			memcpy(port->rss_key + i, &r, RTE_MIN(8u, port->rss_key_len - i));
		}
		port->reta_size = info->reta_size;
	}
	return 0;
}

/* Redirection table entry i -> queue i % queues, the mapping dmta_steer
 * computes with. A device that refuses keeps its own table: replies may
 * then land on the wrong worker, which forwards them (slower, not wrong). */
static void port_reta(struct dmta_port *port)
{
	struct rte_eth_rss_reta_entry64 reta[RTE_ETH_RSS_RETA_SIZE_512 / RTE_ETH_RETA_GROUP_SIZE];
	uint16_t size = RTE_MIN(port->reta_size, (uint16_t)RTE_ETH_RSS_RETA_SIZE_512);
	int rc;

	memset(reta, 0, sizeof(reta));
	for (uint16_t i = 0; i < size; i++) {
		reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
		reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] =
		    (uint16_t)(i % port->nb_rxq);
	}
	rc = rte_eth_dev_rss_reta_update(port->port_id, reta, size);
	if (rc != 0)
		dmta_warn("port %s: cannot program the RSS redirection table (%s): replies that "
			  "hash elsewhere are forwarded between workers",
			  port->name, rte_strerror(-rc));
}

static const struct dmta_conf_enum steering[] = {{"auto", DMTA_STEER_AUTO},
						 {"rss", DMTA_STEER_RSS},
						 {"software", DMTA_STEER_SOFTWARE},
						 {NULL, 0}};

#define PORT(m) DMTA_CONF_AT(struct dmta_port_conf, m)
static const struct dmta_conf_key port_keys[] = {
    {.name = "device",
     .type = DMTA_CONF_STR,
     .example = "net_af_packet0",
     PORT(device),
     .help = "Which DPDK port (by name); default: the only one there is."},
    {.name = "rx_desc",
     .type = DMTA_CONF_U64,
     .def = "1024",
     .min = 64,
     .max = 16384,
     PORT(rx_desc)},
    {.name = "tx_desc",
     .type = DMTA_CONF_U64,
     .def = "1024",
     .min = 64,
     .max = 16384,
     PORT(tx_desc)},
    {.name = "mbufs",
     .type = DMTA_CONF_U64,
     .def = "16383",
     .min = 1023,
     .max = 4194303,
     PORT(mbufs),
     .help = "mbufs per worker pool"},
    {.name = "mtu", .type = DMTA_CONF_U64, .def = "1500", .min = 576, .max = 9000, PORT(mtu)},
    {.name = "steering",
     .type = DMTA_CONF_ENUM,
     .def = "auto",
     .values = steering,
     PORT(steering),
     .help = "Several workers: how replies reach the worker that owns their connection.\n"
	     "  rss:      one RX queue per worker, RSS on the TCP 4-tuple with a random\n"
	     "            key; workers pick local ports whose replies hash to them\n"
	     "            (refused if the port cannot)\n"
	     "  software: the RX queues the port has (up to one per worker), frames\n"
	     "            forwarded to their owner over rings\n"
	     "  auto:     rss when the port offers it, else software"},
};

const struct dmta_conf_section dmta_port_conf_section = {
    .name = "port",
    .keys = port_keys,
    .nkeys = DMTA_CONF_NKEYS(port_keys),
};

int dmta_port_open(const struct dmta_conf *conf, unsigned int nb_workers, struct dmta_port *port,
		   char *err, size_t errlen)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf econf;
	struct dmta_port_conf pc = {0};
	uint16_t nrx, ntx;
	int rc;

	memset(port, 0, sizeof(*port));
	if (dmta_conf_read(conf, &dmta_port_conf_section, &pc) != 0) {
		snprintf(err, errlen, "bad [port] settings in %s", dmta_conf_source(conf));
		return -EINVAL;
	}
	if (nb_workers == 0 || nb_workers > DMTA_MAX_WORKERS) {
		snprintf(err, errlen, "[workers] count must be 1..%d", DMTA_MAX_WORKERS);
		return -EINVAL;
	}
	rc = port_find(pc.device, &port->port_id, err, errlen);
	if (rc != 0)
		return rc;
	rte_eth_dev_get_name_by_port(port->port_id, port->name);
	rc = rte_eth_dev_info_get(port->port_id, &info);
	if (rc != 0) {
		snprintf(err, errlen, "port %s: cannot read device info: %s", port->name,
			 rte_strerror(-rc));
		return rc;
	}
	rc = port_queues(pc.steering, &info, nb_workers, port, err, errlen);
	if (rc != 0)
		return rc;
	port->socket_id = rte_eth_dev_socket_id(port->port_id);
	if (port->socket_id < 0)
		port->socket_id = 0;

	for (unsigned int k = 0; k < nb_workers; k++) {
		char pname[RTE_MEMPOOL_NAMESIZE];

		snprintf(pname, sizeof(pname), "dmta_mbuf_%u", k);
		port->pool[k] = rte_pktmbuf_pool_create(pname, pc.mbufs, 256, 0,
							RTE_MBUF_DEFAULT_BUF_SIZE, port->socket_id);
		if (port->pool[k] == NULL) {
			snprintf(err, errlen,
				 "cannot create mbuf pool of %llu mbufs: %s (fewer [port] mbufs, "
				 "or more hugepages)",
				 (unsigned long long)pc.mbufs, rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}

	memset(&econf, 0, sizeof(econf));
	if (port->rss) {
		econf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		econf.rx_adv_conf.rss_conf.rss_hf = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
		econf.rx_adv_conf.rss_conf.rss_key = port->rss_key;
		econf.rx_adv_conf.rss_conf.rss_key_len = port->rss_key_len;
	}
	rc = rte_eth_dev_configure(port->port_id, port->nb_rxq, port->nb_txq, &econf);
	if (rc != 0) {
		snprintf(err, errlen, "port %s: configure failed: %s", port->name,
			 rte_strerror(-rc));
		return rc;
	}
	nrx = pc.rx_desc;
	ntx = pc.tx_desc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port->port_id, &nrx, &ntx);
	if (rc != 0) {
		snprintf(err, errlen, "port %s: descriptor counts refused: %s", port->name,
			 rte_strerror(-rc));
		return rc;
	}
	for (uint16_t q = 0; q < port->nb_txq; q++) {
		rc = 0;
		if (q < port->nb_rxq)
			rc = rte_eth_rx_queue_setup(port->port_id, q, nrx,
						    (unsigned int)port->socket_id, NULL,
						    port->pool[q]);
		if (rc == 0)
			rc = rte_eth_tx_queue_setup(port->port_id, q, ntx,
						    (unsigned int)port->socket_id, NULL);
		if (rc != 0) {
			snprintf(err, errlen, "port %s: queue %u setup failed: %s", port->name, q,
				 rte_strerror(-rc));
			return rc;
		}
	}
	/* Not every virtual device can change its MTU; keep what it has then. */
	if (rte_eth_dev_set_mtu(port->port_id, pc.mtu) != 0) {
		uint16_t cur = 1500;

		rte_eth_dev_get_mtu(port->port_id, &cur);
		if (cur != pc.mtu)
			dmta_warn("port %s: cannot set MTU %u, using %u", port->name, pc.mtu, cur);
		pc.mtu = cur;
	}
	port->mtu = pc.mtu;
	rc = rte_eth_macaddr_get(port->port_id, &port->mac);
	if (rc != 0) {
		snprintf(err, errlen, "port %s: no MAC address: %s", port->name, rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_start(port->port_id);
	if (rc != 0) {
		snprintf(err, errlen, "port %s: start failed: %s", port->name, rte_strerror(-rc));
		return rc;
	}
	port->started = true;
	if (port->rss)
		port_reta(port);
	return 0;
}

void dmta_port_close(struct dmta_port *port)
{
	if (port->name[0] != '\0') {
		if (port->started)
			rte_eth_dev_stop(port->port_id);
		rte_eth_dev_close(port->port_id);
		port->started = false;
		port->name[0] = '\0';
	}
	for (unsigned int k = 0; k < DMTA_MAX_WORKERS; k++) {
		rte_mempool_free(port->pool[k]);
		port->pool[k] = NULL;
	}
}
