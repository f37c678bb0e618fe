/*
 * wire_pkt.h - byte-level helpers shared by dmta-wire's packet builders
 * (wire_tso.c, wire_mtu.c): big-endian loads and stores, the Internet
 * checksum (RFC 1071), and where a frame's layer 3 starts.
 */
#ifndef WIRE_PKT_H
#define WIRE_PKT_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_ETHERTYPE_IPV4 0x0800
#define WIRE_ETHERTYPE_IPV6 0x86dd
#define WIRE_ETHERTYPE_VLAN 0x8100

/* Add n bytes at b to a one's-complement sum (odd tail padded with zero). */
static inline uint32_t wire_sum16(const uint8_t *b, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

static inline uint16_t wire_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static inline void wire_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t wire_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/*
 * Where layer 3 starts in an Ethernet frame of len bytes (one VLAN tag
 * allowed), its EtherType in *type; 0 when the frame is too short.
 */
static inline size_t wire_l3_offset(const uint8_t *frame, size_t len, uint16_t *type)
{
	if (len < 14)
		return 0;
	*type = wire_get16(frame + 12);
	if (*type != WIRE_ETHERTYPE_VLAN)
		return 14;
	if (len < 18)
		return 0;
	*type = wire_get16(frame + 16);
	return 18;
}

#endif
