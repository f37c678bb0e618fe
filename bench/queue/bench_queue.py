#!/usr/bin/python3
"""bench_queue.py - durable injection into dmta's spool, side by side with Postfix.

Usage: bench_queue.py BUILD_DIR [N_INJECT] [N_SENDMAIL]

Measures, in one run on this machine and the same file system (/var/tmp):
  1. dmta-inject: 4 KiB messages per second into a fresh spool (group
     commit, default batch of 500 and -b 2000), and with -b 1 (one commit
     and fsync per message) to show what group commit buys;
  2. per-message latency of dmta-sendmail and of Postfix's sendmail
     (postdrop into a private Postfix instance with no inet listener,
     see postfix_instance.sh), invoked alternately so they share the noise;
  3. 8 concurrent senders for each;
  4. the daemon's result-commit latency (commit_latency) alone and while
     dmta-inject writes the same spool with several batch sizes.
Every message is durable when its injector returns (LMDB commit with fsync;
Postfix's postdrop fsyncs its maildrop file). Prints a Markdown block.
"""
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1]
N_INJECT = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
N_SEQ = int(sys.argv[3]) if len(sys.argv) > 3 else 300
HERE = os.path.dirname(os.path.abspath(__file__))
INJECT = os.path.join(BUILD, "tools/queue/dmta-inject")
SENDMAIL = os.path.join(BUILD, "tools/queue/dmta-sendmail")
QUEUE = os.path.join(BUILD, "tools/queue/dmta-queue")
COMMIT_LAT = os.path.join(BUILD, "bench/queue/commit_latency")
PF_SENDMAIL = "/usr/sbin/sendmail"


def message(i, size=4096):
    head = ("From: bench@example.org\nTo: rcpt@example.net\nSubject: bench %d\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <%d.bench@example.org>\n\n" % (i, i))
    line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqr\n"
    body = (line * (size // len(line) + 1))[: size - len(head)]
    return (head + body).encode()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def conf_for(d):
    spool = os.path.join(d, "spool")
    conf = os.path.join(d, "dmta.conf")
    with open(conf, "w") as f:
        f.write("[spool]\npath = %s\n" % spool)
    return conf


def run_inject(base, n, batch=None):
    d = tempfile.mkdtemp(dir=base)
    conf = conf_for(d)
    src = os.path.join(d, "in.jsonl")
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps({"from": "bench@example.org", "to": ["rcpt@example.net"],
                                "data": message(i).decode()}) + "\n")
    args = [INJECT, "-q", "-c", conf] + (["-b", str(batch)] if batch else [])
    subprocess.run(["sync"])
    t0 = time.monotonic()
    with open(src, "rb") as f:
        p = subprocess.run(args, stdin=f, capture_output=True)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("dmta-inject failed: %r" % p.stderr)
    st = json.loads(subprocess.run([QUEUE, "-c", conf, "--json", "stats"], capture_output=True).stdout)
    if st["messages"] != n:
        raise SystemExit("spool holds %d messages, want %d" % (st["messages"], n))
    shutil.rmtree(d)
    return n / dt


def commit_latency(base, n_inject, batch):
    """The daemon's commit latency alone (n_inject 0) or while dmta-inject runs."""
    d = tempfile.mkdtemp(dir=base)
    conf = conf_for(d)
    spool = os.path.join(d, "spool")
    src = os.path.join(d, "in.jsonl")
    with open(src, "w") as f:
        for i in range(n_inject):
            f.write(json.dumps({"from": "bench@example.org", "to": ["rcpt@example.net"],
                                "data": message(i).decode()}) + "\n")
    lat = subprocess.Popen([COMMIT_LAT, spool, "4"], stdout=subprocess.PIPE)
    time.sleep(0.3)
    if n_inject:
        with open(src, "rb") as f:
            subprocess.run([INJECT, "-q", "-c", conf, "-b", str(batch)], stdin=f, check=True,
                           stderr=subprocess.DEVNULL)
    out = lat.communicate()[0].decode().split()
    shutil.rmtree(d)
    return dict(zip(out[0::2], out[1::2]))


def one(cmd, data, env=None):
    t0 = time.monotonic()
    p = subprocess.run(cmd, input=data, capture_output=True, env=env)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed: %r" % (cmd[0], p.stderr))
    return dt


def main():
    base = tempfile.mkdtemp(prefix="dmta-bench-queue-", dir="/var/tmp")
    os.chmod(base, 0o755)  # postfix daemons must reach their queue under it
    pf = os.path.join(base, "postfix")
    out = []
    try:
        subprocess.run([os.path.join(HERE, "postfix_instance.sh"), "start", pf], check=True,
                       capture_output=True)
        time.sleep(1)
        pf_cmd = [PF_SENDMAIL, "-C", os.path.join(pf, "etc"), "-i", "rcpt@example.net"]
        d = tempfile.mkdtemp(dir=base)
        conf = conf_for(d)
        dm_cmd = [SENDMAIL, "-C", conf, "-i", "rcpt@example.net"]
        msg = message(0)
        # warm up both (page cache, first spool creation)
        for _ in range(5):
            one(dm_cmd, msg)
            one(pf_cmd, msg)

        inj = [run_inject(base, N_INJECT) for _ in range(3)]
        inj2k = [run_inject(base, N_INJECT, batch=2000) for _ in range(3)]
        inj1 = [run_inject(base, max(500, N_INJECT // 20), batch=1) for _ in range(3)]

        lat_dm, lat_pf = [], []
        for i in range(N_SEQ):
            lat_dm.append(one(dm_cmd, message(i)))
            lat_pf.append(one(pf_cmd, message(i)))

        def par(cmd, n_workers=8, per=50):
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(n_workers) as ex:
                list(ex.map(lambda i: one(cmd, message(i)), range(n_workers * per)))
            return n_workers * per / (time.monotonic() - t0)

        lat_alone = commit_latency(base, 0, 0)
        lat_big = commit_latency(base, N_INJECT, 2000)
        lat_def = commit_latency(base, N_INJECT, 500)
        lat_small = commit_latency(base, N_INJECT, 200)

        par_dm = [par(dm_cmd), par(dm_cmd)]
        par_pf = [par(pf_cmd), par(pf_cmd)]

        ms = lambda v: "%.2f" % (v * 1000)
        out.append("| measure (4 KiB messages, durable on return) | dmta | Postfix 3.7 sendmail | ratio |")
        out.append("|---|---:|---:|---:|")
        out.append("| bulk: dmta-inject, %d msgs, msgs/s (median of 3) | %.0f | n/a (no bulk injector) | |"
                   % (N_INJECT, statistics.median(inj)))
        out.append("| bulk: dmta-inject -b 2000, msgs/s (median of 3) | %.0f | | |"
                   % statistics.median(inj2k))
        out.append("| bulk: dmta-inject -b 1 (one fsync per message), msgs/s | %.0f | | |"
                   % statistics.median(inj1))
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99)):
            a, b = pct(lat_dm, p), pct(lat_pf, p)
            out.append("| sendmail latency %s, ms (%d alternating runs) | %s | %s | %.2fx |"
                       % (name, N_SEQ, ms(a), ms(b), b / a))
        a, b = statistics.median(par_dm), statistics.median(par_pf)
        out.append("| sendmail, 8 concurrent senders, msgs/s | %.0f | %.0f | %.2fx |" % (a, b, a / b))
        out.append("")
        out.append("| daemon result commit (every 10 ms, 4 s) | commits | p50 ms | p99 ms | max ms |")
        out.append("|---|---:|---:|---:|---:|")
        for name, r in (("alone", lat_alone), ("while dmta-inject -b 2000 runs", lat_big),
                        ("while dmta-inject -b 500 (default) runs", lat_def),
                        ("while dmta-inject -b 200 runs", lat_small)):
            out.append("| %s | %s | %s | %s | %s |" % (name, r["commits"], r["p50_ms"], r["p99_ms"], r["max_ms"]))
    finally:
        subprocess.run([os.path.join(HERE, "postfix_instance.sh"), "stop", pf], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
