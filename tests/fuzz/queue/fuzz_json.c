/*
 * fuzz_json.c - injection records: any line parses or is refused with a
 * reason, never crashes; parsed strings have no NUL inside.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_inject rec;
	const char *why = NULL;

	if (queue_json_inject((const char *)data, size, &rec, &why) != 0) {
		if (why == NULL)
			abort();
		return 0;
	}
	if (rec.nto == 0 || rec.from == NULL || (rec.data == NULL) == (rec.path == NULL))
		abort();
	if (rec.data && strlen(rec.data) != rec.data_len)
		abort();
	queue_json_inject_free(&rec);
	return 0;
}
