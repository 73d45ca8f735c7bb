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

echo "== tokpulse-agent: $PROBES probes every $INTERVAL for ${DURATION}s"
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

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
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
