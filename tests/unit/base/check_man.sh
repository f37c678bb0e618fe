#!/bin/sh
# check_man.sh SAMPLE PAGE... - every manual page formats without a groff
# warning, and dmta.conf(5) has a subsection for every section the sample
# configuration shows (both come from the same key tables).
set -u
sample=$1
shift
bad=0
for page in "$@"; do
	out=$(groff -man -ww -z "$page" 2>&1)
	if [ -n "$out" ]; then
		echo "$page: groff says: $out"
		bad=1
	fi
	case $page in
	*dmta.conf.5)
		for sec in $(sed -n 's/^#\{0,1\}\[\([a-z]*\).*\]$/\1/p' "$sample" | sort -u); do
			if ! grep -q "^\.SS \[$sec" "$page"; then
				echo "$page: no subsection for [$sec], want one (the sample has it)"
				bad=1
			fi
		done
		;;
	esac
done
exit $bad
