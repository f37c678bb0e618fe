#!/usr/bin/python3
"""aiosmtpd_server.py - a programmable receiving MTA for the smtp lab tests.

Usage: aiosmtpd_server.py --host ADDR --port N --out DIR --cert F --key F
                          [--implicit] [--user U --password P] [--optional]

Listens with STARTTLS (or implicit TLS with --implicit) and, with --user,
requires AUTH over TLS; with --optional, STARTTLS and AUTH are offered but
plaintext mail is taken too. Every accepted message is written to
DIR/N.eml with its envelope in DIR/N.env, and there also what the server
saw: TLS (version, cipher, resumed or not), AUTH, the client's address
and a connection number C; DIR/quit.C appears when that connection says
QUIT. Recipients starting with "temp" get 450, "perm" get 550. Runs
until killed.
"""
import argparse
import asyncio
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, out):
        self.out = out
        self.n = 0
        self.conns = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("temp"):
            return "450 4.2.0 try again later"
        if address.startswith("perm"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        # The session lives as long as the connection (after STARTTLS, a
        # new one): numbering sessions numbers connections.
        if not hasattr(session, "dmta_conn"):
            self.conns += 1
            session.dmta_conn = self.conns
        base = os.path.join(self.out, str(self.n))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".env", "w") as f:
            f.write("from %s\n" % envelope.mail_from)
            for r in envelope.rcpt_tos:
                f.write("to %s\n" % r)
            # After STARTTLS and over implicit TLS alike the transport
            # is a TLS one (session.ssl is set after STARTTLS only).
            tls = server.transport.get_extra_info("ssl_object") if server.transport else None
            f.write("tls %s\n" % (session.ssl is not None or tls is not None))
            f.write("auth %s\n" % (session.authenticated,))
            f.write("peer %s\n" % (session.peer[0] if session.peer else "?"))
            f.write("conn %d\n" % session.dmta_conn)
            if tls is not None:
                f.write("tls_version %s\n" % tls.version())
                f.write("tls_cipher %s\n" % tls.cipher()[0])
                f.write("tls_resumed %s\n" % tls.session_reused)
        return "250 2.0.0 stored %d" % self.n

    async def handle_QUIT(self, server, session, envelope):
        # Which connections that carried mail ended politely.
        if hasattr(session, "dmta_conn"):
            open(os.path.join(self.out, "quit.%d" % session.dmta_conn), "w").close()
        return "221 2.0.0 bye"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--implicit", action="store_true")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--optional", action="store_true")
    # An old server: TLS at most 1.1, which dmta (TLS 1.2 or later) refuses.
    ap.add_argument("--tls-max-1-1", action="store_true")
    a = ap.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    if a.tls_max_1_1:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == a.user
              and auth_data.password.decode() == a.password)
        # handled=False: aiosmtpd then sends its own 535.
        return AuthResult(success=ok, handled=False)

    kw = dict(hostname=a.host, port=a.port, server_hostname="mx.lab.test",
              decode_data=False, enable_SMTPUTF8=True)
    if a.implicit:
        kw["ssl_context"] = ctx
    else:
        kw["tls_context"] = ctx
        kw["require_starttls"] = not a.optional
    if a.user:
        kw["authenticator"] = authenticator
        kw["auth_required"] = not a.optional
        # Over implicit TLS aiosmtpd does not see the session as TLS.
        kw["auth_require_tls"] = not a.implicit
    c = Controller(Handler(a.out), **kw)
    # The readiness probe connects without the test CA; do not let it
    # verify anything.
    c.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
