/*
 * wire_dir.c - one direction of dmta-wire: decisions, rate limiter, delay
 * queue, frame buffers.
 *
 * SYNOPSIS
 *	See wire.h.
 *
 * DESCRIPTION
 *	Buffers: one allocation of limit * bufsize bytes (malloc maps it lazily,
 *	so an idle wire touches little memory) and a stack of free indexes.
 *
 *	Queue: a binary min-heap keyed by (release time, sequence). The
 *	sequence number breaks ties in arrival order, so frames with equal
 *	release times (no delay, or a duplicate and its original) keep FIFO.
 *
 *	PRNG: xoshiro256** seeded through splitmix64, per direction. Each
 *	submitted frame takes exactly WIRE_DRAWS draws, whatever happens to it,
 *	so one decision never shifts the stream of the next frames.
 *
 *	Rate: GCRA, the virtual-time form of a token bucket. tat is the
 *	theoretical arrival time of the next frame; a frame of L bytes costs
 *	T = L * 8 / rate seconds and leaves at max(now, tat + T - tau), tau being
 *	the bucket depth in time (at least one frame). A frame that would leave later than now +
 *	queue is dropped and costs nothing, which models a tail-drop queue
 *	bounded in time (bytes = queue * rate).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_log.h"
#include "tools/wire/wire.h"

#define WIRE_DRAWS    7
#define WIRE_ETH_HLEN 14

struct wire_ent {
	uint64_t release_ns;
	uint64_t seq;
	uint32_t slot;
	uint32_t len;
};

struct wire_dir {
	struct wire_params p;
	uint64_t rng[4];
	size_t bufsize;
	uint8_t *pool;
	uint32_t nslots;
	uint32_t *free; /* stack of free slot indexes */
	uint32_t nfree;
	struct wire_ent *heap;
	uint32_t nheap;
	uint64_t seq;
	uint64_t fifo_tail_ns; /* release time of the last in-order frame */
	uint64_t tat_ns;       /* GCRA theoretical arrival time */
	struct wire_counters c;
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* True with probability ppb / 1e9, from one 64-bit draw. */
static inline bool chance(uint64_t draw, uint32_t ppb)
{
	return (((draw >> 32) * (uint64_t)WIRE_PPB) >> 32) < ppb;
}

/* A draw mapped onto [0, n). */
static inline uint64_t below(uint64_t draw, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)draw * n) >> 64);
}

struct wire_dir *wire_dir_create(const struct wire_params *p, uint64_t seed, size_t bufsize)
{
	struct wire_dir *d;
	uint64_t x = seed;

	if (p == NULL || p->limit == 0 || bufsize < WIRE_ETH_HLEN || bufsize > (1u << 20)) {
		errno = EINVAL;
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->p = *p;
	d->bufsize = bufsize;
	d->nslots = p->limit;
	d->pool = malloc((size_t)p->limit * bufsize);
	d->free = calloc(p->limit, sizeof(*d->free));
	d->heap = calloc(p->limit, sizeof(*d->heap));
	if (d->pool == NULL || d->free == NULL || d->heap == NULL) {
		wire_dir_destroy(d);
		errno = ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < d->nslots; i++)
		d->free[i] = d->nslots - 1 - i;
	d->nfree = d->nslots;
	for (int i = 0; i < 4; i++)
		d->rng[i] = splitmix64(&x);
	return d;
}

void wire_dir_destroy(struct wire_dir *d)
{
	if (d == NULL)
		return;
	free(d->pool);
	free(d->free);
	free(d->heap);
	free(d);
}

size_t wire_dir_bufsize(const struct wire_dir *d)
{
	return d->bufsize;
}

static uint32_t slot_of(const struct wire_dir *d, const uint8_t *buf)
{
	size_t off;

	if (buf < d->pool || buf >= d->pool + (size_t)d->nslots * d->bufsize)
		dmta_panic("wire: buffer %p is not from this direction", (const void *)buf);
	off = (size_t)(buf - d->pool);
	if (off % d->bufsize != 0)
		dmta_panic("wire: buffer %p is not a buffer start", (const void *)buf);
	return (uint32_t)(off / d->bufsize);
}

uint8_t *wire_dir_buf_get(struct wire_dir *d)
{
	if (d->nfree == 0)
		return NULL;
	return d->pool + (size_t)d->free[--d->nfree] * d->bufsize;
}

void wire_dir_buf_put(struct wire_dir *d, uint8_t *buf)
{
	if (d->nfree >= d->nslots)
		dmta_panic("wire: more buffers returned than taken");
	d->free[d->nfree++] = slot_of(d, buf);
}

static inline bool ent_before(const struct wire_ent *a, const struct wire_ent *b)
{
	return a->release_ns < b->release_ns || (a->release_ns == b->release_ns && a->seq < b->seq);
}

static void heap_push(struct wire_dir *d, struct wire_ent e)
{
	uint32_t i = d->nheap++;

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!ent_before(&e, &d->heap[parent]))
			break;
		d->heap[i] = d->heap[parent];
		i = parent;
	}
	d->heap[i] = e;
}

static struct wire_ent heap_pop(struct wire_dir *d)
{
	struct wire_ent top = d->heap[0], last = d->heap[--d->nheap];
	uint32_t i = 0, n = d->nheap;

	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		const struct wire_ent *best = &last;

		if (l < n && ent_before(&d->heap[l], best)) {
			m = l;
			best = &d->heap[l];
		}
		if (l + 1 < n && ent_before(&d->heap[l + 1], best))
			m = l + 1;
		if (m == i)
			break;
		d->heap[i] = d->heap[m];
		i = m;
	}
	if (n > 0)
		d->heap[i] = last;
	return top;
}

/*
 * The rate limiter: when may a frame of len bytes leave, or UINT64_MAX if
 * it would wait longer than the queue allows (it is then not charged).
 */
static uint64_t rate_admit(struct wire_dir *d, size_t len, uint64_t now)
{
	uint64_t cost, tau, tat, t_send;

	if (d->p.rate_bps == 0)
		return now;
	cost = (uint64_t)(((unsigned __int128)len * 8 * 1000000000ull) / d->p.rate_bps);
	tau = (uint64_t)(((unsigned __int128)d->p.burst_bytes * 8 * 1000000000ull) / d->p.rate_bps);
	/*
	 * A bucket of `burst` bytes holds at least one frame (burst 0 is strict
	 * pacing): the frame may leave once tat - now <= depth - cost.
	 */
	if (tau < cost)
		tau = cost;
	tat = d->tat_ns > now ? d->tat_ns : now;
	t_send = tat + cost > now + tau ? tat + cost - tau : now;
	if (t_send - now > d->p.queue_ns) {
		d->c.rate_dropped++;
		return UINT64_MAX;
	}
	d->tat_ns = tat + cost;
	return t_send;
}

/* Queue one frame (original or copy) through the rate limiter and delay. */
static int enqueue(struct wire_dir *d, uint32_t slot, size_t len, uint64_t now, bool reorder,
		   uint64_t jitter_draw)
{
	struct wire_ent e = {.slot = slot, .len = (uint32_t)len};
	uint64_t t_send = rate_admit(d, len, now);

	if (t_send == UINT64_MAX) {
		d->free[d->nfree++] = slot;
		return 0;
	}
	if (reorder && d->p.delay_ns > 0) {
		e.release_ns = t_send;
	} else if (reorder) {
		e.release_ns = t_send + WIRE_REORDER_HOLD_NS;
	} else {
		uint64_t delay = d->p.delay_ns;

		if (d->p.jitter_ns > 0) {
			/* Uniform in [-jitter, +jitter], netem's default table. */
			uint64_t j = below(jitter_draw, 2 * d->p.jitter_ns + 1);

			delay = delay + j > d->p.jitter_ns ? delay + j - d->p.jitter_ns : 0;
		}
		e.release_ns = t_send + delay;
		if (e.release_ns < d->fifo_tail_ns)
			e.release_ns = d->fifo_tail_ns;
		d->fifo_tail_ns = e.release_ns;
	}
	if (reorder)
		d->c.reordered++;
	if (e.release_ns > now)
		d->c.delayed++;
	e.seq = d->seq++;
	heap_push(d, e);
	return 1;
}

int wire_dir_submit(struct wire_dir *d, uint8_t *buf, size_t len, uint64_t now)
{
	uint64_t draw[WIRE_DRAWS];
	uint32_t slot = slot_of(d, buf), copy_slot = 0;
	bool dup;
	int queued = 0;

	for (int i = 0; i < WIRE_DRAWS; i++)
		draw[i] = rng_next(d->rng);
	if (len > d->bufsize)
		dmta_panic("wire: frame of %zu bytes in a %zu-byte buffer", len, d->bufsize);
	d->c.rx++;
	if (chance(draw[0], d->p.loss_ppb)) {
		d->c.lost++;
		d->free[d->nfree++] = slot;
		return 0;
	}
	dup = chance(draw[1], d->p.dup_ppb);
	if (dup) {
		if (d->nfree == 0) {
			d->c.overflow++;
			dup = false;
		} else {
			copy_slot = d->free[--d->nfree];
			memcpy(d->pool + (size_t)copy_slot * d->bufsize, buf, len);
			d->c.duplicated++;
		}
	}
	if (chance(draw[2], d->p.corrupt_ppb) && len > WIRE_ETH_HLEN) {
		size_t at = WIRE_ETH_HLEN + below(draw[3], len - WIRE_ETH_HLEN);

		buf[at] ^= (uint8_t)(1u << (draw[3] & 7));
		d->c.corrupted++;
	}
	queued += enqueue(d, slot, len, now, chance(draw[4], d->p.reorder_ppb), draw[5]);
	if (dup)
		queued += enqueue(d, copy_slot, len, now, false, draw[6]);
	return queued;
}

uint8_t *wire_dir_take(struct wire_dir *d, uint64_t now, size_t *len)
{
	struct wire_ent e;

	if (d->nheap == 0 || d->heap[0].release_ns > now)
		return NULL;
	e = heap_pop(d);
	*len = e.len;
	return d->pool + (size_t)e.slot * d->bufsize;
}

void wire_dir_done(struct wire_dir *d, uint8_t *buf, bool sent)
{
	if (sent)
		d->c.forwarded++;
	else
		d->c.tx_errors++;
	wire_dir_buf_put(d, buf);
}

uint64_t wire_dir_next_ns(const struct wire_dir *d)
{
	return d->nheap == 0 ? UINT64_MAX : d->heap[0].release_ns;
}

size_t wire_dir_queued(const struct wire_dir *d)
{
	return d->nheap;
}

struct wire_counters *wire_dir_counters(struct wire_dir *d)
{
	return &d->c;
}

int wire_csum_complete(uint8_t *frame, size_t len, size_t start, size_t offset)
{
	uint64_t sum = 0;
	uint16_t folded;
	size_t i;

	if (start >= len || offset > len - start || len - start - offset < 2)
		return -EINVAL;
	for (i = start; i + 1 < len; i += 2)
		sum += (uint32_t)frame[i] << 8 | frame[i + 1];
	if (i < len)
		sum += (uint32_t)frame[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	folded = (uint16_t)~sum;
	/* A computed zero goes out as 0xffff, as the kernel does (UDP: 0 = none). */
	if (folded == 0)
		folded = 0xffff;
	frame[start + offset] = (uint8_t)(folded >> 8);
	frame[start + offset + 1] = (uint8_t)folded;
	return 0;
}
