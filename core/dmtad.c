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
 *	opens the port, starts one worker per configured worker lcore and runs
 *	the control thread on the main lcore. The control thread never polls
 *	the NIC: it sleeps in epoll (today on signals only; the spool, DNS and
 *	the workers' doorbell join it as they come).
 *
 *	SIGINT or SIGTERM stop it cleanly: workers return, the port is stopped
 *	and closed, memory is freed, and it exits 0.
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
#include "core/dmta_control.h"
#include "core/dmta_dbackend.h"
#include "core/dmta_port.h"
#include "core/dmta_telemetry.h"
#include "core/dmta_worker.h"

#define EAL_MAX_ARGS 64

struct dmtad {
	struct dmta_conf *conf;
	char *eal_buf;
	char *eal_argv[EAL_MAX_ARGS + 1];
	int eal_argc;
	bool eal_up;
	unsigned int nb_workers;
	uint32_t idle_sleep_us;
	struct tcp_netif_conf netconf;
	char address[64];
	struct dmta_port port;
	struct dmta_worker *workers;
	unsigned int workers_ready;
	struct dmta_control *ctl;
};

static void usage(void)
{
	fprintf(stderr, "usage: dmtad [-c dmta.conf] [-v]\n");
}

/* "198.18.0.2/24" into address and prefix length. */
static int parse_cidr(const char *s, uint32_t *addr, uint8_t *plen)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	uint64_t len = 32;
	struct in_addr a;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	if (slash != NULL) {
		if (dmta_parse_u64(slash + 1, &len) != 0 || len < 1 || len > 32)
			return -EINVAL;
		memcpy(buf, s, (size_t)(slash - s));
		buf[slash - s] = '\0';
	} else {
		strcpy(buf, s);
	}
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -EINVAL;
	*addr = a.s_addr;
	*plen = (uint8_t)len;
	return 0;
}

static int read_config(struct dmtad *d, char *err, size_t errlen)
{
	const char *s;
	uint64_t v;
	struct in_addr gw;

	if (dmta_conf_u64(d->conf, "workers", "count", 1, 1, DMTA_MAX_WORKERS, &v) != 0)
		goto bad;
	d->nb_workers = (unsigned int)v;
	if (dmta_conf_u64(d->conf, "workers", "idle_sleep_us", 0, 0, 100000, &v) != 0)
		goto bad;
	d->idle_sleep_us = (uint32_t)v;

	s = dmta_conf_get(d->conf, "net", "address");
	if (s == NULL) {
		snprintf(err, errlen, "%s: [net] address is required (e.g. 198.18.0.2/24)",
			 dmta_conf_source(d->conf));
		return -EINVAL;
	}
	if (parse_cidr(s, &d->netconf.ip, &d->netconf.prefix_len) != 0) {
		snprintf(err, errlen, "%s: [net] address = %s: expected ADDRESS/PREFIX",
			 dmta_conf_source(d->conf), s);
		return -EINVAL;
	}
	snprintf(d->address, sizeof(d->address), "%s", s);
	s = dmta_conf_get(d->conf, "net", "gateway");
	d->netconf.gateway = 0;
	if (s != NULL) {
		if (inet_pton(AF_INET, s, &gw) != 1) {
			snprintf(err, errlen, "%s: [net] gateway = %s: not an IPv4 address",
				 dmta_conf_source(d->conf), s);
			return -EINVAL;
		}
		d->netconf.gateway = gw.s_addr;
	}
	if (dmta_conf_u64(d->conf, "net", "arp_timeout_ms", 300000, 1000, 86400000, &v) != 0)
		goto bad;
	d->netconf.arp_timeout_ms = (uint32_t)v;
	if (dmta_conf_u64(d->conf, "net", "arp_retry_ms", 1000, 10, 60000, &v) != 0)
		goto bad;
	d->netconf.arp_retry_ms = (uint32_t)v;
	if (dmta_conf_u64(d->conf, "net", "arp_max_retries", 3, 1, 100, &v) != 0)
		goto bad;
	d->netconf.arp_max_retries = (uint32_t)v;
	if (dmta_conf_u64(d->conf, "net", "arp_pending_max", 64, 1, 4096, &v) != 0)
		goto bad;
	d->netconf.arp_pending_max = (uint32_t)v;
	return 0;
bad:
	snprintf(err, errlen, "invalid settings in %s", dmta_conf_source(d->conf));
	return -EINVAL;
}

/* [eal] args, split on white space, after argv[0]. */
static int build_eal_args(struct dmtad *d, const char *argv0, char *err, size_t errlen)
{
	const char *args = dmta_conf_get(d->conf, "eal", "args");
	char defaults[64];
	char *tok, *save;

	if (args == NULL) {
		snprintf(defaults, sizeof(defaults), "-l 0-%u", d->nb_workers);
		args = defaults;
	}
	d->eal_buf = strdup(args);
	if (d->eal_buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->eal_argv[d->eal_argc++] = (char *)argv0;
	for (tok = strtok_r(d->eal_buf, " \t", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (d->eal_argc == EAL_MAX_ARGS) {
			snprintf(err, errlen, "[eal] args: more than %d arguments",
				 EAL_MAX_ARGS - 1);
			return -E2BIG;
		}
		d->eal_argv[d->eal_argc++] = tok;
	}
	d->eal_argv[d->eal_argc] = NULL;
	return 0;
}

static int start_data_plane(struct dmtad *d, char *err, size_t errlen)
{
	unsigned int lcore, k = 0;
	int rc;

	if (rte_lcore_count() < d->nb_workers + 1) {
		snprintf(err, errlen,
			 "[eal] args give %u lcores, but %u workers need %u (one for the "
			 "control thread, one per worker)",
			 rte_lcore_count(), d->nb_workers, d->nb_workers + 1);
		return -EINVAL;
	}
	rc = dmta_port_open(d->conf, d->nb_workers, &d->port, err, errlen);
	if (rc != 0)
		return rc;
	if (d->nb_workers > 1) {
		/* XXX Until local ports are chosen so that replies hash to the
		 * worker that opened the connection, a second worker would see
		 * segments of connections it does not know. */
		snprintf(err, errlen,
			 "[workers] count = %u: several workers on one port need flow steering, "
			 "which this version does not have yet; use count = 1",
			 d->nb_workers);
		return -ENOTSUP;
	}
	d->netconf.mac = d->port.mac;
	d->netconf.mtu = d->port.mtu;
	d->netconf.tsc_hz = rte_get_tsc_hz();
	d->workers =
	    rte_zmalloc("dmta_workers", sizeof(*d->workers) * d->nb_workers, RTE_CACHE_LINE_SIZE);
	if (d->workers == NULL) {
		snprintf(err, errlen, "out of memory for workers");
		return -ENOMEM;
	}
	for (k = 0; k < d->nb_workers; k++) {
		struct tcp_stack_conf sc;

		if (dmta_worker_tcp_conf(d->conf, k, d->nb_workers, &sc) != 0) {
			snprintf(err, errlen, "invalid [tcp] settings in %s",
				 dmta_conf_source(d->conf));
			return -EINVAL;
		}
		rc = dmta_worker_init(&d->workers[k], k, &d->port, &d->netconf, &sc,
				      d->idle_sleep_us);
		if (rc != 0) {
			snprintf(err, errlen, "worker %u: network stack setup failed: %s", k,
				 strerror(-rc));
			return rc;
		}
		d->workers_ready++;
	}
	rc = dmta_dbackend_attach(d->workers, d->nb_workers, d->conf, err, errlen);
	if (rc != 0)
		return rc;
	rc = dmta_telemetry_init(d->workers, d->nb_workers, &d->port, d->address);
	if (rc != 0)
		dmta_warn("telemetry unavailable: %s", strerror(-rc));
	k = 0;
	RTE_LCORE_FOREACH_WORKER(lcore)
	{
		if (k == d->nb_workers)
			break;
		rc = rte_eal_remote_launch(dmta_worker_main, &d->workers[k], lcore);
		if (rc != 0) {
			snprintf(err, errlen, "cannot launch worker %u on lcore %u: %s", k, lcore,
				 strerror(-rc));
			dmta_workers_stop();
			return rc;
		}
		k++;
	}
	if (rte_lcore_count() > d->nb_workers + 1)
		dmta_warn("%u lcores given, %u used: the others stay idle", rte_lcore_count(),
			  d->nb_workers + 1);
	return 0;
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
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		dmta_err("signalfd: %s", strerror(errno));
		return 1;
	}
	ctl = dmta_control_new(conf, NULL, 0, err, sizeof(err));
	if (ctl == NULL) {
		dmta_err("%s", err);
		close(sfd);
		return 1;
	}
	dmta_conf_warn_unused(conf, (const char *const[]){"delivery", "smtp", "control", "log",
							  "queue", "spool", NULL});
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
	/* The control thread first: it stops the workers and collects what
	 * they still hold, and writes the last results. */
	dmta_control_free(d->ctl);
	d->ctl = NULL;
	dmta_workers_stop();
	if (d->eal_up)
		rte_eal_mp_wait_lcore();
	dmta_telemetry_fini();
	for (unsigned int k = 0; k < d->workers_ready; k++)
		dmta_worker_fini(&d->workers[k]);
	rte_free(d->workers);
	d->workers = NULL;
	if (d->eal_up) {
		dmta_port_close(&d->port);
		rte_eal_cleanup();
		d->eal_up = false;
	}
	free(d->eal_buf);
	dmta_conf_free(d->conf);
}

int main(int argc, char **argv)
{
	struct dmtad d;
	const char *cpath = NULL, *backend;
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
	backend = dmta_conf_str(d.conf, "delivery", "backend", "dpdk");
	if (strcmp(backend, "kernel") == 0) {
		rc = run_kernel_backend(d.conf);
		dmta_conf_free(d.conf);
		return rc;
	}
	if (strcmp(backend, "dpdk") != 0) {
		dmta_err("%s: [delivery] backend = %s: expected dpdk or kernel",
			 dmta_conf_source(d.conf), backend);
		goto out;
	}
	if (read_config(&d, err, sizeof(err)) != 0 ||
	    build_eal_args(&d, argv[0], err, sizeof(err)) != 0) {
		dmta_err("%s", err);
		goto out;
	}

	/* Block the stop signals before EAL makes its threads, so that they
	 * all inherit the mask and only the control thread's signalfd sees
	 * them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		dmta_err("signalfd: %s", strerror(errno));
		goto out;
	}

	if (rte_eal_init(d.eal_argc, d.eal_argv) < 0) {
		/* EAL says why on its own lines; rte_errno is often left at 0. */
		dmta_err("DPDK initialisation failed%s%s (see the EAL lines above; check [eal] "
			 "args in %s)",
			 rte_errno ? ": " : "", rte_errno ? rte_strerror(rte_errno) : "",
			 dmta_conf_source(d.conf));
		close(sfd);
		goto out;
	}
	d.eal_up = true;
	if (start_data_plane(&d, err, sizeof(err)) != 0) {
		dmta_err("%s", err);
		close(sfd);
		goto out;
	}
	{
		char mac[RTE_ETHER_ADDR_FMT_SIZE];

		rte_ether_format_addr(mac, sizeof(mac), &d.port.mac);
		dmta_info("ready: port %s mac %s address %s mtu %u workers %u", d.port.name, mac,
			  d.address, d.port.mtu, d.nb_workers);
	}
	/* The control thread on the main lcore: spool, schedule, DNS, results. */
	d.ctl = dmta_control_new(d.conf, dmta_dbackend_new, d.nb_workers, err, sizeof(err));
	if (d.ctl == NULL) {
		dmta_err("%s", err);
		close(sfd);
		goto out;
	}
	dmta_conf_warn_unused(d.conf, (const char *const[]){"eal", "port", "net", "workers", "tcp",
							    "delivery", "smtp", "control", "log",
							    "queue", "spool", NULL});
	rc = dmta_control_run(d.ctl, sfd) == 0 ? 0 : 1;
	close(sfd);
out:
	teardown(&d);
	if (rc == 0)
		dmta_info("stopped");
	return rc;
}
