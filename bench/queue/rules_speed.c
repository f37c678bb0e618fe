/*
 * rules_speed - what classifying a failure and looking up the throttle
 * rules cost the control thread.
 *
 * SYNOPSIS
 *	rules_speed SECONDS
 *
 * DESCRIPTION
 *	Runs queue_class_of() and queue_rules_match() (the built-in rules)
 *	over a fixed mix of failure replies, each for about SECONDS of this
 *	thread's CPU time (at most 100 million calls), and prints one JSON
 *	object: calls made and nanoseconds per call of each. The mix holds
 *	replies of every kind, from those settled by their enhanced code to
 *	replies no row matches (the slowest: every phrase is tried).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "queue/queue_rules.h"

static const struct {
	int code;
	const char *text;
} mix[] = {
    {550, "550-5.1.1 The email account that you tried to reach does not exist. Please try "
	  "double-checking the recipient's email address for typos or unnecessary spaces."},
    {452, "452-4.2.2 The email account that you tried to reach is over quota."},
    {421, "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating "
	  "from your IP address. To protect our users from spam, mail sent from your IP address "
	  "has been temporarily rate limited."},
    {451, "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)"},
    {550, "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
	  "Internet service provider since part of their network is on our block list (S3150)."},
    {421, "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints "
	  "- 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"},
    {554, "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"},
    {0, "mx.example[198.18.1.10]: connect: Connection refused"},
    {451, "451 4.3.0 Error: queue file write error"},
    {550, "550 Go away"},
};

#define NMIX	  (sizeof(mix) / sizeof(mix[0]))
#define MAX_CALLS 100000000ULL

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct queue_rules *rs;
	char err[256];
	uint64_t budget, t0, t, n_class = 0, n_match = 0, ns_class, ns_match;
	volatile unsigned sink = 0;

	if (argc != 2 || atof(argv[1]) <= 0) {
		fprintf(stderr, "usage: rules_speed SECONDS\n");
		return 64;
	}
	budget = (uint64_t)(atof(argv[1]) * 1e9);
	if (queue_rules_load(NULL, &rs, err, sizeof(err)) != 0) {
		fprintf(stderr, "rules_speed: %s\n", err);
		return 1;
	}
	t0 = cpu_ns();
	do {
		for (size_t i = 0; i < NMIX; i++)
			sink += queue_class_of(mix[i].code, mix[i].text);
		n_class += NMIX;
	} while ((t = cpu_ns()) - t0 < budget && n_class < MAX_CALLS);
	ns_class = t - t0;
	t0 = cpu_ns();
	do {
		for (size_t i = 0; i < NMIX; i++)
			sink += queue_rules_match(rs, mix[i].code, mix[i].text) != NULL;
		n_match += NMIX;
	} while ((t = cpu_ns()) - t0 < budget && n_match < MAX_CALLS);
	ns_match = t - t0;
	queue_rules_free(rs);
	printf("{\"replies\": %zu, \"rules\": \"built-in\", \"class_calls\": %" PRIu64
	       ", \"class_ns_per_call\": %.0f, \"match_calls\": %" PRIu64
	       ", \"match_ns_per_call\": %.0f}\n",
	       NMIX, n_class, (double)ns_class / (double)n_class, n_match,
	       (double)ns_match / (double)n_match);
	return sink == 0xFFFFFFFFu; /* keeps the calls from being optimised away */
}
