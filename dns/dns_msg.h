/*
 * dns_msg.h - DNS replies turned into record sets (RFC 1035, 2181, 2308, 7505).
 *
 * SYNOPSIS
 *	rc = dns_msg_parse(msg, len, qtype, &rr);
 *	n = rr->n;  dns_rrset_mx(rr, i);  dns_rrset_v4(rr, i);  dns_rrset_v6(rr, i);
 *	dns_rrset_ref(rr);  dns_rrset_unref(rr);
 *
 * DESCRIPTION
 *	dns_msg_parse() reads one reply to a single-question query of type
 *	@qtype (A, AAAA or MX) and returns the answer for the question name as
 *	a record set: the records of @qtype owned by the end of the CNAME chain
 *	found in the answer section (at most DNS_CNAME_MAX hops), their TTL
 *	(the smallest along the chain, RFC 2181 §5.2), and a status:
 *
 *	DNS_RR_OK	records found.
 *	DNS_RR_NODATA	the name exists but has no such records; ttl is the
 *			negative TTL, min(SOA TTL, SOA MINIMUM) from the
 *			authority section (RFC 2308 §5), 0 when no SOA came.
 *			When the answer ends in a CNAME whose target has no
 *			records in this message, cname names that target so
 *			the caller can ask for it.
 *	DNS_RR_NXDOMAIN	the name (or the chain's end) does not exist;
 *			negative TTL as for NODATA.
 *	DNS_RR_TEMP	SERVFAIL, REFUSED, NOTIMP, FORMERR or any other rcode:
 *			why says which.
 *
 *	Addresses no mail can go to (0.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4,
 *	::, ff00::/8) are left out and counted in dropped; a set left empty
 *	by that is NODATA.
 *
 *	For MX, a set made of the single record "0 ." is a null MX (RFC 7505):
 *	null_mx is set and n is 0. A "." target among other records is
 *	dropped. Names are returned in lower case without the final dot.
 *
 *	A record set is one allocation with a reference count: the cache
 *	holds one reference, each request that uses it another.
 *
 * DIAGNOSTICS
 *	dns_msg_parse() returns 0, -EBADMSG for a malformed message (bad
 *	header, question that is not the one asked, names that run past the
 *	end or loop, rdata of the wrong size), or -ENOMEM.
 */
#ifndef DNS_MSG_H
#define DNS_MSG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_T_A	    1
#define DNS_T_CNAME 5
#define DNS_T_SOA   6
#define DNS_T_MX    15
#define DNS_T_AAAA  28

#define DNS_CNAME_MAX 8 /* CNAME hops followed, in one reply and across replies */
/* Answer records looked at in one reply: every record a 64 KiB message can
 * hold (12 bytes at the least each), so that the best exchangers of a
 * domain with thousands are never among those left unread. */
#define DNS_RR_MAX   5462
#define DNS_NAME_MAX 255 /* presentation length without the final dot, plus NUL */

enum dns_rr_status {
	DNS_RR_OK = 0,
	DNS_RR_NODATA,
	DNS_RR_NXDOMAIN,
	DNS_RR_TEMP,
};

/** One MX record as stored in a record set; the name is dns_rrset_mx_name(). */
struct dns_mx {
	uint16_t pref;
	/* Of the NUL-terminated name from data[]: 32 bits, as DNS_RR_MAX
	 * names of up to 255 bytes pass 64 KiB. */
	uint32_t off;
};

struct dns_rrset {
	uint32_t refs;
	uint16_t qtype;
	uint8_t status;	   /* enum dns_rr_status */
	uint8_t null_mx;   /* MX only: the set was "0 ." */
	uint32_t ttl;	   /* seconds: positive or negative TTL as received */
	uint16_t n;	   /* records in data[] */
	uint16_t hops;	   /* CNAME hops followed to get here */
	uint16_t dropped;  /* A/AAAA: unusable addresses left out (0/8, multicast, ...) */
	const char *why;   /* DNS_RR_TEMP: a static reason */
	const char *cname; /* NODATA: a dangling CNAME target (inside this block) */
	uint8_t data[] __attribute__((aligned(8)));
};

int dns_msg_parse(const uint8_t *msg, size_t len, uint16_t qtype, struct dns_rrset **out);

/** A record set with no records, for failures that came without a reply. */
struct dns_rrset *dns_rrset_new_status(uint16_t qtype, enum dns_rr_status status, uint32_t ttl,
				       const char *why);

static inline void dns_rrset_ref(struct dns_rrset *rr)
{
	rr->refs++;
}

void dns_rrset_unref(struct dns_rrset *rr);

static inline const struct in_addr *dns_rrset_v4(const struct dns_rrset *rr, unsigned i)
{
	return (const struct in_addr *)(const void *)rr->data + i;
}

static inline const struct in6_addr *dns_rrset_v6(const struct dns_rrset *rr, unsigned i)
{
	return (const struct in6_addr *)(const void *)rr->data + i;
}

static inline const struct dns_mx *dns_rrset_mx(const struct dns_rrset *rr, unsigned i)
{
	return (const struct dns_mx *)(const void *)rr->data + i;
}

static inline const char *dns_rrset_mx_name(const struct dns_rrset *rr, unsigned i)
{
	return (const char *)rr->data + dns_rrset_mx(rr, i)->off;
}

/** "MX", "A", "AAAA", ... for messages. */
const char *dns_type_name(uint16_t qtype);

#endif
