/*
 * tcp_cksum.c - see tcp_cksum.h.
 */
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <rte_byteorder.h>

#include "tcp/tcp_cksum.h"

uint64_t tcp_cksum_add(const void *buf, size_t len, uint64_t sum)
{
	const uint8_t *p = buf;

#ifdef __SSE2__
	while (len >= 32) {
		/* Each 32-bit lane gains at most 4 * 0xffff a round: 16384
		 * rounds (512 KiB) cannot overflow it. */
		size_t rounds = len / 32 > 16384 ? 16384 : len / 32;
		const __m128i z = _mm_setzero_si128();
		__m128i a = z, b = z;
		uint32_t lanes[8];

		for (size_t i = 0; i < rounds; i++, p += 32) {
			__m128i v0 = _mm_loadu_si128((const __m128i *)p);
			__m128i v1 = _mm_loadu_si128((const __m128i *)(p + 16));

			a = _mm_add_epi32(a, _mm_unpacklo_epi16(v0, z));
			b = _mm_add_epi32(b, _mm_unpackhi_epi16(v0, z));
			a = _mm_add_epi32(a, _mm_unpacklo_epi16(v1, z));
			b = _mm_add_epi32(b, _mm_unpackhi_epi16(v1, z));
		}
		len -= rounds * 32;
		_mm_storeu_si128((__m128i *)lanes, a);
		_mm_storeu_si128((__m128i *)(lanes + 4), b);
		for (int i = 0; i < 8; i++)
			sum += lanes[i];
	}
#endif
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		sum += (w & 0xffffffffULL) + (w >> 32);
		p += 8;
		len -= 8;
	}
	while (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		sum += w;
		p += 2;
		len -= 2;
	}
	if (len == 1) {
		uint16_t w = 0;

		*(uint8_t *)&w = *p;
		sum += w;
	}
	return sum;
}

int tcp_cksum_mbuf(const struct rte_mbuf *m, uint32_t off, uint32_t len, uint16_t *out)
{
	const struct rte_mbuf *seg;
	uint64_t sum = 0;
	uint32_t done = 0;

	if ((uint64_t)off + len > rte_pktmbuf_pkt_len(m))
		return -1;
	for (seg = m; seg != NULL && off >= rte_pktmbuf_data_len(seg); seg = seg->next)
		off -= rte_pktmbuf_data_len(seg);
	for (; seg != NULL && done < len; seg = seg->next, off = 0) {
		uint32_t n = rte_pktmbuf_data_len(seg) - off;
		uint16_t part;

		if (n > len - done)
			n = len - done;
		part = tcp_cksum_fold(
		    tcp_cksum_add(rte_pktmbuf_mtod_offset(seg, const void *, off), n, 0));
		/* A piece that starts at an odd offset has its bytes in the
		 * other halves of the words. */
		sum += (done & 1) ? rte_bswap16(part) : part;
		done += n;
	}
	if (done != len)
		return -1;
	*out = tcp_cksum_fold(sum);
	return 0;
}
