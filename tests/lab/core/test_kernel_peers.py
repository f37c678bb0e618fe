"""dmtad (backend = kernel) against misbehaving SMTP servers on loopback.

Each server is a real TCP peer run by this script on 127.0.0.1; dmtad
reaches it through a [routes] entry, so no DNS is asked. What is checked:
dmtad outlives the server's misbehaviour, the message stays queued
(deferred, never lost) and dmtad stops cleanly on SIGTERM.

Only what needs real sockets and a whole dmtad is here: TLS torn down by a
reset, SIGTERM while a server sits on the final dot, idle_timeout = 0 in
the control loop, admin commands while dmtad runs. The session pool's own
logic (every reply class at every stage, a reset during DATA, a refusal in
the middle of the body, recipients refused under PIPELINING and CHUNKING,
busy greetings and failover, idle timeout, reuse and connection limits)
is tested deterministically in tests/unit/core/test_pool.c."""
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ["DMTA_BUILD"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def tls_then_rst(conn):
    """STARTTLS, then a reset at MAIL: the client's TLS close_notify then
    goes to a socket the peer has reset."""
    f = conn.makefile("rb")
    conn.sendall(b"220 rst.test ESMTP\r\n")
    line = f.readline()
    conn.sendall(b"250-rst.test\r\n250 STARTTLS\r\n")
    line = f.readline()
    if not line.upper().startswith(b"STARTTLS"):
        return
    conn.sendall(b"220 go ahead\r\n")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    tls = ctx.wrap_socket(conn, server_side=True)
    tf = tls.makefile("rb")
    while True:
        line = tf.readline()
        if not line:
            return
        if line[:4].upper() in (b"EHLO", b"HELO"):
            tls.sendall(b"250 rst.test\r\n")
        else:
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tls.close()
            return


def silent_after_dot(conn):
    """Takes the whole message, then never answers the final dot."""
    f = conn.makefile("rb")
    conn.sendall(b"220 slow.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"DATA":
            conn.sendall(b"354 go on\r\n")
            while f.readline() not in (b".\r\n", b""):
                pass
            AT_FINAL_DOT.set()
            f.read()  # until dmtad gives up and closes
            return
        conn.sendall(b"250 ok\r\n")


CONNECTIONS = []  # one entry per connection a server here accepted


def serve(lsock, handler, stop):
    lsock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = lsock.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        CONNECTIONS.append(handler.__name__)
        conn.settimeout(10)
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


AT_FINAL_DOT = threading.Event()


def deferred(tmp):
    """The attempt is over and was written down as deferred."""
    try:
        with open(os.path.join(tmp, "spool/delivery.log")) as f:
            return '"deferred"' in f.read()
    except FileNotFoundError:
        return False


def at_final_dot(tmp):
    return AT_FINAL_DOT.is_set()


def run_case(name, handler, body_size, until, tls="none", queued=1):
    """Runs dmtad against @handler until @until(tmp) holds, then stops it."""
    tmp = tempfile.mkdtemp(prefix="dmta-peers-")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    conf = os.path.join(tmp, "dmta.conf")
    with open(conf, "w") as f:
        f.write("""[spool]
path = %s/spool
[dns]
servers = 127.0.0.1:1
[routes]
peer.test = 127.0.0.1:%d
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
tls = %s
connect_timeout = 2s
[control]
stop_timeout = 1s
[queue]
min_backoff = 1h
""" % (tmp, port, tls))
    msg = {"from": "a@dmta.test", "to": ["b@peer.test"],
           "data": "Subject: %s\r\n\r\n%s\r\n" % (name, ("y" * 70 + "\r\n") * (body_size // 72))}
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "-c", conf],
                       input=json.dumps(msg) + "\n", capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "%s: dmta-inject: %s" % (name, r.stderr))
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(lsock, handler, stop), daemon=True)
    t.start()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        end = time.time() + 15
        while time.time() < end and not until(tmp) and d.poll() is None:
            time.sleep(0.05)
        reached = until(tmp)
        alive = d.poll() is None
        d.terminate()
        t0 = time.time()
        out, _ = d.communicate(timeout=30)
        stop_s = time.time() - t0
    finally:
        if d.poll() is None:
            d.kill()
        stop.set()
        lsock.close()
        t.join(5)
    print(out)
    check(reached, "%s: the case never got where it tests (%s)" % (name, until.__name__))
    check(stop_s < 10, "%s: dmtad took %.1f s to stop" % (name, stop_s))
    check(alive, "%s: dmtad died (exit %s) while the server misbehaved" % (name, d.returncode))
    check(d.returncode == 0, "%s: dmtad exit %d after SIGTERM" % (name, d.returncode))
    check("AddressSanitizer" not in out and "runtime error" not in out, "%s: sanitizer report" % name)
    q = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "--json", "stats"],
                       capture_output=True, text=True, timeout=30)
    st = json.loads(q.stdout)
    check(st.get("messages") == queued, "%s: the message left the spool: %s" % (name, q.stdout))
    # The misbehaving server was reached, and what dmtad wrote down for the
    # attempt is a deferral: a 5xx turned into a bounce must not pass as
    # "still queued".
    reached = CONNECTIONS.count(handler.__name__)
    check(reached >= 1, "%s: the server was never reached" % name)
    with open(os.path.join(tmp, "spool/delivery.log")) as f:
        recs = [json.loads(l) for l in f if l.strip()]
    outcomes = sorted({r["outcome"] for r in recs})
    check(recs and outcomes == ["deferred"] and all(r["status"].startswith("4.") for r in recs),
          "%s: got delivery log %s, want deferred (4.x.x) only"
          % (name, [(r["outcome"], r["status"], r["reply"]) for r in recs]))
    check(st.get("deferred") == queued and st.get("bounced") == 0,
          "%s: got spool %s, want the recipient deferred" % (name, q.stdout))
    subprocess.run(["rm", "-rf", tmp])
    print("ok: %s (reached %d time(s), %d attempt(s) deferred: %s)"
          % (name, reached, len(recs), recs[-1]["reply"][:80]))


def accept_all(got, defer):
    def handler(conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 ok.test ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line[:4].upper()
            if cmd == b"DATA":
                conn.sendall(b"354 go on\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                got.append(1)
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif cmd == b"RCPT" and defer:
                conn.sendall(b"451 4.3.0 try later\r\n")
            else:
                conn.sendall(b"250 ok\r\n")
    return handler


def idle_timeout_zero():
    """idle_timeout = 0: each session ends with QUIT once its job is done,
    and dmtad goes on serving (and stops on SIGTERM)."""
    tmp = tempfile.mkdtemp(prefix="dmta-peers-")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    conf = os.path.join(tmp, "dmta.conf")
    with open(conf, "w") as f:
        f.write("""[spool]
path = %s/spool
[dns]
servers = 127.0.0.1:1
[routes]
peer.test = 127.0.0.1:%d
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
tls = none
idle_timeout = 0
""" % (tmp, port))
    msgs = [{"from": "a@dmta.test", "to": ["b%d@peer.test" % i], "data": "Subject: %d\r\n\r\nhi\r\n" % i}
            for i in range(3)]
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "-c", conf],
                       input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "dmta-inject: %s" % r.stderr)
    got = []
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(lsock, accept_all(got, []), stop), daemon=True)
    t.start()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    stopped = True
    try:
        end = time.time() + 10
        while time.time() < end and len(got) < 3:
            time.sleep(0.1)
        time.sleep(0.5)
        d.terminate()
        try:
            out, _ = d.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            stopped = False
            d.kill()
            out, _ = d.communicate(timeout=15)
    finally:
        if d.poll() is None:
            d.kill()
        stop.set()
        lsock.close()
        t.join(5)
    print(out)
    check(len(got) == 3, "%d of 3 messages delivered with idle_timeout = 0" % len(got))
    check(stopped, "dmtad did not stop on SIGTERM with idle_timeout = 0")
    check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
    subprocess.run(["rm", "-rf", tmp])
    print("ok: idle_timeout = 0")


def admin_while_running():
    """dmta-queue hold and release while dmtad runs take effect at once."""
    tmp = tempfile.mkdtemp(prefix="dmta-peers-")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    conf = os.path.join(tmp, "dmta.conf")
    with open(conf, "w") as f:
        f.write("""[spool]
path = %s/spool
[dns]
servers = 127.0.0.1:1
[routes]
peer.test = 127.0.0.1:%d
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
tls = none
""" % (tmp, port))

    def inject(n):
        msgs = [{"from": "a@dmta.test", "to": ["b%d@peer.test" % i], "data": "Subject: %d\r\n\r\nhi\r\n" % i}
                for i in range(n)]
        r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "--ids", "-c", conf],
                           input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, "dmta-inject: %s" % r.stderr)
        return [l.split()[1] for l in r.stdout.split("\n") if l.strip()]

    def queue(*args, must=True):
        r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf] + list(args),
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 or not must, "dmta-queue %s: %s" % (args, r.stderr))
        return r.stdout

    def wait_for(cond, secs):
        end = time.time() + secs
        while time.time() < end:
            if cond():
                return True
            time.sleep(0.1)
        return cond()

    held = inject(1)
    queue("hold", held[0])
    got = []
    defer = []
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(lsock, accept_all(got, defer), stop), daemon=True)
    t.start()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        # dmtad says what it loaded, then that it is ready.
        first = []
        while len(first) < 20 and (not first or (first[-1] and ": ready:" not in first[-1])):
            first.append(d.stdout.readline())
        check(": ready:" in first[-1], "dmtad did not start: %r" % first)
        time.sleep(1)
        check(len(got) == 0, "a held message was delivered")
        queue("release", held[0])
        released = wait_for(lambda: len(got) == 1, 5)
        # Held while dmtad runs: a flush must not send it.
        defer.append(1)
        ids = inject(1)
        check(wait_for(lambda: '"deferred"' in open(os.path.join(tmp, "spool/delivery.log")).read(), 5),
              "the second message was not tried")
        queue("hold", ids[0])
        defer.clear()
        queue("flush")
        time.sleep(2)
        n_after_hold = len(got)
        show = queue("--json", "show", ids[0], must=False)
        # Deleted while dmtad runs: forgotten, not tried (nor bounced) again.
        defer.append(1)
        gone = inject(1)
        check(wait_for(lambda: open(os.path.join(tmp, "spool/delivery.log")).read().count('"deferred"') >= 2, 5),
              "the third message was not tried")
        queue("delete", gone[0])
        defer.clear()
        queue("flush")
        time.sleep(1)
        after_delete = [json.loads(l) for l in open(os.path.join(tmp, "spool/delivery.log"))
                        if json.loads(l)["qid"] == gone[0] and json.loads(l)["outcome"] != "deferred"]
        d.terminate()
        out, _ = d.communicate(timeout=30)
    finally:
        if d.poll() is None:
            d.kill()
        stop.set()
        lsock.close()
        t.join(5)
    print(out)
    check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
    check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report")
    check(released, "a message released while dmtad runs was not delivered")
    check(n_after_hold == 1, "a message held while dmtad runs was delivered")
    check('"held":true' in show.replace(" ", ""), "the hold was lost: %s" % show)
    check(not after_delete, "a message deleted while dmtad runs was settled again: %r" % after_delete)
    subprocess.run(["rm", "-rf", tmp])
    print("ok: hold and release while dmtad runs")


idle_timeout_zero()
admin_while_running()
KEYDIR = tempfile.mkdtemp(prefix="dmta-peers-key-")
CERT = os.path.join(KEYDIR, "cert.pem")
KEY = os.path.join(KEYDIR, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=rst.test", "-keyout", KEY, "-out", CERT],
               check=True, capture_output=True, timeout=60)
run_case("reset after STARTTLS", tls_then_rst, 1000, deferred, tls="opportunistic")
run_case("SIGTERM while the server sits on the final dot", silent_after_dot, 1000, at_final_dot)
subprocess.run(["rm", "-rf", KEYDIR])
