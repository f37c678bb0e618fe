/*
 * wire_blast.c - wire-blast, a bounded UDP frame blaster and counter for
 * measuring forwarding rates across dmta-wire (bench/wire/run).
 *
 * SYNOPSIS
 *	wire-blast send ADDR PORT COUNT SIZE
 *	wire-blast recv ADDR PORT SECONDS
 *
 * DESCRIPTION
 *	send: COUNT datagrams of SIZE bytes to ADDR:PORT with sendmmsg, as
 *	fast as the socket takes them (bounded by COUNT, and by 30 s);
 *	prints "sent N in S s".
 *	recv: counts datagrams on ADDR:PORT until 1 s passes without one, or
 *	SECONDS in all; prints "received N in S s = R frames/s", the time
 *	running from the first datagram to the last.
 *
 * DIAGNOSTICS
 *	Exit 0, or 1 with one line on stderr; 64 on a bad command line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/dmta_time.h"

#define BATCH 64

static int addr_of(const char *ip, const char *port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(port));
	return inet_pton(AF_INET, ip, &sa->sin_addr) == 1 ? 0 : -1;
}

static int blast(const struct sockaddr_in *sa, unsigned long count, size_t size)
{
	static char payload[65536];
	struct mmsghdr msg[BATCH];
	struct iovec iov = {payload, size};
	unsigned long sent = 0;
	uint64_t t0 = dmta_now_ns();
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		fprintf(stderr, "wire-blast: socket: %s\n", strerror(errno));
		return 1;
	}
	memset(msg, 0, sizeof(msg));
	for (int i = 0; i < BATCH; i++) {
		msg[i].msg_hdr.msg_iov = &iov;
		msg[i].msg_hdr.msg_iovlen = 1;
	}
	while (sent < count && dmta_now_ns() - t0 < 30 * DMTA_NS_PER_S) {
		unsigned n = count - sent < BATCH ? (unsigned)(count - sent) : BATCH;
		int r = sendmmsg(fd, msg, n, 0);

		if (r < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED)
				continue;
			fprintf(stderr, "wire-blast: sendmmsg: %s\n", strerror(errno));
			return 1;
		}
		sent += (unsigned long)r;
	}
	printf("sent %lu in %.3f s\n", sent, (dmta_now_ns() - t0) / 1e9);
	close(fd);
	return 0;
}

static int count_rx(const struct sockaddr_in *sa, unsigned seconds)
{
	static char bufs[BATCH][2048];
	struct mmsghdr msg[BATCH];
	struct iovec iov[BATCH];
	struct timeval tv = {1, 0};
	unsigned long got = 0;
	uint64_t start = dmta_now_ns(), first = 0, last = 0;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), sz = 8 << 20;

	if (fd < 0 || bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		fprintf(stderr, "wire-blast: bind: %s\n", strerror(errno));
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(msg, 0, sizeof(msg));
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
	}
	/* Say we are listening: the caller starts the sender after this line. */
	printf("ready\n");
	fflush(stdout);
	while (dmta_now_ns() - start < (uint64_t)seconds * DMTA_NS_PER_S) {
		int r = recvmmsg(fd, msg, BATCH, MSG_WAITFORONE, NULL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (got > 0)
				break; /* 1 s of silence after traffic: done */
			continue;
		}
		last = dmta_now_ns();
		if (got == 0)
			first = last;
		got += (unsigned long)r;
	}
	printf("received %lu in %.3f s = %.0f frames/s\n", got, (last - first) / 1e9,
	       last > first ? got / ((last - first) / 1e9) : 0.0);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;

	if (argc == 6 && strcmp(argv[1], "send") == 0 && addr_of(argv[2], argv[3], &sa) == 0) {
		size_t size = strtoul(argv[5], NULL, 10);

		if (size < 1 || size > 1472) {
			fprintf(stderr, "wire-blast: SIZE must be 1..1472\n");
			return 64;
		}
		return blast(&sa, strtoul(argv[4], NULL, 10), size);
	}
	if (argc == 5 && strcmp(argv[1], "recv") == 0 && addr_of(argv[2], argv[3], &sa) == 0)
		return count_rx(&sa, (unsigned)strtoul(argv[4], NULL, 10));
	fprintf(stderr, "usage: wire-blast send ADDR PORT COUNT SIZE | recv ADDR PORT SECONDS\n");
	return 64;
}
