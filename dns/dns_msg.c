/*
 * dns_msg.c - DNS replies turned into record sets.
 *
 * DESCRIPTION
 *	See dns_msg.h. The parser makes two passes over the answer section:
 *	the first notes where each record starts (bounded by DNS_RR_MAX), the
 *	second follows the CNAME chain from the question name and copies the
 *	records that the chain's end owns. Every read is checked against the
 *	message length; compression pointers are followed a bounded number of
 *	times so that a loop cannot hang us.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_msg.h"

#define HDR_LEN	 12
#define PTR_MAX	 64 /* compression pointers followed in one name */
#define RC_NOERR 0
#define RC_FORM	 1
#define RC_SERV	 2
#define RC_NX	 3
#define RC_NOTI	 4
#define RC_REF	 5

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Read the name at @off into @out (lower case, dotted, no final dot, "" for
 * the root). *end is set past the name where it sits (not where pointers
 * led). Returns 0 or -1 when malformed. Labels holding dots or bytes
 * outside printable ASCII are refused: no name we route to has them, and
 * printing them later must stay unambiguous.
 */
static int name_read(const uint8_t *m, size_t len, size_t off, char out[DNS_NAME_MAX + 1],
		     size_t *end)
{
	size_t o = 0;
	int jumps = 0;
	bool jumped = false;

	for (;;) {
		if (off >= len)
			return -1;
		uint8_t l = m[off];

		if ((l & 0xc0) == 0xc0) {
			if (off + 1 >= len || ++jumps > PTR_MAX)
				return -1;
			if (!jumped)
				*end = off + 2;
			jumped = true;
			off = (size_t)(l & 0x3f) << 8 | m[off + 1];
			continue;
		}
		if (l & 0xc0)
			return -1; /* extended label types: not used by anyone */
		if (l == 0) {
			if (!jumped)
				*end = off + 1;
			out[o] = '\0';
			return 0;
		}
		if (off + 1 + l > len || o + l + 1 > DNS_NAME_MAX)
			return -1;
		if (o)
			out[o++] = '.';
		for (unsigned i = 0; i < l; i++) {
			uint8_t c = m[off + 1 + i];

			if (c <= 0x20 || c >= 0x7f || c == '.')
				return -1;
			out[o++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
		}
		off += 1u + l;
	}
}

/* Skip a name without decoding it. */
static int name_skip(const uint8_t *m, size_t len, size_t off, size_t *end)
{
	for (;;) {
		if (off >= len)
			return -1;
		uint8_t l = m[off];

		if ((l & 0xc0) == 0xc0) {
			if (off + 1 >= len)
				return -1;
			*end = off + 2;
			return 0;
		}
		if (l & 0xc0)
			return -1;
		if (l == 0) {
			*end = off + 1;
			return 0;
		}
		off += 1u + l;
	}
}

struct rr_pos {
	uint32_t name;	/* offset of the owner name */
	uint32_t rdata; /* offset of the rdata */
	uint16_t type;
	uint16_t rdlen;
	uint32_t ttl;
};

/* Note the records of one section from *off; returns count or -1. */
static int section_scan(const uint8_t *m, size_t len, size_t *off, unsigned count,
			struct rr_pos *pos, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < count; i++) {
		size_t o;

		if (name_skip(m, len, *off, &o) < 0 || o + 10 > len)
			return -1;
		uint16_t rdlen = get16(m + o + 8);

		if (o + 10 + rdlen > len)
			return -1;
		if (n < max) {
			uint32_t ttl = get32(m + o + 4);

			pos[n].name = (uint32_t)*off;
			pos[n].type = get16(m + o);
			/* RFC 2181 §8: a TTL with the top bit set means zero. */
			pos[n].ttl = (ttl & 0x80000000u) ? 0 : ttl;
			pos[n].rdata = (uint32_t)(o + 10);
			pos[n].rdlen = rdlen;
			n++;
		}
		*off = o + 10 + rdlen;
	}
	return (int)n;
}

static const char *rcode_why(unsigned rc)
{
	switch (rc) {
	case RC_FORM:
		return "FORMERR from DNS server";
	case RC_SERV:
		return "SERVFAIL from DNS server";
	case RC_NOTI:
		return "NOTIMP from DNS server";
	case RC_REF:
		return "REFUSED by DNS server";
	default:
		return "unexpected DNS rcode";
	}
}

/*
 * Addresses no mail can go to, whatever the zone says: "this network"
 * (0/8), multicast (224/4) and reserved/broadcast (240/4); for IPv6 the
 * unspecified address and multicast (ff00::/8). Loopback and private
 * ranges stay: labs and internal routes use them.
 */
static bool usable_v4(const uint8_t *a)
{
	return a[0] != 0 && a[0] < 224;
}

static bool usable_v6(const uint8_t *a)
{
	static const uint8_t zero[16];

	return a[0] != 0xff && memcmp(a, zero, 16) != 0;
}

static struct dns_rrset *rrset_alloc(uint16_t qtype, size_t datalen)
{
	struct dns_rrset *rr = calloc(1, sizeof(*rr) + datalen);

	if (rr) {
		rr->refs = 1;
		rr->qtype = qtype;
	}
	return rr;
}

struct dns_rrset *dns_rrset_new_status(uint16_t qtype, enum dns_rr_status status, uint32_t ttl,
				       const char *why)
{
	struct dns_rrset *rr = rrset_alloc(qtype, 0);

	if (rr) {
		rr->status = (uint8_t)status;
		rr->ttl = ttl;
		rr->why = why;
	}
	return rr;
}

void dns_rrset_unref(struct dns_rrset *rr)
{
	if (rr && --rr->refs == 0)
		free(rr);
}

const char *dns_type_name(uint16_t qtype)
{
	switch (qtype) {
	case DNS_T_A:
		return "A";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_MX:
		return "MX";
	case DNS_T_CNAME:
		return "CNAME";
	case DNS_T_SOA:
		return "SOA";
	default:
		return "?";
	}
}

int dns_msg_parse(const uint8_t *m, size_t len, uint16_t qtype, struct dns_rrset **out)
{
	/* Static so that a 512-entry table does not sit on the stack; the
	 * control thread is the only caller. */
	static struct rr_pos an[DNS_RR_MAX];
	struct rr_pos ns[16];
	char cur[DNS_NAME_MAX + 1], owner[DNS_NAME_MAX + 1], tmp[DNS_NAME_MAX + 1];
	size_t off, datalen = 0;
	unsigned rc, nrec = 0, hops = 0;
	uint32_t ttl = UINT32_MAX;
	int nan, nns;
	bool used[DNS_RR_MAX];

	*out = NULL;
	if (len < HDR_LEN || !(m[2] & 0x80) || get16(m + 4) != 1)
		return -EBADMSG;
	rc = m[3] & 0x0f;
	if (name_read(m, len, HDR_LEN, cur, &off) < 0 || off + 4 > len)
		return -EBADMSG;
	if (get16(m + off) != qtype || get16(m + off + 2) != 1 /* IN */)
		return -EBADMSG;
	off += 4;
	nan = section_scan(m, len, &off, get16(m + 6), an, DNS_RR_MAX);
	if (nan < 0)
		return -EBADMSG;
	nns = section_scan(m, len, &off, get16(m + 8), ns, 16);
	if (nns < 0)
		return -EBADMSG;

	if (rc != RC_NOERR && rc != RC_NX) {
		*out = dns_rrset_new_status(qtype, DNS_RR_TEMP, 0, rcode_why(rc));
		return *out ? 0 : -ENOMEM;
	}

	/* Follow the chain: at each step either a CNAME owned by cur moves us
	 * on, or the records of qtype owned by cur are the answer. */
	memset(used, 0, sizeof(used));
	for (;;) {
		bool moved = false;

		for (int i = 0; i < nan; i++) {
			if (an[i].type != DNS_T_CNAME || used[i])
				continue;
			if (name_read(m, len, an[i].name, owner, &(size_t){0}) < 0)
				return -EBADMSG;
			if (strcmp(owner, cur) != 0)
				continue;
			if (name_read(m, len, an[i].rdata, tmp, &(size_t){0}) < 0)
				return -EBADMSG;
			used[i] = true;
			if (++hops > DNS_CNAME_MAX) {
				*out = dns_rrset_new_status(qtype, DNS_RR_TEMP, 0,
							    "CNAME chain too long");
				return *out ? 0 : -ENOMEM;
			}
			if (an[i].ttl < ttl)
				ttl = an[i].ttl;
			memcpy(cur, tmp, sizeof(cur));
			moved = true;
			break;
		}
		if (!moved)
			break;
	}

	/* Size the block: the records of qtype owned by cur. */
	for (int i = 0; i < nan; i++) {
		used[i] = false;
		if (an[i].type != qtype)
			continue;
		if (name_read(m, len, an[i].name, owner, &(size_t){0}) < 0)
			return -EBADMSG;
		if (strcmp(owner, cur) != 0)
			continue;
		if (qtype == DNS_T_A) {
			if (an[i].rdlen != 4)
				return -EBADMSG;
			datalen += 4;
		} else if (qtype == DNS_T_AAAA) {
			if (an[i].rdlen != 16)
				return -EBADMSG;
			datalen += 16;
		} else if (qtype == DNS_T_MX) {
			size_t e;

			if (an[i].rdlen < 3 || name_read(m, len, an[i].rdata + 2, tmp, &e) < 0 ||
			    e != (size_t)an[i].rdata + an[i].rdlen)
				return -EBADMSG;
			datalen += sizeof(struct dns_mx) + strlen(tmp) + 1;
		}
		used[i] = true;
		nrec++;
		if (an[i].ttl < ttl)
			ttl = an[i].ttl;
	}

	struct dns_rrset *rr;

	if (nrec == 0) {
		/* RFC 2308 §5: the negative TTL is the smaller of the SOA's
		 * own TTL and its MINIMUM field. */
		uint32_t neg = 0;

		for (int i = 0; i < nns; i++) {
			if (ns[i].type == DNS_T_SOA && ns[i].rdlen >= 22) {
				uint32_t min = get32(m + ns[i].rdata + ns[i].rdlen - 4);

				neg = ns[i].ttl < min ? ns[i].ttl : min;
				break;
			}
		}
		size_t cl = (rc == RC_NOERR && hops) ? strlen(cur) + 1 : 0;

		rr = rrset_alloc(qtype, cl);
		if (!rr)
			return -ENOMEM;
		rr->status = rc == RC_NX ? DNS_RR_NXDOMAIN : DNS_RR_NODATA;
		rr->ttl = neg;
		rr->hops = (uint16_t)hops;
		if (cl) {
			memcpy(rr->data, cur, cl);
			rr->cname = (const char *)rr->data;
			if (ttl < rr->ttl)
				rr->ttl = ttl;
		}
		*out = rr;
		return 0;
	}

	rr = rrset_alloc(qtype, datalen);
	if (!rr)
		return -ENOMEM;
	rr->status = DNS_RR_OK;
	rr->ttl = ttl;
	rr->hops = (uint16_t)hops;

	size_t names = (size_t)nrec * sizeof(struct dns_mx);
	unsigned k = 0;

	for (int i = 0; i < nan; i++) {
		if (!used[i])
			continue;
		if (qtype == DNS_T_A) {
			if (!usable_v4(m + an[i].rdata)) {
				rr->dropped++;
				continue;
			}
			memcpy(rr->data + 4 * k, m + an[i].rdata, 4);
		} else if (qtype == DNS_T_AAAA) {
			if (!usable_v6(m + an[i].rdata)) {
				rr->dropped++;
				continue;
			}
			memcpy(rr->data + 16 * k, m + an[i].rdata, 16);
		} else {
			struct dns_mx *mx = (struct dns_mx *)(void *)rr->data + k;
			size_t nl;

			(void)name_read(m, len, an[i].rdata + 2, tmp, &(size_t){0});
			nl = strlen(tmp) + 1;
			mx->pref = get16(m + an[i].rdata);
			mx->off = (uint32_t)names;
			memcpy(rr->data + names, tmp, nl);
			names += nl;
		}
		k++;
	}
	rr->n = (uint16_t)k;
	if (k == 0) {
		/* Only unusable addresses: as good as none. */
		rr->status = DNS_RR_NODATA;
	}

	if (qtype == DNS_T_MX) {
		/* RFC 7505: "0 ." alone is a null MX; "." among real
		 * exchangers is an error in the zone and is dropped. */
		unsigned w = 0;

		for (unsigned i = 0; i < rr->n; i++) {
			struct dns_mx *mx = (struct dns_mx *)(void *)rr->data + i;

			if (rr->data[mx->off] == '\0')
				continue;
			((struct dns_mx *)(void *)rr->data)[w++] = *mx;
		}
		if (w == 0) {
			rr->null_mx = 1;
			rr->n = 0;
		} else {
			rr->n = (uint16_t)w;
		}
	}
	*out = rr;
	return 0;
}
