#!/usr/bin/env bash
# The busy configuration of issue 18, side by side in one window:
# agent.interval 5 s, three access logs written at 300 lines/s each and read
# with the access-log metrics, 5 HTTP probes (every 10 s, JSON asserted)
# against a local server, 2 checks, the shipped rule pack, alerts to a file.
#
# Usage: bench/busy.sh [SECONDS=600] [NAME=BINARY[,VAR=VALUE...]]...
# Without agent arguments, the freshly built bin/tokpulse-agent is measured.
#
# Every agent follows the same three files. Once a minute each one's VmRSS
# (MB) and its rule store (samples/series) are printed; at the end its
# RssAnon/RssFile, CPU over the window (utime+stime from /proc/PID/stat),
# goroutines, open fds, and its line counts against what the writer wrote.
set -euo pipefail
DURATION="${1:-600}"
shift $(( $# > 0 ? 1 : 0 ))
cd "$(dirname "$0")/.."
make -s build
[ $# -gt 0 ] || set -- "tokpulse-agent=./bin/tokpulse-agent"
. bench/lib.sh
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/logwriter" ./bench/logwriter
go build -o "$work/probebench" ./bench/probebench
bash bench/gen_access_log.sh 50000 > "$work/source.log" 2>/dev/null
: > "$work/access1.log"; : > "$work/access2.log"; : > "$work/access3.log"
target=$(free_port)
"$work/probebench" -serve "127.0.0.1:$target" &
pids+=($!)

metrics_block=$(sed -n '/^    metrics:/,$p' bench/access-metrics.yml)
names=(); apids=(); urls=()
i=0
for spec in "$@"; do
  i=$((i + 1))
  name=${spec%%=*}; rest=${spec#*=}
  bin=${rest%%,*}; envs=()
  [ "$bin" = "$rest" ] || IFS=, read -r -a envs <<< "${rest#*,}"
  port=$(free_port)
  {
    printf 'agent:\n  interval: 5s\nweb:\n  listen: 127.0.0.1:%s\n' "$port"
    printf 'rule_files: ["builtin:runbook.yml"]\nnotify:\n  files:\n    - path: %s\n' "$work/alerts$i.jsonl"
    printf 'logs:\n'
    for n in 1 2 3; do
      printf '  - name: access%s\n    paths: [%s]\n' "$n" "$work/access$n.log"
      printf '%s\n' "$metrics_block"
    done
    printf 'probes:\n'
    for n in health ready live performance errors; do
      printf '  - name: %s\n    url: http://127.0.0.1:%s/health\n    interval: 10s\n    expect:\n      json:\n        - {path: "$.status", equals: ok}\n' "$n" "$target"
    done
    printf 'checks:\n  - name: true\n    command: [/bin/true]\n  - name: queue\n    command: [/bin/echo, "7"]\n    value: stdout\n'
  } > "$work/agent$i.yaml"
  "$bin" check --config "$work/agent$i.yaml" > /dev/null
  env STATE_DIRECTORY="$work/state$i" "${envs[@]}" "$bin" run --config "$work/agent$i.yaml" > "$work/agent$i.log" 2>&1 &
  names+=("$name"); apids+=($!); pids+=($!); urls+=("http://127.0.0.1:$port/metrics")
done
sleep 3
"$work/logwriter" -source "$work/source.log" -rate 300 -duration "${DURATION}s" \
  "$work/access1.log" "$work/access2.log" "$work/access3.log" > "$work/written.txt" &
writer=$!
pids+=($writer)

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
status() { awk -v k="$2:" '$1 == k {printf "%.1f", $2/1024}' "/proc/$1/status"; }
metric() { curl -sf "$1" | awk -v m="$2" '$1 == m {printf "%d", $2}'; }
hz=$(getconf CLK_TCK)
declare -A t0
for p in "${apids[@]}"; do t0[$p]=$(ticks "$p"); done
s0=$(date +%s.%N)
for minute in $(seq $((DURATION / 60))); do
  sleep 60
  for j in "${!apids[@]}"; do
    printf '%-12s min %2d  RSS %5s MB  store %s samples / %s series\n' "${names[$j]}" "$minute" \
      "$(status "${apids[$j]}" VmRSS)" "$(metric "${urls[$j]}" tokpulse_rule_store_samples)" "$(metric "${urls[$j]}" tokpulse_rule_store_series)"
  done
done
wait "$writer"
s1=$(date +%s.%N)
sleep 3 # the last lines read
echo "window ${DURATION}s, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ); written: $(tr '\n' ' ' < "$work/written.txt" | sed "s|$work/||g")"
for j in "${!apids[@]}"; do
  p=${apids[$j]}; u=${urls[$j]}
  lines=$(curl -sf "$u" | awk '/^tokpulse_log_lines_total\{source="access[123]"\}/ {s += $2} END {printf "%d", s}')
  printf '%-12s RSS %5s MB (anon %4s, file %4s)  CPU %6.3f %% of one core  goroutines %s  fds %s  lines %s\n' "${names[$j]}" \
    "$(status "$p" VmRSS)" "$(status "$p" RssAnon)" "$(status "$p" RssFile)" \
    "$(echo "($(ticks "$p")-${t0[$p]})/$hz/($s1-$s0)*100" | bc -l)" \
    "$(metric "$u" go_goroutines)" "$(metric "$u" process_open_fds)" "$lines"
done
