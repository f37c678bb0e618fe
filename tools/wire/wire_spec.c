/*
 * wire_spec.c - parse dmta-wire's impairment spec.
 *
 * SYNOPSIS
 *	int wire_spec_parse(text, spec, err, errlen);
 *	void wire_params_default(params);
 *	int wire_params_format(params, buf, len);
 *
 * DESCRIPTION
 *	The grammar (also in dmta_wire.c and --help):
 *
 *	  spec  = "none" | "" | item *("," item)
 *	  item  = [dir "."] key "=" value
 *	  dir   = "a2b" | "b2a"
 *
 *	  loss=P  reorder=P  duplicate=P  corrupt=P
 *	        P: percent, "5%", "0.1%" (the "%" may be left out), 0..100
 *	  delay=T  jitter=T  queue=T
 *	        T: number and unit ns, us, ms or s ("0" alone is allowed)
 *	  rate=R  R: number and unit bit, kbit, mbit, gbit (powers of 1000), or
 *	        bps, kbps, mbps, gbps (bytes per second, as tc says); "0": off
 *	  burst=S  S: bytes, or with unit b, kb, mb (powers of 1024)
 *	  limit=N  frames held per direction (1..1000000)
 *	  mtu=N    largest IP packet forwarded (68..65535; 0: no limit)
 *	  icmp=on|off|A.B.C.D  answer larger IPv4 packets with DF by ICMP
 *	        "fragmentation needed" (default on: from the packet's
 *	        destination; or from the router address A.B.C.D); off: drop
 *	        them without a word (a PMTU black hole)
 *
 *	A key without a direction sets both; a key with one sets that
 *	direction only, and wins over the bare key whatever their order.
 *	Repeating a key: the last one wins.
 *
 * DIAGNOSTICS
 *	-1 with one line in err naming the offending item.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/wire/wire.h"

enum wire_key {
	KEY_LOSS,
	KEY_REORDER,
	KEY_DUP,
	KEY_CORRUPT,
	KEY_DELAY,
	KEY_JITTER,
	KEY_QUEUE,
	KEY_RATE,
	KEY_BURST,
	KEY_LIMIT,
	KEY_MTU,
	KEY_ICMP,
};

static const struct {
	const char *name;
	enum wire_key key;
} wire_keys[] = {
    {"loss", KEY_LOSS},	    {"reorder", KEY_REORDER}, {"duplicate", KEY_DUP},
    {"dup", KEY_DUP},	    {"corrupt", KEY_CORRUPT}, {"delay", KEY_DELAY},
    {"jitter", KEY_JITTER}, {"queue", KEY_QUEUE},     {"rate", KEY_RATE},
    {"burst", KEY_BURST},   {"limit", KEY_LIMIT},     {"mtu", KEY_MTU},
    {"icmp", KEY_ICMP},
};

static const char *const dir_names[2] = {"a2b", "b2a"};

struct unit {
	const char *name;
	double mult;
};

static const struct unit time_units[] = {
    {"ns", 1.0}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {NULL, 0},
};
static const struct unit rate_units[] = {
    {"bit", 1.0},  {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"bps", 8.0},
    {"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9}, {NULL, 0},
};
static const struct unit size_units[] = {
    {"", 1.0},	      {"b", 1.0},	 {"k", 1024.0}, {"kb", 1024.0},
    {"m", 1048576.0}, {"mb", 1048576.0}, {NULL, 0},
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void wire_params_default(struct wire_params *p)
{
	memset(p, 0, sizeof(*p));
	p->queue_ns = WIRE_DEFAULT_QUEUE_NS;
	p->limit = WIRE_DEFAULT_LIMIT;
	p->icmp = true;
}

/*
 * A non-negative decimal number at the start of v; *rest points after it.
 * strtod is fine here: the program never calls setlocale(), so "." is the
 * decimal point.
 */
static int parse_number(const char *v, double *out, const char **rest)
{
	/* Digits and one point only: no signs, exponents, hex, nan or inf. */
	size_t n = strspn(v, "0123456789.");
	char num[32], *end;
	double d;

	if (n == 0 || n >= sizeof(num) || !isdigit((unsigned char)v[strspn(v, ".")]))
		return -1;
	memcpy(num, v, n);
	num[n] = '\0';
	errno = 0;
	d = strtod(num, &end);
	if (end != num + n || errno != 0 || !isfinite(d) || d < 0)
		return -1;
	*out = d;
	*rest = v + n;
	return 0;
}

static int parse_unit(const char *v, const struct unit *units, double *out)
{
	const char *rest;
	double d;

	if (parse_number(v, &d, &rest) < 0)
		return -1;
	if (*rest == '\0' && d == 0) {
		*out = 0;
		return 0;
	}
	for (const struct unit *u = units; u->name != NULL; u++) {
		if (strcasecmp(rest, u->name) == 0) {
			*out = d * u->mult;
			return 0;
		}
	}
	return -1;
}

static int parse_percent(const char *v, uint32_t *ppb)
{
	const char *rest;
	double d;

	if (parse_number(v, &d, &rest) < 0)
		return -1;
	if (*rest == '%')
		rest++;
	if (*rest != '\0' || d > 100.0)
		return -1;
	*ppb = (uint32_t)llround(d * (WIRE_PPB / 100));
	return 0;
}

/* A decimal count: digits only. */
static int parse_count(const char *v, unsigned long *n)
{
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	*n = strtoul(v, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static int set_key(struct wire_params *p, enum wire_key key, const char *v)
{
	double d;
	unsigned long n;
	struct in_addr addr;

	switch (key) {
	case KEY_LOSS:
		return parse_percent(v, &p->loss_ppb);
	case KEY_REORDER:
		return parse_percent(v, &p->reorder_ppb);
	case KEY_DUP:
		return parse_percent(v, &p->dup_ppb);
	case KEY_CORRUPT:
		return parse_percent(v, &p->corrupt_ppb);
	case KEY_DELAY:
	case KEY_JITTER:
	case KEY_QUEUE:
		/* An hour is far beyond any lab use; it also keeps sums in range. */
		if (parse_unit(v, time_units, &d) < 0 || d > 3600e9)
			return -1;
		if (key == KEY_DELAY)
			p->delay_ns = (uint64_t)llround(d);
		else if (key == KEY_JITTER)
			p->jitter_ns = (uint64_t)llround(d);
		else
			p->queue_ns = (uint64_t)llround(d);
		return 0;
	case KEY_RATE:
		if (parse_unit(v, rate_units, &d) < 0 || d > 1e12 || (d > 0 && d < 1000))
			return -1;
		p->rate_bps = (uint64_t)llround(d);
		return 0;
	case KEY_BURST:
		if (parse_unit(v, size_units, &d) < 0 || d > 1e9)
			return -1;
		p->burst_bytes = (uint64_t)llround(d);
		return 0;
	case KEY_LIMIT:
		if (parse_count(v, &n) < 0 || n < 1 || n > 1000000)
			return -1;
		p->limit = (uint32_t)n;
		return 0;
	case KEY_MTU:
		if (parse_count(v, &n) < 0 || (n != 0 && n < WIRE_MTU_MIN) || n > 65535)
			return -1;
		p->mtu = (uint32_t)n;
		return 0;
	case KEY_ICMP:
		if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
			p->icmp = strcmp(v, "on") == 0;
			p->icmp_src = 0;
			return 0;
		}
		if (inet_pton(AF_INET, v, &addr) != 1 || !isdigit((unsigned char)v[0]) ||
		    addr.s_addr == 0)
			return -1;
		p->icmp = true;
		p->icmp_src = addr.s_addr;
		return 0;
	default:
		break;
	}
	return -1;
}

static const char *key_help(enum wire_key key)
{
	switch (key) {
	case KEY_LOSS:
	case KEY_REORDER:
	case KEY_DUP:
	case KEY_CORRUPT:
		return "a percentage from 0 to 100, e.g. 5% or 0.1%";
	case KEY_DELAY:
	case KEY_JITTER:
	case KEY_QUEUE:
		return "a time with a unit (ns, us, ms, s), e.g. 20ms";
	case KEY_RATE:
		return "a rate of at least 1kbit with a unit (bit, kbit, mbit, gbit, or bytes/s: "
		       "bps, kbps, mbps, gbps), e.g. 100mbit";
	case KEY_BURST:
		return "a size in bytes (units b, kb, mb), e.g. 16kb";
	case KEY_LIMIT:
		return "a frame count from 1 to 1000000";
	case KEY_MTU:
		return "a packet size from 68 to 65535 bytes, or 0 for none";
	case KEY_ICMP:
		return "on, off, or the IPv4 address the ICMP comes from, e.g. 198.18.0.1";
	default:
		break;
	}
	return "?";
}

int wire_spec_parse(const char *text, struct wire_spec *spec, char *err, size_t errlen)
{
	/* Bare keys apply first, then direction-prefixed ones: pass 0 and 1. */
	struct wire_spec out;
	char buf[1024];

	wire_params_default(&out.dir[0]);
	wire_params_default(&out.dir[1]);
	if (text == NULL)
		return fail(err, errlen, "bad spec: missing");
	if (strlen(text) >= sizeof(buf))
		return fail(err, errlen, "bad spec: longer than %zu bytes", sizeof(buf) - 1);
	if (text[0] == '\0' || strcmp(text, "none") == 0) {
		*spec = out;
		return 0;
	}
	for (int pass = 0; pass < 2; pass++) {
		char *save = NULL, *item;

		strcpy(buf, text);
		/* strtok_r would skip empty items silently; check for them first. */
		if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,") != NULL)
			return fail(err, errlen, "bad spec '%s': empty item", text);
		for (item = strtok_r(buf, ",", &save); item != NULL;
		     item = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(item, '='), *name = item, *dot;
			int dir = -1;
			size_t k;

			if (eq == NULL)
				return fail(err, errlen, "bad spec item '%s': want key=value",
					    item);
			*eq = '\0';
			dot = strchr(name, '.');
			if (dot != NULL) {
				*dot = '\0';
				if (strcmp(name, "a2b") == 0)
					dir = WIRE_DIR_A2B;
				else if (strcmp(name, "b2a") == 0)
					dir = WIRE_DIR_B2A;
				else
					return fail(err, errlen,
						    "bad spec item '%s.%s=%s': direction must be "
						    "a2b or b2a",
						    name, dot + 1, eq + 1);
				name = dot + 1;
			}
			for (k = 0; k < sizeof(wire_keys) / sizeof(wire_keys[0]); k++)
				if (strcmp(name, wire_keys[k].name) == 0)
					break;
			if (k == sizeof(wire_keys) / sizeof(wire_keys[0]))
				return fail(err, errlen,
					    "bad spec item '%s=%s': unknown key '%s' (want loss, "
					    "delay, jitter, reorder, duplicate, corrupt, rate, "
					    "burst, queue, limit, mtu, icmp)",
					    name, eq + 1, name);
			if ((pass == 0) != (dir < 0))
				continue;
			for (int d = 0; d < 2; d++) {
				if (dir >= 0 && d != dir)
					continue;
				if (set_key(&out.dir[d], wire_keys[k].key, eq + 1) < 0)
					return fail(
					    err, errlen, "bad spec item '%s%s%s=%s': want %s",
					    dir < 0 ? "" : dir_names[dir], dir < 0 ? "" : ".", name,
					    eq + 1, key_help(wire_keys[k].key));
			}
		}
	}
	*spec = out;
	return 0;
}

int wire_params_format(const struct wire_params *p, char *buf, size_t len)
{
	char icmp[INET_ADDRSTRLEN] = "on";

	if (!p->icmp)
		snprintf(icmp, sizeof(icmp), "off");
	else if (p->icmp_src != 0)
		inet_ntop(AF_INET, &p->icmp_src, icmp, sizeof(icmp));
	return snprintf(buf, len,
			"loss=%g%%,delay=%gms,jitter=%gms,reorder=%g%%,duplicate=%g%%,"
			"corrupt=%g%%,rate=%gkbit,burst=%llu,queue=%gms,limit=%u,mtu=%u,icmp=%s",
			p->loss_ppb / 1e7, p->delay_ns / 1e6, p->jitter_ns / 1e6,
			p->reorder_ppb / 1e7, p->dup_ppb / 1e7, p->corrupt_ppb / 1e7,
			p->rate_bps / 1e3, (unsigned long long)p->burst_bytes, p->queue_ns / 1e6,
			p->limit, p->mtu, icmp);
}
