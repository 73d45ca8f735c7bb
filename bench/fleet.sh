#!/usr/bin/env bash
# The fleet benchmark (docs/fleet.md): N tokpulse-agents on this machine
# with Debian's Prometheus, a three-replica Alertmanager cluster loaded with
# packaging/alertmanager/tokpulse-routing.yml, and loopback stand-ins for
# Slack, PagerDuty, SMTP (Debian's python3-aiosmtpd) and the central
# webhook, all with the shipped configuration and timings, through the five
# scenarios of issue 17. bench/fleet/main.go says what each one does.
#
# Usage: bench/fleet.sh [N=50] [extra flags of bench/fleet, e.g. -outage 5m -keep]
# It takes about 9 minutes (the webhook outage alone is 5), binds to
# 127.0.0.1 only, stops every process it started, and exits 1 if a check
# fails. The report goes to standard output.
set -euo pipefail
N="${1:-50}"
shift || true
cd "$(dirname "$0")/.."
for cmd in prometheus prometheus-alertmanager amtool promtool aiosmtpd prometheus-node-exporter; do
  command -v "$cmd" >/dev/null || { echo "$cmd is missing: run ./.ci/deps as root (and apt-get install prometheus-node-exporter)" >&2; exit 1; }
done
make -s build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/fleet" ./bench/fleet
echo "# $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(git describe --always --dirty)"
"$work/fleet" -n "$N" -bin bin/tokpulse-agent "$@"
