/*
 * fuzz_stack.c - libFuzzer target for the TCP input path (tcp_input.c and
 *	everything it drives: state machine, queues, timers, output).
 *
 * SYNOPSIS
 *	fuzz_tcp_stack [libFuzzer options] [CORPUS_DIR...]   (clang, -Dfuzz=true)
 *	replay_tcp_stack CORPUS_DIR...                       (normal build)
 *
 * DESCRIPTION
 *	Each input runs against a fresh netif + stack (198.18.0.2) that
 *	listens on port 80 and has one connection to 198.18.0.7:25 already
 *	established by the harness (the peer's ISN is 1000, timestamps and
 *	window scaling on). The input is a sequence of records, an op byte
 *	first:
 *
 *	  op % 5 == 0  a TCP segment to the established connection, built by
 *	               the harness with a right checksum: flags, seq and ack
 *	               offsets (int16, relative to what the peer would send),
 *	               window, option length and bytes, payload length
 *	  op % 5 == 1  the same to the listener, from peer port 1000 + byte;
 *	               ack relative to the last SYN-ACK the stack sent
 *	  op % 5 == 2  an application call: send, recv, shutdown, close, abort
 *	               on one of the connections
 *	  op % 5 == 3  advance the clock by u16 ms and run the timers
 *	  op % 5 == 4  a raw frame (u16 length + bytes)
 *
 *	An input of odd length runs BBR (with pacing), of even length CUBIC.
 *
 *	Every frame the stack sends is checked (IPv4 and TCP checksums,
 *	addresses); at the end everything is freed and the pool must be full.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "tcp/tcp_netif.h"
#include "tcp/tcp_stack.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HZ	   1000000ULL
#define PEER_ISN   1000u
#define PEER_PORT  25
#define LOCAL_PORT 80

static struct rte_mempool *pool;
static unsigned pool_full;
static const uint8_t our_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x07};

struct fz {
	struct tcp_netif *nif;
	struct tcp_stack *stk;
	struct tcp_conn *active, *passive;
	uint64_t now;
	uint32_t our_iss_active;
	uint16_t active_port; /* the port the stack picked for it */
	uint32_t synack_seq;  /* last SYN-ACK from the listener */
	uint16_t synack_port;
	uint32_t peer_nxt; /* what the peer would send next on the active connection */
};

static uint32_t be_ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
	return rte_cpu_to_be_32(a << 24 | b << 16 | c << 8 | d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *eal[] = {
	    "fuzz",	      "--no-huge",	   "-m", "128", "--no-pci", "--no-shconf",
	    "--no-telemetry", "--log-level=error", NULL};

	(void)argc;
	(void)argv;
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0)
		abort();
	pool =
	    rte_pktmbuf_pool_create("fuzz", 8191, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL)
		abort();
	pool_full = rte_mempool_avail_count(pool);
	return 0;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Check one frame we sent; remember what the harness needs from it. */
static void check_frame(struct fz *f, struct rte_mbuf *m)
{
	uint8_t buf[2048];
	uint32_t len = rte_pktmbuf_pkt_len(m), tl;
	const uint8_t *p;
	uint32_t sum = 0;

	if (len > sizeof(buf) || len < 14)
		abort();
	p = rte_pktmbuf_read(m, 0, len, buf);
	if (memcmp(p + 6, our_mac, 6) != 0)
		abort();
	if (p[12] != 0x08 || p[13] != 0x00)
		return; /* ARP */
	if (len < 34 || rte_raw_cksum(p + 14, 20) != 0xffff || p[14 + 9] != 6)
		abort();
	tl = len - 34;
	if (tl < 20 || (uint32_t)(p[16] << 8 | p[17]) != len - 14)
		abort();
	/* TCP checksum: pseudo-header + segment */
	sum += rte_raw_cksum(p + 26, 8);
	sum += rte_cpu_to_be_16(6) + rte_cpu_to_be_16((uint16_t)tl);
	sum += rte_raw_cksum(p + 34, tl);
	if (fold(sum) != 0xffff)
		abort();
	{
		const uint8_t *t = p + 34;
		uint16_t sport = (uint16_t)(t[0] << 8 | t[1]);
		uint32_t seq =
		    (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];

		if ((t[13] & 0x12) == 0x02 && sport != LOCAL_PORT) {
			f->our_iss_active = seq;
			f->active_port = sport;
		}
		if ((t[13] & 0x12) == 0x12 && sport == LOCAL_PORT) {
			f->synack_seq = seq;
			f->synack_port = (uint16_t)(t[2] << 8 | t[3]);
		}
	}
}

static void drain(struct fz *f)
{
	struct rte_mbuf *out[64];
	uint16_t n;

	while ((n = tcp_netif_tx_drain(f->nif, out, 64)) > 0) {
		for (uint16_t i = 0; i < n; i++)
			check_frame(f, out[i]);
		rte_pktmbuf_free_bulk(out, n);
	}
}

static void input_frame(struct fz *f, const uint8_t *frame, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	if (m == NULL)
		abort();
	if (len > 0)
		memcpy(rte_pktmbuf_append(m, (uint16_t)len), frame, len);
	tcp_netif_input(f->nif, &m, 1, f->now);
}

/* A TCP segment from the peer (198.18.0.7) with a right checksum. */
static void send_seg(struct fz *f, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		     uint8_t flags, uint16_t wnd, const uint8_t *opt, size_t olen,
		     const uint8_t *payload, size_t plen)
{
	uint8_t fr[1600];
	size_t hl = 20 + (olen & ~3u), tl = hl + plen;
	uint8_t *ip = fr + 14, *t = fr + 34;
	uint32_t sum = 0;
	uint32_t src = be_ip(198, 18, 0, 7), dst = be_ip(198, 18, 0, 2);

	if (34 + tl > sizeof(fr))
		return;
	memcpy(fr, our_mac, 6);
	memcpy(fr + 6, peer_mac, 6);
	fr[12] = 0x08;
	fr[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + tl) >> 8);
	ip[3] = (uint8_t)(20 + tl);
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	{
		uint16_t c = (uint16_t)~rte_raw_cksum(ip, 20);

		memcpy(ip + 10, &c, 2);
	}
	memset(t, 0, 20);
	t[0] = (uint8_t)(sport >> 8);
	t[1] = (uint8_t)sport;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	t[4] = (uint8_t)(seq >> 24);
	t[5] = (uint8_t)(seq >> 16);
	t[6] = (uint8_t)(seq >> 8);
	t[7] = (uint8_t)seq;
	t[8] = (uint8_t)(ack >> 24);
	t[9] = (uint8_t)(ack >> 16);
	t[10] = (uint8_t)(ack >> 8);
	t[11] = (uint8_t)ack;
	t[12] = (uint8_t)((hl / 4) << 4);
	t[13] = flags;
	t[14] = (uint8_t)(wnd >> 8);
	t[15] = (uint8_t)wnd;
	if (hl > 20)
		memcpy(t + 20, opt, hl - 20);
	if (plen > 0)
		memcpy(t + hl, payload, plen);
	sum += rte_raw_cksum(ip + 12, 8);
	sum += rte_cpu_to_be_16(6) + rte_cpu_to_be_16((uint16_t)tl);
	sum += rte_raw_cksum(t, tl);
	{
		uint16_t c = (uint16_t)~fold(sum);

		memcpy(t + 16, &c, 2);
	}
	input_frame(f, fr, 34 + tl);
}

static void handle_events(struct fz *f)
{
	struct tcp_event ev[16];
	uint16_t n;

	while ((n = tcp_stack_poll(f->stk, ev, 16)) > 0) {
		for (uint16_t i = 0; i < n; i++) {
			if ((ev[i].events & TCP_EV_ACCEPTED) && f->passive == NULL)
				f->passive = ev[i].conn;
			else if (ev[i].events & TCP_EV_ACCEPTED)
				tcp_close(ev[i].conn, f->now);
		}
	}
}

static void setup(struct fz *f, int cc)
{
	struct tcp_netif_conf c = {0};
	struct tcp_stack_conf s = {0};
	static const uint8_t synack_opts[] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0,
					      0, 9, 0,	  0,	0, 0, 1, 3,  3, 7};
	uint8_t arp[42];
	uint32_t pip = be_ip(198, 18, 0, 7), oip = be_ip(198, 18, 0, 2);

	memset(f, 0, sizeof(*f));
	f->now = 1000 * HZ;
	memcpy(c.mac.addr_bytes, our_mac, 6);
	c.ip = oip;
	c.prefix_len = 24;
	c.mtu = 1500;
	c.tsc_hz = HZ;
	c.arp_timeout_ms = 600000;
	c.arp_retry_ms = 100;
	c.arp_max_retries = 2;
	c.arp_pending_max = 8;
	f->nif = tcp_netif_create(&c, pool, SOCKET_ID_ANY);
	s.port_lo = 40000;
	s.port_hi = 40009;
	s.max_conns = 8;
	s.sndbuf = 16384;
	s.rcvbuf = 16384;
	s.rto_init_ms = 1000;
	s.rto_min_ms = 200;
	s.rto_max_ms = 60000;
	s.syn_retries = 3;
	s.max_retries = 5;
	s.delack_ms = 40;
	s.time_wait_ms = 2000;
	s.secret[0] = 1; /* fixed: the same input gives the same run */
	s.congestion_control = cc;
	f->stk = tcp_stack_create(&s, f->nif, pool, SOCKET_ID_ANY, f->now);
	if (f->nif == NULL || f->stk == NULL || tcp_listen(f->stk, LOCAL_PORT, NULL) != 0)
		abort();
	/* Teach the netif the peer's MAC with an ARP request for us. */
	memset(arp, 0xff, 6);
	memcpy(arp + 6, peer_mac, 6);
	arp[12] = 0x08;
	arp[13] = 0x06;
	memcpy(arp + 14, "\x00\x01\x08\x00\x06\x04\x00\x01", 8);
	memcpy(arp + 22, peer_mac, 6);
	memcpy(arp + 28, &pip, 4);
	memset(arp + 32, 0, 6);
	memcpy(arp + 38, &oip, 4);
	input_frame(f, arp, sizeof(arp));
	if (tcp_connect(f->stk, pip, PEER_PORT, NULL, f->now, &f->active) != 0)
		abort();
	drain(f);
	send_seg(f, PEER_PORT, f->active_port, PEER_ISN, f->our_iss_active + 1, 0x12, 65535,
		 synack_opts, sizeof(synack_opts), NULL, 0);
	f->peer_nxt = PEER_ISN + 1;
	drain(f);
	handle_events(f);
	if (tcp_conn_state(f->active) != TCP_ESTABLISHED)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t zero[16384];
	struct fz f;
	size_t o = 0;

	setup(&f, size % 2 ? TCP_CC_BBR : TCP_CC_CUBIC);
	while (o < size) {
		uint8_t op = data[o++];

		switch (op % 5) {
		case 0:
		case 1: {
			uint8_t flags, olen, port;
			int16_t dseq, dack;
			uint16_t wnd, plen;
			const uint8_t *opt;

			if (size - o < 10)
				goto out;
			flags = data[o];
			dseq = (int16_t)(data[o + 1] | data[o + 2] << 8);
			dack = (int16_t)(data[o + 3] | data[o + 4] << 8);
			wnd = (uint16_t)(data[o + 5] | data[o + 6] << 8);
			port = data[o + 7];
			plen = (uint16_t)(data[o + 8] | (data[o + 9] & 0x07) << 8);
			olen = (uint8_t)((data[o + 9] >> 3) * 2 > 40 ? 40 : (data[o + 9] >> 3) * 2);
			o += 10;
			if (olen > size - o)
				olen = (uint8_t)(size - o);
			opt = data + o;
			o += olen;
			if (op % 5 == 0) {
				send_seg(&f, PEER_PORT, f.active_port,
					 f.peer_nxt + (uint32_t)(int32_t)dseq,
					 f.our_iss_active + 1 + (uint32_t)(int32_t)dack, flags, wnd,
					 opt, olen, zero, plen > 1400 ? 1400 : plen);
				if ((flags & 0x04) == 0 && dseq == 0)
					f.peer_nxt += plen > 1400 ? 1400 : plen;
			} else {
				send_seg(&f, (uint16_t)(1000 + port), LOCAL_PORT,
					 5000 + (uint32_t)(int32_t)dseq,
					 f.synack_seq + 1 + (uint32_t)(int32_t)dack, flags, wnd,
					 opt, olen, zero, plen > 1400 ? 1400 : plen);
			}
			break;
		}
		case 2: {
			struct tcp_conn **cp;
			uint8_t buf[4096];

			if (size - o < 2)
				goto out;
			cp = data[o] & 1 ? &f.passive : &f.active;
			if (*cp != NULL) {
				switch ((data[o] >> 1) % 5) {
				case 0:
					tcp_send(*cp, zero, (size_t)data[o + 1] * 64, f.now);
					break;
				case 1:
					tcp_recv(*cp, buf, sizeof(buf), f.now);
					break;
				case 2:
					tcp_shutdown(*cp, f.now);
					break;
				case 3:
					tcp_close(*cp, f.now);
					*cp = NULL;
					break;
				default:
					tcp_abort(*cp, f.now);
					*cp = NULL;
					break;
				}
			}
			o += 2;
			break;
		}
		case 3:
			if (size - o < 2)
				goto out;
			f.now += (uint64_t)(data[o] | data[o + 1] << 8) * (HZ / 1000);
			o += 2;
			tcp_netif_tick(f.nif, f.now);
			tcp_stack_tick(f.stk, f.now);
			break;
		default: {
			size_t len;

			if (size - o < 2)
				goto out;
			len = (size_t)(data[o] | data[o + 1] << 8) % 1600;
			o += 2;
			if (len > size - o)
				len = size - o;
			input_frame(&f, data + o, len);
			o += len;
			break;
		}
		}
		drain(&f);
		handle_events(&f);
	}
out:
	drain(&f);
	tcp_stack_free(f.stk);
	tcp_netif_free(f.nif);
	if (rte_mempool_avail_count(pool) != pool_full) {
		fprintf(stderr, "fuzz: mbuf leak: %u in pool, want %u\n",
			rte_mempool_avail_count(pool), pool_full);
		abort();
	}
	return 0;
}
