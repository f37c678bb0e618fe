/*
 * fuzz_env.c - envelope records: any bytes decode or are refused, and what
 * decodes encodes back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_env env;
	unsigned char *out;
	long n;

	if (queue_env_decode(data, size, &env) != 0)
		return 0;
	out = malloc(size);
	n = queue_env_encode(&env, out, size);
	if (n != (long)size || memcmp(out, data, size) != 0)
		abort(); /* a record that decodes must be canonical */
	free(out);
	queue_env_release(&env);
	return 0;
}
