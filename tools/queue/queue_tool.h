/*
 * queue_tool.h - what the queue programs share: finding and opening the
 * spool from dmta.conf, sendmail exit codes, listing the queue.
 *
 * SYNOPSIS
 *	sp = queue_tool_open(cli_conf, readonly, &conf, &ex);
 *	ex = queue_tool_exit(err);
 *	queue_tool_list(sp, json, stdout);
 */
#ifndef QUEUE_TOOL_H
#define QUEUE_TOOL_H

#include <stdbool.h>
#include <stdio.h>

#include "queue/spool.h"

struct dmta_conf;

/* sysexits.h values, spelled out where they are used. */
#define EX_OK_		0
#define EX_USAGE_	64
#define EX_DATAERR_	65
#define EX_NOUSER_	67
#define EX_UNAVAILABLE_ 69
#define EX_SOFTWARE_	70
#define EX_CANTCREAT_	73
#define EX_TEMPFAIL_	75
#define EX_CONFIG_	78

/** The exit code for a spool error (-errno): 73 cannot create, else 75. */
int queue_tool_exit(int err);

/**
 * Load the configuration (@p cli_conf from -c/-C, else $DMTA_CONFIG, else
 * the default) and open the spool. On failure prints one line on stderr,
 * sets *@p ex and returns NULL.
 */
struct spool *queue_tool_open(const char *cli_conf, bool readonly, bool create,
			      struct dmta_conf **confp, int *ex);

/** List the queue like mailq (or as JSON). 0 or -errno. */
int queue_tool_list(struct spool *sp, bool json, FILE *out);

#endif
