/*
 * tcp_wire.c - the in-memory wire; see tcp_wire.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include "tcp/tcp_wire.h"

const uint32_t wire_ip[2] = {RTE_BE32(0xc6120501), RTE_BE32(0xc6120502)};

static uint64_t rnd(struct wire *w)
{
	w->rnd ^= w->rnd << 13;
	w->rnd ^= w->rnd >> 7;
	w->rnd ^= w->rnd << 17;
	return w->rnd;
}

static bool chance(struct wire *w, uint32_t ppm)
{
	return ppm > 0 && rnd(w) % 1000000 < ppm;
}

struct tcp_stack_conf wire_stack_conf(void)
{
	struct tcp_stack_conf c = {0};

	c.port_lo = 40000;
	c.port_hi = 40999;
	c.max_conns = 256;
	c.sndbuf = 64 * 1024;
	c.rcvbuf = 64 * 1024;
	c.rto_init_ms = 1000;
	c.rto_min_ms = 200;
	c.rto_max_ms = 60000;
	c.syn_retries = 5;
	c.max_retries = 10;
	c.connect_timeout_ms = 0;
	c.delack_ms = 40;
	c.time_wait_ms = 2000;
	c.secret[0] = 12345; /* fixed: the same seed gives the same run */
	c.secret[1] = 67890;
	return c;
}

void wire_init_conf(struct wire *w, struct rte_mempool *pool, uint64_t seed,
		    const struct tcp_stack_conf *sc)
{
	memset(w, 0, sizeof(*w));
	w->pool = pool;
	w->rnd = seed * 2654435761ULL + 88172645463325252ULL;
	w->seed = w->rnd;
	w->now = 1000 * WIRE_HZ;
	for (int i = 0; i < 2; i++) {
		struct tcp_netif_conf c = {0};
		struct tcp_stack_conf s = *sc;

		c.mac.addr_bytes[0] = 0x02;
		c.mac.addr_bytes[5] = (uint8_t)(i + 1);
		c.ip = wire_ip[i];
		c.prefix_len = 24;
		c.mtu = 1500;
		c.tsc_hz = WIRE_HZ;
		c.arp_timeout_ms = 60000;
		c.arp_retry_ms = 200;
		c.arp_max_retries = 20;
		c.arp_pending_max = 64;
		w->nif[i] = tcp_netif_create(&c, pool, SOCKET_ID_ANY);
		s.secret[0] += (uint32_t)i;
		w->stk[i] = tcp_stack_create(&s, w->nif[i], pool, SOCKET_ID_ANY, w->now);
		if (w->nif[i] == NULL || w->stk[i] == NULL) {
			fprintf(stderr, "wire_init: cannot create endpoint %d\n", i);
			abort();
		}
	}
}

void wire_init(struct wire *w, struct rte_mempool *pool, uint64_t seed)
{
	struct tcp_stack_conf c = wire_stack_conf();

	wire_init_conf(w, pool, seed, &c);
}

static void enqueue(struct wire *w, struct rte_mbuf *m, int to, uint64_t at)
{
	if (w->nq == WIRE_MAXQ) {
		rte_pktmbuf_free(m);
		return;
	}
	w->q[w->nq].m = m;
	w->q[w->nq].at = at;
	w->q[w->nq].order = w->order++;
	w->q[w->nq].to = to;
	w->nq++;
}

/* A copy of @m in one fresh mbuf, as the receiving NIC would write it. */
static struct rte_mbuf *copy_frame(struct wire *w, const struct rte_mbuf *m)
{
	struct rte_mbuf *c = rte_pktmbuf_alloc(w->pool);
	uint32_t len = rte_pktmbuf_pkt_len(m);
	char *d;
	const void *p;

	if (c == NULL)
		return NULL;
	d = rte_pktmbuf_append(c, (uint16_t)len);
	if (d == NULL) {
		rte_pktmbuf_free(c);
		return NULL;
	}
	p = rte_pktmbuf_read(m, 0, len, d);
	if (p != d)
		memcpy(d, p, len);
	return c;
}

/* seg_loss_ppm: is this transmission of a TCP data segment lost? */
static bool seg_lost(struct wire *w, int from, const struct rte_mbuf *m)
{
	uint8_t buf[14 + 60 + 20];
	const uint8_t *f = rte_pktmbuf_read(m, 0, sizeof(buf), buf);
	uint32_t ihl, doff, tot, seq, h, n;
	uint64_t x;

	if (f == NULL || f[12] != 0x08 || f[13] != 0x00 || f[14 + 9] != 6)
		return false;
	ihl = (uint32_t)(f[14] & 0x0f) * 4;
	tot = (uint32_t)f[16] << 8 | f[17];
	if (14 + ihl + 20 > sizeof(buf))
		return false;
	doff = (uint32_t)(f[14 + ihl + 12] >> 4) * 4;
	if (tot <= ihl + doff)
		return false; /* no data */
	seq = (uint32_t)f[14 + ihl + 4] << 24 | (uint32_t)f[14 + ihl + 5] << 16 |
	      (uint32_t)f[14 + ihl + 6] << 8 | f[14 + ihl + 7];
	/* Open addressing over (direction, seq); the count saturates. */
	h = (seq * 2654435761u + (uint32_t)from) % WIRE_SEGS;
	for (n = 0; n < WIRE_SEGS; n++, h = (h + 1) % WIRE_SEGS)
		if (w->seg_seen[h] == 0 || w->seg_key[h] == (seq ^ (uint32_t)from))
			break;
	if (n == WIRE_SEGS)
		return false;
	w->seg_key[h] = seq ^ (uint32_t)from;
	if (w->seg_seen[h] < 255)
		w->seg_seen[h]++;
	/* A hash of seed, direction, seq and the transmission's number. */
	x = w->seed ^ ((uint64_t)seq << 20) ^ ((uint64_t)w->seg_seen[h] << 52) ^ (uint64_t)from;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x % 1000000 < w->imp[from].seg_loss_ppm;
}

/* like_lab: when a frame sent now from @from is due (see tcp_wire.h). */
static uint64_t lab_due(struct wire *w, int from)
{
	const struct wire_imp *imp = &w->imp[from];
	uint64_t at = w->now + imp->delay_us;

	if (chance(w, imp->reorder_ppm)) {
		w->reordered[from]++;
		return w->now;
	}
	if (imp->jitter_us > 0) {
		at += rnd(w) % (2 * (uint64_t)imp->jitter_us + 1);
		at = at > w->now + imp->jitter_us ? at - imp->jitter_us : w->now;
	}
	if (at < w->tail[from])
		at = w->tail[from];
	w->tail[from] = at;
	return at;
}

/* rate_kbps: when the frame @m has crossed the bottleneck (@*at), or
 * false if the queue before it is full. */
static bool bottleneck(struct wire *w, int from, const struct rte_mbuf *m, uint64_t *at)
{
	const struct wire_imp *imp = &w->imp[from];
	uint64_t start = w->link_free[from] > w->now ? w->link_free[from] : w->now;

	if (start - w->now > imp->queue_us)
		return false;
	w->link_free[from] = start + (uint64_t)rte_pktmbuf_pkt_len(m) * 8000 / imp->rate_kbps;
	*at = w->link_free[from];
	return true;
}

static void transmit(struct wire *w, int from)
{
	const struct wire_imp *imp = &w->imp[from];
	struct rte_mbuf *out[64];
	uint16_t n;

	while ((n = tcp_netif_tx_drain(w->nif[from], out, 64)) > 0) {
		for (uint16_t i = 0; i < n; i++) {
			int copies = 1;
			uint64_t base = w->now;

			w->sent[from]++;
			if (imp->rate_kbps > 0 && !bottleneck(w, from, out[i], &base)) {
				w->lost[from]++;
				copies = 0;
			} else if (imp->drop_all || chance(w, imp->loss_ppm) ||
				   (imp->seg_loss_ppm > 0 && seg_lost(w, from, out[i]))) {
				w->lost[from]++;
				copies = 0;
			} else if (chance(w, imp->dup_ppm)) {
				w->duplicated[from]++;
				copies = 2;
			}
			for (int k = 0; k < copies; k++) {
				struct rte_mbuf *c = copy_frame(w, out[i]);
				uint64_t at = base + imp->delay_us;

				if (c == NULL)
					continue;
				if (imp->like_lab)
					at = lab_due(w, from);
				else if (imp->jitter_us > 0)
					at += rnd(w) % imp->jitter_us;
				if (!imp->like_lab && chance(w, imp->reorder_ppm)) {
					w->reordered[from]++;
					at += imp->reorder_us;
				}
				if (chance(w, imp->corrupt_ppm)) {
					uint32_t bit =
					    (uint32_t)(rnd(w) % (rte_pktmbuf_data_len(c) * 8));
					const uint8_t *f = rte_pktmbuf_mtod(c, const uint8_t *);

					/* Corruption that gets past the Ethernet FCS is
					 * there to exercise the IPv4 and TCP checksums;
					 * ARP has none, so a damaged ARP frame is lost,
					 * as the FCS would have it (a flipped sender MAC
					 * would otherwise poison the neighbour table). */
					if (f[12] != 0x08 || f[13] != 0x00) {
						w->lost[from]++;
						rte_pktmbuf_free(c);
						continue;
					}
					w->corrupted[from]++;
					rte_pktmbuf_mtod(c, uint8_t *)[bit / 8] ^=
					    (uint8_t)(1u << (bit % 8));
				}
				/* A test playing a hostile peer or middlebox rewrites
				 * (or drops) the frame here. */
				if (w->tap != NULL &&
				    !w->tap(w, from, rte_pktmbuf_mtod(c, uint8_t *),
					    rte_pktmbuf_data_len(c))) {
					rte_pktmbuf_free(c);
					continue;
				}
				enqueue(w, c, 1 - from, at);
			}
			rte_pktmbuf_free(out[i]);
		}
	}
}

void wire_step(struct wire *w)
{
	w->now += WIRE_STEP;
	for (;;) {
		int best = -1;

		for (unsigned i = 0; i < w->nq; i++)
			if (w->q[i].at <= w->now &&
			    (best < 0 || w->q[i].at < w->q[best].at ||
			     (w->q[i].at == w->q[best].at && w->q[i].order < w->q[best].order)))
				best = (int)i;
		if (best < 0)
			break;
		{
			struct wire_frame f = w->q[best];

			w->q[best] = w->q[--w->nq];
			tcp_netif_input(w->nif[f.to], &f.m, 1, w->now);
		}
	}
	for (int i = 0; i < 2; i++) {
		tcp_netif_tick(w->nif[i], w->now);
		tcp_stack_tick(w->stk[i], w->now);
	}
	for (int i = 0; i < 2; i++)
		transmit(w, i);
}

void wire_free(struct wire *w)
{
	for (unsigned i = 0; i < w->nq; i++)
		rte_pktmbuf_free(w->q[i].m);
	w->nq = 0;
	for (int i = 0; i < 2; i++) {
		tcp_stack_free(w->stk[i]);
		tcp_netif_free(w->nif[i]);
	}
}
