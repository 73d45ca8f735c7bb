#!/bin/sh
# repo.sh KEY DIST REPO STATE builds, from the signed packages in DIST, the
# directory REPO to publish as it is behind any static web server at
# $PKG_REPO_URL (packaging/metadata; the Makefile sets it):
#
#   tokpulse-agent.asc      the public key of KEY (a GPG key id or fingerprint)
#   tokpulse-agent.sources  apt source (deb822) with Signed-By= that key
#   tokpulse-agent.repo     yum/dnf repository file with gpgcheck and repo_gpgcheck
#   apt/                    the apt repository (reprepro): dists/stable/ with
#                           InRelease and Release.gpg signed by KEY, pool/
#   rpm/                    the yum repository (createrepo_c): the .rpm files,
#                           signed by "make sign", and repodata/ with
#                           repomd.xml.asc, its detached signature
#
# STATE keeps reprepro's database and configuration, which are not
# published. REPO and STATE are made anew each time: a repository holds the
# packages now in DIST. docs/install.md says how an operator uses it.
set -eu

key=$1
dist=$2
repo=$3
state=$4

die() {
	echo "repo.sh: $*" >&2
	exit 1
}

[ -n "$key" ] || die "no key: set SIGN_KEY to the id or fingerprint of the GPG key that signs the repositories"
: "${PKG_REPO_URL:?set PKG_REPO_URL (packaging/metadata; the Makefile does)}"
: "${PKG_VENDOR:?set PKG_VENDOR (packaging/metadata; the Makefile does)}"
for tool in gpg reprepro createrepo_c rpm dpkg-deb; do
	command -v "$tool" >/dev/null || die "$tool is missing (Debian packages: gnupg reprepro createrepo-c rpm dpkg)"
done
set -- "$dist"/*.deb
[ -f "$1" ] || die "no .deb in $dist; run \"make package\" first"
set -- "$dist"/*.rpm
[ -f "$1" ] || die "no .rpm in $dist; run \"make package\" first"
for f in "$dist"/*.rpm; do
	if rpm -qpi "$f" 2>/dev/null | grep -q '^Signature *: (none)'; then
		die "$f is not signed; run \"make sign\" first"
	fi
done

rm -rf "$repo" "$state"
mkdir -p "$repo/apt" "$repo/rpm" "$state/conf"
repo=$(cd "$repo" && pwd)

gpg --batch --armor --export "$key" > "$repo/tokpulse-agent.asc"
[ -s "$repo/tokpulse-agent.asc" ] || die "gpg has no public key $key"

# apt: one suite, "stable", for every Debian and Ubuntu release (the binary
# is static), with the architectures of the .deb files at hand.
archs=$(for f in "$dist"/*.deb; do dpkg-deb --field "$f" Architecture; done | sort -u | tr '\n' ' ')
cat > "$state/conf/distributions" <<EOT
Origin: $PKG_VENDOR
Label: tokpulse-agent
Codename: stable
Suite: stable
Architectures: $archs
Components: main
Description: tokpulse-agent packages
SignWith: $key
EOT
reprepro --silent --basedir "$state" --outdir "$repo/apt" includedeb stable "$dist"/*.deb

# yum/dnf: the signed .rpm files and their metadata, whose repomd.xml dnf
# checks against repomd.xml.asc (repo_gpgcheck=1).
cp "$dist"/*.rpm "$repo/rpm/"
createrepo_c --quiet "$repo/rpm"
gpg --batch --yes --local-user "$key" --armor --detach-sign "$repo/rpm/repodata/repomd.xml"

cat > "$repo/tokpulse-agent.sources" <<EOT
Types: deb
URIs: $PKG_REPO_URL/apt
Suites: stable
Components: main
Signed-By: /etc/apt/keyrings/tokpulse-agent.asc
EOT

cat > "$repo/tokpulse-agent.repo" <<EOT
[tokpulse-agent]
name=tokpulse-agent
baseurl=$PKG_REPO_URL/rpm
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=$PKG_REPO_URL/tokpulse-agent.asc
EOT

echo "repository in $repo, to publish at $PKG_REPO_URL"
