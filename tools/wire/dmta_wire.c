/*
 * dmta_wire.c - dmta-wire, the lab's WAN emulator: a bridge between two
 * network interfaces that impairs what it forwards.
 *
 * SYNOPSIS
 *	dmta-wire --a IFACE --b IFACE --spec SPEC [--seed N]
 *		  [--stats-interval S] [--pidfile F] [-v]
 *
 * DESCRIPTION
 *	Every Ethernet frame received on A is sent out of B ("a2b") and every
 *	frame received on B out of A ("b2a"), after the impairments of SPEC for
 *	that direction. Decisions come from a PRNG seeded with N (default 1;
 *	a2b uses N, b2a uses N + 1), so the same frames meet the same fate.
 *
 *	SPEC is a comma-separated list of key=value items:
 *
 *	  loss=P       drop P percent of frames
 *	  delay=T      hold every frame T
 *	  jitter=T     add U(-T, +T) to the delay, never reordering frames:
 *	               a frame is never released before the one before it
 *	  reorder=P    P percent of frames skip the delay line and overtake
 *	               the frames being delayed (with no delay they are held
 *	               back 1ms instead and overtaken)
 *	  duplicate=P  send P percent of frames twice
 *	  corrupt=P    flip one bit in one byte after the Ethernet header of
 *	               P percent of frames
 *	  rate=R       token bucket at R (e.g. 100mbit, 10kbps = bytes/s)
 *	  burst=S      bucket depth in bytes (default 0: strict pacing)
 *	  queue=T      longest wait for the rate limiter (default 50ms); a
 *	               frame that would wait longer is dropped (rate_dropped)
 *	  limit=N      frames held per direction (default 10000); beyond it a
 *	               frame is dropped (overflow)
 *	  mtu=N        a hop that forwards IP packets of N bytes at most
 *	               (68..65535): larger frames are dropped (too_big),
 *	               before any other impairment
 *	  icmp=X       what that hop says about an IPv4 packet it drops with
 *	               DF set: "on" (default) an ICMP "fragmentation needed"
 *	               with next-hop MTU N from the packet's destination,
 *	               A.B.C.D the same from that router address, "off"
 *	               nothing (a PMTU black hole). The ICMP goes back through
 *	               the other direction's impairments (icmp_sent); the wire
 *	               never fragments
 *
 *	P is a percentage ("5%", "0.1%", the "%" optional); T a time with unit
 *	ns, us, ms or s; R a rate with unit bit, kbit, mbit, gbit or bps, kbps,
 *	mbps, gbps (bytes per second, as in tc). A key prefixed with "a2b." or
 *	"b2a." applies to that direction only and overrides the bare key in
 *	either order, e.g. "loss=5%,delay=20ms,a2b.loss=1%". "none" or an
 *	empty spec forwards unimpaired.
 *
 *	Readiness: the pidfile is written once both sockets are bound and the
 *	interfaces are in promiscuous mode; from then on every frame is
 *	forwarded. Both interfaces must be up.
 *
 *	Offloads: a TCP super-frame (TSO/GSO from a local sender on a veth,
 *	IPv4 or IPv6) is cut into MSS-sized segments, each impaired on its
 *	own, as a NIC would have sent them (counted as tso_cut). Other frames
 *	larger than the MTU (UDP GSO, or GRO on the wire's own interfaces) are
 *	refused and counted as oversize, with one warning per port: turn GRO
 *	off on the wire's interfaces (ethtool -K IFACE gro off; veths have it
 *	off by default). Checksums left to the hardware (CHECKSUM_PARTIAL) are
 *	completed in software before the frame is impaired, so corruption is
 *	visible to the receiver.
 *
 *	I/O: two AF_PACKET sockets with PACKET_IGNORE_OUTGOING (the wire never
 *	sees its own transmissions), PACKET_VNET_HDR (for the checksum and GSO
 *	metadata), batches of recvmmsg/sendmmsg, and one epoll loop that sleeps
 *	on the sockets, a timerfd armed for the earliest release and a
 *	signalfd: an idle wire uses no CPU.
 *
 *	SIGUSR1 prints the counters of both directions on stderr; so does the
 *	exit. SIGINT and SIGTERM end the program with status 0.
 *
 * DIAGNOSTICS
 *	Exit 0 on SIGINT/SIGTERM, 64 on a bad command line or spec (one line on
 *	stderr), 1 when an interface cannot be opened or is deleted while the
 *	wire runs (an interface going down and up again is survived).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/base/dmta_log.h"
#include "core/base/dmta_time.h"
#include "tools/wire/wire.h"

#define EX_USAGE_  64
#define BURST	   32
#define RX_ROUNDS  8 /* bursts per socket per wake-up, for fairness */
#define VLAN_HLEN  4
#define SOCK_BUFSZ (4 << 20)

struct port {
	const char *name;
	int ifindex;
	int fd;
	unsigned mtu;
	uint64_t csum_fixed;
	uint64_t tso_cut; /* super-frames cut into segments */
	uint64_t kdrops;  /* frames the kernel dropped before we read them */
};

struct wire {
	struct port port[2];	 /* 0 = A, 1 = B */
	struct wire_dir *dir[2]; /* dir[i] carries frames received on port[i] */
	int ep, tfd, sfd, statfd;
	uint64_t timer_ns; /* what the timerfd is armed for */
	struct wire_spec spec;
	const char *gone; /* an interface that was deleted */
	uint8_t scratch[65536 + 64];
	/* Where the tail of a super-frame lands, per burst entry (see rx). */
	uint8_t spill[BURST][65536];
	uint8_t whole[2 * 65536]; /* a super-frame made contiguous */
};

static const char *const dir_name[2] = {"a2b", "b2a"};

static void usage(FILE *f)
{
	fprintf(f, "usage: dmta-wire --a IFACE --b IFACE --spec SPEC [--seed N]\n"
		   "                 [--stats-interval S] [--pidfile F] [-v]\n"
		   "\n"
		   "Bridge IFACE A and IFACE B, impairing frames per SPEC.\n"
		   "SPEC: comma-separated key=value; a key applies to both directions,\n"
		   "\"a2b.KEY\" or \"b2a.KEY\" to one (and wins over the bare key):\n"
		   "  loss=P delay=T jitter=T reorder=P duplicate=P corrupt=P\n"
		   "  rate=R burst=S queue=T limit=N mtu=N icmp=on|off|ADDR  (or \"none\")\n"
		   "  P percent (5%%, 0.1%%); T time (20ms, 500us, 1s); R rate (100mbit,\n"
		   "  2gbit, 10kbps = kilobytes/s); S bytes (16kb); N frames.\n"
		   "  jitter never reorders; reorder=P lets P%% overtake the delay line;\n"
		   "  queue (default 50ms) bounds the wait for the rate limiter;\n"
		   "  limit (default 10000) bounds the frames held per direction;\n"
		   "  mtu drops larger IP packets, answering IPv4 ones with DF by ICMP\n"
		   "  fragmentation needed (icmp=on, from their destination; icmp=ADDR,\n"
		   "  from that router; icmp=off: a silent black hole).\n"
		   "Example: --spec loss=5%%,delay=20ms,jitter=10ms,reorder=1%%,duplicate=1%%,"
		   "a2b.rate=100mbit\n"
		   "--seed N           PRNG seed (default 1)\n"
		   "--stats-interval S print counters every S seconds (default: never)\n"
		   "--pidfile F        write the pid to F once forwarding (readiness)\n"
		   "SIGUSR1 prints counters; SIGINT/SIGTERM exit 0.\n"
		   "TCP super-frames (TSO/GSO) are cut into MSS-sized segments; other\n"
		   "frames over the MTU are refused (keep GRO off on both IFACEs).\n");
}

static void print_stats(struct wire *w)
{
	for (int i = 0; i < 2; i++) {
		const struct wire_counters *c = wire_dir_counters(w->dir[i]);
		struct tpacket_stats st;
		socklen_t sl = sizeof(st);

		/* The kernel resets these on each read: accumulate. */
		if (getsockopt(w->port[i].fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0)
			w->port[i].kdrops += st.tp_drops;

		dmta_info(
		    "%s: rx=%llu forwarded=%llu lost=%llu delayed=%llu reordered=%llu "
		    "duplicated=%llu corrupted=%llu rate_dropped=%llu overflow=%llu "
		    "oversize=%llu tx_errors=%llu too_big=%llu icmp_sent=%llu csum_fixed=%llu "
		    "tso_cut=%llu kernel_drops=%llu queued=%zu",
		    dir_name[i], (unsigned long long)c->rx, (unsigned long long)c->forwarded,
		    (unsigned long long)c->lost, (unsigned long long)c->delayed,
		    (unsigned long long)c->reordered, (unsigned long long)c->duplicated,
		    (unsigned long long)c->corrupted, (unsigned long long)c->rate_dropped,
		    (unsigned long long)c->overflow, (unsigned long long)c->oversize,
		    (unsigned long long)c->tx_errors, (unsigned long long)c->too_big,
		    (unsigned long long)c->icmp_sent, (unsigned long long)w->port[i].csum_fixed,
		    (unsigned long long)w->port[i].tso_cut, (unsigned long long)w->port[i].kdrops,
		    wire_dir_queued(w->dir[i]));
	}
}

/* Open, configure and bind one side. 0 or -errno (logged). */
static int port_open(struct port *p)
{
	struct packet_mreq mr;
	struct sockaddr_ll sll;
	struct ifreq ifr;
	int one = 1, sz = SOCK_BUFSZ;

	p->ifindex = (int)if_nametoindex(p->name);
	if (p->ifindex == 0) {
		dmta_err("interface %s: %s", p->name, strerror(errno));
		return -ENODEV;
	}
	/* Protocol 0 until bound: an ETH_P_ALL socket hears every interface. */
	p->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		dmta_err("socket(AF_PACKET): %s", strerror(errno));
		return -errno;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", p->name);
	if (ioctl(p->fd, SIOCGIFMTU, &ifr) < 0) {
		dmta_err("%s: SIOCGIFMTU: %s", p->name, strerror(errno));
		return -errno;
	}
	p->mtu = (unsigned)ifr.ifr_mtu;
	if (setsockopt(p->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0 ||
	    setsockopt(p->fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) {
		dmta_err("%s: packet socket options: %s", p->name, strerror(errno));
		return -errno;
	}
	/* Bigger buffers absorb bursts while the loop serves the other side. */
	if (setsockopt(p->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(p->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = p->ifindex;
	if (bind(p->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		dmta_err("%s: bind: %s", p->name, strerror(errno));
		return -errno;
	}
	memset(&mr, 0, sizeof(mr));
	mr.mr_ifindex = p->ifindex;
	mr.mr_type = PACKET_MR_PROMISC;
	if (setsockopt(p->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
		dmta_err("%s: promiscuous mode: %s", p->name, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Count a refused frame; warn once per port: a set-up mistake, not weather. */
static void oversize(struct port *p, struct wire_counters *c, const char *why)
{
	c->rx++;
	if (c->oversize++ == 0)
		dmta_warn("%s: refusing a frame (%s); turn off TSO/GSO/GRO on the senders: "
			  "ethtool -K IFACE tso off gso off gro off",
			  p->name, why);
}

/*
 * Hand a frame received on port i to direction i, unless it is larger than
 * the direction's MTU: then it is dropped here, and the ICMP answer (if
 * any is due) goes back out of port i through the other direction.
 */
static void submit(struct wire *w, int i, uint8_t *buf, size_t len, uint64_t now)
{
	const struct wire_params *p = &w->spec.dir[i];
	struct wire_dir *back = w->dir[1 - i];
	struct wire_counters *c = wire_dir_counters(w->dir[i]);
	uint8_t *icmp;
	ssize_t n;

	if (p->mtu == 0 || wire_l3_len(buf, len) <= p->mtu) {
		wire_dir_submit(w->dir[i], buf, len, now);
		return;
	}
	c->rx++;
	c->too_big++;
	if (p->icmp && (icmp = wire_dir_buf_get(back)) != NULL) {
		n = wire_mtu_icmp(buf, len, p->mtu, p->icmp_src, icmp, wire_dir_bufsize(back));
		if (n > 0) {
			c->icmp_sent++;
			wire_dir_submit(back, icmp, (size_t)n, now);
		} else {
			wire_dir_buf_put(back, icmp);
		}
	}
	wire_dir_buf_put(w->dir[i], buf);
}

/*
 * A TCP super-frame of len bytes, the first bufsize in buf and the rest in
 * the spill area of its burst entry: make it contiguous, then submit each
 * MSS-sized segment as its own frame, as the sender's NIC would have sent
 * them. buf goes back to the pool.
 */
static void rx_super(struct wire *w, int i, uint8_t *buf, size_t len,
		     const struct virtio_net_hdr *vh, const uint8_t *spill, uint64_t now)
{
	struct port *p = &w->port[i];
	struct wire_dir *d = w->dir[i];
	struct wire_counters *c = wire_dir_counters(d);
	size_t bufsize = wire_dir_bufsize(d);
	uint8_t type = vh->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if ((type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6) ||
	    len > sizeof(w->whole) || vh->gso_size == 0 || vh->hdr_len >= len) {
		oversize(p, c, "a GSO super-frame other than TCP");
		wire_dir_buf_put(d, buf);
		return;
	}
	if (len <= bufsize) {
		memcpy(w->whole, buf, len);
	} else {
		memcpy(w->whole, buf, bufsize);
		memcpy(w->whole + bufsize, spill, len - bufsize);
	}
	wire_dir_buf_put(d, buf);
	p->tso_cut++;
	for (size_t idx = 0;; idx++) {
		uint8_t *seg = wire_dir_buf_get(d);
		ssize_t n;

		if (seg == NULL) {
			/* Count the segments that find no buffer as overflow. */
			size_t left = (len - (size_t)vh->hdr_len + vh->gso_size - 1) / vh->gso_size;

			left = left > idx ? left - idx : 1;
			c->rx += left;
			c->overflow += left;
			return;
		}
		n = wire_tso_segment(w->whole, len, vh->gso_size, idx, seg, bufsize);
		if (n <= 0) {
			wire_dir_buf_put(d, seg);
			if (n < 0)
				oversize(p, c, "a TCP super-frame that cannot be cut");
			return;
		}
		submit(w, i, seg, (size_t)n, now);
	}
}

/*
 * Read up to RX_ROUNDS bursts from port i into direction i. Frames that
 * find no free buffer are still read (into scratch) and counted, so a full
 * direction never leaves a readable socket to spin the loop.
 */
static void rx_port(struct wire *w, int i)
{
	struct port *p = &w->port[i];
	struct wire_dir *d = w->dir[i];
	struct wire_counters *c = wire_dir_counters(d);
	size_t bufsize = wire_dir_bufsize(d);

	for (int round = 0; round < RX_ROUNDS; round++) {
		struct virtio_net_hdr vh[BURST];
		struct sockaddr_ll from[BURST];
		struct iovec iov[BURST][3];
		struct mmsghdr msg[BURST];
		uint8_t *buf[BURST];
		uint64_t now;
		int n, nb = 0;

		for (nb = 0; nb < BURST; nb++) {
			buf[nb] = wire_dir_buf_get(d);
			if (buf[nb] == NULL)
				break;
		}
		memset(msg, 0, sizeof(msg));
		for (int k = 0; k < BURST; k++) {
			iov[k][0] = (struct iovec){&vh[k], sizeof(vh[k])};
			/*
			 * A frame fills its buffer; a super-frame (TSO from a
			 * sender with offloads on) runs on into spill[k].
			 */
			if (k < nb)
				iov[k][1] = (struct iovec){buf[k], bufsize};
			else
				iov[k][1] = (struct iovec){w->scratch, sizeof(w->scratch)};
			iov[k][2] = (struct iovec){w->spill[k], sizeof(w->spill[k])};
			msg[k].msg_hdr.msg_iov = iov[k];
			msg[k].msg_hdr.msg_iovlen = 3;
			msg[k].msg_hdr.msg_name = &from[k];
			msg[k].msg_hdr.msg_namelen = sizeof(from[k]);
		}
		/* With no buffer free, read one frame at a time into scratch. */
		n = recvmmsg(p->fd, msg, nb > 0 ? (unsigned)nb : 1u, MSG_DONTWAIT | MSG_TRUNC,
			     NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				char name[IF_NAMESIZE];

				dmta_warn("%s: recvmmsg: %s", p->name, strerror(errno));
				/* Down is temporary; deleted is the end of the wire. */
				if (if_indextoname((unsigned)p->ifindex, name) == NULL)
					w->gone = p->name;
			}
			for (int k = 0; k < nb; k++)
				wire_dir_buf_put(d, buf[k]);
			return;
		}
		now = dmta_now_ns();
		for (int k = 0; k < n; k++) {
			size_t len = msg[k].msg_len;

			if (from[k].sll_pkttype == PACKET_OUTGOING) {
				/* PACKET_IGNORE_OUTGOING makes this unreachable. */
				if (k < nb)
					wire_dir_buf_put(d, buf[k]);
				continue;
			}
			if (k >= nb) {
				c->rx++;
				c->overflow++;
				continue;
			}
			if (len < sizeof(vh[k]) || (msg[k].msg_hdr.msg_flags & MSG_TRUNC)) {
				oversize(p, c, "truncated");
				wire_dir_buf_put(d, buf[k]);
				continue;
			}
			len -= sizeof(vh[k]);
			if (vh[k].gso_type != VIRTIO_NET_HDR_GSO_NONE) {
				rx_super(w, i, buf[k], len, &vh[k], w->spill[k], now);
				continue;
			}
			if (len > bufsize) {
				oversize(p, c, "larger than the MTU, not GSO");
				wire_dir_buf_put(d, buf[k]);
				continue;
			}
			if ((vh[k].flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
			    wire_csum_complete(buf[k], len, vh[k].csum_start, vh[k].csum_offset) ==
				0)
				p->csum_fixed++;
			submit(w, i, buf[k], len, now);
		}
		for (int k = n; k < nb; k++)
			wire_dir_buf_put(d, buf[k]);
		if (n < (nb > 0 ? nb : 1))
			return;
	}
}

/* Send every frame of direction i that is due, out of the other port. */
static void tx_dir(struct wire *w, int i, uint64_t now)
{
	struct port *out = &w->port[1 - i];
	struct wire_dir *d = w->dir[i];
	static struct virtio_net_hdr zero_vh; /* no offload asked for */

	for (;;) {
		struct iovec iov[BURST][2];
		struct mmsghdr msg[BURST];
		uint8_t *buf[BURST];
		int n = 0, sent = 0;

		while (n < BURST) {
			size_t len;

			buf[n] = wire_dir_take(d, now, &len);
			if (buf[n] == NULL)
				break;
			iov[n][0] = (struct iovec){&zero_vh, sizeof(zero_vh)};
			iov[n][1] = (struct iovec){buf[n], len};
			memset(&msg[n], 0, sizeof(msg[n]));
			msg[n].msg_hdr.msg_iov = iov[n];
			msg[n].msg_hdr.msg_iovlen = 2;
			n++;
		}
		if (n == 0)
			return;
		while (sent < n) {
			int r = sendmmsg(out->fd, msg + sent, (unsigned)(n - sent), 0);

			if (r > 0) {
				for (int k = sent; k < sent + r; k++)
					wire_dir_done(d, buf[k], true);
				sent += r;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			/*
			 * EAGAIN (socket buffer full) or a device error: the
			 * frame is lost, as a full transmit queue would lose it.
			 */
			wire_dir_done(d, buf[sent], false);
			sent++;
		}
		if (n < BURST)
			return;
	}
}

/* Arm the timerfd for the earliest release of both directions. */
static void timer_rearm(struct wire *w)
{
	uint64_t next = wire_dir_next_ns(w->dir[0]);
	struct itimerspec its;

	if (wire_dir_next_ns(w->dir[1]) < next)
		next = wire_dir_next_ns(w->dir[1]);
	if (next == w->timer_ns)
		return;
	memset(&its, 0, sizeof(its));
	if (next != UINT64_MAX) {
		its.it_value.tv_sec = (time_t)(next / DMTA_NS_PER_S);
		its.it_value.tv_nsec = (long)(next % DMTA_NS_PER_S);
		if (next == 0)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		dmta_panic("timerfd_settime: %s", strerror(errno));
	w->timer_ns = next;
}

static int ep_add(int ep, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int write_pidfile(const char *path)
{
	char tmp[4096], line[32];
	int fd, n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (write(fd, line, (size_t)n) != n || close(fd) < 0) {
		unlink(tmp);
		return -EIO;
	}
	/* rename: a reader never sees an empty pidfile. */
	if (rename(tmp, path) < 0)
		return -errno;
	return 0;
}

static int run(struct wire *w)
{
	for (;;) {
		struct epoll_event ev[8];
		uint64_t now;
		int n = epoll_wait(w->ep, ev, 8, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			dmta_err("epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int k = 0; k < n; k++) {
			int fd = ev[k].data.fd;
			uint64_t ticks;

			if (fd == w->port[0].fd) {
				rx_port(w, 0);
			} else if (fd == w->port[1].fd) {
				rx_port(w, 1);
			} else if (fd == w->tfd || fd == w->statfd) {
				if (read(fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					dmta_warn("timerfd read: %s", strerror(errno));
				if (fd == w->tfd)
					w->timer_ns = UINT64_MAX; /* fired: re-arm below */
				else
					print_stats(w);
			} else if (fd == w->sfd) {
				struct signalfd_siginfo si;

				while (read(w->sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGUSR1)
						print_stats(w);
					else
						return 0;
				}
			}
		}
		if (w->gone != NULL) {
			dmta_err("interface %s is gone", w->gone);
			return 1;
		}
		now = dmta_now_ns();
		tx_dir(w, 0, now);
		tx_dir(w, 1, now);
		timer_rearm(w);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"a", required_argument, NULL, 'a'},
	    {"b", required_argument, NULL, 'b'},
	    {"spec", required_argument, NULL, 's'},
	    {"seed", required_argument, NULL, 'S'},
	    {"stats-interval", required_argument, NULL, 'i'},
	    {"pidfile", required_argument, NULL, 'p'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *spec_text = NULL, *pidfile = NULL;
	unsigned long long seed = 1;
	unsigned long interval = 0;
	struct wire_spec spec;
	static struct wire w;
	char err[512], *end;
	sigset_t sigs;
	int c, rc;

	dmta_log_init("dmta-wire", DMTA_LOG_INFO);
	w.port[0].fd = w.port[1].fd = -1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			w.port[0].name = optarg;
			break;
		case 'b':
			w.port[1].name = optarg;
			break;
		case 's':
			spec_text = optarg;
			break;
		case 'S':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno != 0 || *end != '\0' || optarg[0] == '-') {
				fprintf(stderr, "dmta-wire: bad --seed '%s': want an integer\n",
					optarg);
				return EX_USAGE_;
			}
			break;
		case 'i':
			errno = 0;
			interval = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || optarg[0] == '-' || interval > 86400) {
				fprintf(stderr,
					"dmta-wire: bad --stats-interval '%s': want seconds "
					"(0..86400)\n",
					optarg);
				return EX_USAGE_;
			}
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'v':
			dmta_log_set_level(DMTA_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE_;
		}
	}
	if (optind != argc || w.port[0].name == NULL || w.port[1].name == NULL ||
	    spec_text == NULL) {
		fprintf(stderr, "dmta-wire: need --a IFACE --b IFACE --spec SPEC (see --help)\n");
		return EX_USAGE_;
	}
	if (wire_spec_parse(spec_text, &spec, err, sizeof(err)) < 0) {
		fprintf(stderr, "dmta-wire: %s\n", err);
		return EX_USAGE_;
	}
	if (strcmp(w.port[0].name, w.port[1].name) == 0) {
		fprintf(stderr, "dmta-wire: --a and --b must be different interfaces\n");
		return EX_USAGE_;
	}

	/* Signals go through a signalfd, so the loop sees them in order. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Release times are in microseconds' reach, not the default 50us slack. */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	for (int i = 0; i < 2; i++)
		if (port_open(&w.port[i]) < 0)
			return 1;
	for (int i = 0; i < 2; i++) {
		/* Room for the larger MTU, the Ethernet header and one VLAN tag. */
		unsigned mtu = w.port[0].mtu > w.port[1].mtu ? w.port[0].mtu : w.port[1].mtu;
		size_t bufsize = ((size_t)mtu + ETH_HLEN + VLAN_HLEN + 63) & ~(size_t)63;

		if (bufsize > sizeof(w.scratch) - sizeof(struct virtio_net_hdr))
			bufsize = sizeof(w.scratch) - 64;
		w.spec = spec;
		w.dir[i] = wire_dir_create(&spec.dir[i], seed + (uint64_t)i, bufsize);
		if (w.dir[i] == NULL) {
			dmta_err("%s: %s", dir_name[i], strerror(errno));
			return 1;
		}
	}
	w.ep = epoll_create1(EPOLL_CLOEXEC);
	w.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	w.sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	w.statfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w.ep < 0 || w.tfd < 0 || w.sfd < 0 || w.statfd < 0 || ep_add(w.ep, w.port[0].fd) < 0 ||
	    ep_add(w.ep, w.port[1].fd) < 0 || ep_add(w.ep, w.tfd) < 0 || ep_add(w.ep, w.sfd) < 0 ||
	    ep_add(w.ep, w.statfd) < 0) {
		dmta_err("epoll set-up: %s", strerror(errno));
		return 1;
	}
	w.timer_ns = UINT64_MAX;
	if (interval > 0) {
		struct itimerspec its = {.it_interval = {(time_t)interval, 0},
					 .it_value = {(time_t)interval, 0}};

		timerfd_settime(w.statfd, 0, &its, NULL);
	}
	for (int i = 0; i < 2; i++) {
		char text[256];

		wire_params_format(&spec.dir[i], text, sizeof(text));
		dmta_info("%s %s->%s: %s", dir_name[i], w.port[i].name, w.port[1 - i].name, text);
	}
	if (pidfile != NULL && (rc = write_pidfile(pidfile)) < 0) {
		dmta_err("pidfile %s: %s", pidfile, strerror(-rc));
		return 1;
	}
	dmta_info("forwarding between %s and %s, seed %llu", w.port[0].name, w.port[1].name, seed);
	rc = run(&w);
	print_stats(&w);
	if (pidfile != NULL)
		unlink(pidfile);
	for (int i = 0; i < 2; i++) {
		close(w.port[i].fd);
		wire_dir_destroy(w.dir[i]);
	}
	close(w.ep);
	close(w.tfd);
	close(w.sfd);
	close(w.statfd);
	return rc;
}
