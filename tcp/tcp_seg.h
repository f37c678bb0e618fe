/*
 * tcp_seg.h - TCP header options: parse and build (RFC 9293, 7323, 2018).
 *
 * SYNOPSIS
 *	#include "tcp/tcp_seg.h"
 *
 *	struct tcp_opts o;
 *	if (tcp_opts_parse(opt_bytes, opt_len, &o) < 0) drop;
 *	n = tcp_opts_build(buf, &o);
 *
 * DESCRIPTION
 *	tcp_opts_parse() reads the option bytes between the fixed header and
 *	the data, never past @len, copying nothing: unknown options are
 *	skipped by their length; a length that runs past the end, or a known
 *	option with the wrong length (SACK: not 2 + 8n, n = 1..4), makes the
 *	segment malformed (-1). Options
 *	that may only appear on a SYN are reported whatever the segment; the
 *	caller decides.
 */
#ifndef TCP_SEG_H
#define TCP_SEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Longest option area (the data offset field is 4 bits of 32-bit words). */
#define TCP_OPTS_MAX 40

/** Most SACK blocks an option can carry (4 fill 34 of the 40 bytes). */
#define TCP_SACK_MAX 4

/** Parsed options; a has_* flag says whether the option was present. */
struct tcp_opts {
	bool has_mss, has_wscale, has_sack_perm, has_ts;
	uint8_t nsack;			/**< SACK blocks (RFC 2018), 0..TCP_SACK_MAX */
	uint32_t sack[TCP_SACK_MAX][2]; /**< left and right edge (host order) */
	uint16_t mss;			/**< maximum segment size (host order) */
	uint8_t wscale;			/**< window shift as sent (the caller clamps to 14) */
	uint32_t tsval;			/**< timestamp value (host order) */
	uint32_t tsecr;			/**< timestamp echo reply (host order) */
};

/**
 * Parse TCP options.
 * @param p   the option bytes (after the 20-byte fixed header)
 * @param len their length, 0..40
 * @param o   filled in (zeroed first)
 * @return 0, or -1 when malformed
 */
int tcp_opts_parse(const uint8_t *p, size_t len, struct tcp_opts *o);

/**
 * Write the options flagged in @p o, padded with NOPs to a multiple of 4,
 * in the order Linux uses (MSS, SACK-permitted+timestamps, window scale,
 * SACK blocks), so middleboxes see a familiar layout. The caller keeps
 * nsack within the room: 3 blocks with timestamps, 4 without.
 * @param buf room for TCP_OPTS_MAX bytes
 * @return bytes written (a multiple of 4)
 */
size_t tcp_opts_build(uint8_t *buf, const struct tcp_opts *o);

#endif
