"""bench_e2e.py - delivery rate, durable spool included: dmtad on DPDK (one
worker, and two with software flow steering), dmtad on kernel sockets, and
Postfix as a null client, to the same smtp-sink, one run.

usage: bench_e2e.py BUILD_DIR [N] [ROUNDS]

For each system the queue is filled while it is stopped (N messages of 4 KiB,
one recipient each, spread over the eight domains b0..b7.sink.test, which all
have smtp-sink as MX), then the system is started and timed until
the lab's smtp-sink has counted all N: what is measured is queue -> delivered,
with every state change committed to disk, not the injection path. Rounds
alternate between the systems so that machine noise hits all alike.

dmtad delivers by MX (the lab's DNS); Postfix relays to [198.18.1.10], the same
smtp-sink, with no DNS lookup at all. Both use up to 8 connections per
destination. With two workers dmtad shards the eight domains between them;
on a machine with two CPUs the workers share them with the control thread
and the sink (idle_sleep_us = 50).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 1
SINK_LOG = "/run/dmta-lab/sink.log"
LAB_CONF = "/run/dmta-lab/dmta.conf"
BODY = "x" * 76 + "\n"
MSG = "From: bench@bench.test\nTo: r@sink.test\nSubject: bench\n\n" + BODY * 53  # ~4 KiB


def sink_count():
    with open(SINK_LOG, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 256))
        m = re.findall(rb"mesg=(\d+)", f.read())
    return int(m[-1]) if m else 0


def wait_sink(target, limit):
    t0 = time.time()
    while sink_count() < target:
        if time.time() - t0 > limit:
            raise RuntimeError("gave up after %d s at %d of %d" % (limit, sink_count(), target))
        time.sleep(0.05)


def rcpt(i):
    return "r%d@b%d.sink.test" % (i, i % 8)


def run_dmtad(backend, tmp, workers=1):
    spool = os.path.join(tmp, "spool-" + backend)
    conf = os.path.join(tmp, "dmta-%s.conf" % backend)
    base = "".join(l for l in open(LAB_CONF)
                   if not l.startswith(("[dns]", "servers", "[spool]", "path", "[workers]",
                                        "count")))
    if workers == 2:
        base = base.replace("qpairs=1", "qpairs=2").replace("-l 0-1", "--lcores 0@0,1@0,2@1")
    with open(conf, "w") as f:
        f.write(base + "\n[spool]\npath = %s\n[dns]\nservers = 198.18.1.53\n[delivery]\n"
                "backend = %s\n[smtp]\nhelo_name = bench.test\n[queue]\n"
                "dest_max_connections = 8\ndest_max_messages_per_connection = 1000\n"
                "[workers]\ncount = %d\nidle_sleep_us = %d\n"
                % (spool, backend, workers, 50 if workers > 1 else 0))
    lines = "".join(json.dumps({"from": "bench@bench.test", "to": [rcpt(i)],
                                "data": MSG}) + "\n" for i in range(N))
    subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                   input=lines.encode(), check=True, capture_output=True)
    target = sink_count() + N
    t0 = time.time()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_sink(target, 600)
        elapsed = time.time() - t0
    finally:
        d.terminate()
        d.wait(timeout=60)
    shutil.rmtree(spool, ignore_errors=True)
    return elapsed


def run_postfix(tmp):
    d = os.path.join(tmp, "postfix")
    shutil.rmtree(d, ignore_errors=True)
    for sub in ("etc", "queue", "data"):
        os.makedirs(os.path.join(d, sub))
    shutil.chown(os.path.join(d, "data"), "postfix")
    with open(os.path.join(d, "etc/main.cf"), "w") as f:
        f.write("""compatibility_level = 3.6
queue_directory = %(d)s/queue
data_directory = %(d)s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.test
mydestination =
relayhost = [198.18.1.10]
disable_dns_lookups = yes
smtp_dns_support_level = disabled
default_destination_concurrency_limit = 8
smtp_destination_concurrency_limit = 8
default_process_limit = 100
maillog_file = %(d)s/maillog
maillog_file_prefixes = %(d)s
""" % {"d": d})
    base = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "../../tools/labfiles/postfix-master.cf")
    with open(os.path.join(d, "etc/master.cf"), "w") as f:
        f.write(open(base).read() + """smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
""")
    etc = os.path.join(d, "etc")
    subprocess.run(["postfix", "-c", etc, "set-permissions"], capture_output=True)
    # Fill the maildrop while Postfix is stopped: pickup takes it at start.
    procs = []
    for i in range(N):
        p = subprocess.Popen(["/usr/sbin/sendmail", "-C", etc, "-f", "bench@bench.test",
                              rcpt(i)], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.stdin.write(MSG.encode())
        p.stdin.close()
        procs.append(p)
        if len(procs) >= 16:
            procs.pop(0).wait()
    for p in procs:
        p.wait()
    target = sink_count() + N
    t0 = time.time()
    subprocess.run(["postfix", "-c", etc, "start"], check=True, capture_output=True)
    try:
        wait_sink(target, 600)
        elapsed = time.time() - t0
    finally:
        subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True)
    return elapsed


tmp = tempfile.mkdtemp(prefix="dmta-bench-e2e-")
os.chmod(tmp, 0o755)  # Postfix's own processes run as user postfix
results = {"dmtad-dpdk": [], "dmtad-dpdk-2w": [], "dmtad-kernel": [], "postfix": []}
try:
    for r in range(ROUNDS):
        results["dmtad-dpdk"].append(N / run_dmtad("dpdk", tmp))
        results["dmtad-dpdk-2w"].append(N / run_dmtad("dpdk", tmp, workers=2))
        results["dmtad-kernel"].append(N / run_dmtad("kernel", tmp))
        results["postfix"].append(N / run_postfix(tmp))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
pf = sorted(results["postfix"])[len(results["postfix"]) // 2]
for k, v in results.items():
    med = sorted(v)[len(v) // 2]
    print("%-13s %7.0f msg/s  (%.2fx Postfix; rounds: %s)"
          % (k, med, med / pf, " ".join("%.0f" % x for x in v)))
