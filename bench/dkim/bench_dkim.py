#!/usr/bin/python3
"""bench_dkim.py - what DKIM signing costs dmta, next to the physical limit.

Usage: bench_dkim.py BUILD_DIR [N_INJECT] [ROUNDS]

In one run on this machine:
  1. `openssl speed rsa2048 ed25519`: OpenSSL's own signatures per second
     on one core, the limit any signer built on it meets;
  2. dkim_speed: dmta's signatures per second on one core, a 4 KiB message
     canonicalised, hashed and signed (queue_dkim_sign()); 1 and 2
     alternate for ROUNDS rounds, medians;
  3. dmta-inject of N_INJECT 4 KiB messages into a fresh spool with DKIM
     off, with an Ed25519 key and with an RSA-2048 key, ROUNDS rounds
     with the three interleaved so that machine noise hits all alike;
     medians. The signer pool has one thread per core (the default).
     Besides messages per second of wall-clock time, the injector's CPU
     time (user + system, all its threads) gives messages per CPU-second:
     on a machine shared with other work, wall-clock rates measure the
     neighbours as well, CPU time does not.
Prints a Markdown block and writes bench/results/dkim.json.
"""
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

BUILD = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INJECT = os.path.join(BUILD, "tools/queue/dmta-inject")
DKIMTOOL = os.path.join(BUILD, "tools/queue/dmta-dkim")
SPEED = os.path.join(BUILD, "bench/dkim/dkim_speed")


def message(i, size=4096):
    head = ("From: bench@example.org\nTo: rcpt@example.net\nSubject: bench %d\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <%d.bench@example.org>\n\n" % (i, i))
    line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqr\n"
    body = (line * (size // len(line) + 1))[: size - len(head)]
    return head + body


def openssl_speed():
    p = subprocess.run(["openssl", "speed", "-seconds", "2", "rsa2048", "ed25519"],
                       capture_output=True, text=True, check=True)
    rsa = re.search(r"^rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)", p.stdout, re.M)
    ed = re.search(r"EdDSA \(Ed25519\)\s+\S+\s+\S+\s+([\d.]+)", p.stdout, re.M)
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    return float(rsa.group(1)), float(ed.group(1)), version.strip()


def inject(conf, data):
    spool = os.path.join(os.path.dirname(conf), "spool")
    shutil.rmtree(spool, ignore_errors=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([INJECT, "-c", conf, "-q"], input=data, capture_output=True, timeout=600)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode != 0:
        raise SystemExit("dmta-inject: exit %d: %s" % (p.returncode, p.stderr.decode()))
    m = re.search(rb"(\d+) messages queued .* in ([\d.]+) s", p.stderr)
    if int(m.group(1)) != N:
        raise SystemExit("dmta-inject queued %s messages, want %d" % (m.group(1), N))
    return N / float(m.group(2)), N / cpu


def main():
    t = tempfile.mkdtemp(prefix="dmta-bench-dkim.", dir="/var/tmp")
    try:
        keys = os.path.join(t, "keys")
        os.mkdir(keys, 0o700)
        for kind, sel in (("rsa", "rsa"), ("ed25519", "ed")):
            subprocess.run([DKIMTOOL, "genkey", "--type", kind, "--selector", sel, "--domain",
                            "example.org", "--out", keys], check=True, capture_output=True)
        confs = {}
        for name, key in (("off", None), ("ed25519", "ed"), ("rsa-2048", "rsa")):
            d = os.path.join(t, name)
            os.mkdir(d)
            confs[name] = os.path.join(d, "dmta.conf")
            with open(confs[name], "w") as f:
                f.write("[spool]\npath = %s/spool\n" % d)
                if key:
                    f.write("[dkim example.org]\nkeys = %s:%s/%s.key\n" % (key, keys, key))
        data = "".join(json.dumps({"from": "bench@example.org", "to": ["rcpt@example.net"],
                                   "data": message(i)}) + "\n" for i in range(N)).encode()

        speeds = {"o_rsa": [], "o_ed": [], "rsa-sha256": [], "ed25519-sha256": []}
        for _ in range(ROUNDS):
            o_rsa, o_ed, version = openssl_speed()
            speeds["o_rsa"].append(o_rsa)
            speeds["o_ed"].append(o_ed)
            sp = subprocess.run([SPEED, "2", "4096", keys + "/rsa.key", keys + "/ed.key"],
                                capture_output=True, text=True, check=True).stdout.splitlines()
            for x in sp:
                speeds[json.loads(x)["alg"]].append(json.loads(x)["per_second"])
        o_rsa = statistics.median(speeds["o_rsa"])
        o_ed = statistics.median(speeds["o_ed"])
        mine = {k: statistics.median(speeds[k]) for k in ("rsa-sha256", "ed25519-sha256")}
        rates = {k: [] for k in confs}
        cpurates = {k: [] for k in confs}
        load0 = os.getloadavg()[0]
        for _ in range(ROUNDS):
            for name in confs:
                wall, cpu = inject(confs[name], data)
                rates[name].append(wall)
                cpurates[name].append(cpu)
        load1 = os.getloadavg()[0]
        med = {k: statistics.median(v) for k, v in rates.items()}
        cmed = {k: statistics.median(v) for k, v in cpurates.items()}
        cores = os.cpu_count()

        print("%s; %d cores; %d x 4 KiB messages per dmta-inject run, %d rounds, medians; "
              "load average %.1f before the dmta-inject runs, %.1f after"
              % (version, cores, N, ROUNDS, load0, load1))
        print()
        print("| signatures per second, one core | OpenSSL (`openssl speed`) | dmta "
              "(dkim_speed, 4 KiB message) | dmta / OpenSSL |")
        print("|---|---:|---:|---:|")
        print("| RSA-2048 (rsa-sha256) | %.0f | %.0f | %.2f |"
              % (o_rsa, mine["rsa-sha256"], mine["rsa-sha256"] / o_rsa))
        print("| Ed25519 (ed25519-sha256) | %.0f | %.0f | %.2f |"
              % (o_ed, mine["ed25519-sha256"], mine["ed25519-sha256"] / o_ed))
        print()
        print("rounds: openssl rsa %s; dmta rsa %s; openssl ed25519 %s; dmta ed25519 %s"
              % tuple(", ".join("%.0f" % v for v in speeds[k])
                      for k in ("o_rsa", "rsa-sha256", "o_ed", "ed25519-sha256")))
        print()
        print("| dmta-inject, 4 KiB messages, durable | msgs/s (median) | all rounds | "
              "vs DKIM off | limit: cores x OpenSSL | msgs per CPU-second | "
              "limit: OpenSSL per CPU-second |")
        print("|---|---:|---|---:|---:|---:|---:|")
        for name, one in (("off", None), ("ed25519", o_ed), ("rsa-2048", o_rsa)):
            print("| DKIM %s | %.0f | %s | %.2f | %s | %.0f | %s |"
                  % (name, med[name], ", ".join("%.0f" % r for r in rates[name]),
                     med[name] / med["off"], "%.0f" % (one * cores) if one else "",
                     cmed[name], "%.0f" % one if one else ""))
        os.makedirs(os.path.join(TOP, "bench", "results"), exist_ok=True)
        with open(os.path.join(TOP, "bench", "results", "dkim.json"), "w") as f:
            json.dump({"openssl": version, "cores": cores, "messages": N, "rounds": ROUNDS,
                       "openssl_sign_per_s": {"rsa2048": o_rsa, "ed25519": o_ed},
                       "dmta_sign_per_s": mine, "sign_rounds": speeds, "inject_msgs_per_s": rates,
                       "inject_msgs_per_s_median": med, "inject_msgs_per_cpu_s": cpurates,
                       "inject_msgs_per_cpu_s_median": cmed, "loadavg": [load0, load1]},
                      f, indent=1)
    finally:
        shutil.rmtree(t, ignore_errors=True)


main()
