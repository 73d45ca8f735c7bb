// Package packaging holds no code. Its tests build the .deb and .rpm with
// the Makefile, inspect them with systemd-analyze, lintian and rpm, and
// install the .deb in a booted Debian container (internal/testutil/nspawn)
// to check the service end to end: start, reload, sandbox, watchdog,
// upgrade, removal and purge. systemd_test.go runs the collectors that need
// a real systemd (unit states over D-Bus, the live journal) in such a
// container too. They need root and the Debian packages that
// .ci/deps installs.
package packaging
