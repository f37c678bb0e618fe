"""sink_client.py - an SMTP client for dmta-sink's fault knobs (kernel TCP,
run inside the lab namespace). smtp-source gives up at the first refused
recipient; this one goes on, and counts what happened.

usage: sink_client.py HOST N
  Sends N one-recipient messages, all on one connection while the server
  keeps it open (a new one, and the message again, when the server has
  closed it). Prints: sent=A rejected=B tempfailed=C connections=D
"""
import smtplib
import sys

host, n = sys.argv[1], int(sys.argv[2])
sent = rejected = tempfailed = 0
conns = 0
s = None
i = 0
while i < n:
    if s is None:
        s = smtplib.SMTP(host, 25, timeout=10)
        s.ehlo("lab.test")
        conns += 1
    try:
        s.sendmail("a@lab.test", ["r%d@sink.test" % i], "Subject: knob %d\r\n\r\nx\r\n" % i)
        sent += 1
    except smtplib.SMTPRecipientsRefused as e:
        code = list(e.recipients.values())[0][0]
        if code >= 500:
            rejected += 1
        else:
            tempfailed += 1
    except smtplib.SMTPServerDisconnected:
        s = None
        continue  # the same message again, on a new connection
    i += 1
if s is not None:
    try:
        s.quit()
    except smtplib.SMTPServerDisconnected:
        pass
print("sent=%d rejected=%d tempfailed=%d connections=%d" % (sent, rejected, tempfailed, conns))
