"""tempfail_smtpd.py - the lab's receiver that defers first attempts.

usage: tempfail_smtpd.py --host ADDR --port N --spool DIR [--defer N]

Answers 451 4.7.1 to the first N (default 1) RCPT TO of every recipient
address, the way greylisting does, and accepts later tries. Every accepted
message is written whole to DIR/<n>.eml, so tests and the quickstart can
check what arrived. Runs until SIGTERM.
"""
import argparse
import asyncio
import os
import signal

from aiosmtpd.smtp import SMTP


class Greylist:
    def __init__(self, spool, defer):
        self.spool = spool
        self.defer = defer
        self.seen = {}
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        k = address.lower()
        self.seen[k] = self.seen.get(k, 0) + 1
        if self.seen[k] <= self.defer:
            return "451 4.7.1 %s: greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.spool, "%d.eml" % self.n)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 accepted as %d" % self.n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--spool", required=True)
    ap.add_argument("--defer", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.spool, exist_ok=True)
    handler = Greylist(a.spool, a.defer)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="mx.tempfail.test", enable_SMTPUTF8=True,
                     decode_data=False, data_size_limit=50 << 20),
        host=a.host, port=a.port, backlog=256))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.run_forever()
    server.close()


if __name__ == "__main__":
    main()
