/*
 * commit_latency - how long the daemon's result commits take, e.g. while
 * injectors write into the same spool.
 *
 * SYNOPSIS
 *	commit_latency SPOOL_DIR SECONDS
 *
 * DESCRIPTION
 *	Does what the control thread does once per loop turn, every 10 ms:
 *	begin a write transaction (waiting for the writer lock if an injector
 *	holds it), rewrite one envelope, commit with fsync. Prints
 *	"commits N p50_ms X p99_ms Y max_ms Z" for the time from begin to the
 *	end of the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "queue/spool.h"

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	char err[256];
	struct spool *sp;
	struct spool_txn *t;
	struct queue_env e = {0}, got, cp;
	uint64_t end, qid, *lat;
	size_t n = 0, cap = 100000;

	if (argc != 3) {
		fprintf(stderr, "usage: commit_latency SPOOL_DIR SECONDS\n");
		return 64;
	}
	dmta_log_init("commit_latency", DMTA_LOG_WARN);
	sp = spool_open(&(struct spool_opts){.path = argv[1], .create = true}, err, sizeof(err));
	if (sp == NULL) {
		fprintf(stderr, "commit_latency: %s\n", err);
		return 1;
	}
	queue_env_set_sender(&e, "daemon@example.org");
	queue_env_add_rcpt(&e, "rcpt@example.net", NULL, 0);
	if (spool_begin(sp, true, &t) < 0 || spool_put(t, &e, "x\r\n", 3) < 0 ||
	    spool_commit(t) < 0)
		return 1;
	qid = e.qid;
	queue_env_free(&e);
	lat = malloc(cap * sizeof(*lat));
	end = dmta_now_ns() + (uint64_t)atoi(argv[2]) * DMTA_NS_PER_S;
	while (dmta_now_ns() < end && n < cap) {
		uint64_t t0 = dmta_now_ns();

		if (spool_begin(sp, true, &t) < 0 || spool_env_get(t, qid, &got) < 0)
			return 1;
		queue_env_dup(&cp, &got);
		queue_env_release(&got);
		cp.next_attempt_ns = dmta_wall_ns();
		if (spool_env_store(t, &cp) < 0 || spool_commit(t) < 0)
			return 1;
		queue_env_free(&cp);
		lat[n++] = dmta_now_ns() - t0;
		usleep(10000);
	}
	qsort(lat, n, sizeof(*lat), cmp);
	printf("commits %zu p50_ms %.2f p99_ms %.2f max_ms %.2f\n", n, lat[n / 2] / 1e6,
	       lat[n * 99 / 100] / 1e6, lat[n - 1] / 1e6);
	free(lat);
	spool_close(sp);
	return 0;
}
