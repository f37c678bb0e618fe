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
static int port_find(const struct dmta_conf *conf, uint16_t *port_id, char *err, size_t errlen)
{
	const char *name = dmta_conf_get(conf, "port", "device");
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
static int port_queues(const struct dmta_conf *conf, const struct rte_eth_dev_info *info,
		       unsigned int nb_workers, struct dmta_port *port, char *err, size_t errlen)
{
	const char *mode = dmta_conf_get(conf, "port", "steering");
	bool can_rss = nb_workers > 1 && info->max_rx_queues >= nb_workers &&
		       (info->flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV4_TCP) != 0 &&
		       info->reta_size >= nb_workers && info->hash_key_size >= 16;

	if (mode == NULL)
		mode = "auto";
	if (strcmp(mode, "auto") != 0 && strcmp(mode, "rss") != 0 &&
	    strcmp(mode, "software") != 0) {
		snprintf(err, errlen, "%s: [port] steering = %s: expected auto, rss or software",
			 dmta_conf_source(conf), mode);
		return -EINVAL;
	}
	if (info->max_tx_queues < nb_workers) {
		snprintf(err, errlen,
			 "port %s has %u TX queues but [workers] count = %u needs one per worker "
			 "(lower the count, or give the device more queues)",
			 port->name, info->max_tx_queues, nb_workers);
		return -EINVAL;
	}
	if (strcmp(mode, "rss") == 0 && nb_workers > 1 && !can_rss) {
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
	port->rss = can_rss && strcmp(mode, "software") != 0;
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

int dmta_port_open(const struct dmta_conf *conf, unsigned int nb_workers, struct dmta_port *port,
		   char *err, size_t errlen)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf econf;
	uint64_t rx_desc, tx_desc, mbufs, mtu;
	uint16_t nrx, ntx;
	int rc;

	memset(port, 0, sizeof(*port));
	if (dmta_conf_u64(conf, "port", "rx_desc", 1024, 64, 16384, &rx_desc) != 0 ||
	    dmta_conf_u64(conf, "port", "tx_desc", 1024, 64, 16384, &tx_desc) != 0 ||
	    dmta_conf_u64(conf, "port", "mbufs", 16383, 1023, 4194303, &mbufs) != 0 ||
	    dmta_conf_u64(conf, "port", "mtu", 1500, 576, 9000, &mtu) != 0) {
		snprintf(err, errlen, "bad [port] settings in %s", dmta_conf_source(conf));
		return -EINVAL;
	}
	if (nb_workers == 0 || nb_workers > DMTA_MAX_WORKERS) {
		snprintf(err, errlen, "[workers] count must be 1..%d", DMTA_MAX_WORKERS);
		return -EINVAL;
	}
	rc = port_find(conf, &port->port_id, err, errlen);
	if (rc != 0)
		return rc;
	rte_eth_dev_get_name_by_port(port->port_id, port->name);
	rc = rte_eth_dev_info_get(port->port_id, &info);
	if (rc != 0) {
		snprintf(err, errlen, "port %s: cannot read device info: %s", port->name,
			 rte_strerror(-rc));
		return rc;
	}
	rc = port_queues(conf, &info, nb_workers, port, err, errlen);
	if (rc != 0)
		return rc;
	port->socket_id = rte_eth_dev_socket_id(port->port_id);
	if (port->socket_id < 0)
		port->socket_id = 0;

	for (unsigned int k = 0; k < nb_workers; k++) {
		char pname[RTE_MEMPOOL_NAMESIZE];

		snprintf(pname, sizeof(pname), "dmta_mbuf_%u", k);
		port->pool[k] = rte_pktmbuf_pool_create(pname, (unsigned int)mbufs, 256, 0,
							RTE_MBUF_DEFAULT_BUF_SIZE, port->socket_id);
		if (port->pool[k] == NULL) {
			snprintf(err, errlen,
				 "cannot create mbuf pool of %llu mbufs: %s (fewer [port] mbufs, "
				 "or more hugepages)",
				 (unsigned long long)mbufs, rte_strerror(rte_errno));
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
	nrx = (uint16_t)rx_desc;
	ntx = (uint16_t)tx_desc;
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
	if (rte_eth_dev_set_mtu(port->port_id, (uint16_t)mtu) != 0) {
		uint16_t cur = 1500;

		rte_eth_dev_get_mtu(port->port_id, &cur);
		if (cur != mtu)
			dmta_warn("port %s: cannot set MTU %llu, using %u", port->name,
				  (unsigned long long)mtu, cur);
		mtu = cur;
	}
	port->mtu = (uint16_t)mtu;
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
