/*
 * fuzz_dns_msg.c - the DNS reply parser under libFuzzer, and the replay of
 * its corpus as a regression test.
 *
 * SYNOPSIS
 *	fuzz_dns_msg [-max_total_time=60] corpus/	(libFuzzer build, clang)
 *	replay_dns_msg FILE...				(the 'fuzz' suite)
 *
 * DESCRIPTION
 *	The first byte picks the question type (A, AAAA or MX), the rest is
 *	the reply. Whatever comes, the parser must return 0 with a record set
 *	whose contents stay inside it, or -EBADMSG; never crash, never read
 *	past the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[3] = {DNS_T_A, DNS_T_AAAA, DNS_T_MX};
	struct dns_rrset *rr = NULL;
	uint16_t qtype;
	int rc;

	if (size < 1)
		return 0;
	qtype = types[data[0] % 3];
	/* A copy of exactly the reply's size, so ASan sees any over-read. */
	uint8_t *m = malloc(size - 1 ? size - 1 : 1);

	if (!m)
		return 0;
	memcpy(m, data + 1, size - 1);
	rc = dns_msg_parse(m, size - 1, qtype, &rr);
	if (rc == 0) {
		volatile size_t sink = 0;

		if (!rr || rr->qtype != qtype)
			abort();
		for (unsigned i = 0; i < rr->n; i++) {
			if (qtype == DNS_T_MX)
				sink +=
				    strlen(dns_rrset_mx_name(rr, i)) + dns_rrset_mx(rr, i)->pref;
			else if (qtype == DNS_T_A)
				sink += dns_rrset_v4(rr, i)->s_addr;
			else
				sink += dns_rrset_v6(rr, i)->s6_addr[15];
		}
		if (rr->cname)
			sink += strlen(rr->cname);
		(void)sink;
		dns_rrset_unref(rr);
	} else if (rc != -EBADMSG || rr) {
		abort();
	}
	free(m);
	return 0;
}

#ifdef DNS_FUZZ_REPLAY
int main(int argc, char **argv)
{
	int n = 0;

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t buf[65536];
		size_t len;

		if (!f) {
			fprintf(stderr, "%s: cannot open\n", argv[i]);
			return 1;
		}
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		n++;
	}
	printf("replayed %d inputs\n", n);
	return n > 0 ? 0 : 1;
}
#endif
