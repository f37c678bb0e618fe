/*
 * dmta_port.h - the DPDK port that the data plane owns.
 *
 * SYNOPSIS
 *	rc = dmta_port_open(conf, nb_workers, &port, err, sizeof(err));
 *	... workers use port.port_id, queue = worker index, port.pool[k] ...
 *	dmta_port_close(&port);
 *
 * DESCRIPTION
 *	Reads [port] from dmta.conf (device, rx_desc, tx_desc, mbufs, mtu),
 *	finds the ethdev, checks that it has one RX and one TX queue per
 *	worker, creates one mbuf pool per worker (on the port's NUMA socket),
 *	configures RSS when there is more than one queue, and starts the port.
 *
 * DIAGNOSTICS
 *	0, or -errno with one line in err that names what to change.
 */
#ifndef DMTA_PORT_H
#define DMTA_PORT_H

#include <stddef.h>
#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mempool.h>

#include "core/base/dmta_conf.h"

#define DMTA_MAX_WORKERS 64

struct dmta_port {
	uint16_t port_id;
	uint16_t nb_queues; /* one RX and one TX queue per worker */
	uint16_t mtu;
	int socket_id;
	bool started;
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_ether_addr mac;
	struct rte_mempool *pool[DMTA_MAX_WORKERS]; /* pool[k] feeds queue k */
};

int dmta_port_open(const struct dmta_conf *conf, unsigned int nb_workers, struct dmta_port *port,
		   char *err, size_t errlen);

/** Stop and close the port and free its pools. Safe on a half-opened port. */
void dmta_port_close(struct dmta_port *port);

#endif
