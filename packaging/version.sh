#!/bin/sh
# Prints the package version from "git describe": a tag v1.2.3 gives 1.2.3,
# 4 commits after it 1.2.3+4.gabc1234 (sorts after 1.2.3 and before 1.2.4 in
# dpkg and rpm), no tag at all 0.0.0+N.gabc1234 (N commits); uncommitted
# changes add ".dirty".
set -eu
d=$(git describe --tags --always --dirty --match 'v[0-9]*' 2>/dev/null || echo unknown)
dirty=
case "$d" in *-dirty) dirty=.dirty; d=${d%-dirty} ;; esac
case "$d" in
v[0-9]*-*-g*)
	base=${d%-*-g*}; rest=${d#"$base"-}
	echo "${base#v}+${rest%%-g*}.g${rest#*-g}$dirty" ;;
v[0-9]*)
	echo "${d#v}$dirty" ;;
unknown)
	echo "0.0.0+unknown$dirty" ;;
*)
	echo "0.0.0+$(git rev-list --count HEAD).g$d$dirty" ;;
esac
