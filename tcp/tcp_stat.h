/*
 * tcp_stat.h - naming the counters of the tcp/ layers for telemetry.
 *
 * SYNOPSIS
 *	#include "tcp/tcp_stat.h"
 *
 *	const struct tcp_stat_name *t = tcp_netif_stat_names(&n);
 *	uint64_t v = TCP_STAT_GET(stats, &t[i]);
 *
 * DESCRIPTION
 *	Every counter block of tcp/ is a struct made only of uint64_t fields.
 *	A table of (name, offset) pairs lets core/ export each field to DPDK
 *	telemetry by name without knowing the struct, and lets new counters
 *	appear in telemetry without touching core/.
 */
#ifndef TCP_STAT_H
#define TCP_STAT_H

#include <stddef.h>
#include <stdint.h>

/** One counter: its telemetry name and its byte offset in the stats struct. */
struct tcp_stat_name {
	const char *name; /**< lower_case_with_underscores, stable across versions */
	size_t offset;	  /**< offsetof() the uint64_t field in its stats struct */
};

/** Read the counter described by @p sn out of the stats struct at @p stats. */
#define TCP_STAT_GET(stats, sn) (*(const uint64_t *)((const char *)(stats) + (sn)->offset))

#endif
