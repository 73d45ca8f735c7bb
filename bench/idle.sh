#!/usr/bin/env bash
# Steady-state cost of tokpulse-agent with its embedded default config, side
# by side with node_exporter (Debian's prometheus-node-exporter, default
# collectors) in the same run on the same machine.
#
# Usage: bench/idle.sh [SECONDS=600] [SCRAPE_EVERY=15]
# Both are scraped every SCRAPE_EVERY seconds, as Prometheus would; at the end
# each gets 50 back-to-back scrapes whose median latency is reported, then 200
# more whose CPU time (from /proc/PID/stat, 10 ms ticks) gives the CPU per
# scrape. CPU is utime+stime over the whole window from /proc/PID/stat; RSS is
# VmRSS at the end of the window.
set -euo pipefail
DURATION="${1:-600}"
EVERY="${2:-15}"
cd "$(dirname "$0")/.."
make -s build
NE=$(command -v prometheus-node-exporter || true)
[ -n "$NE" ] || { echo "install prometheus-node-exporter first (apt-get install prometheus-node-exporter)" >&2; exit 1; }

# Loopback ports free at the start: the machine is shared, and a fixed port
# may be taken by someone else's agent.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}
AGENT_PORT=$(free_port)
NE_PORT=$(free_port)
work=$(mktemp -d)
trap 'kill $AGENT_PID $NE_PID 2>/dev/null || true; rm -rf "$work"' EXIT
# The embedded default config, moved off the default port so that a running
# agent does not collide with the one measured.
./bin/tokpulse-agent config default | sed "s/127.0.0.1:9847/127.0.0.1:$AGENT_PORT/" > "$work/agent.yaml"
STATE_DIRECTORY="$work/state" ./bin/tokpulse-agent run --config "$work/agent.yaml" > "$work/agent.log" 2>&1 &
AGENT_PID=$!
"$NE" --web.listen-address=127.0.0.1:$NE_PORT > "$work/ne.log" 2>&1 &
NE_PID=$!
sleep 2
AGENT_URL=http://127.0.0.1:$AGENT_PORT/metrics
NE_URL=http://127.0.0.1:$NE_PORT/metrics
curl -sf "$AGENT_URL" >/dev/null || { echo "agent not serving"; cat "$work/agent.log"; exit 1; }
curl -sf "$NE_URL" >/dev/null || { echo "node_exporter not serving"; cat "$work/ne.log"; exit 1; }

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
a0=$(ticks $AGENT_PID); n0=$(ticks $NE_PID); t0=$(date +%s.%N)
end=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$end" ]; do
  curl -sf -o /dev/null "$AGENT_URL"; curl -sf -o /dev/null "$NE_URL"
  sleep "$EVERY"
done
a1=$(ticks $AGENT_PID); n1=$(ticks $NE_PID); t1=$(date +%s.%N)
rss() { awk '/VmRSS/ {print $2/1024}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
scrapes() { for i in $(seq 50); do curl -sf -o /dev/null -w '%{time_total}\n' "$1"; done | awk '{print $1*1000}' | median; }
series() { curl -sf "$1" | grep -vc '^#'; }
cpu_per_scrape() { # pid url: ms of CPU per scrape over 200 back-to-back scrapes
  local c0 c1
  c0=$(ticks $1); for i in $(seq 200); do curl -sf -o /dev/null "$2"; done; c1=$(ticks $1)
  echo "($c1-$c0)*1000/$hz/200" | bc -l
}
report() { # name pid ticks0 ticks1 url
  local r c m
  r=$(rss $2); c=$(echo "($4-$3)/$hz/($t1-$t0)*100" | bc -l); m=$(scrapes $5)
  printf '%-16s RSS %6.1f MB  CPU %6.3f %% of one core  scrape median %6.2f ms  CPU per scrape %5.2f ms  series %d\n' \
    "$1" "$r" "$c" "$m" "$(cpu_per_scrape $2 $5)" "$(series $5)"
}
echo "window ${DURATION}s, scraped every ${EVERY}s, $(nproc) cores, $(date -u +%FT%TZ)"
report tokpulse-agent $AGENT_PID $a0 $a1 "$AGENT_URL"
report node_exporter $NE_PID $n0 $n1 "$NE_URL"
