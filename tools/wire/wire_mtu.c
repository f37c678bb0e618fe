/*
 * wire_mtu.c - a hop with a smaller MTU: which frames it cannot forward, and
 * the ICMP "fragmentation needed" (RFC 792, RFC 1191) it answers them with.
 *
 * SYNOPSIS
 *	size_t wire_l3_len(frame, len);
 *	ssize_t wire_mtu_icmp(frame, len, mtu, src, out, cap);
 *
 * DESCRIPTION
 *	wire_l3_len() is what a frame carries above Ethernet (and one VLAN
 *	tag): the size an MTU limits.
 *
 *	wire_mtu_icmp() builds, in out, the frame a router sends back when it
 *	cannot forward an IPv4 frame of more than mtu bytes with DF set:
 *	Ethernet addresses swapped (the router answers from the interface
 *	the frame came to, so from the address it was sent to; a VLAN tag
 *	is kept), an IPv4 header from src (network byte order; 0: from the
 *	quoted packet's destination) to the quoted packet's source, then
 *	ICMP type 3 code 4 with the next-hop MTU (RFC 1191) quoting as much
 *	of the packet as keeps the ICMP datagram within 576 bytes (RFC
 *	1812 4.3.2.3; at least the IP header and 8 bytes, which RFC 792 asks).
 *	The wire does not fragment, so a frame without DF is just dropped.
 *
 *	No ICMP answers what RFC 1812 4.3.2.7 forbids: a non-first
 *	fragment, an ICMP error, a packet from an address that names no
 *	single host (0, loopback, multicast, broadcast) or to a multicast or
 *	broadcast address.
 *
 * DIAGNOSTICS
 *	wire_mtu_icmp() returns the ICMP frame's length, 0 when no ICMP is
 *	due (not IPv4, no DF, not too big, or one of the cases above), or
 *	-EINVAL when out is too small for the answer.
 */
#include <errno.h>
#include <string.h>

#include "tools/wire/wire.h"
#include "tools/wire/wire_pkt.h"

#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED  4
#define ICMP_MAX_DATAGRAM 576 /* RFC 1812 4.3.2.3 */
#define IP_DF		  0x4000
#define IP_OFFMASK	  0x1fff

size_t wire_l3_len(const uint8_t *frame, size_t len)
{
	uint16_t type;
	size_t l3 = wire_l3_offset(frame, len, &type);

	return l3 == 0 ? 0 : len - l3;
}

/* An address that names one host (RFC 1812 4.3.2.7, 5.3.7). */
static bool unicast(const uint8_t *a)
{
	return a[0] != 0 && a[0] != 127 && a[0] < 224;
}

/* An ICMP error message (RFC 1812 4.3.2.7: never answered with another). */
static bool icmp_error(const uint8_t *ip, size_t ihl, size_t l3len)
{
	if (ip[9] != 1 || l3len < ihl + 1)
		return false;
	switch (ip[ihl]) {
	case 3:	 /* destination unreachable */
	case 4:	 /* source quench */
	case 5:	 /* redirect */
	case 11: /* time exceeded */
	case 12: /* parameter problem */
		return true;
	default:
		return false;
	}
}

ssize_t wire_mtu_icmp(const uint8_t *frame, size_t len, uint32_t mtu, uint32_t src, uint8_t *out,
		      size_t cap)
{
	const uint8_t *ip;
	size_t l3, ihl, l3len, quote, total;
	uint16_t type, frag;
	uint8_t *oip, *icmp;

	l3 = wire_l3_offset(frame, len, &type);
	if (l3 == 0 || type != WIRE_ETHERTYPE_IPV4 || len < l3 + 20)
		return 0;
	ip = frame + l3;
	l3len = len - l3;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20 || l3len < ihl || l3len <= mtu || mtu < WIRE_MTU_MIN)
		return 0;
	frag = wire_get16(ip + 6);
	if (!(frag & IP_DF) || (frag & IP_OFFMASK) != 0 || icmp_error(ip, ihl, l3len) ||
	    !unicast(ip + 12) || ip[16] >= 224 || memcmp(ip + 16, "\xff\xff\xff\xff", 4) == 0)
		return 0;
	/* The quoted packet: its own length if shorter than what arrived. */
	if (wire_get16(ip + 2) >= ihl && wire_get16(ip + 2) < l3len)
		l3len = wire_get16(ip + 2);
	/* More than mtu >= WIRE_MTU_MIN bytes: the IP header and 8 at least. */
	quote = l3len < ICMP_MAX_DATAGRAM - 28 ? l3len : ICMP_MAX_DATAGRAM - 28;
	total = l3 + 28 + quote;
	if (cap < total)
		return -EINVAL;

	/* Ethernet (and VLAN tag): back where the frame came from. */
	memcpy(out, frame + 6, 6);
	memcpy(out + 6, frame, 6);
	memcpy(out + 12, frame + 12, l3 - 12);
	oip = out + l3;
	memset(oip, 0, 20);
	oip[0] = 0x45;
	oip[1] = 0xc0; /* precedence: internetwork control, as routers send errors */
	wire_put16(oip + 2, (uint16_t)(28 + quote));
	oip[8] = 64;
	oip[9] = 1;
	if (src != 0)
		memcpy(oip + 12, &src, 4);
	else
		memcpy(oip + 12, ip + 16, 4);
	memcpy(oip + 16, ip + 12, 4);
	wire_put16(oip + 10, (uint16_t)~wire_fold(wire_sum16(oip, 20, 0)));
	icmp = oip + 20;
	memset(icmp, 0, 8);
	icmp[0] = ICMP_DEST_UNREACH;
	icmp[1] = ICMP_FRAG_NEEDED;
	wire_put16(icmp + 6, (uint16_t)(mtu > 0xffff ? 0xffff : mtu));
	memcpy(icmp + 8, ip, quote);
	wire_put16(icmp + 2, (uint16_t)~wire_fold(wire_sum16(icmp, 8 + quote, 0)));
	return (ssize_t)total;
}
