/*
 * dmta_dataplane.h - bring up the data plane from dmta.conf: EAL, the
 * port, one worker (netif + TCP stack) per configured worker lcore.
 *
 * SYNOPSIS
 *	struct dmta_dataplane dp = {0};
 *	rc = dmta_dataplane_open(&dp, conf, argv[0], err, sizeof(err));
 *	dmta_worker_set_app(&dp.workers[k], &app);       (optional)
 *	rc = dmta_dataplane_launch(&dp, err, sizeof(err));
 *	... the main lcore does its own work ...
 *	dmta_dataplane_stop(&dp);      (workers return)
 *	dmta_dataplane_close(&dp);     (port closed, EAL cleaned up)
 *
 * DESCRIPTION
 *	Reads [workers] (count, idle_sleep_us), [net] (address, gateway,
 *	arp_*), [eal] args (default "-l 0-COUNT"), [tcp] (through
 *	dmta_worker_tcp_conf()) and [port] (through dmta_port_open()). The
 *	optional tune hook may change each worker's stack settings before
 *	the stack is made (dmta-nc overrides timeouts from its command line).
 *	The optional sources are more addresses of the data plane's own
 *	beside [net] address (egress sources, [source NAME] in dmtad): every
 *	worker answers ARP for them and may open connections from them
 *	(tcp_connect_from()); steering is unchanged, by local port. They are
 *	set once, before the workers run: a reload does not change them.
 *	Workers run on the EAL worker lcores in order; the caller keeps the
 *	main lcore. dmtad and dmta-nc both start their data plane here.
 *	With several workers, replies reach the worker that owns their
 *	connection as dmta_steer.h describes (RSS, else software dispatch).
 *
 * DIAGNOSTICS
 *	0, or -errno with one line in err naming what to change.
 *	dmta_dataplane_stop() and dmta_dataplane_close() are safe on a
 *	half-opened data plane.
 */
#ifndef DMTA_DATAPLANE_H
#define DMTA_DATAPLANE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/dmta_conf.h"
#include "core/dataplane/dmta_port.h"
#include "core/dataplane/dmta_steer.h"
#include "core/dataplane/dmta_worker.h"
#include "tcp/tcp_netif.h"
#include "tcp/tcp_stack.h"

#define DMTA_EAL_MAX_ARGS 64

struct dmta_dataplane {
	/* Set by the caller before dmta_dataplane_open() (optional). */
	void (*tune)(void *arg, unsigned int worker, struct tcp_stack_conf *sc);
	void *tune_arg;
	const struct in_addr *sources; /* nb_sources more addresses; 0.0.0.0 ones are skipped */
	unsigned int nb_sources;

	/* Filled in by dmta_dataplane_open(). */
	const struct dmta_conf *conf;
	const char *eal_args, *net_address, *net_gateway; /* as written; NULL: unset */
	char *eal_buf;
	char *eal_argv[DMTA_EAL_MAX_ARGS + 1];
	int eal_argc;
	bool eal_up;
	bool launched; /* workers run: from launch until dmta_dataplane_stop() */
	unsigned int nb_workers;
	uint32_t idle_sleep_us;
	struct tcp_netif_conf netconf;
	char address[64];
	struct dmta_port port;
	struct dmta_steer steer;
	struct dmta_worker *workers;
	unsigned int workers_ready;
};

/** The [eal], [net] and [workers] keys. */
extern const struct dmta_conf_section dmta_eal_conf_section;
extern const struct dmta_conf_section dmta_net_conf_section;
extern const struct dmta_conf_section dmta_workers_conf_section;

/** "198.18.0.2/24" into an address (network order) and prefix length; 0 or -EINVAL. */
int dmta_parse_cidr(const char *s, uint32_t *addr, uint8_t *plen);

/** Configuration, EAL, port and workers (not launched). 0 or -errno with err. */
int dmta_dataplane_open(struct dmta_dataplane *dp, const struct dmta_conf *conf, const char *argv0,
			char *err, size_t errlen);

/** Start every worker on its lcore. 0 or -errno with err (workers already started are stopped). */
int dmta_dataplane_launch(struct dmta_dataplane *dp, char *err, size_t errlen);

/** Ask the workers to return and wait for them. */
void dmta_dataplane_stop(struct dmta_dataplane *dp);

/** Free the workers, close the port, clean up EAL. Call after dmta_dataplane_stop(). */
void dmta_dataplane_close(struct dmta_dataplane *dp);

#endif
