# lab_common.sh - helpers the smtp/ lab scripts share (sourced).
#
# The sourcing script sets NS (its network namespace), T (its scratch
# directory) and pids (what it started), and counts results in passes and
# fails.

ok() { passes=$((passes + 1)); echo "ok   - $*"; }
bad() { fails=$((fails + 1)); echo "FAIL - $*"; }
in_ns() { ip netns exec "$NS" "$@"; }

# Wait (bounded) until ADDR:PORT accepts connections.
wait_port() {
	for _ in $(seq 1 100); do
		in_ns bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "server $1:$2 did not come up" >&2
	return 1
}

# On exit: kill what was started (pids) and everything left in the
# namespace (a daemon's children live only there), delete it, and remove
# the scratch directory T (kept, and named, when KEEP is set).
lab_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	if ip netns pids "$NS" >/dev/null 2>&1; then
		for p in $(ip netns pids "$NS"); do kill "$p" 2>/dev/null; done
		sleep 0.3
		for p in $(ip netns pids "$NS"); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$NS"
	fi
	if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
