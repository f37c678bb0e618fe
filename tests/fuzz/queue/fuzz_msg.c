/*
 * fuzz_msg.c - message repair: whatever a program pipes in, what is stored
 * is valid on the wire (CRLF only, lines of at most 998 octets, no NUL),
 * and address lists parse or are refused; taking the X-Dmta-* fields from
 * raw bytes (as the SMTP listener does) never grows them and leaves none
 * to take a second time.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_addr.h"
#include "queue/queue_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int addr_cb(const char *a, size_t n, void *arg)
{
	bool utf8;
	const char *why;

	(void)queue_addr_check(a, n, &utf8, &why);
	return 0;
}

static void take_twice(const uint8_t *data, size_t size)
{
	struct queue_env env = {0};
	char *buf = malloc(size ? size : 1);
	size_t len = size, again;
	const char *why;
	long n;

	if (buf == NULL)
		return;
	memcpy(buf, data, size);
	n = queue_msg_take_fields(buf, &len, &env, &why);
	if (len > size || (n == 0 && (len != size || memcmp(buf, data, size) != 0)))
		abort();
	if (n > 0) {
		again = len;
		if (queue_msg_take_fields(buf, &again, &env, &why) != 0 || again != len)
			abort();
	}
	queue_env_free(&env);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_msg m;
	struct queue_buf out = {0};
	const char *why;
	unsigned flags;
	size_t col = 0;

	(void)queue_addr_list((const char *)data, size, addr_cb, NULL);
	take_twice(data, size);
	if (queue_msg_parse(&m, (const char *)data, size, size & 1, &why) != 0)
		return 0;
	if (queue_msg_render(&m, &out, &flags) != 0)
		abort();
	for (size_t i = 0; i < out.len; i++) {
		char c = out.p[i];

		if (c == 0 || c == '\n')
			abort();
		if (c == '\r') {
			if (i + 1 >= out.len || out.p[i + 1] != '\n')
				abort();
			i++;
			col = 0;
			continue;
		}
		if (++col > QUEUE_LINE_MAX)
			abort();
	}
	if (out.len < 2 || out.p[out.len - 2] != '\r' || out.p[out.len - 1] != '\n')
		abort();
	queue_buf_free(&out);
	queue_msg_free(&m);
	return 0;
}
