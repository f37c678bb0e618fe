/*
 * spool_hashes - print every spooled message as "ID SHA256 SIZE", after
 * checking the spool's consistency (for the crash tests).
 *
 * SYNOPSIS
 *	spool_hashes SPOOL_DIR
 *
 * DESCRIPTION
 *	Opens the spool as any injector would (which must work after any
 *	kill), runs spool_check() without repairing, and prints one line per
 *	message whose envelope decodes and whose bytes are present. The last
 *	line is "check messages=N bad=N orphan=N missing=N size=N".
 *	Exit 0 when the spool is consistent, 1 when it is not, 2 when it
 *	cannot be opened.
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/base/dmta_log.h"
#include "queue/spool.h"

static int print_one(struct spool_txn *t, const struct queue_env *env, void *arg)
{
	const void *p;
	size_t len;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char id[17];

	if (spool_msg_get(t, env->qid, &p, &len) < 0)
		return 0; /* counted as missing by the check */
	EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL);
	printf("%s ", queue_id_fmt(env->qid, id));
	for (unsigned i = 0; i < mdlen; i++)
		printf("%02x", md[i]);
	printf(" %zu\n", len);
	return 0;
}

int main(int argc, char **argv)
{
	char err[512];
	struct spool *sp;
	struct spool_txn *t;
	struct spool_check_report r;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: spool_hashes SPOOL_DIR\n");
		return 2;
	}
	dmta_log_init("spool_hashes", DMTA_LOG_WARN);
	sp = spool_open(&(struct spool_opts){.path = argv[1]}, err, sizeof(err));
	if (sp == NULL) {
		fprintf(stderr, "spool_hashes: %s\n", err);
		return 2;
	}
	rc = spool_check(sp, false, &r);
	if (rc < 0) {
		fprintf(stderr, "spool_hashes: check: %s\n", spool_strerror(rc));
		return 2;
	}
	if (spool_begin(sp, false, &t) < 0 || spool_foreach(t, print_one, NULL, NULL) < 0)
		return 2;
	spool_abort(t);
	printf("check messages=%" PRIu64 " bad=%" PRIu64 " orphan=%" PRIu64 " missing=%" PRIu64
	       " size=%" PRIu64 "\n",
	       r.messages, r.bad_env, r.orphan_msg, r.missing_msg, r.size_mismatch);
	spool_close(sp);
	return (r.bad_env || r.orphan_msg || r.missing_msg || r.size_mismatch) ? 1 : 0;
}
