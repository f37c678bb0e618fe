/*
 * dmta-conf-sample - write tools/dmta.conf.sample from the modules' key
 * tables, or check that a file equals what they write.
 *
 * SYNOPSIS
 *	dmta-conf-sample > tools/dmta.conf.sample
 *	dmta-conf-sample --check tools/dmta.conf.sample
 *	dmta-conf-sample --man VERSION > dmta.conf.5
 *
 * DESCRIPTION
 *	Every key of dmta.conf is declared once, in a table beside the code
 *	that reads it (core/base/dmta_conf.h). This program lists those
 *	tables in the order the sample shows them; the unit test runs it with
 *	--check so that the sample cannot fall behind the code. --check also
 *	reads the file back through every table: each value it shows must be
 *	accepted, and each key it sets must be one a table knows. --man
 *	writes the manual page dmta.conf(5), its key reference from the same
 *	tables (meson builds and installs it).
 *
 * DIAGNOSTICS
 *	Exit 0; 1 when a table is broken or the file differs (the first
 *	differing line is shown); 64 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/control/dmta_control_conf.h"
#include "core/control/dmta_events.h"
#include "core/control/dmta_metrics.h"
#include "core/control/dmta_listen.h"
#include "core/control/dmta_pool.h"
#include "core/dataplane/dmta_dataplane.h"
#include "core/dataplane/dmta_port.h"
#include "core/dataplane/dmta_worker.h"
#include "dns/dns_conf.h"
#include "queue/queue_ctl.h"
#include "queue/queue_dkim.h"
#include "queue/queue_egress.h"
#include "queue/queue_rules.h"
#include "queue/queue_sched.h"
#include "queue/queue_user.h"
#include "queue/spool.h"

static const char header[] =
    "# dmta.conf - every key, with its default. Every dmta program reads this\n"
    "# file: -c FILE (dmta-sendmail: -C FILE), else $DMTA_CONFIG, else\n"
    "# /etc/dmta/dmta.conf; a missing default file means all defaults. Durations\n"
    "# take ms, s, m, h, d, w (a bare number is seconds); sizes take k, M, G;\n"
    "# rates take /s, /min, /h, /day (a bare number is per second).\n"
    "# Each program warns about keys it does not know in the sections it owns.\n"
    "# Written by dmta-conf-sample from the tables in the code: do not edit.\n";

static const struct dmta_conf_section *const sections[] = {
    &dmta_delivery_conf_section,
    &dmta_eal_conf_section,
    &dmta_port_conf_section,
    &dmta_net_conf_section,
    &dmta_workers_conf_section,
    &dmta_tcp_conf_section,
    &spool_conf_section,
    &queue_conf_section,
    &queue_host_conf_section,
    &queue_ctl_conf_section,
    &queue_egress_conf_section,
    &queue_dest_conf_section,
    &queue_site_conf_section,
    &queue_source_conf_section,
    &queue_pool_conf_section,
    &queue_rules_conf_section,
    &dmta_pool_conf_section,
    &dmta_control_smtp_conf_section,
    &dns_text_conf_section,
    &dns_conf_section,
    &dns_routes_conf_section,
    &dns_relay_conf_section,
    &dmta_control_relay_conf_section,
    &dmta_pool_relay_conf_section,
    &dmta_log_conf_section,
    &dmta_control_conf_section,
    &queue_dkim_conf_section,
    &dmta_metrics_conf_section,
    &dmta_events_conf_section,
    &dmta_listen_conf_section,
    &queue_user_conf_section,
};

static int write_sample(FILE *fp)
{
	char err[256];

	fputs(header, fp);
	if (dmta_conf_sample(fp, sections, sizeof(sections) / sizeof(sections[0]), err,
			     sizeof(err)) != 0) {
		fprintf(stderr, "dmta-conf-sample: broken table: %s\n", err);
		return -1;
	}
	return 0;
}

/* dmta.conf(5): the prose around the key reference. */
static int write_man(FILE *fp, const char *version)
{
	char err[256];

	fprintf(fp,
		".\\\" Written by dmta-conf-sample --man from the key tables: do not edit.\n"
		".TH DMTA.CONF 5 \"\" \"dmta %s\" \"File Formats\"\n"
		".SH NAME\n"
		"dmta.conf \\- configuration of the dmta mailer\n"
		".SH SYNOPSIS\n"
		".B /etc/dmta/dmta.conf\n"
		".SH DESCRIPTION\n"
		"Every dmta program reads this one file: the one named by\n"
		".B \\-c\n"
		".RB ( dmta\\-sendmail \": \" \\-C ),\n"
		"else the one in\n"
		".BR DMTA_CONFIG ,\n"
		"else\n"
		".IR /etc/dmta/dmta.conf .\n"
		"A missing default file means all defaults; a file named explicitly must exist.\n"
		".PP\n"
		"The file is INI: [section] headers and key = value lines; lines starting\n"
		"with # or ; are comments. Durations take ms, s, m, h, d, w (a bare number\n"
		"is seconds); sizes take k, M, G. Each program warns about keys it does not\n"
		"know in the sections it owns.\n"
		".PP\n"
		".BR dmtad (8)\n"
		"reads the file again on SIGHUP (or\n"
		".BR \"dmta\\-queue reload\" ):\n"
		"routes, the relay, TLS policy, [queue] and [dest] limits, [log] and [control]\n"
		"change at once; what was built at start ([eal], [port], [net], [workers],\n"
		"[tcp], [spool], [delivery], [dns], the session pools' [smtp] and [relay] keys,\n"
		"[metrics], [events], [source] and [pool], and the listener's [listen], [user]\n"
		"and [dkim]) is kept and named in one line; a file with any error is refused\n"
		"whole.\n"
		".SH KEYS\n",
		version);
	if (dmta_conf_man(fp, sections, sizeof(sections) / sizeof(sections[0]), err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "dmta-conf-sample: broken table: %s\n", err);
		return -1;
	}
	fputs(".SH FILES\n"
	      ".TP\n.I /etc/dmta/dmta.conf\nthe default configuration file\n"
	      ".TP\n.I /var/spool/dmta\nthe default spool\n"
	      ".SH SEE ALSO\n"
	      ".BR dmtad (8),\n.BR dmta\\-sendmail (8),\n.BR dmta\\-inject (8),\n"
	      ".BR dmta\\-queue (8)\n",
	      fp);
	return ferror(fp) ? -1 : 0;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	FILE *out;
	int c;

	if (fp == NULL)
		return NULL;
	out = open_memstream(&buf, &cap);
	if (out == NULL) {
		fclose(fp);
		return NULL;
	}
	while ((c = getc(fp)) != EOF)
		putc(c, out);
	fclose(fp);
	fclose(out);
	*len = cap;
	return buf;
}

/* 0 when @p path holds exactly @p want; else say where it first differs. */
static int check(const char *prog, const char *path, const char *want, size_t wlen)
{
	size_t glen, i, line = 1;
	char *got = read_all(path, &glen);

	if (got == NULL) {
		perror(path);
		return 1;
	}
	for (i = 0; i < glen && i < wlen && got[i] == want[i]; i++)
		if (got[i] == '\n')
			line++;
	if (i == glen && i == wlen) {
		free(got);
		return 0;
	}
	{
		/* The differing line, from its start to its end, in each. */
		const char *g = memrchr(got, '\n', i), *w = memrchr(want, '\n', i);
		const char *gl = g ? g + 1 : got, *wl = w ? w + 1 : want;
		size_t gn = strcspn(gl, "\n"), wn = strcspn(wl, "\n");

		if (i >= glen)
			gl = "(end)", gn = 5;
		if (i >= wlen)
			wl = "(end)", wn = 5;

		fprintf(stderr,
			"%s differs from the key tables at line %zu:\n  file:   %.*s\n"
			"  tables: %.*s%s\nregenerate with: %s > %s\n",
			path, line, (int)gn, gl, (int)wn, wl,
			gn == wn && memcmp(gl, wl, gn) == 0 ? " (a newline more or less)" : "",
			prog, path);
	}
	free(got);
	return 1;
}

/* The bytes a section's fields span, for a scratch struct to read it into. */
static size_t section_span(const struct dmta_conf_section *sec)
{
	size_t end = 0;

	for (size_t i = 0; i < sec->nkeys; i++) {
		const struct dmta_conf_key *k = &sec->keys[i];
		size_t e = k->off + (k->type == DMTA_CONF_GROUP ? section_span(k->group) : k->size);

		if (e > end)
			end = e;
	}
	return end;
}

/* 0 when @p path reads without an error or an unknown key in any table. */
static int read_back(const char *path)
{
	char err[512];
	struct dmta_conf *conf = dmta_conf_load(path, err, sizeof(err));
	int bad = 0;

	if (conf == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		void *scratch = calloc(1, section_span(sections[i]) + 1);

		if (scratch == NULL || dmta_conf_read(conf, sections[i], scratch) != 0)
			bad = 1;
		free(scratch);
	}
	if (dmta_conf_warn_unused(conf, NULL) != 0)
		bad = 1;
	dmta_conf_free(conf);
	return bad;
}

int main(int argc, char **argv)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;
	int rc;

	dmta_log_init("dmta-conf-sample", DMTA_LOG_WARN);
	if (argc == 1)
		return write_sample(stdout) == 0 && fflush(stdout) == 0 ? 0 : 1;
	if (argc == 3 && strcmp(argv[1], "--man") == 0)
		return write_man(stdout, argv[2]) == 0 && fflush(stdout) == 0 ? 0 : 1;
	if (argc != 3 || strcmp(argv[1], "--check") != 0) {
		fprintf(stderr, "usage: dmta-conf-sample [--check FILE | --man VERSION]\n");
		return 64;
	}
	mem = open_memstream(&buf, &len);
	if (mem == NULL) {
		perror("dmta-conf-sample");
		return 1;
	}
	rc = write_sample(mem);
	fclose(mem);
	if (rc == 0)
		rc = check(argv[0], argv[2], buf, len) | read_back(argv[2]);
	else
		rc = 1;
	free(buf);
	return rc;
}
