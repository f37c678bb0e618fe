/*
 * dmta_dataplane.c - see dmta_dataplane.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "core/base/dmta_log.h"
#include "core/dataplane/dmta_dataplane.h"

int dmta_parse_cidr(const char *s, uint32_t *addr, uint8_t *plen)
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

#define DP(m) DMTA_CONF_AT(struct dmta_dataplane, m)
static const struct dmta_conf_key eal_keys[] = {
    {.name = "args",
     .type = DMTA_CONF_STR,
     .example = "-l 0-1",
     DP(eal_args),
     .help = "DPDK EAL arguments, split on white space. Default: -l 0-N for N workers.\n"
	     "A NIC bound to vfio-pci:   args = -l 0-2 -a 0000:3b:00.0\n"
	     "The lab (tools/lab conf):  args = -l 0-1 --no-pci --vdev "
	     "net_af_packet0,iface=dmta0"},
};

const struct dmta_conf_section dmta_eal_conf_section = {
    .name = "eal",
    .keys = eal_keys,
    .nkeys = DMTA_CONF_NKEYS(eal_keys),
};

static const struct dmta_conf_key net_keys[] = {
    {.name = "address",
     .type = DMTA_CONF_STR,
     .example = "198.18.0.2/24",
     DP(net_address),
     .help = "The data plane's own address (required with backend = dpdk) and gateway."},
    {.name = "gateway", .type = DMTA_CONF_STR, .example = "198.18.0.1", DP(net_gateway)},
    {.name = "arp_timeout_ms",
     .type = DMTA_CONF_U64,
     .def = "300000",
     .min = 1000,
     .max = 86400000,
     DP(netconf.arp_timeout_ms)},
    {.name = "arp_retry_ms",
     .type = DMTA_CONF_U64,
     .def = "1000",
     .min = 10,
     .max = 60000,
     DP(netconf.arp_retry_ms)},
    {.name = "arp_max_retries",
     .type = DMTA_CONF_U64,
     .def = "3",
     .min = 1,
     .max = 100,
     DP(netconf.arp_max_retries)},
    {.name = "arp_pending_max",
     .type = DMTA_CONF_U64,
     .def = "64",
     .min = 1,
     .max = 4096,
     DP(netconf.arp_pending_max)},
};

const struct dmta_conf_section dmta_net_conf_section = {
    .name = "net",
    .keys = net_keys,
    .nkeys = DMTA_CONF_NKEYS(net_keys),
};

static const struct dmta_conf_key workers_keys[] = {
    {.name = "count",
     .type = DMTA_CONF_U64,
     .def = "1",
     .min = 1,
     .max = DMTA_MAX_WORKERS,
     DP(nb_workers),
     .help = "Worker lcores, each with its own TCP stack, TX queue and RX queue (when the\n"
	     "port has enough); [eal] must give count+1 lcores."},
    {.name = "idle_sleep_us",
     .type = DMTA_CONF_U64,
     .def = "0",
     .max = 100000,
     DP(idle_sleep_us),
     .help = "0: poll without pause (dedicated cores); N: sleep N us when idle (shared "
	     "cores)"},
};

const struct dmta_conf_section dmta_workers_conf_section = {
    .name = "workers",
    .keys = workers_keys,
    .nkeys = DMTA_CONF_NKEYS(workers_keys),
};

static int read_config(struct dmta_dataplane *dp, char *err, size_t errlen)
{
	const struct dmta_conf *conf = dp->conf;
	const char *s;
	struct in_addr gw;

	dp->eal_args = dp->net_address = dp->net_gateway = NULL;
	if ((dmta_conf_read(conf, &dmta_eal_conf_section, dp) |
	     dmta_conf_read(conf, &dmta_net_conf_section, dp) |
	     dmta_conf_read(conf, &dmta_workers_conf_section, dp)) != 0) {
		snprintf(err, errlen, "%s", dmta_conf_last_error());
		return -EINVAL;
	}
	s = dp->net_address;
	if (s == NULL) {
		snprintf(err, errlen, "%s: [net] address is required (e.g. 198.18.0.2/24)",
			 dmta_conf_source(conf));
		return -EINVAL;
	}
	if (dmta_parse_cidr(s, &dp->netconf.ip, &dp->netconf.prefix_len) != 0) {
		snprintf(err, errlen, "%s: [net] address = %s: expected ADDRESS/PREFIX",
			 dmta_conf_source(conf), s);
		return -EINVAL;
	}
	snprintf(dp->address, sizeof(dp->address), "%s", s);
	s = dp->net_gateway;
	dp->netconf.gateway = 0;
	if (s != NULL) {
		if (inet_pton(AF_INET, s, &gw) != 1) {
			snprintf(err, errlen, "%s: [net] gateway = %s: not an IPv4 address",
				 dmta_conf_source(conf), s);
			return -EINVAL;
		}
		dp->netconf.gateway = gw.s_addr;
	}
	return 0;
}

/* [eal] args, split on white space, after argv[0]. */
static int build_eal_args(struct dmta_dataplane *dp, const char *argv0, char *err, size_t errlen)
{
	const char *args = dp->eal_args;
	char defaults[64];
	char *tok, *save;

	if (args == NULL) {
		snprintf(defaults, sizeof(defaults), "-l 0-%u", dp->nb_workers);
		args = defaults;
	}
	dp->eal_buf = strdup(args);
	if (dp->eal_buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	dp->eal_argv[dp->eal_argc++] = (char *)argv0;
	for (tok = strtok_r(dp->eal_buf, " \t", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (dp->eal_argc == DMTA_EAL_MAX_ARGS) {
			snprintf(err, errlen, "[eal] args: more than %d arguments",
				 DMTA_EAL_MAX_ARGS - 1);
			return -E2BIG;
		}
		dp->eal_argv[dp->eal_argc++] = tok;
	}
	dp->eal_argv[dp->eal_argc] = NULL;
	return 0;
}

/* The egress sources on worker @p w's netif: each answered for in ARP. */
static int add_sources(struct dmta_dataplane *dp, struct dmta_worker *w, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < dp->nb_sources; i++) {
		char a[INET_ADDRSTRLEN];
		int rc;

		if (dp->sources[i].s_addr == 0)
			continue; /* the implicit source: [net] address itself */
		rc = tcp_netif_add_ip(w->nif, dp->sources[i].s_addr);
		if (rc == 0)
			continue;
		inet_ntop(AF_INET, &dp->sources[i], a, sizeof(a));
		if (rc == -ENOSPC)
			snprintf(err, errlen, "source address %s: more than %d source addresses", a,
				 TCP_NETIF_ADDR_MAX);
		else
			snprintf(err, errlen,
				 "source address %s: not usable on the data plane (a network, "
				 "broadcast or multicast address, or the gateway)",
				 a);
		return rc;
	}
	return 0;
}

int dmta_dataplane_open(struct dmta_dataplane *dp, const struct dmta_conf *conf, const char *argv0,
			char *err, size_t errlen)
{
	unsigned int k;
	int rc;

	dp->conf = conf;
	rc = read_config(dp, err, errlen);
	if (rc == 0)
		rc = build_eal_args(dp, argv0, err, errlen);
	if (rc != 0)
		return rc;
	if (rte_eal_init(dp->eal_argc, dp->eal_argv) < 0) {
		/* EAL says why on its own lines; rte_errno is often left at 0. */
		snprintf(err, errlen,
			 "DPDK initialisation failed%s%s (see the EAL lines above; check [eal] "
			 "args in %s)",
			 rte_errno ? ": " : "", rte_errno ? rte_strerror(rte_errno) : "",
			 dmta_conf_source(conf));
		return -EINVAL;
	}
	dp->eal_up = true;
	if (rte_lcore_count() < dp->nb_workers + 1) {
		snprintf(err, errlen,
			 "[eal] args give %u lcores, but %u workers need %u (one for the "
			 "control thread, one per worker)",
			 rte_lcore_count(), dp->nb_workers, dp->nb_workers + 1);
		return -EINVAL;
	}
	rc = dmta_port_open(conf, dp->nb_workers, &dp->port, err, errlen);
	if (rc != 0)
		return rc;
	dp->netconf.mac = dp->port.mac;
	dp->netconf.mtu = dp->port.mtu;
	dp->netconf.tsc_hz = rte_get_tsc_hz();
	dp->workers =
	    rte_zmalloc("dmta_workers", sizeof(*dp->workers) * dp->nb_workers, RTE_CACHE_LINE_SIZE);
	if (dp->workers == NULL) {
		snprintf(err, errlen, "out of memory for workers");
		return -ENOMEM;
	}
	for (k = 0; k < dp->nb_workers; k++) {
		struct tcp_stack_conf sc;

		if (dmta_worker_tcp_conf(conf, k, dp->nb_workers, &sc) != 0) {
			snprintf(err, errlen, "invalid [tcp] settings in %s",
				 dmta_conf_source(conf));
			return -EINVAL;
		}
		if (k == 0) {
			/* Owners by local port: the slices dmta_worker_tcp_conf() cut. */
			dmta_steer_init(&dp->steer, dp->nb_workers, sc.port_lo,
					(uint16_t)(sc.port_hi - sc.port_lo + 1));
			if (dp->port.rss)
				dmta_steer_set_rss(&dp->steer, dp->port.rss_key,
						   dp->port.rss_key_len, dp->port.reta_size,
						   dp->port.nb_rxq);
		}
		if (dp->nb_workers > 1) {
			sc.port_ok = dmta_worker_port_ok;
			sc.port_ok_arg = &dp->workers[k];
		}
		if (dp->tune != NULL)
			dp->tune(dp->tune_arg, k, &sc);
		rc = dmta_worker_init(&dp->workers[k], k, &dp->port, &dp->netconf, &sc,
				      dp->idle_sleep_us, dp->nb_workers > 1 ? &dp->steer : NULL,
				      dp->workers);
		if (rc != 0) {
			snprintf(err, errlen, "worker %u: network stack setup failed: %s", k,
				 strerror(-rc));
			return rc;
		}
		dp->workers_ready++;
		rc = add_sources(dp, &dp->workers[k], err, errlen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int dmta_dataplane_launch(struct dmta_dataplane *dp, char *err, size_t errlen)
{
	unsigned int lcore, k = 0;
	int rc;

	RTE_LCORE_FOREACH_WORKER(lcore)
	{
		if (k == dp->nb_workers)
			break;
		rc = rte_eal_remote_launch(dmta_worker_main, &dp->workers[k], lcore);
		if (rc != 0) {
			snprintf(err, errlen, "cannot launch worker %u on lcore %u: %s", k, lcore,
				 strerror(-rc));
			dmta_dataplane_stop(dp);
			return rc;
		}
		dp->launched = true;
		k++;
	}
	if (rte_lcore_count() > dp->nb_workers + 1)
		dmta_warn("%u lcores given, %u used: the others stay idle", rte_lcore_count(),
			  dp->nb_workers + 1);
	return 0;
}

void dmta_dataplane_stop(struct dmta_dataplane *dp)
{
	dmta_workers_stop();
	if (dp->eal_up)
		rte_eal_mp_wait_lcore();
	dp->launched = false;
}

void dmta_dataplane_close(struct dmta_dataplane *dp)
{
	for (unsigned int k = 0; k < dp->workers_ready; k++)
		dmta_worker_fini(&dp->workers[k]);
	dp->workers_ready = 0;
	rte_free(dp->workers);
	dp->workers = NULL;
	if (dp->eal_up) {
		dmta_port_close(&dp->port);
		rte_eal_cleanup();
		dp->eal_up = false;
	}
	free(dp->eal_buf);
	dp->eal_buf = NULL;
}
