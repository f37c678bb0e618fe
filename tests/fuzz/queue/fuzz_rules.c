/*
 * fuzz_rules.c - throttle rules and bounce classes: any bytes load as rules
 * or are refused with a reason, loaded rules keep their action's
 * invariants, and the same bytes read as a reply get a class and match
 * the built-in rules or not, never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rule(const struct queue_rule *r)
{
	if (r->name == NULL || r->name[0] == 0 || (r->text != NULL && r->text[0] == 0))
		abort();
	switch (r->act) {
	case QUEUE_ACT_SUSPEND:
		if (r->duration_ms == 0 || r->rate_per_s != 0 || r->max_connections != 0)
			abort();
		break;
	case QUEUE_ACT_THROTTLE:
		if (r->duration_ms == 0 || (r->rate_per_s <= 0 && r->max_connections == 0))
			abort();
		break;
	case QUEUE_ACT_BOUNCE:
		if (r->duration_ms != 0)
			abort();
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct queue_rules *builtin;
	struct queue_rules *rs;
	char err[256] = "";
	char *reply = strndup((const char *)data, size);
	int rc;

	if (reply == NULL ||
	    (builtin == NULL && queue_rules_load(NULL, &builtin, err, sizeof(err))))
		abort();
	rc = queue_rules_load_text((const char *)data, size, "fuzz", &rs, err, sizeof(err));
	if (rc != 0) {
		if (rs != NULL || strncmp(err, "fuzz", 4) != 0)
			abort();
	} else {
		for (size_t i = 0; i < queue_rules_count(rs); i++)
			check_rule(queue_rules_at(rs, i));
		(void)queue_rules_match(rs, 421, reply);
		queue_rules_free(rs);
	}
	if (queue_class_of(0, reply) >= QUEUE_CLASS_N ||
	    queue_class_of(550, reply) >= QUEUE_CLASS_N)
		abort();
	(void)queue_rules_match(builtin, 0, reply);
	(void)queue_rules_match(builtin, 421, reply);
	free(reply);
	return 0;
}
