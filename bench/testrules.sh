#!/usr/bin/env bash
# Wall time of `test rules` on the same files, the agent beside promtool,
# in one run: the median of N runs of each tool on each file.
# Usage: bench/testrules.sh AGENT PROMTOOL [PROMTOOL...] -- FILE_test.yml...
set -euo pipefail
N=${N:-7}
tools=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do tools+=("$1"); shift; done
shift
for f in "$@"; do
  for tool in "${tools[@]}"; do
    ts=()
    for _ in $(seq "$N"); do
      s=$(date +%s%N)
      "$tool" test rules "$f" >/dev/null 2>&1 || true
      e=$(date +%s%N)
      ts+=($(( (e - s) / 1000000 )))
    done
    med=$(printf '%s\n' "${ts[@]}" | sort -n | sed -n "$(( (N + 1) / 2 ))p")
    echo "$(basename "$f") $tool: median ${med} ms of $N (${ts[*]})"
  done
done
