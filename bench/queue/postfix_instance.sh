#!/usr/bin/env bash
# postfix_instance.sh - a private Postfix instance for the queue benchmark.
#
#   postfix_instance.sh start DIR    configure and start it under DIR
#   postfix_instance.sh stop DIR     stop it
#
# The instance has its own config_directory (DIR/etc) and queue_directory
# (DIR/queue) and no inet listener at all: its master.cf holds only the
# local services that sendmail -> postdrop -> pickup -> cleanup -> qmgr
# need, and every transport is discard. So nothing listens on any network
# and no mail leaves the machine.
set -euo pipefail
cmd=$1 dir=$2
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
EOC
	{
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
