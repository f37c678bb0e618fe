"""Lab: GET /metrics on [metrics] listen, for the backend named by argv[1]
(dpdk or kernel).

Messages go to smtp-sink (sink.test) and to a domain that does not exist
(nosuch.test: bounced). While dmtad runs, /metrics is scraped on
127.0.0.1 until the queue settles; then the text must pass `promtool check
metrics` (Debian's prometheus package), its delivered and bounced counters
must equal the delivery log's lines, the spool commit histogram must have
counted commits, a worker must show sessions opened, and on DPDK every
worker's TCP counters must be there. Other paths are 404."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from labutil import BUILD, check, dmtad_conf, dmtad_start, fail, lab

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "kernel"
N_SINK, N_NOSUCH = 60, 3
T0 = time.time()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        check(r.status == 200, "GET %s: %d" % (path, r.status))
        ctype = r.headers.get("Content-Type", "")
        check(ctype.startswith("text/plain; version=0.0.4"), "Content-Type %r" % ctype)
        return r.read().decode()


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def total(s, name, **labels):
    """The sum of @name's samples whose labels include @labels."""
    want = ['%s="%s"' % kv for kv in labels.items()]
    return sum(v for k, v in s.items()
               if (k == name or k.startswith(name + "{")) and all(w in k for w in want))


lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-metrics-")
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
port = free_port()
dmtad_conf(conf, spool, BACKEND, """[smtp]
helo_name = dmta.test
connect_timeout = 3s
[control]
stats_interval = 250ms
[metrics]
listen = 127.0.0.1:%d
""" % port)

msgs = [{"from": "m%d@sink.test" % i, "to": ["r%d@sink.test" % i]} for i in range(N_SINK)]
msgs += [{"from": "n%d@sink.test" % i, "to": ["x%d@nosuch.test" % i]} for i in range(N_NOSUCH)]
for i, m in enumerate(msgs):
    m["data"] = "Subject: metrics %d\r\n\r\nhello\r\n" % i
r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "--ids", "-c", conf],
                   input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                   text=True, timeout=60)
check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))
# One message held: it stays queued, for the queue's census.
held = r.stdout.split()[1]
r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "hold", held],
                   capture_output=True, text=True, timeout=30)
check(r.returncode == 0, "dmta-queue hold: %s" % r.stderr)

d = dmtad_start(conf)
try:
    # Settled: every recipient has its final line (the DSNs included), and
    # the scrape says the same twice in a row.
    want_final = N_SINK - 1 + 2 * N_NOSUCH
    deadline = time.time() + 40
    last = None
    while time.time() < deadline:
        text = scrape(port)
        s = samples(text)
        final = total(s, "dmta_recipients_total", outcome="delivered") + total(
            s, "dmta_recipients_total", outcome="bounced")
        queued = total(s, "dmta_queue_messages")
        if final >= want_final and queued == 1 and total(s, "dmta_jobs") == 0:
            if last == final:
                break
            last = final
        time.sleep(0.3)
    else:
        fail("not settled after 40 s; last scrape:\n%s" % text)

    path = os.path.join(tmp, "metrics.txt")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "promtool check metrics: exit %d: %s%s" % (r.returncode, r.stdout,
                                                                         r.stderr))

    lines = [json.loads(l) for l in open(os.path.join(spool, "delivery.log"))]
    for outcome in ("delivered", "bounced", "deferred"):
        logged = sum(1 for l in lines if l["outcome"] == outcome)
        got = total(s, "dmta_recipients_total", outcome=outcome)
        check(got == logged, "dmta_recipients_total{outcome=\"%s\"}: got %d, want %d (the delivery "
              "log's lines)" % (outcome, got, logged))
    check(total(s, "dmta_recipient_attempts_total") == len(lines),
          "attempts: got %d, want %d" % (total(s, "dmta_recipient_attempts_total"), len(lines)))
    check(total(s, "dmta_recipients_total", outcome="delivered") == N_SINK - 1 + N_NOSUCH,
          "delivered: got %d, want %d (the DSNs included, the held one not)"
          % (total(s, "dmta_recipients_total", outcome="delivered"), N_SINK - 1 + N_NOSUCH))
    census = {"held": total(s, "dmta_queue_messages", state="held"),
              "pending": total(s, "dmta_queue_recipients", state="pending"),
              "young": total(s, "dmta_queue_messages_by_age", age="1m"),
              "by_age": total(s, "dmta_queue_messages_by_age")}
    check(census == {"held": 1, "pending": 1, "young": 1, "by_age": 1},
          "the held message in the census: got %r, want 1 each" % census)
    check(total(s, "dmta_queue_bytes") > 0, "dmta_queue_bytes 0 with a message queued")
    check(total(s, "dmta_dsns_total", kind="failure") == N_NOSUCH,
          "failure DSNs: got %d, want %d" % (total(s, "dmta_dsns_total", kind="failure"), N_NOSUCH))
    check(total(s, "dmta_bounces_by_status_total") == N_NOSUCH,
          "bounces by status: got %d, want %d" % (total(s, "dmta_bounces_by_status_total"),
                                                  N_NOSUCH))
    commits = total(s, "dmta_spool_commits_total")
    hist = s.get('dmta_spool_commit_duration_seconds_bucket{le="+Inf"}', 0)
    check(commits > 0 and hist == commits,
          "commit histogram counts %d, spool commits %d: want equal and > 0" % (hist, commits))
    check(total(s, "dmta_worker_connections_opened_total") > 0, "no connection opened")
    tx = total(s, "dmta_worker_smtp_transactions_total")
    check(tx > 0 and tx == total(s, "dmta_worker_smtp_transactions_total", worker="0"),
          "SMTP transactions per worker: %d in all, want > 0 and all on worker 0" % tx)
    check(total(s, "dmta_dns_cache_misses_total") > 0, "no DNS cache miss")
    check(total(s, "dmta_info", backend=BACKEND) == 1, "dmta_info lacks backend %s" % BACKEND)
    if BACKEND == "dpdk":
        check(total(s, "dmta_tcp_segs_tx_total") > 0 and "dmta_tcp_retransmits_total{worker=\"0\"}"
              in s, "no per-worker TCP counters")
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/other" % port, timeout=10)
        fail("GET /other: 200, want 404")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "GET /other: got %d, want 404" % e.code)
finally:
    if d.poll() is None:
        d.terminate()
    out, _ = d.communicate(timeout=30)
print(out)
check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report")
# Stopped: nobody answers on the port any more.
try:
    scrape(port)
    fail("/metrics still answers after dmtad stopped")
except (urllib.error.URLError, ConnectionError):
    pass
print("ok (%s): %d samples, promtool clean, counters equal the delivery log, in %.1f s"
      % (BACKEND, len(s), time.time() - T0))
subprocess.run(["rm", "-rf", tmp])
