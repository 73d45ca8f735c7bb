#!/usr/bin/env bash
# Steady-state cost of tokpulse-agent with its embedded default config, side
# by side with node_exporter (Debian's prometheus-node-exporter, default
# collectors) in the same run on the same machine.
#
# Usage: bench/idle.sh [SECONDS=600] [SCRAPE_EVERY=15] [NAME=BINARY[,VAR=VALUE...]]...
#
# Without agent arguments, the freshly built bin/tokpulse-agent is measured.
# Each NAME=BINARY argument adds an agent (for an A/B run in one window:
# "main=/tmp/main-agent new=bin/tokpulse-agent new-gogc50=bin/tokpulse-agent,GOGC=50");
# VAR=VALUE pairs after a comma go into that agent's environment.
#
# Each process starts as its unit starts it: the agents with the timer
# slack of tokpulse-agent.service (TimerSlackNSec=; TIMERSLACK_NS=N after
# the comma overrides it, 50000 is the kernel's default), node_exporter
# with the kernel's default as Debian's unit does (NE_TIMERSLACK_NS=N in
# the environment of this script gives it another, for a comparison on
# equal terms).
#
# Every process is scraped every SCRAPE_EVERY seconds, as Prometheus would.
# CPU is the threads' on-CPU time over the window from
# /proc/PID/task/*/schedstat (nanoseconds; utime+stime of /proc/PID/stat,
# in 10 ms ticks, beside it as "ticks"); wake-ups are the
# context switches of all the process's threads over the window
# (/proc/PID/task/*/status); RSS, RssAnon (heap, stacks, runtime) and
# RssFile (the binary's pages) are read at the end of the window, and RSS
# once a minute ("rss/min"). After the window each gets 50 back-to-back
# scrapes whose median latency is reported, then 200 more whose CPU time
# (schedstat) gives the CPU per scrape.
set -euo pipefail
DURATION="${1:-600}"
EVERY="${2:-15}"
shift $(( $# > 2 ? 2 : $# ))
cd "$(dirname "$0")/.."
make -s build
NE=$(command -v prometheus-node-exporter || true)
[ -n "$NE" ] || { echo "install prometheus-node-exporter first (apt-get install prometheus-node-exporter)" >&2; exit 1; }
[ $# -gt 0 ] || set -- "tokpulse-agent=./bin/tokpulse-agent"

. bench/lib.sh
# The unit's TimerSlackNSec= (a systemd time span such as 10ms) in ns.
unit_slack=$(sed -n 's/^TimerSlackNSec=//p' tokpulse-agent.service | awk '
  /ns$/ {print $0+0; next} /us$/ {print $0*1000; next} /ms$/ {print $0*1000000; next}
  /s$/ {print $0*1000000000; next} {print $0+0}')
# with_slack NS CMD... &: runs CMD with that timer slack, as systemd would,
# in place of the background subshell (so that $! is CMD's PID).
with_slack() { exec bash -c 'echo "$1" > /proc/self/timerslack_ns && shift && exec "$@"' _ "$@"; }
work=$(mktemp -d)
names=(); pids=(); urls=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
i=0
for spec in "$@"; do
  i=$((i + 1))
  name=${spec%%=*}; rest=${spec#*=}
  bin=${rest%%,*}; envs=(); slack=${unit_slack:-50000}
  [ "$bin" = "$rest" ] || IFS=, read -r -a envs <<< "${rest#*,}"
  for k in "${!envs[@]}"; do
    case ${envs[$k]} in TIMERSLACK_NS=*) slack=${envs[$k]#*=}; unset 'envs[k]' ;; esac
  done
  port=$(free_port)
  # The embedded default config, moved off the default port so that a
  # running agent does not collide with the one measured.
  "$bin" config default | sed "s/127.0.0.1:9847/127.0.0.1:$port/" > "$work/agent$i.yaml"
  with_slack "$slack" env STATE_DIRECTORY="$work/state$i" "${envs[@]}" "$bin" run --config "$work/agent$i.yaml" > "$work/agent$i.log" 2>&1 &
  names+=("$name"); pids+=($!); urls+=("http://127.0.0.1:$port/metrics")
done
port=$(free_port)
with_slack "${NE_TIMERSLACK_NS:-50000}" "$NE" --web.listen-address=127.0.0.1:$port > "$work/ne.log" 2>&1 &
names+=(node_exporter); pids+=($!); urls+=("http://127.0.0.1:$port/metrics")
sleep 2
for j in "${!pids[@]}"; do
  curl -sf "${urls[$j]}" >/dev/null || { echo "${names[$j]} not serving"; cat "$work"/*.log; exit 1; }
done

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# On-CPU nanoseconds of all live threads (/proc/PID/task/*/schedstat): the
# scheduler's own clock, finer than the 10 ms ticks of /proc/PID/stat.
schedns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }
wakeups() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/voluntary_ctxt_switches/ {s += $2} END {print s}'; }
status() { awk -v k="$2:" '$1 == k {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
declare -A t0 n0 w0 rssmin
for p in "${pids[@]}"; do t0[$p]=$(ticks "$p"); n0[$p]=$(schedns "$p"); w0[$p]=$(wakeups "$p"); done
s0=$(date +%s.%N)
start=$(date +%s); end=$((start + DURATION)); next_min=$((start + 60))
while [ "$(date +%s)" -lt "$end" ]; do
  for u in "${urls[@]}"; do curl -sf -o /dev/null "$u"; done
  if [ "$(date +%s)" -ge "$next_min" ]; then
    for p in "${pids[@]}"; do rssmin[$p]="${rssmin[$p]:-}$(status "$p" VmRSS) "; done
    next_min=$((next_min + 60))
  fi
  sleep "$EVERY"
done
s1=$(date +%s.%N)
declare -A cpu cpuns wk rss anon file
for p in "${pids[@]}"; do
  cpu[$p]=$(echo "($(ticks "$p")-${t0[$p]})/$hz/($s1-$s0)*100" | bc -l)
  cpuns[$p]=$(echo "($(schedns "$p")-${n0[$p]})/1000000000/($s1-$s0)*100" | bc -l)
  wk[$p]=$(( $(wakeups "$p") - ${w0[$p]} ))
  rss[$p]=$(status "$p" VmRSS); anon[$p]=$(status "$p" RssAnon); file[$p]=$(status "$p" RssFile)
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
scrapes() { for _ in $(seq 50); do curl -sf -o /dev/null -w '%{time_total}\n' "$1"; done | awk '{print $1*1000}' | median; }
series() { curl -sf "$1" | grep -vc '^#'; }
cpu_per_scrape() { # pid url: ms of CPU per scrape over 200 back-to-back scrapes (schedstat)
  local c0 c1
  c0=$(schedns "$1"); for _ in $(seq 200); do curl -sf -o /dev/null "$2"; done; c1=$(schedns "$1")
  echo "($c1-$c0)/1000000/200" | bc -l
}
echo "window ${DURATION}s, scraped every ${EVERY}s, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
for j in "${!pids[@]}"; do
  p=${pids[$j]}
  printf '%-16s RSS %5.1f MB (anon %4.1f, file %4.1f)  CPU %6.3f %% of one core (ticks %6.3f)  wake-ups %5.2f/s  scrape median %6.2f ms  CPU per scrape %5.2f ms  series %d\n' \
    "${names[$j]}" "${rss[$p]}" "${anon[$p]}" "${file[$p]}" "${cpuns[$p]}" "${cpu[$p]}" "$(echo "${wk[$p]}/($s1-$s0)" | bc -l)" \
    "$(scrapes "${urls[$j]}")" "$(cpu_per_scrape "$p" "${urls[$j]}")" "$(series "${urls[$j]}")"
done
for j in "${!pids[@]}"; do
  printf '%-16s rss/min %s\n' "${names[$j]}" "${rssmin[${pids[$j]}]:-}"
done
