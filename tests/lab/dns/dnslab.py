"""dnslab - a private network namespace holding a real DNS server (bind9's
named) that serves zones made here, for dns/'s lab tests and benchmarks.

    with DnsLab(tmpdir) as lab:
        lab.run([prog, ...])          # runs inside the namespace
        lab.stop_named() / lab.freeze() / lab.thaw()

The namespace is dmta-t-dns-<pid>; named listens on 198.18.53.1:53 (its
lo) and on 198.18.53.4:53 where dns.test is broken (SERVFAIL); a delaying UDP relay (the "slow server") listens on 198.18.53.2:53, and
one that cuts the end off every answer (malformed replies) on
198.18.53.5:53.
Everything started here is killed and the namespace deleted on exit,
also on SIGTERM (meson's timeout).
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

NAMED = '/usr/sbin/named'
SERVER = '198.18.53.1'
SLOW = '198.18.53.2'
DEAD = '198.18.53.3'   # an address with nothing listening
BAD = '198.18.53.4'    # the same named, where dns.test fails to load: SERVFAIL
CUT = '198.18.53.5'    # a relay to named that cuts 3 bytes off every answer
BULK_N = 20000         # d1.bulk.test ... d20000.bulk.test

ZONE = r"""$TTL 300
@	SOA ns.dns.test. hostmaster.dns.test. 1 3600 600 86400 60
@	NS ns
ns	A 198.18.53.1
; MX ordering and shuffling of equal preferences
order	MX 10 a.mx
order	MX 10 b.mx
order	MX 10 c.mx
order	MX 20 d.mx
order	MX 5 e.mx
a.mx	A 198.18.1.1
b.mx	A 198.18.1.2
c.mx	A 198.18.1.3
d.mx	A 198.18.1.4
e.mx	A 198.18.1.5
e.mx	AAAA 2001:db8::5
; no MX: the domain's own address
implicit	A 198.18.2.1
; RFC 7505
nullmx	MX 0 .
; an exchanger that is an alias
cnamemx	MX 10 alias.mx
alias.mx	CNAME real.mx
real.mx	A 198.18.3.1
; an exchanger with no address (and one with), and only such
noaddr	MX 10 nothing.mx
noaddr	MX 20 b.mx
allnoaddr	MX 10 nothing.mx
allnoaddr	MX 20 txtonly.mx
txtonly.mx	TXT "no address here"
; an exchanger whose only addresses no mail can go to
bogus	MX 10 bogus.mx
bogus	MX 20 b.mx
bogus.mx	A 0.0.0.0
bogus.mx	A 224.0.0.1
; an IP literal as exchanger
literal	MX 10 198.18.1.1.
literal	MX 20 b.mx
; nothing at all for mail
bare	TXT "exists, no MX, no address"
; IPv6 only
v6only	AAAA 2001:db8::1
; the domain itself an alias
aliasdom	CNAME order
; an alias into another zone: named (authoritative only) answers with the
; CNAME alone, and the resolver asks again for the target
xzone	CNAME d7.bulk.test.
; a CNAME loop
loop1	CNAME loop2
loop2	CNAME loop1
; 20 exchangers
@MANY@
; 2000 exchangers (an answer of tens of KB, over TCP); only the best has
; an address
@THOUSAND@
; an answer too large for 512-byte UDP: 100 A records
big	MX 10 big.mx
@BIG@
; a short TTL, for the cache
short	2	MX 10 a.mx
"""

BULK = r"""$TTL 3600
@	SOA ns.dns.test. hostmaster.dns.test. 1 3600 600 86400 60
@	NS ns.dns.test.
mx1	A 198.18.6.1
mx2	A 198.18.6.2
@BULK@
"""

NAMED_CONF = """options {{
	directory "{d}";
	pid-file "{d}/named.pid";
	session-keyfile "{d}/session.key";
	listen-on port 53 {{ {server}; {bad}; }};
	listen-on-v6 {{ none; }};
	recursion no;
	dnssec-validation no;
	notify no;
	querylog yes;
	// room for a burst of queries: the load tests keep hundreds in flight
	udp-receive-buffer 4194304;
	udp-send-buffer 4194304;
	// thousand.dns.test has 2000 MX records (the default allows 100)
	max-records-per-type 5000;
}};
controls {{ }};
logging {{
	channel q {{ file "{d}/query.log"; print-time yes; }};
	category queries {{ q; }};
	category lame-servers {{ null; }};
}};
view "bad" {{
	match-destinations {{ {bad}; }};
	zone "dns.test" {{ type primary; file "{d}/broken2.zone"; }};
}};
view "good" {{
	match-clients {{ any; }};
	zone "dns.test" {{ type primary; file "{d}/dns.test.zone"; }};
	zone "bulk.test" {{ type primary; file "{d}/bulk.test.zone"; }};
	zone "broken.test" {{ type primary; file "{d}/broken.test.zone"; }};
}};
"""

RELAY = r"""
import socket, sys, time, heapq, select
# Every datagram waits `delay` each way; each query gets its own upstream
# socket, so that replies find their client whatever the DNS ids are.
# Mode 'cut' drops the last 3 bytes of every answer (header counts kept):
# a malformed reply whose question still matches.
listen, target, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000
cut = len(sys.argv) > 4 and sys.argv[4] == 'cut'
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((listen, 53))
ups = {}   # upstream socket -> client address
due = []
seq = 0
deadline = time.time() + 600  # bounded: never outlives a test
while time.time() < deadline:
    t = max(0.0, due[0][0] - time.time()) if due else 1.0
    r, _, _ = select.select([s] + list(ups), [], [], t)
    now = time.time()
    for sock in r:
        if sock is s:
            q, client = s.recvfrom(4096)
            seq += 1
            heapq.heappush(due, (now + delay, seq, 'q', q, client, None))
        else:
            a = sock.recv(65535)
            if cut:
                a = a[:-3]
            seq += 1
            heapq.heappush(due, (now + delay, seq, 'a', a, ups.pop(sock), sock))
    while due and due[0][0] <= time.time():
        _, _, kind, data, client, sock = heapq.heappop(due)
        if kind == 'q':
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((listen, 0))
            u.sendto(data, (target, 53))
            ups[u] = client
        else:
            s.sendto(data, client)
            sock.close()
"""


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class DnsLab:
    def __init__(self, slow_ms=400):
        self.ns = 'dmta-t-dns-%d' % os.getpid()
        self.dir = tempfile.mkdtemp(prefix='dmta-dnslab-')
        self.procs = []
        self.named = None
        self.slow_ms = slow_ms

    # -- setup --
    def __enter__(self):
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
        try:
            self._up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _up(self):
        sh('ip', 'netns', 'add', self.ns)
        sh('ip', '-n', self.ns, 'link', 'set', 'lo', 'up')
        for a in (SERVER, SLOW, DEAD, BAD, CUT):
            sh('ip', '-n', self.ns, 'addr', 'add', a + '/32', 'dev', 'lo')
        d = self.dir
        with open(d + '/dns.test.zone', 'w') as f:
            many = ''.join('many\tMX %d m%d.mx\nm%d.mx\tA 198.18.5.%d\n' % (i, i, i, i)
                           for i in range(1, 21))
            big = ''.join('big.mx\tA 198.18.4.%d\n' % i for i in range(1, 101))
            thousand = 'thousand\tMX 1 t1.mx\nt1.mx\tA 198.18.7.1\n' + ''.join(
                'thousand\tMX %d t%d.mx\n' % (i, i) for i in range(2, 2001))
            f.write(ZONE.replace('@MANY@\n', many).replace('@BIG@\n', big)
                    .replace('@THOUSAND@\n', thousand))
        with open(d + '/bulk.test.zone', 'w') as f:
            f.write(BULK.replace('@BULK@\n', ''.join(
                'd%d\tMX 10 mx1\nd%d\tMX 20 mx2\n' % (i, i) for i in range(1, BULK_N + 1))))
        with open(d + '/broken.test.zone', 'w') as f:
            f.write('this is not a zone file\n')   # named cannot load it: SERVFAIL
        with open(d + '/broken2.zone', 'w') as f:
            f.write('this is not a zone file either\n')
        with open(d + '/named.conf', 'w') as f:
            f.write(NAMED_CONF.format(d=d, server=SERVER, bad=BAD))
        with open(d + '/relay.py', 'w') as f:
            f.write(RELAY)
        self.start_named()
        self.relay = self.spawn(['/usr/bin/python3', d + '/relay.py', SLOW, SERVER,
                                 str(self.slow_ms)])
        self.cutter = self.spawn(['/usr/bin/python3', d + '/relay.py', CUT, SERVER, '0', 'cut'])

    def spawn(self, argv, **kw):
        p = subprocess.Popen(['ip', 'netns', 'exec', self.ns] + argv, **kw)
        self.procs.append(p)
        return p

    def start_named(self):
        self.log = open(self.dir + '/named.log', 'a')
        self.named = self.spawn([NAMED, '-g', '-n', '1', '-4', '-u', 'root', '-c',
                                 self.dir + '/named.conf'], stdout=self.log,
                                stderr=subprocess.STDOUT)
        for _ in range(50):
            r = self.run(['dig', '@' + SERVER, '+time=1', '+tries=1', '+short',
                          'ns.dns.test', 'A'], check=False)
            if r.stdout.strip() == SERVER:
                return
            if self.named.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError('named did not come up; log:\n' +
                           open(self.dir + '/named.log').read())

    def stop_named(self):
        self.named.terminate()
        self.named.wait(10)

    def freeze(self):
        # The process inside `ip netns exec` is named itself (exec).
        os.kill(self.named.pid, signal.SIGSTOP)

    def thaw(self):
        os.kill(self.named.pid, signal.SIGCONT)

    def run(self, argv, check=True, timeout=120):
        return subprocess.run(['ip', 'netns', 'exec', self.ns] + argv, check=check,
                              capture_output=True, text=True, timeout=timeout)

    def conf(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def querylog(self):
        try:
            return open(self.dir + '/named.log').read()  # -g: all logging goes to stderr
        except FileNotFoundError:
            return ''

    # -- teardown --
    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.kill()
                    p.wait(5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        sh('ip', 'netns', 'del', self.ns, check=False)
        if os.environ.get('DMTA_KEEP') is None:
            subprocess.run(['rm', '-rf', self.dir])
        return False
