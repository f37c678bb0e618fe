#!/usr/bin/env bash
# postfix_instance.sh - a private Postfix instance for the queue benchmark.
#
#   postfix_instance.sh start DIR [PORT]  configure and start it under DIR
#   postfix_instance.sh stop DIR          stop it
#
# The instance has its own config_directory (DIR/etc) and queue_directory
# (DIR/queue) and no inet listener at all unless PORT is given: its
# master.cf holds only the local services that sendmail -> postdrop ->
# pickup -> cleanup -> qmgr need, and every transport is discard. With
# PORT, smtpd also listens on 127.0.0.1:PORT and relays for 127.0.0.0/8
# (bench/submit); Postfix's durability defaults are kept (cleanup fsyncs
# each queue file before smtpd says 250). No mail leaves the machine.
set -euo pipefail
cmd=$1 dir=$2 port=${3:-}
case "$cmd" in
start)
	mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
	chown postfix "$dir/data"
	cat >"$dir/etc/main.cf" <<EOC
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.invalid
mydestination =
default_transport = discard
local_transport = discard
relay_transport = discard
virtual_transport = discard
maillog_file = $dir/maillog
message_size_limit = 20480000
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
EOC
	{
		[ -z "$port" ] || echo "127.0.0.1:$port inet n - n - - smtpd"
		cat "$(dirname "$0")/../../tools/labfiles/postfix-master.cf"
		cat <<'EOC'
discard   unix  -       -       n       -       -       discard
EOC
	} >"$dir/etc/master.cf"
	postfix -c "$dir/etc" check >/dev/null 2>&1 || postfix -c "$dir/etc" set-permissions >/dev/null 2>&1 || true
	postfix -c "$dir/etc" start 2>&1
	;;
stop)
	postfix -c "$dir/etc" stop 2>&1 || true
	;;
*)
	echo "usage: $0 start|stop DIR" >&2
	exit 64
	;;
esac
