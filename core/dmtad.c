/*
 * dmtad.c - the dmta daemon.
 *
 * SYNOPSIS
 *	dmtad [-c dmta.conf] [-v]
 *
 * DESCRIPTION
 *	With [delivery] backend = kernel it delivers the queue over the
 *	kernel's sockets (the control thread alone, no DPDK): the development
 *	and baseline mode. Otherwise (backend = dpdk, the default):
 *
 *	Reads dmta.conf ([eal], [port], [net], [workers]), initialises DPDK,
 *	opens the port, gives each worker its session pool (the DPDK
 *	backend, dmta_dbackend.h) and the egress source addresses
 *	([source NAME] address, which each worker answers ARP for), starts one worker per configured
 *worker lcore and runs the control thread on the main lcore, bound to that backend. The control
 *thread never polls the NIC: it sleeps in epoll on the stop signals, the injectors' wake-ups, DNS
 *sockets, the workers' doorbell and its timers (dmta_control.h).
 *
 *	SIGHUP reloads dmta.conf: what can change while it runs is applied,
 *	the rest is named in one line and kept; a broken file is refused
 *	whole (dmta_control_reload()).
 *
 *	SIGINT or SIGTERM stop it cleanly, each step once and in one
 *	direction: the control thread drains (up to [control] stop_timeout),
 *	the workers return, the control thread takes back what they held and
 *	writes the last results, then the backend, the port and EAL go; it
 *	exits 0.
 *
 * DIAGNOSTICS
 *	A configuration or port problem is one "dmtad: fatal: ..." line and
 *	exit status 1; nothing is left running.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/control/dmta_control.h"
#include "core/control/dmta_control_conf.h"
#include "core/dataplane/dmta_dataplane.h"
#include "core/dataplane/dmta_dbackend.h"
#include "core/dataplane/dmta_port.h"
#include "core/dataplane/dmta_telemetry.h"
#include "core/dataplane/dmta_worker.h"
#include "queue/queue_egress.h"

struct dmtad {
	struct dmta_conf *conf;
	struct dmta_dataplane dp;
	struct dmta_dbackend *db;
	struct dmta_control *ctl;
};

static void usage(void)
{
	fprintf(stderr, "usage: dmtad [-c dmta.conf] [-v]\n");
}

/* The [source] addresses, for the workers to hold beside [net] address. */
static int egress_addrs(const struct dmta_conf *conf, struct in_addr **out, unsigned *n, char *err,
			size_t errlen)
{
	struct queue_egress *eg;
	int rc = queue_egress_load(conf, &eg, err, errlen);

	if (rc != 0)
		return rc;
	*n = queue_egress_nsources(eg);
	*out = calloc(*n ? *n : 1, sizeof(**out));
	if (*out == NULL) {
		queue_egress_free(eg);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < *n; i++)
		(*out)[i] = queue_egress_source_addr(eg, i);
	queue_egress_free(eg);
	return 0;
}

static int start_data_plane(struct dmtad *d, const char *argv0, char *err, size_t errlen)
{
	struct dmta_dataplane *dp = &d->dp;
	struct in_addr *src = NULL;
	int rc;

	rc = egress_addrs(d->conf, &src, &dp->nb_sources, err, errlen);
	if (rc != 0)
		return rc;
	dp->sources = src;
	rc = dmta_dataplane_open(dp, d->conf, argv0, err, errlen);
	dp->sources = NULL; /* the netifs have their own copies */
	dp->nb_sources = 0;
	free(src);
	if (rc != 0)
		return rc;
	/* Each worker runs SMTP sessions over its TCP stack. */
	d->db = dmta_dbackend_new(dp, d->conf, err, errlen);
	if (d->db == NULL)
		return -EINVAL;
	rc = dmta_telemetry_init(dp->workers, dp->nb_workers, &dp->port, dp->address);
	if (rc != 0)
		dmta_warn("telemetry unavailable: %s", strerror(-rc));
	return dmta_dataplane_launch(dp, err, errlen);
}

/* backend = kernel: the control thread alone, delivering over kernel sockets. */
static int run_kernel_backend(struct dmta_conf *conf)
{
	struct dmta_control *ctl;
	char err[512] = "";
	sigset_t sigs;
	int sfd, rc;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP); /* reload (dmta_control_reload()) */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		dmta_err("signalfd: %s", strerror(errno));
		return 1;
	}
	ctl = dmta_control_new(conf, NULL, NULL, 0, err, sizeof(err));
	if (ctl == NULL) {
		dmta_err("%s", err);
		close(sfd);
		return 1;
	}
	dmta_conf_warn_unused(conf, (const char *const[]){"delivery", "smtp", "control", "log",
							  "queue", "spool", "metrics", "events",
							  "listen", "rules", NULL});
	dmta_info("ready: backend kernel");
	rc = dmta_control_run(ctl, sfd);
	dmta_control_free(ctl);
	close(sfd);
	if (rc == 0)
		dmta_info("stopped");
	return rc == 0 ? 0 : 1;
}

static void teardown(struct dmtad *d)
{
	/* The workers return first: the jobs and sessions they hold can only
	 * be taken back once they have. Then the control thread settles those
	 * jobs through the backend and writes the last results. */
	dmta_dataplane_stop(&d->dp);
	dmta_control_free(d->ctl);
	d->ctl = NULL;
	dmta_telemetry_fini();
	dmta_dbackend_free(d->db);
	d->db = NULL;
	dmta_dataplane_close(&d->dp);
	dmta_conf_free(d->conf);
}

int main(int argc, char **argv)
{
	struct dmtad d;
	const char *cpath = NULL;
	enum dmta_backend_kind backend;
	char err[512] = "";
	sigset_t sigs;
	int opt, sfd, rc = 1;

	memset(&d, 0, sizeof(d));
	dmta_log_init(argv[0], DMTA_LOG_INFO);
	/* Writes to a peer that has gone are errors to handle, not a reason
	 * to die: every transport checks what it writes. */
	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt(argc, argv, "c:vh")) != -1) {
		switch (opt) {
		case 'c':
			cpath = optarg;
			break;
		case 'v':
			dmta_log_set_level(DMTA_LOG_DEBUG);
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 64;
		}
	}
	if (optind != argc) {
		usage();
		return 64;
	}
	d.conf = dmta_conf_load(dmta_conf_path(cpath), err, sizeof(err));
	if (d.conf == NULL) {
		dmta_err("%s", err);
		return 1;
	}
	if (dmta_delivery_backend(d.conf, &backend) != 0)
		goto out;
	if (backend == DMTA_BACKEND_KERNEL) {
		rc = run_kernel_backend(d.conf);
		dmta_conf_free(d.conf);
		return rc;
	}
	/* Block the stop signals before EAL makes its threads, so that they
	 * all inherit the mask and only the control thread's signalfd sees
	 * them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP); /* reload (dmta_control_reload()) */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		dmta_err("signalfd: %s", strerror(errno));
		goto out;
	}

	if (start_data_plane(&d, argv[0], err, sizeof(err)) != 0) {
		dmta_err("%s", err);
		close(sfd);
		goto out;
	}
	/* The control thread on the main lcore: spool, schedule, DNS, results. */
	d.ctl =
	    dmta_control_new(d.conf, dmta_dbackend_bind, d.db, d.dp.nb_workers, err, sizeof(err));
	if (d.ctl == NULL) {
		dmta_err("%s", err);
		close(sfd);
		goto out;
	}
	dmta_conf_warn_unused(d.conf, (const char *const[]){"eal", "port", "net", "workers", "tcp",
							    "delivery", "smtp", "control", "log",
							    "queue", "spool", "metrics", "events",
							    "listen", "rules", NULL});
	{
		char mac[RTE_ETHER_ADDR_FMT_SIZE];

		rte_ether_format_addr(mac, sizeof(mac), &d.dp.port.mac);
		dmta_info("ready: port %s mac %s address %s mtu %u workers %u", d.dp.port.name, mac,
			  d.dp.address, d.dp.port.mtu, d.dp.nb_workers);
	}
	rc = dmta_control_run(d.ctl, sfd) == 0 ? 0 : 1;
	close(sfd);
out:
	teardown(&d);
	if (rc == 0)
		dmta_info("stopped");
	return rc;
}
