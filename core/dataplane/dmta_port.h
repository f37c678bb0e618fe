/*
 * dmta_port.h - the DPDK port that the data plane owns.
 *
 * SYNOPSIS
 *	rc = dmta_port_open(conf, nb_workers, &port, err, sizeof(err));
 *	... workers use port.port_id, queue = worker index, port.pool[k] ...
 *	dmta_port_close(&port);
 *
 * DESCRIPTION
 *	Reads [port] from dmta.conf (device, rx_desc, tx_desc, mbufs, mtu,
 *	steering), finds the ethdev, checks that it has a TX queue per
 *	worker, creates one mbuf pool per worker (on the port's NUMA socket),
 *	sets up the RX side for flow steering (see dmta_steer.h) and starts
 *	the port:
 *	  steering = rss: one RX queue per worker, RSS on the TCP 4-tuple
 *	    with a random Toeplitz key and a redirection table of entry i ->
 *	    queue i % workers, so that workers can pick local ports whose
 *	    replies hash to them. Refused when the port cannot.
 *	  steering = software: as many RX queues as the port has, up to one
 *	    per worker, spread however the device spreads (or not at all);
 *	    workers dispatch frames to their owners.
 *	  steering = auto (default): rss when the port offers it, else software.
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
	uint16_t nb_txq; /* one per worker */
	uint16_t nb_rxq; /* queue k polled by worker k; workers beyond have none */
	bool rss;	 /* RX spread by our key and redirection table */
	uint8_t rss_key_len;
	uint16_t reta_size;
	uint8_t rss_key[64];
	uint16_t mtu;
	int socket_id;
	bool started;
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_ether_addr mac;
	struct rte_mempool *pool[DMTA_MAX_WORKERS]; /* pool[k] feeds queue k */
};

enum dmta_port_steering {
	DMTA_STEER_AUTO,
	DMTA_STEER_RSS,
	DMTA_STEER_SOFTWARE,
};

/** The [port] keys (see the table in dmta_port.c). */
struct dmta_port_conf {
	const char *device; /* NULL: the only port there is */
	uint16_t rx_desc, tx_desc, mtu;
	uint32_t mbufs;
	enum dmta_port_steering steering;
};

extern const struct dmta_conf_section dmta_port_conf_section;

int dmta_port_open(const struct dmta_conf *conf, unsigned int nb_workers, struct dmta_port *port,
		   char *err, size_t errlen);

/** Stop and close the port and free its pools. Safe on a half-opened port. */
void dmta_port_close(struct dmta_port *port);

#endif
