#!/bin/sh
# stage.sh ARCH BINARY STAGE puts in the directory STAGE everything the .deb
# and the .rpm of the Debian architecture ARCH (amd64 or arm64) are made
# of, so that nfpm (run in STAGE, with packaging/nfpm.yaml) and rpmbuild
# (with STAGE/tokpulse-agent.spec) read nothing else:
#
#   tokpulse-agent          BINARY, after checking that its ELF machine is ARCH
#   arch, rpm-arch          the package architecture, as dpkg and rpm name it
#   tokpulse-agent.service, agent.yaml, tokpulse-agent.default, lintian-overrides
#   tokpulse-agent.8.gz     the man page, compressed
#   rules/                  the rule pack: packaging/rules/*.yml except the
#                           rules' unit tests *_test.yml, which the agent
#                           would load as rules
#   doc/                    README.md and docs/, for /usr/share/doc/tokpulse-agent
#   polkit/                 the polkit rule of restart actions
#   copyright               Debian's machine-readable copyright file (also the
#                           .rpm's %license), from packaging/metadata
#   changelog.yml           release notes with an entry for this version on top
#   scripts/deb/            the .deb's maintainer scripts
#   tokpulse-agent.spec     the .rpm's spec: packaging/tokpulse-agent.spec with
#                           the metadata, the scriptlets and the %changelog
#
# The Makefile runs it from the repository root with PKG_VERSION and the
# values of packaging/metadata in the environment. It fails, and leaves no
# stage behind, when the binary is not built for ARCH: a package labelled
# amd64 must never carry an aarch64 binary.
set -eu

arch=$1
binary=$2
stage=$3

die() {
	echo "stage.sh: $*" >&2
	rm -rf "$stage"
	exit 1
}

for v in PKG_VERSION PKG_MAINTAINER PKG_VENDOR PKG_HOMEPAGE PKG_COPYRIGHT PKG_LICENSE PKG_LICENSE_FILE; do
	eval "val=\${$v:-}"
	[ -n "$val" ] || die "$v is not set; run \"make package\", which sets it from packaging/metadata and git describe"
done

# Both formats must accept the version: rpm allows letters, digits and
# ". + ~ ^" in a version, dpkg ". + ~ -" and must start with a digit.
case "$PKG_VERSION" in
[0-9]*) ;;
*) die "PKG_VERSION=$PKG_VERSION does not start with a digit; give a version such as 1.2.3 or 1.3.0~rc1" ;;
esac
if printf '%s' "$PKG_VERSION" | LC_ALL=C grep -q '[^A-Za-z0-9.+~]'; then
	die "PKG_VERSION=$PKG_VERSION has a character other than letters, digits and . + ~; give a version such as 1.2.3 or 1.3.0~rc1 (\"~\" marks a pre-release)"
fi

# rpm_arch ARCH names the Debian architecture ARCH as rpm does.
rpm_arch() {
	case "$1" in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	*) return 1 ;;
	esac
}

# elf_arch FILE prints the Debian architecture of the ELF executable FILE
# from its header: class (byte 4), byte order (5) and machine (18-19).
elf_arch() {
	set -- $(od -An -tu1 -N20 "$1")
	[ $# -eq 20 ] && [ "$1" -eq 127 ] && [ "$2" -eq 69 ] && [ "$3" -eq 76 ] && [ "$4" -eq 70 ] || {
		echo "not an ELF file"
		return
	}
	class=$5 order=$6 machine=$((${19} + 256 * ${20}))
	case "$class.$order.$machine" in
	2.1.62) echo amd64 ;;
	2.1.183) echo arm64 ;;
	*) echo "ELF class $class, byte order $order, machine $machine" ;;
	esac
}

rpmarch=$(rpm_arch "$arch") || die "architecture $arch is not one of amd64, arm64; to add one, teach rpm_arch and elf_arch in packaging/stage.sh its rpm name and ELF machine"
[ -f "$binary" ] || die "no binary $binary"
got=$(elf_arch "$binary")
[ "$got" = "$arch" ] || die "$binary is $got, not $arch: refusing to label it $arch (build it with GOOS=linux GOARCH=$arch)"

rm -rf "$stage"
mkdir -p "$stage/rules" "$stage/doc" "$stage/scripts"
echo "$arch" > "$stage/arch"
echo "$rpmarch" > "$stage/rpm-arch"
install -m 0755 "$binary" "$stage/tokpulse-agent"
for f in tokpulse-agent.service packaging/agent.yaml packaging/tokpulse-agent.default packaging/lintian-overrides; do
	install -m 0644 "$f" "$stage/"
done
gzip -9n < packaging/tokpulse-agent.8 > "$stage/tokpulse-agent.8.gz"
for f in packaging/rules/*.yml; do
	case "$f" in
	*_test.yml) ;;
	*) if [ -f "$f" ]; then install -m 0644 "$f" "$stage/rules/"; fi ;;
	esac
done
install -m 0644 README.md "$stage/doc/"
cp -R docs/. "$stage/doc/"
chmod -R u=rwX,go=rX "$stage/doc"
cp -R packaging/scripts/deb "$stage/scripts/deb"
install -D -m 0644 packaging/polkit/50-tokpulse-agent.rules "$stage/polkit/50-tokpulse-agent.rules"

# The copyright file (DEP-5): the license text indented by one space, an
# empty line as " .".
{
	cat <<EOT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tokpulse-agent
Upstream-Contact: $PKG_MAINTAINER
Source: $PKG_HOMEPAGE

Files: *
Copyright: $PKG_COPYRIGHT
License: $PKG_LICENSE
EOT
	sed 's/^$/./; s/^/ /' "$PKG_LICENSE_FILE"
} > "$stage/copyright"

./packaging/changelog.sh yaml "$PKG_VERSION" packaging/changelog.yml > "$stage/changelog.yml"

# The spec: @NAME@ values substituted (sed's "|" and "&" escaped), each
# @SCRIPT:x@ line replaced by packaging/scripts/rpm/x and @CHANGELOG@ by
# the %changelog, all with "%" doubled, since rpmbuild expands macros in
# scriptlets too.
subst() {
	printf '%s' "$1" | sed 's/[|&\\]/\\&/g'
}
{
	sed -e "s|@VERSION@|$(subst "$PKG_VERSION")|g" \
		-e "s|@MAINTAINER@|$(subst "$PKG_MAINTAINER")|g" \
		-e "s|@VENDOR@|$(subst "$PKG_VENDOR")|g" \
		-e "s|@HOMEPAGE@|$(subst "$PKG_HOMEPAGE")|g" \
		-e "s|@LICENSE@|$(subst "$PKG_LICENSE")|g" \
		packaging/tokpulse-agent.spec | while IFS= read -r line; do
		case "$line" in
		@SCRIPT:*@)
			name=${line#@SCRIPT:}
			name=${name%@}
			sed 's/%/%%/g' "packaging/scripts/rpm/$name"
			;;
		@CHANGELOG@)
			./packaging/changelog.sh rpm "$PKG_VERSION" packaging/changelog.yml
			;;
		*) printf '%s\n' "$line" ;;
		esac
	done
} > "$stage/tokpulse-agent.spec"
if grep -n '@[A-Z:a-z]*@' "$stage/tokpulse-agent.spec" >&2; then
	die "packaging/tokpulse-agent.spec has a placeholder stage.sh does not fill in (above)"
fi
