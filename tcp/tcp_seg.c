/*
 * tcp_seg.c - TCP header options: parse and build.
 *
 * SYNOPSIS
 *	See tcp_seg.h.
 */
#include <string.h>

#include "tcp/tcp_seg.h"

enum {
	OPT_EOL = 0,
	OPT_NOP = 1,
	OPT_MSS = 2,
	OPT_WSCALE = 3,
	OPT_SACK_PERM = 4,
	OPT_SACK = 5,
	OPT_TS = 8,
};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int tcp_opts_parse(const uint8_t *p, size_t len, struct tcp_opts *o)
{
	size_t i = 0;

	memset(o, 0, sizeof(*o));
	while (i < len) {
		uint8_t kind = p[i], olen;

		if (kind == OPT_EOL)
			break;
		if (kind == OPT_NOP) {
			i++;
			continue;
		}
		if (len - i < 2)
			return -1;
		olen = p[i + 1];
		if (olen < 2 || olen > len - i)
			return -1;
		switch (kind) {
		case OPT_MSS:
			if (olen != 4)
				return -1;
			o->has_mss = true;
			o->mss = (uint16_t)(p[i + 2] << 8 | p[i + 3]);
			break;
		case OPT_WSCALE:
			if (olen != 3)
				return -1;
			o->has_wscale = true;
			o->wscale = p[i + 2];
			break;
		case OPT_SACK_PERM:
			if (olen != 2)
				return -1;
			o->has_sack_perm = true;
			break;
		case OPT_TS:
			if (olen != 10)
				return -1;
			o->has_ts = true;
			o->tsval = get32(p + i + 2);
			o->tsecr = get32(p + i + 6);
			break;
		case OPT_SACK:
			if (olen < 10 || (olen - 2) % 8 != 0)
				return -1; /* 40 bytes hold at most 4 blocks */
			o->nsack = (uint8_t)((olen - 2) / 8);
			for (unsigned b = 0; b < o->nsack; b++) {
				o->sack[b][0] = get32(p + i + 2 + 8 * b);
				o->sack[b][1] = get32(p + i + 6 + 8 * b);
			}
			break;
		default:
			/* Anything unknown: skipped by length. */
			break;
		}
		i += olen;
	}
	return 0;
}

size_t tcp_opts_build(uint8_t *buf, const struct tcp_opts *o)
{
	size_t n = 0;

	if (o->has_mss) {
		buf[n++] = OPT_MSS;
		buf[n++] = 4;
		buf[n++] = (uint8_t)(o->mss >> 8);
		buf[n++] = (uint8_t)o->mss;
	}
	if (o->has_sack_perm && o->has_ts) {
		buf[n++] = OPT_SACK_PERM;
		buf[n++] = 2;
	} else if (o->has_sack_perm) {
		buf[n++] = OPT_NOP;
		buf[n++] = OPT_NOP;
		buf[n++] = OPT_SACK_PERM;
		buf[n++] = 2;
	} else if (o->has_ts) {
		buf[n++] = OPT_NOP;
		buf[n++] = OPT_NOP;
	}
	if (o->has_ts) {
		buf[n++] = OPT_TS;
		buf[n++] = 10;
		put32(buf + n, o->tsval);
		put32(buf + n + 4, o->tsecr);
		n += 8;
	}
	if (o->has_wscale) {
		buf[n++] = OPT_NOP;
		buf[n++] = OPT_WSCALE;
		buf[n++] = 3;
		buf[n++] = o->wscale;
	}
	if (o->nsack > 0) {
		buf[n++] = OPT_NOP;
		buf[n++] = OPT_NOP;
		buf[n++] = OPT_SACK;
		buf[n++] = (uint8_t)(2 + 8 * o->nsack);
		for (unsigned b = 0; b < o->nsack; b++) {
			put32(buf + n, o->sack[b][0]);
			put32(buf + n + 4, o->sack[b][1]);
			n += 8;
		}
	}
	return n;
}
