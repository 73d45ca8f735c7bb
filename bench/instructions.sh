#!/usr/bin/env bash
# Instructions per iteration of a Go benchmark, counted by valgrind's
# cachegrind: a figure the machine's neighbours do not move, for A/B
# comparisons of in-process work on a shared machine.
#
# Usage: bench/instructions.sh [PACKAGE=./agent] [BENCH='BenchmarkInterval$'] [N1=20] [N2=120]
#        TESTBIN=path/to/pkg.test bench/instructions.sh PACKAGE BENCH ...  (a binary built before)
#
# The benchmark runs N1 and then N2 iterations with GOMAXPROCS=1 (the
# daemon's default) and GOGC=off, so that the count is the program's own
# work without the garbage collector's, whose share follows what the
# benchmark allocates (see -benchmem); the difference divided by N2-N1
# cancels the set-up. Needs valgrind.
set -euo pipefail
PKG="${1:-./agent}"; BENCH="${2:-BenchmarkInterval\$}"; N1="${3:-20}"; N2="${4:-120}"
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "install valgrind first (apt-get install valgrind)" >&2; exit 1; }
bin="${TESTBIN:-}"
if [ -z "$bin" ]; then
  bin=$(mktemp); trap 'rm -f "$bin"' EXIT
  go test -c -o "$bin" "$PKG"
fi
ir() {
  (cd "$PKG" && GOGC=off GOMAXPROCS=1 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$bin" -test.run '^$' -test.bench "$BENCH" -test.benchtime "${1}x" 2>&1) |
    awk '/I *refs/ {gsub(",", "", $NF); print $NF}'
}
a=$(ir "$N1"); b=$(ir "$N2")
[ -n "$a" ] && [ -n "$b" ] || { echo "cachegrind reported no instruction count" >&2; exit 1; }
echo "$BENCH: $(( (b - a) / (N2 - N1) )) instructions per iteration ($PKG, GOMAXPROCS=1, GOGC=off)"
