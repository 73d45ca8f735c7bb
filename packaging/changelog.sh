#!/bin/sh
# changelog.sh VERSION FILE prints FILE (chglog YAML, newest first) with an
# entry for VERSION on top when FILE has none: a snapshot built from git.
set -eu
version=$1-1
file=$2
if ! grep -q "^- semver: $version\$" "$file"; then
	date=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	cat <<EOT
- semver: $version
  date: $date
  packager: TokPulse Operations <ops@tokpulse.io>
  deb:
    urgency: medium
    distributions: [stable]
  changes:
    - note: Snapshot built from commit $commit; see the git history.
EOT
fi
grep -v '^#' "$file" || true
