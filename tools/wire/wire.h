/*
 * wire.h - the pure parts of dmta-wire: spec parsing and the per-direction
 * impairment engine (no sockets, no clocks of its own).
 *
 * SYNOPSIS
 *	int wire_spec_parse(text, spec, err, errlen);
 *
 *	struct wire_dir *wire_dir_create(params, seed, bufsize);
 *	uint8_t *wire_dir_buf_get(dir);		a free frame buffer, or NULL
 *	void wire_dir_buf_put(dir, buf);	give an unused buffer back
 *	int wire_dir_submit(dir, buf, len, now);	frames queued (0, 1 or 2)
 *	uint8_t *wire_dir_take(dir, now, &len);	next frame due, or NULL
 *	void wire_dir_done(dir, buf, sent);	after transmitting a taken frame
 *	uint64_t wire_dir_next_ns(dir);		earliest release, UINT64_MAX if none
 *	void wire_dir_destroy(dir);
 *
 *	int wire_csum_complete(frame, len, start, offset);
 *	ssize_t wire_tso_segment(frame, len, mss, idx, out, cap);
 *	size_t wire_l3_len(frame, len);
 *	ssize_t wire_mtu_icmp(frame, len, mtu, src, out, cap);
 *
 * DESCRIPTION
 *	A direction (a2b or b2a) owns a pool of `limit` frame buffers of
 *	`bufsize` bytes and a release queue ordered by (release time, arrival
 *	sequence). The caller receives a frame into a buffer from
 *	wire_dir_buf_get() and hands it to wire_dir_submit() with the current
 *	time; the engine decides, from its seeded PRNG, whether the frame is
 *	lost, duplicated, corrupted or reordered, passes it through the rate
 *	limiter and the delay line, and queues it. wire_dir_take() hands out
 *	frames whose release time has come, in release order; the caller
 *	transmits them and calls wire_dir_done().
 *
 *	Time is whatever the caller says it is (nanoseconds, monotonic), so the
 *	unit tests drive the engine with a fake clock. Decisions depend only on
 *	the seed and the order of frames: every submitted frame consumes the
 *	same number of PRNG draws whatever happens to it.
 *
 *	Pipeline of one frame, in this order:
 *	  loss      -> dropped (counted "lost");
 *	  duplicate -> a copy (uncorrupted) follows the frame through the rest;
 *	  corrupt   -> one bit flipped in one byte after the Ethernet header;
 *	  rate      -> token bucket (GCRA): the frame leaves the bucket at
 *	               t_send >= now; if it would wait longer than `queue`, it
 *	               is dropped ("rate_dropped");
 *	  delay     -> release = t_send + delay + U(-jitter, +jitter), clamped
 *	               to >= t_send and to >= the previous in-order release, so
 *	               jitter never reorders (like netem with a rate, or with a
 *	               pfifo child). The price: when frames come faster
 *	               than the jitter spreads them, the delay drifts toward
 *	               delay + jitter (1 frame/ms, 20ms +- 10ms: mean 25ms);
 *	  reorder   -> the frame skips the delay line: release = t_send, ahead
 *	               of every frame still being delayed. With no delay it is
 *	               held back WIRE_REORDER_HOLD_NS instead, so the frames of
 *	               the next millisecond overtake it.
 *
 *	A path MTU (`mtu`, `icmp`) is the caller's to apply before it
 *	submits a frame (it needs both directions: the ICMP answer goes back
 *	through the other one): wire_l3_len() and wire_mtu_icmp() in
 *	wire_mtu.c.
 *
 *	Probabilities are stored in parts per billion, times in nanoseconds.
 *
 * DIAGNOSTICS
 *	wire_spec_parse() returns 0, or -1 with one line in err. The engine
 *	counts everything it does in struct wire_counters.
 */
#ifndef WIRE_H
#define WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WIRE_PPB	      1000000000u
#define WIRE_DEFAULT_LIMIT    10000u
#define WIRE_DEFAULT_QUEUE_NS (50ull * 1000000ull)
#define WIRE_REORDER_HOLD_NS  (1ull * 1000000ull)
#define WIRE_DIR_A2B	      0
#define WIRE_DIR_B2A	      1
#define WIRE_MTU_MIN	      68 /* RFC 791: every IPv4 hop forwards 68 bytes */

/** The impairments of one direction. */
struct wire_params {
	uint32_t loss_ppb;
	uint32_t reorder_ppb;
	uint32_t dup_ppb;
	uint32_t corrupt_ppb;
	uint64_t delay_ns;
	uint64_t jitter_ns;
	uint64_t rate_bps;    /**< bits per second; 0: unlimited */
	uint64_t burst_bytes; /**< token bucket depth; 0: strict pacing */
	uint64_t queue_ns;    /**< longest wait in the rate limiter */
	uint32_t limit;	      /**< frames held per direction */
	uint32_t mtu;	      /**< largest layer-3 size forwarded; 0: no limit */
	bool icmp;	      /**< answer larger IPv4 frames with DF by ICMP */
	uint32_t icmp_src;    /**< its source (network order); 0: the quoted destination */
};

/** Both directions, as parsed from a spec. */
struct wire_spec {
	struct wire_params dir[2];
};

struct wire_counters {
	uint64_t rx;	       /**< frames submitted */
	uint64_t forwarded;    /**< frames transmitted (copies included) */
	uint64_t lost;	       /**< dropped by `loss` */
	uint64_t delayed;      /**< queued with a release time in the future */
	uint64_t reordered;    /**< sent out of order by `reorder` */
	uint64_t duplicated;   /**< extra copies made by `duplicate` */
	uint64_t corrupted;    /**< frames with a flipped bit */
	uint64_t rate_dropped; /**< the rate limiter's queue was full */
	uint64_t overflow;     /**< no free buffer (more than `limit` held) */
	uint64_t oversize;     /**< refused: larger than a buffer, or GSO */
	uint64_t tx_errors;    /**< transmission failed */
	uint64_t too_big;      /**< dropped: larger than `mtu` */
	uint64_t icmp_sent;    /**< "fragmentation needed" sent back for them */
};

struct wire_dir;

/** Fill params with the defaults: no impairment, limit and queue set. */
void wire_params_default(struct wire_params *p);

/**
 * Parse SPEC into spec (see dmta_wire.c's header for the grammar).
 * Returns 0, or -1 with a one-line reason in err.
 */
int wire_spec_parse(const char *text, struct wire_spec *spec, char *err, size_t errlen);

/** Write a spec back in the grammar (for logs). Returns snprintf's count. */
int wire_params_format(const struct wire_params *p, char *buf, size_t len);

/**
 * A direction with params p, PRNG seeded from seed, and p->limit buffers of
 * bufsize bytes. NULL and errno on failure (EINVAL, ENOMEM).
 */
struct wire_dir *wire_dir_create(const struct wire_params *p, uint64_t seed, size_t bufsize);

void wire_dir_destroy(struct wire_dir *d);

/** Bytes per buffer, as given to wire_dir_create(). */
size_t wire_dir_bufsize(const struct wire_dir *d);

/** A free buffer to receive into, or NULL when all `limit` are held. */
uint8_t *wire_dir_buf_get(struct wire_dir *d);

/** Return a buffer from wire_dir_buf_get() that was not submitted. */
void wire_dir_buf_put(struct wire_dir *d, uint8_t *buf);

/**
 * Submit a received frame of len bytes in buf (a buffer of this direction,
 * now owned by the engine) at time now. Returns how many frames were
 * queued: 0 (lost or rate-dropped), 1, or 2 (duplicated).
 */
int wire_dir_submit(struct wire_dir *d, uint8_t *buf, size_t len, uint64_t now);

/**
 * The next frame whose release time is <= now, removed from the queue;
 * NULL when none is due. The caller owns the buffer until wire_dir_done().
 */
uint8_t *wire_dir_take(struct wire_dir *d, uint64_t now, size_t *len);

/** Give back a taken buffer; sent says whether transmission worked. */
void wire_dir_done(struct wire_dir *d, uint8_t *buf, bool sent);

/** Earliest release time queued, UINT64_MAX when the queue is empty. */
uint64_t wire_dir_next_ns(const struct wire_dir *d);

/** Frames queued. */
size_t wire_dir_queued(const struct wire_dir *d);

/** The direction's counters (the caller may add oversize/tx errors). */
struct wire_counters *wire_dir_counters(struct wire_dir *d);

/**
 * Complete a checksum the sender left to the hardware (CHECKSUM_PARTIAL):
 * sum frame[start..len) and store the folded complement at start+offset,
 * as the kernel's skb_checksum_help() does. 0, or -EINVAL when the offsets
 * do not fit in the frame.
 */
int wire_csum_complete(uint8_t *frame, size_t len, size_t start, size_t offset);

/**
 * Segment idx of a TCP super-frame (TSO), cut at mss payload bytes, into
 * out (cap bytes). Returns its length, 0 past the last segment, -EINVAL
 * when the frame is not Ethernet/IPv4-or-IPv6/TCP or out is too small.
 * See wire_tso.c.
 */
ssize_t wire_tso_segment(const uint8_t *frame, size_t len, size_t mss, size_t idx, uint8_t *out,
			 size_t cap);

/** Bytes above Ethernet (and one VLAN tag) in a frame: what an MTU limits. */
size_t wire_l3_len(const uint8_t *frame, size_t len);

/**
 * The ICMP "fragmentation needed" (type 3 code 4, next-hop MTU @p mtu) a
 * router sends back for an IPv4 frame over @p mtu with DF set, built in
 * @p out (@p cap bytes) from source address @p src (network byte order;
 * 0: the quoted packet's destination). Returns its length, 0 when no
 * ICMP is due (see wire_mtu.c), -EINVAL when out is too small.
 */
ssize_t wire_mtu_icmp(const uint8_t *frame, size_t len, uint32_t mtu, uint32_t src, uint8_t *out,
		      size_t cap);

#endif
