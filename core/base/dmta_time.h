/*
 * dmta_time.h - clocks for the control plane.
 *
 * dmta_now_ns() is CLOCK_MONOTONIC (deadlines, intervals); dmta_wall_ns() is
 * CLOCK_REALTIME (timestamps in the spool and the logs). The data plane uses
 * the TSC (rte_rdtsc) instead and never calls these.
 */
#ifndef DMTA_TIME_H
#define DMTA_TIME_H

#include <stdint.h>
#include <time.h>

#define DMTA_NS_PER_MS 1000000ULL
#define DMTA_NS_PER_S  1000000000ULL

static inline uint64_t dmta_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * DMTA_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dmta_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * DMTA_NS_PER_S + (uint64_t)ts.tv_nsec;
}

#endif
