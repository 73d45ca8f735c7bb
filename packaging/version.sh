#!/bin/sh
# Prints the version of the binary, the packages and their file names, from
# "git describe" (the Makefile uses it unless PKG_VERSION or VERSION is
# given). A tag v1.2.3 gives 1.2.3; 4 commits after it, 1.2.3+4.gabc1234 (a
# snapshot: sorts after 1.2.3 and before 1.2.4 in dpkg and rpm); a
# pre-release tag v1.3.0-rc1 gives 1.3.0~rc1, before 1.3.0. With no
# tag at all it is a pre-release, 0.0.0~dev.N.gabc1234 (N commits): the
# "~" sorts it before 0.0.0 and so before every release, in dpkg and in rpm
# (4.10 and later). Uncommitted changes add ".dirty"; outside a git
# checkout it is 0.0.0~dev.unknown.
set -eu

# release TAG: the version of a tag, its "-" (a semver pre-release, which
# rpm does not allow in a version) turned into "~".
release() {
	printf '%s\n' "${1#v}" | tr - '~'
}

d=$(git describe --tags --always --dirty --match 'v[0-9]*' 2>/dev/null || echo unknown)
dirty=
case "$d" in *-dirty) dirty=.dirty; d=${d%-dirty} ;; esac
case "$d" in
v[0-9]*-*-g*)
	base=${d%-*-g*}; rest=${d#"$base"-}
	echo "$(release "$base")+${rest%%-g*}.g${rest#*-g}$dirty" ;;
v[0-9]*)
	echo "$(release "$d")$dirty" ;;
unknown)
	echo "0.0.0~dev.unknown$dirty" ;;
*)
	echo "0.0.0~dev.$(git rev-list --count HEAD).g$d$dirty" ;;
esac
