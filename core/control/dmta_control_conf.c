/*
 * dmta_control_conf.c - see dmta_control_conf.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

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
     .help = "Towards MX hosts: opportunistic (STARTTLS when offered), none, required.\n"
	     "required insists on TLS but verifies no certificate (MX names are not\n"
	     "authenticated without DANE or MTA-STS)."},
    {.name = "allow_private_mx",
     .type = DMTA_CONF_BOOL,
     .def = "no",
     CC(private_mx),
     .help = "Exchangers from DNS (and address literals) on loopback, private, link-local\n"
	     "or other non-public addresses are skipped unless this is yes; [routes] and\n"
	     "[relay] hosts are always used."},
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
    {.name = "max_jobs",
     .type = DMTA_CONF_U64,
     .def = "10000",
     .min = 1,
     .max = 1000000,
     CC(max_jobs),
     .help = "At most this many delivery jobs out at once, and at most max_job_bytes\n"
	     "of their messages; beyond, jobs wait in the queue (back-pressure)."},
    {.name = "max_job_bytes",
     .type = DMTA_CONF_SIZE,
     .def = "512M",
     .min = 1ULL << 20,
     .max = 1ULL << 40,
     CC(max_job_bytes)},
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

#define SECRET_MAX 1024

/*
 * The relay password: a file of ours (or root's) that nobody else may read
 * or write, and that fits (a longer one is refused, not cut). Once it is
 * in memory the process may not dump core: a core file would carry it.
 */
char *dmta_control_conf_secret(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char buf[SECRET_MAX + 2], *s;
	struct stat st;
	ssize_t n;

	if (fd < 0) {
		snprintf(err, errlen, "[relay] password_file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IRWXO))) {
		snprintf(err, errlen,
			 "[relay] password_file %s: want a regular file owned by uid %u (or root) "
			 "that others cannot read and only its owner can write (mode 0600 or 0640)",
			 path, (unsigned)geteuid());
		close(fd);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || n > SECRET_MAX) {
		snprintf(err, errlen, "[relay] password_file %s: %s", path,
			 n < 0 ? strerror(errno) : "longer than 1024 bytes");
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (prctl(PR_SET_DUMPABLE, 0) != 0 ||
	    setrlimit(RLIMIT_CORE, &(struct rlimit){.rlim_cur = 0, .rlim_max = 0}) != 0)
		dmta_warn("cannot turn core dumps off (%s): one would hold the relay password",
			  strerror(errno));
	s = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return s;
}
