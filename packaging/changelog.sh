#!/bin/sh
# changelog.sh FORMAT VERSION FILE prints the release notes of FILE (chglog
# YAML, newest first) with an entry for VERSION on top when FILE has none: a
# snapshot built from git. FORMAT "yaml" prints chglog YAML, from which nfpm
# writes the .deb's changelog.Debian.gz; "rpm" prints the .rpm's %changelog.
# The packager of the snapshot entry is $PKG_MAINTAINER (packaging/metadata,
# set by the Makefile).
set -eu
format=$1
version=$2-1
file=$3
: "${PKG_MAINTAINER:?set PKG_MAINTAINER (packaging/metadata; the Makefile does)}"

yaml() {
	if ! grep -q "^- semver: $version\$" "$file"; then
		date=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
		commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
		cat <<EOT
- semver: $version
  date: $date
  packager: $PKG_MAINTAINER
  deb:
    urgency: medium
    distributions: [stable]
  changes:
    - note: Snapshot built from commit $commit; see the git history.
EOT
	fi
	grep -v '^#' "$file" || true
}

# rpm turns the entries into "* Fri Nov 27 2026 Packager - 1.2.3-1" and a
# "- note" line per change. It reads only what yaml() and packaging/
# changelog.yml write: semver, date, packager and one-line notes. "%" is
# doubled, since rpmbuild expands macros in %changelog.
rpm() {
	yaml | LC_ALL=C awk '
	function flush() {
		if (version == "") return
		cmd = "date -u -d \"" date "\" \"+%a %b %d %Y\""
		cmd | getline day
		close(cmd)
		if (day == "") { print "changelog.sh: bad date \"" date "\" of " version > "/dev/stderr"; exit 1 }
		printf "%s* %s %s - %s\n", (n++ ? "\n" : ""), day, packager, version
		printf "%s", notes
		version = ""; notes = ""; day = ""
	}
	/^- semver: /    { flush(); version = substr($0, 11) }
	/^  date: /      { date = substr($0, 9) }
	/^  packager: /  { packager = substr($0, 13) }
	/^    - note: /  { notes = notes "- " substr($0, 13) "\n" }
	END { flush() }
	' | sed 's/%/%%/g'
}

case "$format" in
yaml) yaml ;;
rpm) rpm ;;
*) echo "changelog.sh: format $format is neither yaml nor rpm" >&2; exit 2 ;;
esac
