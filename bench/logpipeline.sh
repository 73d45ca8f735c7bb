#!/usr/bin/env bash
# Log pipeline benchmark: the agent's pipeline (default patterns plus the
# access-log metrics) against mtail --one_shot and grep -c on the same
# 2,000,000-line file, side by side in one run, with every count checked
# against the generator's ground truth; then peak RSS on a ~1.1 GB file.
#
# Usage: bench/logpipeline.sh [WORKDIR]   (default: /tmp/tokpulse-logbench)
# Needs: mtail (Debian package mtail), GNU time (/usr/bin/time), awk.
# "One core" is GOMAXPROCS=1 for our pipeline; throughput is given per CPU
# second (user+sys) as well as per wall second, because wall time on a
# shared machine measures the neighbours as much as the program.
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-/tmp/tokpulse-logbench}"
GEN="${GEN:-bench/gen_access_log.sh}"
MTAIL_PROG="${MTAIL_PROG:-bench/access.mtail}"
mkdir -p "$W"
LOG="$W/access.log"
if [ ! -s "$LOG" ] || [ ! -s "$W/truth.txt" ]; then
  bash "$GEN" 2000000 > "$LOG" 2> "$W/truth.txt"
fi
truth() { tr ' ' '\n' < "$W/truth.txt" | awk -F= -v k="$1" '$1==k {print $2}'; }
go build -o "$W/logpipe" ./bench/logpipe
cat "$LOG" > /dev/null   # page cache warm for all three

measure() { # name, then command; prints "name wall user sys maxrss_kb" and keeps stdout in $W/name.out
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$W/$name.time" "$@" > "$W/$name.out"
  read -r wall user sys rss < "$W/$name.time"
  echo "$name $wall $user $sys $rss"
}

lines=$(truth lines)
echo "file: $LOG ($(stat -c %s "$LOG") bytes, $lines lines)"
echo "ground truth: $(cat "$W/truth.txt")"
echo
{
  GOMAXPROCS=1 measure tokpulse "$W/logpipe" -config bench/access-metrics.yml -file "$LOG"
  measure mtail mtail --one_shot --one_shot_format json --progs "$MTAIL_PROG" --logs "$LOG" --logtostderr=false --stderrthreshold=FATAL
  measure grep grep -c -iE 'error|fail|denied' "$LOG"
} > "$W/times.txt"

printf "%-9s %9s %9s %14s %14s %9s\n" tool wall_s cpu_s lines/wall_s lines/cpu_s rss_MB
while read -r name wall user sys rss; do
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')
  awk -v n="$name" -v w="$wall" -v c="$cpu" -v l="$lines" -v r="$rss" \
    'BEGIN{printf "%-9s %9.2f %9.2f %14.0f %14.0f %9.1f\n", n, w, c, l/w, (c>0?l/c:0), r/1024}'
done < "$W/times.txt"
echo

# Counts: each tool against the ground truth.
fail=0
check() { if [ "$2" != "$3" ]; then echo "MISMATCH $1: got $2, want $3"; fail=1; else echo "ok $1 = $2"; fi; }
ours() { tr ' ' '\n' < "$W/tokpulse.out" | awk -F= -v k="$1" '$1==k {print $2}'; }
check "tokpulse lines" "$(ours lines)" "$lines"
check "tokpulse error|fail|denied" "$(ours error)" "$(truth error_fail_denied)"
for c in 2xx 3xx 4xx 5xx 429; do
  want=$(truth "$c"); [ "$c" = 5xx ] && want=$(truth 5xx_cls)
  check "tokpulse $c" "$(ours "$c")" "$want"
done
check "tokpulse durations observed" "$(ours duration_count)" "$(truth access)"
check "grep error|fail|denied" "$(cat "$W/grep.out")" "$(truth error_fail_denied)"
mt() { python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(int(d[sys.argv[2]][0]["LabelValues"][0]["Value"]["Value"]))' "$W/mtail.out" "$1"; }
check "mtail lines" "$(mt log_lines_total)" "$lines"
check "mtail error|fail|denied" "$(mt log_error_lines_total)" "$(truth error_fail_denied)"
check "mtail 5xx" "$(mt http_responses_5xx_total)" "$(truth 5xx)"
check "mtail 429" "$(mt http_responses_429_total)" "$(truth 429)"
echo

# RSS while reading a ~1.1 GB file: four copies of the log.
BIG="$W/access-1g.log"
if [ ! -s "$BIG" ]; then cat "$LOG" "$LOG" "$LOG" "$LOG" > "$BIG"; fi
GOMAXPROCS=1 /usr/bin/time -f "%e %U %S %M" -o "$W/big.time" "$W/logpipe" -config bench/access-metrics.yml -file "$BIG" > "$W/big.out"
read -r wall user sys rss < "$W/big.time"
echo "1.1 GB file ($(stat -c %s "$BIG") bytes): $(head -1 "$W/big.out" | cut -d' ' -f1); peak RSS $((rss/1024)) MB (2M-line file: $(awk '$1=="tokpulse"{print int($5/1024)}' "$W/times.txt") MB)"
exit $fail
