/*
 * dmta_control_conf.h - the control plane's keys: [delivery], its part of
 * [smtp] and [relay], [log] and [control].
 *
 * SYNOPSIS
 *	rc = dmta_delivery_backend(conf, &backend);
 *	rc = dmta_control_conf_load(conf, &cc);
 *
 * DESCRIPTION
 *	Declared once in tables (see core/base/dmta_conf.h) that also write
 *	tools/dmta.conf.sample. The session pool's keys ([smtp] helo_name,
 *	timeouts, CA files) are dmta_pool.h's; [relay] host is dns_conf.h's.
 *
 * DIAGNOSTICS
 *	0 or -EINVAL; each bad key is logged as "FILE: [section] key: reason".
 */
#ifndef DMTA_CONTROL_CONF_H
#define DMTA_CONTROL_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "core/base/dmta_conf.h"
#include "smtp/smtp_client.h"

enum dmta_backend_kind {
	DMTA_BACKEND_DPDK,   /* the userspace TCP/IP stack on a DPDK port */
	DMTA_BACKEND_KERNEL, /* the kernel's sockets */
};

struct dmta_control_conf {
	enum smtp_tls_policy mx_tls;	/* [smtp] tls */
	bool private_mx;		/* [smtp] allow_private_mx */
	enum smtp_tls_policy relay_tls; /* [relay] tls */
	bool relay_verify, auth_plaintext;
	const char *relay_user, *relay_password_file; /* NULL: no AUTH */
	const char *dlog_path;			      /* NULL: SPOOL/delivery.log */
	uint64_t dlog_max_size;
	uint32_t dlog_keep;
	uint64_t stop_timeout_ms;
	uint64_t stats_interval_ms; /* 0: never */
	uint64_t max_jobs, max_job_bytes;
};

extern const struct dmta_conf_section dmta_delivery_conf_section;
extern const struct dmta_conf_section dmta_control_smtp_conf_section;
extern const struct dmta_conf_section dmta_control_relay_conf_section;
extern const struct dmta_conf_section dmta_log_conf_section;
extern const struct dmta_conf_section dmta_control_conf_section;

/** [delivery] backend into *@p backend. 0 or -EINVAL. */
int dmta_delivery_backend(const struct dmta_conf *conf, enum dmta_backend_kind *backend);

/**
 * The relay's password: the first line of @p path (malloc'd; the caller
 * wipes and frees it), or NULL with one line in @p err.
 */
char *dmta_control_conf_secret(const char *path, char *err, size_t errlen);

/** Every key above into @p cc (strings point into @p conf). 0 or -EINVAL. */
int dmta_control_conf_load(const struct dmta_conf *conf, struct dmta_control_conf *cc);

#endif
