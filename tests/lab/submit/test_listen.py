"""Lab: dmtad's listeners (kernel sockets) and sendmail -bs.

dmtad runs with the lab's configuration, delivering over kernel sockets to
the lab's smtp-sink (sink.test), and listens on loopback (smtp, submission,
submissions) and on its management address 198.19.0.2, which clients in
the lab namespace reach from 198.19.0.1 (not in mynetworks). Checked:

- swaks: submission with STARTTLS and AUTH PLAIN is accepted; a wrong
  password gets 535; AUTH before STARTTLS and MAIL before AUTH are refused;
  submissions (implicit TLS) with AUTH is accepted;
- a client outside mynetworks cannot relay: 554 5.7.1;
- max_connections_per_client: the connection past the limit gets 421;
- max_errors: the 10th bad command's 500 is followed by 421;
- slowloris: a client trickling one byte a second is cut off with 421
  within command_timeout (3 s here, plus the loop's 1 s granularity),
  while another client is served meanwhile;
- smtp-source -s 8 -m N -l 4096: every message acknowledged, each logged
  once, all delivered to smtp-sink (its own count), the spool empty after,
  and fewer commits than messages (group commit);
- the issue's "printf ... | dmta-sendmail -bs" queues one message.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../core"))
from labutil import (BUILD, NS, check, dmtad_conf, dmtad_start, free_port, lab,  # noqa: E402
                     listener_files, sink_count)

N = int(os.environ.get("SUBMIT_COUNT", "2000"))
MGMT_IP = "198.19.0.2"


def swaks(*args, ns=False, timeout=30):
    cmd = ["swaks", "--from", "a@x.test", "--to", "u@sink.test", *args]
    if ns:
        cmd = ["ip", "netns", "exec", NS, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def converse(port, lines, timeout=10, tail=0):
    """Send each line, return the replies read after each, then @tail more."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    f = s.makefile("rb")

    def reply():
        out = []
        while True:
            line = f.readline().decode()
            out.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return out

    got = [reply()]
    for l in lines:
        s.sendall(l.encode() + b"\r\n")
        got.append(reply())
    for _ in range(tail):
        got.append(reply())
    s.close()
    return got


lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-listen-")
os.chmod(tmp, 0o755)
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
cert, key, users = listener_files(tmp)
line = open(users).read().strip()
check(line.startswith("u1:$y$"), "dmta-passwd wrote %r, want a yescrypt hash for u1" % line)
check(os.stat(users).st_mode & 0o777 == 0o600, "users file mode %o, want 600" % (os.stat(users).st_mode & 0o777))

P_SMTP, P_SUB, P_SUBS = free_port(), free_port(), free_port()
P_MG = free_port()
dmtad_conf(conf, spool, "kernel", """[smtp]
helo_name = dmta.test
[queue]
myhostname = dmta.test
[listen]
smtp = 127.0.0.1:%d, %s:%d
submission = 127.0.0.1:%d
submissions = 127.0.0.1:%d
tls_cert = %s
tls_key = %s
users = %s
command_timeout = 3s
max_connections_per_client = 20
""" % (P_SMTP, MGMT_IP, P_MG, P_SUB, P_SUBS, cert, key, users))

sink_before = sink_count()
d = dmtad_start(conf)
out_lines = []
reader = threading.Thread(target=lambda: out_lines.extend(d.stdout), daemon=True)
reader.start()
accepted = 0
try:
    # Submission: STARTTLS, AUTH PLAIN.
    rc, out = swaks("--server", "127.0.0.1:%d" % P_SUB, "--tls", "--auth", "PLAIN",
                    "--auth-user", "u1", "--auth-password", "secret one")
    check(rc == 0 and "250 2.0.0 Ok: queued as" in out,
          "submission with STARTTLS + AUTH PLAIN: got exit %d, want 0 and 250:\n%s" % (rc, out))
    accepted += 1
    rc, out = swaks("--server", "127.0.0.1:%d" % P_SUB, "--tls", "--auth", "PLAIN",
                    "--auth-user", "u1", "--auth-password", "wrong")
    check(rc != 0 and "535 5.7.8" in out, "wrong password: got exit %d, want 535:\n%s" % (rc, out))
    got = converse(P_SUB, ["EHLO x", "AUTH PLAIN AHUxAHNlY3JldCBvbmU=", "MAIL FROM:<a@x.test>",
                           "QUIT"])
    check(not any("AUTH" in l for l in got[1]), "AUTH offered before STARTTLS: %r" % got[1])
    check(got[2][0][:1] == "5", "AUTH before STARTTLS: got %r, want a 5xx refusal" % got[2])
    check(got[3][0].startswith("530 5.7.0"), "MAIL before STARTTLS: got %r, want 530" % got[3])
    # Submissions: implicit TLS.
    rc, out = swaks("--server", "127.0.0.1:%d" % P_SUBS, "--tlsc", "--auth", "PLAIN",
                    "--auth-user", "u1", "--auth-password", "secret one")
    check(rc == 0 and "250 2.0.0 Ok: queued as" in out,
          "submissions (implicit TLS) + AUTH: got exit %d, want 0 and 250:\n%s" % (rc, out))
    accepted += 1
    print("ok: submission STARTTLS+AUTH 250, wrong password 535, AUTH before STARTTLS "
          "refused (%s), submissions 250" % got[2][0])

    # Relay from outside mynetworks (the lab namespace, 198.19.0.1).
    rc, out = swaks("--server", "%s:%d" % (MGMT_IP, P_MG), ns=True)
    check("554 5.7.1" in out and rc != 0, "relay from 198.19.0.1: got exit %d, want 554:\n%s" % (rc, out))
    print("ok: relay from 198.19.0.1 refused with 554 5.7.1")

    # Errors before 421 ([listen] max_errors, 10 by default).
    got = converse(P_SMTP, ["EHLO x"] + ["BOGUS %d" % i for i in range(10)], tail=1)
    check(got[0][0].startswith("220 "), "greeting: got %r" % got[0])
    codes = [r[0][:3] for r in got[2:]]
    check(codes == ["500"] * 10 + ["421"],
          "10 unknown commands: got %r, want 500 x 10 then 421" % [r[-1] for r in got[2:]])
    print("ok: the 10th error got %s" % got[-1][-1])

    # Connections per client: 20 held open, the 21st is told 421.
    held = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", P_SMTP), timeout=5)
        check(s.recv(100).startswith(b"220 "), "no greeting within the per-client limit")
        held.append(s)
    s = socket.create_connection(("127.0.0.1", P_SMTP), timeout=5)
    g = s.recv(200)
    check(g.startswith(b"421 4.7.0"), "connection 21 of 20: got %r, want 421 4.7.0" % g)
    s.close()
    for s in held:
        s.close()
    print("ok: connection past max_connections_per_client got %s" % g.decode().strip())

    time.sleep(0.5)

    # Slowloris, while someone else is served.
    slow = {}

    def trickle():
        s = socket.create_connection(("127.0.0.1", P_SMTP), timeout=20)
        s.recv(100)
        t0 = time.time()
        data = b""
        try:
            for ch in b"EHLO slowloris.example.org\r\n":
                s.send(bytes([ch]))
                s.settimeout(1.0)
                try:
                    got = s.recv(200)
                    if got == b"":
                        break
                    data += got
                except socket.timeout:
                    pass
        except OSError:
            pass
        slow["reply"] = data
        slow["after"] = time.time() - t0

    t = threading.Thread(target=trickle)
    t.start()
    time.sleep(1)
    t0 = time.time()
    rc, out = swaks("--server", "127.0.0.1:%d" % P_SMTP)
    served = time.time() - t0
    check(rc == 0, "a client during the slowloris: exit %d:\n%s" % (rc, out))
    accepted += 1
    t.join(30)
    check(slow.get("reply", b"").startswith(b"421 4.4.2"),
          "slowloris: got %r, want 421 4.4.2" % slow.get("reply"))
    check(slow["after"] <= 5.0, "slowloris cut off after %.1f s, want <= 5 (3 s timeout)" % slow["after"])
    print("ok: slowloris cut off after %.1f s (command_timeout 3s); another client served in %.2f s"
          % (slow["after"], served))

    # Load.
    t0 = time.time()
    r = subprocess.run(["smtp-source", "-s", "8", "-m", str(N), "-l", "4096", "-f", "a@x.test",
                        "-t", "u@sink.test", "127.0.0.1:%d" % P_SMTP],
                       capture_output=True, text=True, timeout=300)
    took = time.time() - t0
    check(r.returncode == 0, "smtp-source: exit %d: %s" % (r.returncode, r.stderr))
    accepted += N
    print("ok: smtp-source -s 8 -m %d -l 4096: %.1f s, %.0f msg/s accepted" % (N, took, N / took))

    # The -bs example, on the same spool while dmtad runs.
    bs = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-sendmail"), "-C", conf, "-bs"],
                        input=b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@sink.test>\r\n"
                              b"DATA\r\nSubject: t\r\n\r\nbody\r\n.\r\nQUIT\r\n",
                        capture_output=True, timeout=30)
    replies = bs.stdout.decode().splitlines()
    check(bs.returncode == 0 and replies[0].startswith("220 ") and
          any(l.startswith("250 2.0.0 Ok: queued as ") for l in replies) and
          replies[-1].startswith("221 "),
          "dmta-sendmail -bs: exit %d, replies %r" % (bs.returncode, replies))
    print("ok: dmta-sendmail -bs: %s" % " | ".join(replies[-3:]))

    # Everything delivered.
    want = sink_before + accepted + 1
    end = time.time() + 120
    while time.time() < end and sink_count() < want:
        time.sleep(0.5)
    got = sink_count()
finally:
    d.terminate()
    d.wait(timeout=60)
    reader.join(10)
out = "".join(out_lines)
print("\n".join(l for l in out.splitlines() if "listen: " in l and " from=<" not in l))
check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report:\n" + out[-3000:])
check(got == want, "smtp-sink counted %d new messages, want %d" % (got - sink_before, want - sink_before))
logged = len(re.findall(r"listen: [0-9A-F]{12} from=<", out))
check(logged == accepted, "%d acceptance log lines, want %d" % (logged, accepted))
m = re.search(r"listen: (\d+) messages over SMTP, (\d+) from the maildrop, (\d+) commits", out)
check(m is not None, "no listener summary in dmtad's output")
msgs, commits = int(m.group(1)), int(m.group(3))
check(msgs == accepted, "listener says %d messages, want %d" % (msgs, accepted))
check(commits < msgs, "%d commits for %d messages: no group commit" % (commits, msgs))
q = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "--json", "stats"],
                   capture_output=True, text=True, timeout=30)
check('"messages":0' in q.stdout.replace(" ", ""), "spool not empty: %s" % q.stdout)
print("ok: %d messages accepted, each logged once, %d commits (%.1f messages each), all %d "
      "delivered to smtp-sink" % (msgs, commits, msgs / commits, got - sink_before))
subprocess.run(["rm", "-rf", tmp])
