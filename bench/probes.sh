#!/usr/bin/env bash
# What 100 HTTP probes at a 10 s interval cost the agent, and what one probe
# costs tokpulse-agent and blackbox_exporter (Debian's
# prometheus-blackbox-exporter) probing the same local URL.
#
# Usage: bench/probes.sh [SECONDS=120] [PROBES=100] [INTERVAL=10s]
#
# The target is a small Go server in its own process. tokpulse: probebench
# runs PROBES probes of the URL on the agent's scheduler (collectors.Probes,
# a JSON assertion on $.status) and reports its own CPU time (getrusage) and
# VmRSS before and after. blackbox_exporter: the same number of probes per
# interval are requested from it (GET /probe?module=http_json, a body regex)
# and its CPU time is read from /proc/PID/stat; its CPU includes serving
# /probe and writing the result, which the agent does not have to do.
set -euo pipefail
DURATION="${1:-120}"
PROBES="${2:-100}"
INTERVAL="${3:-10s}"
cd "$(dirname "$0")/.."
BB=$(command -v prometheus-blackbox-exporter || true)
[ -n "$BB" ] || { echo "install prometheus-blackbox-exporter first (./.ci/deps does)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
go build -o "$work/probebench" ./bench/probebench

PORT=18080
URL="http://127.0.0.1:$PORT/health"
"$work/probebench" -serve "127.0.0.1:$PORT" & pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "$URL" && break; sleep 0.1; done
curl -sf -o /dev/null "$URL" || { echo "target server not serving" >&2; exit 1; }

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# The agent binary twice, side by side: the shipped default configuration,
# and the same plus PROBES probes. The difference is what the probes cost.
make -s build
base="agent: {interval: 10s}
host: {filesystem: {enabled: true}}"
printf '%s\nweb: {listen: 127.0.0.1:19848}\n' "$base" > "$work/base.yaml"
{ printf '%s\nweb: {listen: 127.0.0.1:19849}\nprobes:\n' "$base"
  for i in $(seq "$PROBES"); do
    printf -- '- {name: p%d, url: "%s", interval: %s, expect: {json: [{path: $.status, equals: ok}]}}\n' "$i" "$URL" "$INTERVAL"
  done; } > "$work/probes.yaml"
STATE_DIRECTORY="$work/s1" ./bin/tokpulse-agent run --config "$work/base.yaml" > "$work/a1.log" 2>&1 & A1=$!; pids+=($A1)
STATE_DIRECTORY="$work/s2" ./bin/tokpulse-agent run --config "$work/probes.yaml" > "$work/a2.log" 2>&1 & A2=$!; pids+=($A2)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19849/metrics && curl -sf -o /dev/null http://127.0.0.1:19848/metrics && break; sleep 0.1; done
# Warm-up: one interval, so that every probe has run once.
sleep "${INTERVAL%s}"
a1c=$(ticks $A1); a2c=$(ticks $A2); t0=$(date +%s.%N)
sleep "$DURATION"
t1=$(date +%s.%N)
ok=$(curl -sf http://127.0.0.1:19849/metrics | grep -c '^tokpulse_probe_success{probe="p[0-9]*"} 1' || true)
echo "== tokpulse-agent binary, default config vs default + $PROBES probes every $INTERVAL, ${DURATION}s after a warm-up ($ok probes succeeding)"
awk -v c1="$(( $(ticks $A1) - a1c ))" -v c2="$(( $(ticks $A2) - a2c ))" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    -v r1="$(rss $A1)" -v r2="$(rss $A2)" 'BEGIN { w = t1 - t0
  printf "agent_default cpu_pct_of_one_core=%.3f%% rss=%.1fMiB\n", 100 * c1 / hz / w, r1 / 1024
  printf "agent_with_probes cpu_pct_of_one_core=%.3f%% rss=%.1fMiB\n", 100 * c2 / hz / w, r2 / 1024
  printf "probes_extra cpu_pct_of_one_core=%.3f%% rss=%.1fMiB\n", 100 * (c2 - c1) / hz / w, (r2 - r1) / 1024 }'
kill $A1 $A2

echo "== probebench (the probes alone, in-process): $PROBES probes every $INTERVAL for ${DURATION}s"
"$work/probebench" -url "$URL" -n "$PROBES" -interval "$INTERVAL" -duration "${DURATION}s"

cat > "$work/blackbox.yml" <<YAML
modules:
  http_json:
    prober: http
    timeout: 5s
    http:
      valid_status_codes: []
      fail_if_body_not_matches_regexp: ['"status":"ok"']
YAML
"$BB" --config.file="$work/blackbox.yml" --web.listen-address=127.0.0.1:19115 > "$work/bb.log" 2>&1 & BB_PID=$!; pids+=($BB_PID)
PROBE_URL="http://127.0.0.1:19115/probe?module=http_json&target=$URL"
for _ in $(seq 50); do curl -sf -o /dev/null "$PROBE_URL" && break; sleep 0.1; done
curl -sf "$PROBE_URL" | grep -q '^probe_success 1' || { echo "blackbox_exporter probe fails"; cat "$work/bb.log"; exit 1; }

secs=${INTERVAL%s}
per_sec=$(( PROBES / secs ))
echo "== blackbox_exporter: $PROBES probes every $INTERVAL ($per_sec requests a second) for ${DURATION}s"
r0=$(rss $BB_PID); c0=$(ticks $BB_PID); t0=$(date +%s.%N); runs=0
for _ in $(seq "$DURATION"); do
  curls=()
  for _ in $(seq "$per_sec"); do curl -sf -o /dev/null "$PROBE_URL" & curls+=($!); done
  runs=$((runs + per_sec))
  sleep 1
  wait "${curls[@]}" || true
done
wait_end=$(date +%s.%N)
sleep 1
c1=$(ticks $BB_PID); r1=$(rss $BB_PID)
awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$wait_end" -v runs="$runs" -v r0="$r0" -v r1="$r1" 'BEGIN {
  cpu = c / hz; wall = t1 - t0
  printf "blackbox_exporter runs=%d wall=%.0fs cpu=%.3fs cpu_pct_of_one_core=%.3f%% cpu_per_probe_run=%.0fus rss_before=%.1fMiB rss_after=%.1fMiB\n",
    runs, wall, cpu, 100 * cpu / wall, 1e6 * cpu / runs, r0 / 1024, r1 / 1024 }'
