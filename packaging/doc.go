// Package packaging holds no code. Its tests build the .deb and .rpm of
// amd64 and arm64 with the Makefile, inspect them with systemd-analyze,
// lintian, rpm and rpmlint, run the arm64 binary under qemu-user-static,
// sign them with a throwaway key into apt and dnf repositories ("make
// repo"), and install the .deb in booted Debian 11, 12 and 13 containers
// (internal/testutil/nspawn) to check the service end to end: install from
// the signed repository, start, reload, sandbox, watchdog, upgrade,
// removal and purge. systemd_test.go runs the collectors that need a real
// systemd (unit states over D-Bus, the live journal) in such a container
// too. They need root and the Debian packages that .ci/deps installs.
package packaging
