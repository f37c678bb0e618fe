/*
 * queue_env.h - a message's envelope and its versioned on-disk record.
 *
 * SYNOPSIS
 *	struct queue_env env = {0};
 *	queue_env_add_rcpt(&env, "user@example.org", NULL, QUEUE_NOTIFY_DEFAULT);
 *	len = queue_env_encode(&env, buf, cap);
 *	rc = queue_env_decode(buf, len, &out);  ... queue_env_release(&out);
 *
 * DESCRIPTION
 *	The envelope holds what SMTP needs besides the message bytes: the
 *	sender, each recipient with its DSN parameters (RFC 3461 NOTIFY and
 *	ORCPT), RET and ENVID, the arrival time and size, body flags
 *	(8BITMIME, SMTPUTF8) and per-recipient delivery state; and what
 *	traffic control reads: the egress pool, the priority lane and the
 *	tenant (campaign) tag, set at injection (queue_msg_take_fields(),
 *	[user NAME] defaults, dmta-inject's JSON fields).
 *
 *	The record layout is described in queue/FORMAT.md. Every record carries
 *	a magic, a version and a CRC32C; a record that fails any check decodes
 *	to -EBADMSG (the spool quarantines it) and never to undefined
 *	behaviour. Version 2 added the priority and the pool and tenant
 *	strings; a record without them is written as version 1, so the
 *	spool a message without them lands in stays readable by the
 *	previous release, and version 1 records decode with the defaults.
 *
 *	Ownership: an envelope built with queue_env_add_rcpt() and
 *	queue_env_set_*() owns its strings; free it with queue_env_free(). A
 *	decoded envelope points into the record it was decoded from (strings
 *	are stored NUL-terminated), owns only its recipient array, and is
 *	released with queue_env_release(); queue_env_dup() makes an owning copy.
 */
#ifndef QUEUE_ENV_H
#define QUEUE_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_ENV_VERSION 2 /* the newest record version written and read */

/* Priority lanes of a destination's queue: high first, then normal, then bulk. */
enum queue_prio {
	QUEUE_PRIO_NORMAL = 0, /* the default: 0 in records without one */
	QUEUE_PRIO_HIGH = 1,
	QUEUE_PRIO_BULK = 2,
};
#define QUEUE_PRIO_MAX QUEUE_PRIO_BULK

/* Pool and tenant names: 1 to this many of [A-Za-z0-9._-]. */
#define QUEUE_TAG_MAX 64

/* RFC 3461 NOTIFY; 0 means "not given" (the MTA's default: FAILURE,DELAY). */
#define QUEUE_NOTIFY_DEFAULT 0x0
#define QUEUE_NOTIFY_SUCCESS 0x1
#define QUEUE_NOTIFY_FAILURE 0x2
#define QUEUE_NOTIFY_DELAY   0x4
#define QUEUE_NOTIFY_NEVER   0x8

enum queue_ret {
	QUEUE_RET_DEFAULT = 0,
	QUEUE_RET_FULL = 1,
	QUEUE_RET_HDRS = 2,
};

/* Message flags. */
#define QUEUE_F_8BITMIME 0x01 /* the body has octets >= 0x80 */
#define QUEUE_F_SMTPUTF8 0x02 /* addresses or headers need RFC 6531 */
#define QUEUE_F_HOLD	 0x04 /* on hold: never scheduled until released */
#define QUEUE_F_DSN	 0x08 /* a delivery status notification: never bounced */
#define QUEUE_F_WARNED	 0x10 /* a delay warning was sent */
#define QUEUE_F_ALL	 0x1f

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0,	  /* not tried yet */
	QUEUE_RCPT_DELIVERED = 1, /* final: accepted by the next hop */
	QUEUE_RCPT_DEFERRED = 2,  /* tried, temporary failure; will retry */
	QUEUE_RCPT_BOUNCED = 3,	  /* final: failed for good; DSN due or sent */
};

#define QUEUE_RCPT_F_DSN_SENT 0x1 /* the bounce for this recipient is queued */

struct queue_rcpt {
	const char *addr;  /* RFC 5321 mailbox, never NULL */
	const char *orcpt; /* RFC 3461 ORCPT "type;xtext" or NULL */
	const char *reply; /* last SMTP reply (or local reason) or NULL */
	uint8_t notify;	   /* QUEUE_NOTIFY_* */
	uint8_t state;	   /* enum queue_rcpt_state */
	uint8_t rflags;	   /* QUEUE_RCPT_F_* */
	uint32_t attempts;
	uint64_t last_attempt_ns; /* wall clock, 0 if never tried */
};

struct queue_env {
	uint64_t qid;		  /* assigned by the spool */
	uint32_t flags;		  /* QUEUE_F_* */
	uint8_t ret;		  /* enum queue_ret */
	uint64_t arrival_ns;	  /* wall clock */
	uint64_t size;		  /* message bytes */
	uint64_t next_attempt_ns; /* wall clock; the scheduler's index key */
	uint32_t attempts;	  /* delivery attempts of the message */
	const char *sender;	  /* "" for the null sender <> */
	const char *envid;	  /* RFC 3461 ENVID (xtext-decoded) or NULL */
	const char *pool;	  /* the egress pool ([pool NAME]), NULL: the default */
	const char *tenant;	  /* a tenant or campaign tag, NULL: none */
	uint8_t priority;	  /* enum queue_prio */
	uint32_t nrcpt;
	struct queue_rcpt *rcpt;
	/* private */
	bool owned; /* strings are ours (malloc), not views of a record */
	uint32_t cap;
	/* queue_env_dup(): the recipients and strings in one block, freed
	 * with the envelope; what is set later is allocated on its own. */
	char *pack;
	size_t pack_len;
};

/** Human name of a recipient state ("pending", ...). */
const char *queue_rcpt_state_name(unsigned state);

/** "normal", "high" or "bulk" ("unknown" for anything else). */
const char *queue_prio_name(unsigned prio);
/** The enum queue_prio named by @p s (case-insensitive), or -1 when unknown. */
int queue_prio_parse(const char *s);

/**
 * Check a pool or tenant name: 1 to QUEUE_TAG_MAX characters of
 * [A-Za-z0-9._-]. 0, or -EINVAL with *@p why set to a static reason.
 */
int queue_tag_check(const char *s, const char **why);

/** Set the pool (checked, copied; NULL: the default pool). 0, -EINVAL
 *  (a bad name: the envelope is unchanged) or -ENOMEM. */
int queue_env_set_pool(struct queue_env *env, const char *pool);
/** Set the tenant tag, as queue_env_set_pool(). */
int queue_env_set_tenant(struct queue_env *env, const char *tenant);

/** Set the sender (copied); owning envelopes only. 0 or -ENOMEM. */
int queue_env_set_sender(struct queue_env *env, const char *sender);
/** Set the ENVID (copied, may be NULL). 0 or -ENOMEM. */
int queue_env_set_envid(struct queue_env *env, const char *envid);
/** Append a recipient (strings copied; orcpt may be NULL). 0 or -ENOMEM. */
int queue_env_add_rcpt(struct queue_env *env, const char *addr, const char *orcpt, uint8_t notify);
/** Set a recipient's last reply (copied, owning envelopes). 0 or -ENOMEM. */
int queue_env_set_reply(struct queue_env *env, uint32_t i, const char *reply);

/** An owning deep copy of @p src into @p dst. 0 or -ENOMEM. */
int queue_env_dup(struct queue_env *dst, const struct queue_env *src);
/** An owning copy of @p src with only its recipients @p idx[0..n), in that
 *  order (all of them, in order, for a NULL @p idx). 0 or -ENOMEM. */
int queue_env_dup_some(struct queue_env *dst, const struct queue_env *src, const uint32_t *idx,
		       uint32_t n);

/** Free an owning envelope (or release a decoded one) and zero it. */
void queue_env_free(struct queue_env *env);
/** Release a decoded envelope (frees the recipient array only). */
void queue_env_release(struct queue_env *env);

/** Bytes queue_env_encode() needs for @p env. */
size_t queue_env_encoded_size(const struct queue_env *env);

/**
 * Encode @p env into @p buf (@p cap bytes). Returns the length written, or
 * -ENOSPC when @p cap is too small, -EINVAL when a field cannot be stored.
 */
long queue_env_encode(const struct queue_env *env, void *buf, size_t cap);

/**
 * Decode a record. Strings point into @p buf, which must stay alive and
 * unchanged while @p env is used. Returns 0, -EBADMSG (bad magic, version,
 * checksum, length or string), or -ENOMEM. On error @p env is zeroed.
 */
int queue_env_decode(const void *buf, size_t len, struct queue_env *env);

/** True when some recipient is pending or deferred. */
bool queue_env_active(const struct queue_env *env);

/** The domain part of @p addr (after the last '@'), "" for none. */
const char *queue_addr_domain(const char *addr);

/** CRC32C (Castagnoli) of @p len bytes, continuing from @p crc (start at 0). */
uint32_t queue_crc32c(uint32_t crc, const void *p, size_t len);

/** Format a queue id ("%012llX") into @p buf (at least 17 bytes); returns buf. */
char *queue_id_fmt(uint64_t qid, char *buf);
/** Parse a queue id; 0 or -EINVAL. */
int queue_id_parse(const char *s, uint64_t *qid);

#endif
