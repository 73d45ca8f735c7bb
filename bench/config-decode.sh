#!/usr/bin/env bash
# Times `tokpulse-agent check` on configurations with a large agent.labels
# map, for two binaries side by side in one run (e.g. the release before
# yamlx's linear decoding and the current build), RUNS times each.
# Usage: bench/config-decode.sh OLD_BINARY NEW_BINARY [SIZES_KIB] [RUNS]
set -euo pipefail
old=$1 new=$2 sizes=${3:-"512 1024 2048"} runs=${4:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for kib in $sizes; do
  f="$dir/labels-$kib.yaml"
  {
    printf 'agent:\n  state_dir: %s/state\n  labels:\n' "$dir"
    i=0
    # 25 bytes per label line
    n=$(( kib * 1024 / 25 ))
    while [ $i -lt $n ]; do printf '    l%07d: value%07d\n' $i $i; i=$((i+1)); done
  } > "$f"
  for bin in "$old" "$new"; do
    for r in $(seq "$runs"); do
      /usr/bin/time -f "$(basename "$bin") $(stat -c %s "$f") bytes run $r: %e s wall, %U s user, %M KB max RSS" \
        "$bin" check --config "$f" > /dev/null 2> "$dir/err" || { tail -1 "$dir/err"; continue; }
      tail -1 "$dir/err"
    done
  done
done
