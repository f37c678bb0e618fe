"""Helpers for lab tests: run tools/lab, dmtad under it, and DPDK telemetry.

Every process started here is remembered by PID and stopped by PID.
"""
import fcntl
import json
import re
import os
import signal
import socket
import subprocess
import sys
import time

TOP = os.environ.get("DMTA_TOP", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
BUILD = os.environ.get("DMTA_BUILD", os.path.join(TOP, "build"))
LAB = os.path.join(TOP, "tools", "lab")
NS = "dmta-lab"
DMTA_IP = "198.18.0.2"
TELEMETRY = "/var/run/dpdk/dmta-lab/dpdk_telemetry.v2"


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


LAB_LOCK = "/tmp/dmta-lab.lock"


def lab_lock(wait=600):
    """Take the lab's lock (flock on LAB_LOCK) for the rest of the process,
    waiting @wait seconds at most (fail after), in line with the other
    users queued on it (a blocking flock, as 'flock LAB_LOCK cmd' does).
    Skipped when the caller already holds it and says so:
    DMTA_LAB_LOCK_HELD=1 (as in 'DMTA_LAB_LOCK_HELD=1 flock
    /tmp/dmta-lab.lock meson test ...'), since a second flock on the same
    file from this process would wait forever."""
    if os.environ.get("DMTA_LAB_LOCK_HELD") == "1":
        return None
    fd = os.open(LAB_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def expired(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(wait)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except TimeoutError:
        fail("the lab stayed locked (%s) for %d s" % (LAB_LOCK, wait))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return fd


def lab(*args, check_rc=True):
    env = dict(os.environ, DMTA_BUILD=BUILD)
    r = subprocess.run([LAB, *args], env=env, capture_output=True, text=True, timeout=120)
    if check_rc and r.returncode != 0:
        fail("tools/lab %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def in_ns(*cmd, timeout=120):
    return subprocess.run(["ip", "netns", "exec", NS, *cmd], capture_output=True, text=True,
                          timeout=timeout)


class Dmtad:
    """dmtad started by 'tools/lab run dmtad' in the background."""

    def __init__(self, *extra):
        env = dict(os.environ, DMTA_BUILD=BUILD)
        self.proc = subprocess.Popen([LAB, "run", "dmtad", *extra], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        deadline = time.time() + 90
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            print("dmtad| " + line.rstrip("\n"), flush=True)
            if ": ready:" in line:
                return
        self.stop()
        fail("dmtad did not report ready; output:\n" + "\n".join(self.lines))

    def stop(self, timeout=30):
        """SIGTERM, then the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            for l in out.splitlines():
                print("dmtad| " + l, flush=True)
            return None
        for l in out.splitlines():
            self.lines.append(l)
            print("dmtad| " + l, flush=True)
        return self.proc.returncode


def telemetry(cmd):
    """One DPDK telemetry command; returns its JSON value."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(TELEMETRY)
    info = json.loads(s.recv(16384).decode())
    s.send(cmd.encode())
    reply = json.loads(s.recv(info.get("max_output_len", 16384)).decode())
    s.close()
    key = cmd.split(",")[0]
    return reply[key]


def ping(count=200, interval="0.01", addr=DMTA_IP):
    """Echo replies the lab namespace gets from @addr (dmta's own by default)."""
    r = in_ns("ping", "-q", "-c", str(count), "-i", interval, "-W", "1", addr)
    for line in r.stdout.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def mac_of(ifname):
    with open("/sys/class/net/%s/address" % ifname) as f:
        return f.read().strip()


def queue_stats(conf):
    """dmta-queue --json stats for @conf, as a dict ({} when it fails)."""
    q = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "--json",
                        "stats"], capture_output=True, text=True, timeout=30)
    return json.loads(q.stdout) if q.returncode == 0 and q.stdout.strip() else {}


def inject(conf, msgs):
    """Queue @msgs (dicts in dmta-inject's JSON Lines format) with
    dmta-inject -c @conf; fails the test unless it exits 0."""
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                       input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                       text=True, timeout=300)
    check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))


def dmtad_until_settled(conf, timeout=90, while_running=None):
    """Run dmtad with @conf until its spool is empty (fail after @timeout
    seconds), call while_running() before stopping it, stop it with
    SIGTERM and check a clean exit. Returns (seconds to settle, output,
    what while_running returned)."""
    d = dmtad_start(conf)
    extra = None
    try:
        t0 = time.time()
        while time.time() < t0 + timeout:
            st = queue_stats(conf)
            if st.get("messages", -1) == 0:
                break
            time.sleep(0.5)
        else:
            fail("queue not empty after %d s: %s" % (timeout, st))
        elapsed = time.time() - t0
        if while_running is not None:
            extra = while_running()
    finally:
        out = dmtad_stop(d)
    return elapsed, out, extra


def dmtad_stop(d):
    """Stop the dmtad @d (from dmtad_start) with SIGTERM, print its output
    and check that it exited cleanly without a sanitizer report. Returns
    its output."""
    d.terminate()
    out, _ = d.communicate(timeout=30)
    print(out)
    check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
    check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report")
    return out


def dmtad_conf(path, spool, backend, extra="", workers=1, dns="198.18.1.53", prefix=None):
    """Write a dmtad configuration at @path: the lab's data plane ([eal],
    [port], [net]) with @workers workers (two: two af_packet queue pairs
    and three lcores on what may be two CPUs, the workers sleeping when
    idle), the DPDK file @prefix if given, @spool, the DNS server @dns,
    the delivery @backend, then @extra (more sections) as it is."""
    base = "".join(l for l in open("/run/dmta-lab/dmta.conf")
                   if not l.startswith(("[dns]", "servers", "[spool]", "path", "[workers]",
                                        "count")))
    if workers > 1:
        base = base.replace("qpairs=1", "qpairs=%d" % workers).replace(
            "-l 0-1", "--lcores 0@0,%s" % ",".join("%d@%d" % (k + 1, k % 2)
                                                   for k in range(workers)))
    if prefix is not None:
        base = base.replace("--file-prefix dmta-lab", "--file-prefix " + prefix)
    with open(path, "w") as f:
        f.write(base + "\n[workers]\ncount = %d\nidle_sleep_us = %d\n[spool]\npath = %s\n"
                "[dns]\nservers = %s\n[delivery]\nbackend = %s\n%s"
                % (workers, 50 if workers > 1 else 0, spool, dns, backend, extra))


def dmtad_start(conf):
    """Start dmtad with @conf and wait until it says it is ready (fail if
    it does not). Returns the Popen, stdout a pipe."""
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    while True:
        line = d.stdout.readline()
        lines.append(line)
        if not line or ": ready:" in line:
            break
    if ": ready:" not in line:
        d.kill()
        d.wait()
        fail("dmtad did not start: " + "".join(lines))
    return d


def stop_procs(procs):
    """Stop the processes this test started, by PID, newest first:
    SIGTERM, then SIGKILL after 10 s."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def dsn_parse(raw):
    """An RFC 3464 delivery status notification parsed with Python's email
    package: None when @raw (bytes) is no multipart/report of type
    delivery-status; else (per-message fields, [per-recipient fields], the
    returned message or its headers as an email.message.Message, or None)."""
    import email
    import email.policy
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    if m.get_content_type() != "multipart/report" or m.get_param("report-type") != "delivery-status":
        return None
    status, returned = None, None
    for part in m.walk():
        ct = part.get_content_type()
        if ct == "message/delivery-status":
            status = part.get_payload()
        elif ct in ("message/rfc822", "text/rfc822-headers") and returned is None:
            p = part.get_payload()
            returned = p[0] if isinstance(p, list) else email.message_from_string(
                p, policy=email.policy.compat32)
    if not status or len(status) < 2:
        return None
    return status[0], status[1:], returned


def dsn_check(raw, want):
    """Match one DSN to its message: @want maps a Message-ID to the set of
    recipients that failed for good, with the status wanted as
    {rcpt: status}. Returns (message id, {rcpt: status}) after checking
    the report (fails the test otherwise)."""
    rep = dsn_parse(raw)
    check(rep is not None, "not a delivery-status report: %r" % raw[:300])
    per_msg, per_rcpt, returned = rep
    check(returned is not None and returned.get("Message-ID"),
          "DSN without the returned message's headers")
    mid = returned.get("Message-ID").strip()
    check(mid in want, "DSN for %s, which nothing bounced" % mid)
    check(per_msg.get("Reporting-MTA", "").startswith("dns;"), "DSN Reporting-MTA %r"
          % per_msg.get("Reporting-MTA"))
    got = {}
    for r in per_rcpt:
        fr = r.get("Final-Recipient", "")
        check(fr.lower().startswith("rfc822;"), "DSN Final-Recipient %r" % fr)
        rcpt = fr.split(";", 1)[1].strip()
        check(r.get("Action") == "failed", "DSN for %s: Action %r" % (rcpt, r.get("Action")))
        got[rcpt] = r.get("Status")
    check(got == want[mid], "DSN for %s names %s, want %s" % (mid, got, want[mid]))
    return mid, got

def all_delivered_once(spool, rcpts):
    """Check @spool's delivery log: each of @rcpts has exactly one final
    (not deferred) outcome, "delivered", and nobody else has one. Returns
    {recipient: its final record}."""
    final = {}
    for l in open(os.path.join(spool, "delivery.log")):
        e = json.loads(l)
        if e["outcome"] != "deferred":
            check(e["to"] not in final, "two final outcomes for %s" % e["to"])
            final[e["to"]] = e
    check(set(final) == set(rcpts), "recipients settled: %d of %d"
          % (len(set(final) & set(rcpts)), len(set(rcpts))))
    bad = [e for e in final.values() if e["outcome"] != "delivered"]
    check(not bad, "not delivered: %r" % bad[:3])
    return final


class AddrSink:
    """shard_sink.py (aiosmtpd) in the lab namespace, listening on port 25
    of each of @addrs, which are put on the namespace's lo for the time,
    and logging every connection and message to @log (the format is in
    shard_sink.py); @args are more of its options (--hold, --mail-reply).
    close() waits until every connection it saw has closed (10 s at most:
    call it once dmtad has stopped), stops it and takes the addresses down
    again."""

    def __init__(self, addrs, log, *args):
        self.addrs, self.log, self.added, self.proc = list(addrs), log, [], None
        try:
            for a in self.addrs:
                r = subprocess.run(["ip", "-n", NS, "addr", "replace", a + "/32", "dev", "lo"],
                                   capture_output=True, text=True)
                check(r.returncode == 0, "ip addr replace %s: %s" % (a, r.stderr))
                self.added.append(a)
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", NS, "/usr/bin/python3",
                 os.path.join(os.path.dirname(__file__), "shard_sink.py"), "--log", log,
                 *args, *self.addrs], stdout=subprocess.DEVNULL, stderr=open(log + ".err", "w"))
            for _ in range(100):
                if os.path.exists(log) and "ready" in open(log).read():
                    return
                time.sleep(0.1)
            fail("shard_sink did not start: %s" % open(log + ".err").read())
        except BaseException:
            self.close()
            raise

    def events(self):
        """The log's lines, each split into its fields (while the receiver
        runs too: a line it is still writing is left for the next call)."""
        try:
            with open(self.log) as f:
                return [l.split() for l in f if l.endswith("\n") and l.strip()]
        except FileNotFoundError:
            return []

    def close(self):
        if self.proc is not None:
            end = time.time() + 10
            while time.time() < end:
                ev = [f[0] for f in self.events()]
                if ev.count("open") == ev.count("close"):
                    break
                time.sleep(0.05)
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
        for a in self.added:
            subprocess.run(["ip", "-n", NS, "addr", "del", a + "/32", "dev", "lo"])
        self.added = []


def sink_count(log="/run/dmta-lab/sink.log"):
    """Messages the lab's smtp-sink has counted (its last "mesg=N")."""
    try:
        data = open(log, "rb").read().decode("ascii", "replace")
    except FileNotFoundError:
        return 0
    m = re.findall(r"mesg=(\d+)", data)
    return int(m[-1]) if m else 0


def free_port():
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def listener_files(tmp, user="u1", password="secret one"):
    """For dmtad's submission listeners, in @tmp: a self-signed certificate
    for dmta.test, its key, and a users file holding @user with @password
    (written by dmta-passwd). Returns (cert, key, users)."""
    cert, key, users = (os.path.join(tmp, n) for n in ("cert.pem", "key.pem", "users"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=dmta.test"], check=True, capture_output=True)
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-passwd"), "-f", users, user],
                       input=password + "\n", capture_output=True, text=True)
    check(r.returncode == 0, "dmta-passwd: exit %d: %s" % (r.returncode, r.stderr))
    return cert, key, users
