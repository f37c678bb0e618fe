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
	cat >"$dir/etc/master.cf" <<'EOC'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
postlog   unix-dgram n  -       n       -       1       postlogd
EOC
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
