#!/usr/bin/env bash
# postfix_setup.sh DIR ADDR [CERT KEY] - write a private Postfix instance's
# config into DIR/etc that listens on ADDR:25 only and delivers everything
# for $PF_DOMAIN (default lab.test) into the Maildir DIR/mail/box/ (as
# nobody), offering STARTTLS with CERT and KEY when given. Nothing
# system-wide is used but the binaries. Start it with
# 'postfix -c DIR/etc start-fg' inside the namespace that holds ADDR.
set -euo pipefail
d=$1
addr=$2
cert=${3:-}
key=${4:-}
domain=${PF_DOMAIN:-lab.test}
mkdir -p "$d/etc" "$d/queue" "$d/data" "$d/mail"
chmod 755 "$d"
chown nobody:nogroup "$d/mail"
chown postfix "$d/data"
uid=$(id -u nobody)
gid=$(id -g nobody)
cp /etc/postfix/dynamicmaps.cf "$d/etc/" 2>/dev/null || true
cat >"$d/etc/main.cf" <<CF
compatibility_level = 3.6
config_directory = $d/etc
queue_directory = $d/queue
data_directory = $d/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.$domain
mydomain = $domain
myorigin = $domain
mydestination =
inet_interfaces = $addr
inet_protocols = ipv4
mynetworks = 198.18.0.0/15, 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
virtual_mailbox_domains = $domain
virtual_mailbox_base = $d/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 1
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = yes
maillog_file = $d/maillog
maillog_file_prefixes = $d
smtpd_banner = \$myhostname ESMTP
biff = no
relayhost =
default_transport = error:no outbound mail from the lab receiver
queue_run_delay = 1s
# Small, so that the client meets a real 452 "too many recipients".
smtpd_recipient_limit = 3
CF
{
	cat "$(dirname "$0")/postfix-master.cf"
	cat <<CF
smtp      inet  n       -       n       -       -       smtpd
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
CF
} >"$d/etc/master.cf"
if [ -n "$cert" ]; then
	cat >>"$d/etc/main.cf" <<CF
smtpd_tls_cert_file = $cert
smtpd_tls_key_file = $key
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
CF
fi
