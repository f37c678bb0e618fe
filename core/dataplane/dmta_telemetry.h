/*
 * dmta_telemetry.h - dmtad's counters over DPDK telemetry.
 *
 * Commands (dpdk-telemetry.py -f PREFIX, or any client of the v2 socket):
 *	/dmta/info           version, workers, port, address
 *	/dmta/stats          every counter, summed over workers
 *	/dmta/worker,ID      one worker's counters
 *	/dmta/control        the control thread's view: queue, jobs, delivery
 *	                     counters and rate, DNS cache, sessions per worker
 *	                     (dmta_stats.h; as of the last stats interval)
 *
 * The worker array must outlive the registration (it lives until exit).
 */
#ifndef DMTA_TELEMETRY_H
#define DMTA_TELEMETRY_H

#include "core/control/dmta_stats.h"
#include "core/dataplane/dmta_worker.h"

/** Register the commands; 0 or -errno. */
int dmta_telemetry_init(struct dmta_worker *workers, unsigned int nb_workers,
			const struct dmta_port *port, const char *address);

/** Register /dmta/control (it answers -EAGAIN until the first publish). 0 or -errno. */
int dmta_telemetry_control_init(void);

/** The control thread's latest view for /dmta/control (copied; never on a worker). */
void dmta_telemetry_control_publish(const struct dmta_stats *s);

/** Make the commands answer "stopping" from now on (before workers are freed). */
void dmta_telemetry_fini(void);

#endif
