/*
 * wire_tso.c - cut a TCP super-frame (TSO/GSO, from a sender whose offloads
 * are on) into the wire-sized segments a NIC would have sent.
 *
 * SYNOPSIS
 *	ssize_t wire_tso_segment(frame, len, mss, idx, out, cap);
 *
 * DESCRIPTION
 *	frame is Ethernet (one VLAN tag allowed), IPv4 without options or with,
 *	or IPv6 with TCP as the next header (no extension headers), then TCP
 *	and a payload of more than mss bytes. Segment idx gets the headers and
 *	payload bytes [idx * mss, (idx + 1) * mss), with what a NIC fixes:
 *	IPv4 total length, identification (+idx) and header checksum; IPv6
 *	payload length; TCP sequence number (+idx * mss), FIN and PSH only on
 *	the last segment, CWR only on the first, and a full TCP checksum.
 *
 *	Each segment then meets the impairments on its own, as frames on a
 *	real link do.
 *
 * DIAGNOSTICS
 *	Returns the segment's length, 0 when idx is past the last segment, or
 *	-EINVAL when the frame is not one this cuts (or out is too small).
 */
#include <errno.h>
#include <string.h>

#include "tools/wire/wire.h"
#include "tools/wire/wire_pkt.h"

ssize_t wire_tso_segment(const uint8_t *frame, size_t len, size_t mss, size_t idx, uint8_t *out,
			 size_t cap)
{
	size_t l3, l4, hlen, payload, off, seglen;
	uint16_t type;
	bool v4;
	uint32_t seq, sum;
	uint8_t *tcp;

	if (mss == 0 || (l3 = wire_l3_offset(frame, len, &type)) == 0)
		return -EINVAL;
	if (type == WIRE_ETHERTYPE_IPV4) {
		if (len < l3 + 20 || (frame[l3] >> 4) != 4 || frame[l3 + 9] != 6)
			return -EINVAL;
		l4 = l3 + (size_t)(frame[l3] & 0x0f) * 4;
		v4 = true;
		if (l4 < l3 + 20)
			return -EINVAL;
	} else if (type == WIRE_ETHERTYPE_IPV6) {
		if (len < l3 + 40 || (frame[l3] >> 4) != 6 || frame[l3 + 6] != 6)
			return -EINVAL;
		l4 = l3 + 40;
		v4 = false;
	} else {
		return -EINVAL;
	}
	if (len < l4 + 20)
		return -EINVAL;
	hlen = l4 + (size_t)(frame[l4 + 12] >> 4) * 4;
	if (hlen < l4 + 20 || hlen > len)
		return -EINVAL;
	payload = len - hlen;
	off = idx * mss;
	if (off >= payload)
		return 0;
	seglen = payload - off < mss ? payload - off : mss;
	if (cap < hlen + seglen)
		return -EINVAL;
	memcpy(out, frame, hlen);
	memcpy(out + hlen, frame + hlen + off, seglen);

	if (v4) {
		wire_put16(out + l3 + 2, (uint16_t)(hlen - l3 + seglen));
		wire_put16(out + l3 + 4, (uint16_t)(wire_get16(frame + l3 + 4) + idx));
		wire_put16(out + l3 + 10, 0);
		wire_put16(out + l3 + 10, (uint16_t)~wire_fold(wire_sum16(out + l3, l4 - l3, 0)));
	} else {
		wire_put16(out + l3 + 4, (uint16_t)(hlen - l4 + seglen));
	}
	tcp = out + l4;
	seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
	seq += (uint32_t)off;
	tcp[4] = (uint8_t)(seq >> 24);
	tcp[5] = (uint8_t)(seq >> 16);
	tcp[6] = (uint8_t)(seq >> 8);
	tcp[7] = (uint8_t)seq;
	if (off + seglen < payload)
		tcp[13] &= (uint8_t)~0x09; /* FIN, PSH: last segment only */
	if (idx > 0)
		tcp[13] &= (uint8_t)~0x80; /* CWR: first segment only */
	/* Pseudo-header: addresses, protocol, TCP length. */
	if (v4)
		sum = wire_sum16(out + l3 + 12, 8, 0);
	else
		sum = wire_sum16(out + l3 + 8, 32, 0);
	sum += 6 + (uint32_t)(hlen - l4 + seglen);
	wire_put16(tcp + 16, 0);
	wire_put16(tcp + 16, (uint16_t)~wire_fold(wire_sum16(tcp, hlen - l4 + seglen, sum)));
	return (ssize_t)(hlen + seglen);
}
