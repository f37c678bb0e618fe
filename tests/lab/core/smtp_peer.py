"""A programmable SMTP receiver on 127.0.0.1 for loopback tests of dmtad's
kernel backend: accepts everything, slowly if asked; defers each
"grey..." recipient once and refuses every "bad..." one; counts the
connections open at once and records each accepted message."""
import os
import socket
import threading
import time


def write_conf(path, spool, port, extra=""):
    """A dmtad configuration at @path (written whole, then renamed in):
    kernel backend, spool @spool, peer.test routed to 127.0.0.1:@port, no
    DNS server that answers, then @extra (more sections) as it is."""
    with open(path + ".new", "w") as f:
        f.write("[spool]\npath = %s\n[dns]\nservers = 127.0.0.1:1\n[routes]\n"
                "peer.test = 127.0.0.1:%d\n[delivery]\nbackend = kernel\n[control]\n"
                "stop_timeout = 5s\n%s" % (spool, port, extra))
    os.rename(path + ".new", path)


class Receiver:
    def __init__(self, delay=0.0):
        self.delay = delay
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.conns = 0
        self.accepted = []  # (connection number, time)
        self.greyed = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reset_max(self):
        with self.lock:
            self.max_active = self.active

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.lsock.close()

    def serve(self):
        self.lsock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            with self.lock:
                self.conns += 1
                cid = self.conns
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            threading.Thread(target=self.session, args=(conn, cid), daemon=True).start()

    def rcpt(self, line):
        addr = line.split(b":", 1)[1].strip().strip(b"<>").split(b">")[0].decode()
        if addr.startswith("bad"):
            return b"550 5.1.1 no such user\r\n", False
        if addr.startswith("grey"):
            with self.lock:
                if addr not in self.greyed:
                    self.greyed.add(addr)
                    return b"451 4.7.1 greylisted, try again\r\n", False
        return b"250 2.1.5 ok\r\n", True

    def session(self, conn, cid):
        try:
            f = conn.makefile("rb")
            conn.sendall(b"220 peer.test ESMTP\r\n")
            good = 0
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-peer.test\r\n250 PIPELINING\r\n")
                elif cmd == b"MAIL":
                    good = 0
                    conn.sendall(b"250 2.1.0 ok\r\n")
                elif cmd == b"RCPT":
                    reply, ok = self.rcpt(line)
                    good += ok
                    conn.sendall(reply)
                elif cmd == b"DATA":
                    if not good:
                        conn.sendall(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    conn.sendall(b"354 go on\r\n")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    time.sleep(self.delay)
                    with self.lock:
                        self.accepted.append((cid, time.time()))
                    conn.sendall(b"250 2.0.0 ok\r\n")
                elif cmd == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.active -= 1
