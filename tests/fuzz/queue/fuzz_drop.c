/*
 * fuzz_drop.c - maildrop files, which a local user writes and root's dmtad
 * reads: any bytes parse or are refused, and what parses names only what a
 * user may choose (no state, hold or DSN flag) and a message inside the
 * input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/spool_drop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_env env;
	const void *msg;
	const char *why;
	size_t len;

	if (spool_drop_parse(data, size, &env, &msg, &len, &why) != 0)
		return 0;
	if ((const uint8_t *)msg < data || (const uint8_t *)msg + len != data + size)
		abort();
	if (env.nrcpt == 0 || (env.flags & ~(uint32_t)(QUEUE_F_8BITMIME | QUEUE_F_SMTPUTF8)))
		abort();
	for (uint32_t i = 0; i < env.nrcpt; i++)
		if (env.rcpt[i].state != QUEUE_RCPT_PENDING || env.rcpt[i].attempts != 0)
			abort();
	queue_env_free(&env);
	return 0;
}
