/*
 * dmta_control_conf.c - see dmta_control_conf.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_log.h"
#include "core/control/dmta_control_conf.h"
#include "queue/queue_sched.h"

struct delivery_keys {
	enum dmta_backend_kind backend;
};

static const struct dmta_conf_enum backends[] = {
    {"dpdk", DMTA_BACKEND_DPDK}, {"kernel", DMTA_BACKEND_KERNEL}, {NULL, 0}};

static const struct dmta_conf_key delivery_keys[] = {
    {.name = "backend",
     .type = DMTA_CONF_ENUM,
     .def = "dpdk",
     .values = backends,
     DMTA_CONF_AT(struct delivery_keys, backend),
     .help = "dpdk: SMTP over dmta's own TCP/IP stack on the DPDK port (the default).\n"
	     "kernel: the same engine over the kernel's sockets, no DPDK needed."},
};

const struct dmta_conf_section dmta_delivery_conf_section = {
    .name = "delivery",
    .keys = delivery_keys,
    .nkeys = DMTA_CONF_NKEYS(delivery_keys),
};

int dmta_delivery_backend(const struct dmta_conf *conf, enum dmta_backend_kind *backend)
{
	struct delivery_keys k;

	if (dmta_conf_read(conf, &dmta_delivery_conf_section, &k) != 0)
		return -EINVAL;
	*backend = k.backend;
	return 0;
}

#define CC(m) DMTA_CONF_AT(struct dmta_control_conf, m)

/* STARTTLS towards MX hosts; implicit TLS (465) is for relays only. */
static const struct dmta_conf_enum mx_tls[] = {{"opportunistic", SMTP_TLS_OPPORTUNISTIC},
					       {"none", SMTP_TLS_NONE},
					       {"required", SMTP_TLS_REQUIRED},
					       {NULL, 0}};

static const struct dmta_conf_key smtp_keys[] = {
    {.name = "tls",
     .type = DMTA_CONF_ENUM,
     .def = "opportunistic",
     .values = mx_tls,
     CC(mx_tls),
     .help = "Towards MX hosts: opportunistic (STARTTLS when offered), none, required"},
};

const struct dmta_conf_section dmta_control_smtp_conf_section = {
    .name = "smtp",
    .keys = smtp_keys,
    .nkeys = DMTA_CONF_NKEYS(smtp_keys),
};

static const struct dmta_conf_enum relay_tls[] = {{"required", SMTP_TLS_REQUIRED},
						  {"implicit", SMTP_TLS_IMPLICIT},
						  {"none", SMTP_TLS_NONE},
						  {NULL, 0}};

static const struct dmta_conf_key relay_keys[] = {
    {.name = "tls",
     .type = DMTA_CONF_ENUM,
     .def = "required",
     .values = relay_tls,
     CC(relay_tls),
     .help = "required (STARTTLS with a verified certificate), implicit (port 465), none"},
    {.name = "verify", .type = DMTA_CONF_BOOL, .def = "yes", CC(relay_verify)},
    {.name = "user", .type = DMTA_CONF_STR, .example = "account@example.org", CC(relay_user)},
    {.name = "password_file",
     .type = DMTA_CONF_STR,
     .example = "/etc/dmta/relay.secret",
     CC(relay_password_file)},
    {.name = "auth_plaintext",
     .type = DMTA_CONF_BOOL,
     .def = "no",
     CC(auth_plaintext),
     .help = "allow AUTH over an unencrypted connection (never, outside tests)"},
};

const struct dmta_conf_section dmta_control_relay_conf_section = {
    .name = "relay",
    .keys = relay_keys,
    .nkeys = DMTA_CONF_NKEYS(relay_keys),
};

static const struct dmta_conf_key log_keys[] = {
    {.name = "delivery",
     .type = DMTA_CONF_STR,
     .example = "/var/log/dmta/delivery.log",
     CC(dlog_path),
     .help = "One JSON line per recipient per attempt (default: SPOOL/delivery.log),\n"
	     "rotated by size into PATH.1 ... PATH.N."},
    {.name = "delivery_max_size", .type = DMTA_CONF_SIZE, .def = "100M", CC(dlog_max_size)},
    {.name = "delivery_keep", .type = DMTA_CONF_U64, .def = "5", .max = 100, CC(dlog_keep)},
};

const struct dmta_conf_section dmta_log_conf_section = {
    .name = "log",
    .keys = log_keys,
    .nkeys = DMTA_CONF_NKEYS(log_keys),
};

static const struct dmta_conf_key control_keys[] = {
    {.name = "stop_timeout",
     .type = DMTA_CONF_DURATION,
     .def = "10s",
     .max = DMTA_CONF_MIN(10),
     CC(stop_timeout_ms),
     .help = "On SIGTERM, jobs in flight get this long to finish."},
    {.name = "stats_interval",
     .type = DMTA_CONF_DURATION,
     .def = "1s",
     .max = DMTA_CONF_MIN(1),
     CC(stats_interval_ms),
     .help = "How often dmtad writes its live view (queue, jobs, delivery counters and\n"
	     "rate, DNS cache, sessions per worker) to SPOOL/dmtad.stats for\n"
	     "\"dmta-queue stats\" (and DPDK telemetry /dmta/control); 0: never.\n"
	     "250ms to 60s."},
};

const struct dmta_conf_section dmta_control_conf_section = {
    .name = "control",
    .keys = control_keys,
    .nkeys = DMTA_CONF_NKEYS(control_keys),
};

int dmta_control_conf_load(const struct dmta_conf *conf, struct dmta_control_conf *cc)
{
	int rc = 0;

	memset(cc, 0, sizeof(*cc));
	rc |= dmta_conf_read(conf, &dmta_control_smtp_conf_section, cc);
	rc |= dmta_conf_read(conf, &dmta_control_relay_conf_section, cc);
	rc |= dmta_conf_read(conf, &dmta_log_conf_section, cc);
	rc |= dmta_conf_read(conf, &dmta_control_conf_section, cc);
	if (cc->stats_interval_ms != 0 && cc->stats_interval_ms < 250) {
		dmta_err("%s: [control] stats_interval: expected 0 (off) or 250ms to 60s",
			 dmta_conf_source(conf));
		rc = -EINVAL;
	}
	return rc ? -EINVAL : 0;
}

char *dmta_control_conf_secret(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char buf[512];
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "[relay] password_file %s: %s", path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return strdup(buf);
}
