/*
 * tcp_wire.h - an in-memory wire between two tcp stacks in one process,
 *	with seeded loss, duplication, reordering, corruption and delay.
 *	For tests and benchmarks; the data plane never uses it.
 *
 * SYNOPSIS
 *	wire_init(&w, pool, seed);              (A = 198.18.5.1, B = 198.18.5.2)
 *	w.imp[0] = (struct wire_imp){...};      (A -> B; imp[1] is B -> A)
 *	wire_step(&w);                          (advance 100 us: move frames, run timers)
 *	wire_free(&w);
 *
 * DESCRIPTION
 *	Each endpoint is a real tcp_netif plus tcp_stack on one mempool. A
 *	step drains both netifs' TX FIFOs onto the wire, where each frame is,
 *	by the direction's settings and a xorshift generator seeded by the
 *	test, dropped, duplicated, corrupted (one random bit flipped), delayed
 *	(base delay plus jitter) and sometimes held back further (reordered),
 *	after an optional bottleneck (a rate and a tail-drop queue).
 *	Frames due are copied into fresh single-segment mbufs, as a NIC would
 *	DMA them, and given to the other netif. Time is a fake TSC at 1 MHz.
 *	The same seed gives the same run.
 */
#ifndef TCP_WIRE_H
#define TCP_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "tcp/tcp_netif.h"
#include "tcp/tcp_stack.h"

#define WIRE_HZ	  1000000ULL /* fake TSC: 1 tick = 1 us */
#define WIRE_STEP 100	     /* us per wire_step() */
#define WIRE_MAXQ 4096
#define WIRE_SEGS 16384 /* sequence numbers tracked for seg_loss_ppm */

/* Impairments of one direction; probabilities in parts per million.
 * seg_loss_ppm loses TCP data segments by their sequence number instead:
 * the n-th transmission of a given sequence number meets the same fate in
 * every run with the same seed, whatever else differs (so two runs of
 * different senders see the same losses); other frames are not lost. */
struct wire_imp {
	uint32_t loss_ppm, dup_ppm, reorder_ppm, corrupt_ppm, seg_loss_ppm;
	uint32_t delay_us, jitter_us, reorder_us;
	uint32_t drop_all; /* a peer that never answers */
	/* As dmta-wire (the lab's emulator) does it: the delay is delay_us
	 * plus or minus jitter_us, but no frame leaves before the one sent
	 * before it; a reordered frame skips the delay line (reorder_us
	 * unused) and so overtakes every frame being delayed. */
	uint32_t like_lab;
	/* A bottleneck before the delay: frames leave one after another at
	 * rate_kbps (kbit/s, frame bytes counted; 0: no limit), and a frame
	 * that would wait longer than queue_us for the link is dropped (a
	 * tail-drop queue of that many microseconds). */
	uint32_t rate_kbps, queue_us;
};

struct wire_frame {
	struct rte_mbuf *m;
	uint64_t at, order;
	int to;
};

struct wire {
	struct rte_mempool *pool;
	struct tcp_netif *nif[2];
	struct tcp_stack *stk[2];
	struct wire_imp imp[2];
	uint64_t rnd, seed, now, order;
	struct wire_frame q[WIRE_MAXQ];
	unsigned nq;
	uint64_t tail[2];      /* like_lab: when the last frame each way is due */
	uint64_t link_free[2]; /* rate_kbps: when the bottleneck is free again */
	uint64_t sent[2], lost[2], duplicated[2], corrupted[2], reordered[2];
	/* seg_loss_ppm: transmissions seen per (direction, sequence number) */
	uint32_t seg_key[WIRE_SEGS];
	uint8_t seg_seen[WIRE_SEGS];
	/* Optional: sees each frame (Ethernet on) from endpoint @from as it
	 * goes on the wire, may rewrite it in place (checksums are its
	 * business); returns false to lose it. */
	bool (*tap)(struct wire *w, int from, uint8_t *frame, uint32_t len);
	void *tap_arg;
};

extern const uint32_t wire_ip[2]; /* network order */

/* Default stack configuration used by wire_init(). */
struct tcp_stack_conf wire_stack_conf(void);

void wire_init(struct wire *w, struct rte_mempool *pool, uint64_t seed);
void wire_init_conf(struct wire *w, struct rte_mempool *pool, uint64_t seed,
		    const struct tcp_stack_conf *conf);
void wire_step(struct wire *w);
void wire_free(struct wire *w);

#endif
