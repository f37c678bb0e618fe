/*
 * spool_v1.h - a spool in format 1, written as the programs of that format
 *	wrote it, for the tests that open old spools.
 *
 * SYNOPSIS
 *	spool_v1_write(dir, envs, msgs, n);
 *
 * DESCRIPTION
 *	Creates the LMDB environment in @p dir (an existing, empty directory)
 *	with format 1's databases (queue/FORMAT.md, "Format 1"): meta (format
 *	1, next_id), msg, env, the index by next attempt time (sched) and the
 *	index by domain (dom), and stores the @p n messages: envs[i] gets
 *	queue id i + 1, its size, and its arrival and next attempt times when
 *	zero (1). Fails the test on any error.
 */
#ifndef TESTS_UNIT_QUEUE_SPOOL_V1_H
#define TESTS_UNIT_QUEUE_SPOOL_V1_H

#include "queue/queue_env.h"

void spool_v1_write(const char *dir, struct queue_env *envs, const char *const *msgs, int n);

#endif
