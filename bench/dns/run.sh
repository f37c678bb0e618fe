#!/bin/sh
# bench/dns/run.sh [BUILDDIR] - resolver benchmarks (see bench_dns.py).
# Builds BUILDDIR (default build-bench: release, no sanitizers) first.
# Needs root (network namespace) and valgrind.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
b=${1:-$top/build-bench}
[ -d "$b" ] || meson setup "$b" "$top" -Dbuildtype=release -Dtests=false >/dev/null
ninja -C "$b" -j2 bench/dns/dns-load >/dev/null
exec /usr/bin/python3 "$top/bench/dns/bench_dns.py" "$b"
