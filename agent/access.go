package agent

import (
	"fmt"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// ServiceAccount is who the service runs as and what its unit hides, so
// that `check`, run as root by an operator, can say which files the
// service itself will not be able to read.
type ServiceAccount struct {
	// User is the unit's User=; its primary group and the groups
	// /etc/group gives it count.
	User string
	// Groups are the unit's SupplementaryGroups=.
	Groups []string
	// Hidden are the directories the unit's sandbox hides from the
	// service (ProtectHome=yes, PrivateTmp=yes), with the setting.
	Hidden map[string]string
}

// PackagedService is the account of tokpulse-agent.service as the
// packages install it.
func PackagedService() ServiceAccount {
	return ServiceAccount{
		User:   "tokpulse-agent",
		Groups: []string{"adm", "systemd-journal"},
		Hidden: map[string]string{
			"/home": "ProtectHome=yes", "/root": "ProtectHome=yes", "/run/user": "ProtectHome=yes",
			"/tmp": "PrivateTmp=yes", "/var/tmp": "PrivateTmp=yes",
		},
	}
}

// FileRef is a file the configuration names, by its key.
type FileRef struct {
	Key, Path string
}

// ConfigFiles lists every file cfg names under a key ending in _file (a
// secret, a certificate, a template, a web config) or _files (a map of
// them), with the key's path in the configuration.
func ConfigFiles(cfg *Config) []FileRef {
	var out []FileRef
	collectFiles(reflect.ValueOf(cfg).Elem(), "", &out)
	return out
}

func collectFiles(v reflect.Value, path string, out *[]FileRef) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			collectFiles(v.Elem(), path, out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			collectFiles(v.Index(i), yamlx.Index(path, i), out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			p := path
			if opts != "inline" {
				if name == "" || name == "-" {
					continue
				}
				p = yamlx.Join(path, name)
			}
			fv := v.Field(i)
			switch {
			case strings.HasSuffix(name, "_file") && fv.Kind() == reflect.String:
				if s := fv.String(); s != "" {
					*out = append(*out, FileRef{p, s})
				}
			case strings.HasSuffix(name, "_files") && fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.String:
				keys := fv.MapKeys()
				slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
				for _, k := range keys {
					*out = append(*out, FileRef{yamlx.Join(p, k.String()), fv.MapIndex(k).String()})
				}
			default:
				collectFiles(fv, p, out)
			}
		}
	}
}

// UnreadableFiles returns one warning for each file of cfg that the
// service account could not read: hidden by its sandbox, a directory on
// the way it cannot enter, or the file's owner, group and mode. It
// returns nothing when the account's user does not exist (not an
// installed host). Files with POSIX ACLs are not judged by their mode.
func UnreadableFiles(cfg *Config, acct ServiceAccount) []string {
	u, err := user.Lookup(acct.User)
	if err != nil {
		return nil
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gids := map[uint64]bool{}
	groups, _ := u.GroupIds()
	for _, g := range append(groups, u.Gid) {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			gids[n] = true
		}
	}
	for _, name := range acct.Groups {
		if g, err := user.LookupGroup(name); err == nil {
			if n, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
				gids[n] = true
			}
		}
	}
	var out []string
	for _, f := range ConfigFiles(cfg) {
		if why := whyUnreadable(f.Path, acct.User, uint32(uid), gids, acct.Hidden); why != "" {
			out = append(out, fmt.Sprintf("%s: the service user %s cannot read %s: %s", f.Key, acct.User, f.Path, why))
		}
	}
	return out
}

// whyUnreadable says why user name (uid, groups gids) could not read path,
// or "" when it could (or when that cannot be judged from here).
func whyUnreadable(path, name string, uid uint32, gids map[uint64]bool, hidden map[string]string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	for _, dir := range slices.Sorted(maps.Keys(hidden)) {
		if abs == dir || strings.HasPrefix(abs, dir+"/") {
			return fmt.Sprintf("the unit's %s hides %s from the service; move the file, e.g. to /etc/tokpulse-agent/", hidden[dir], dir)
		}
	}
	// Every directory on the way needs search (x) permission.
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if st, ok := statT(dir); ok && !permits(dir, st, uid, gids, 1) {
			return fmt.Sprintf("it may not enter %s (owner %s, mode %s); run: chgrp %s %s && chmod g+x %s", dir, owner(st), os.FileMode(st.Mode&0o777|uint32(os.ModeDir)), name, dir, dir)
		}
		if dir == "/" {
			break
		}
	}
	st, ok := statT(abs)
	if !ok || permits(abs, st, uid, gids, 4) {
		return "" // a missing file is the validation's error, not ours
	}
	return fmt.Sprintf("owner %s, mode %s; run: chown root:%s %s && chmod 0640 %s (docs/configuration.md, \"Secret files\")",
		owner(st), os.FileMode(st.Mode&0o777), name, abs, abs)
}

// permits applies the mode bits as the kernel does for a non-root user:
// the owner's bits if it owns the file, else the group's if it is in the
// group, else the others'. A file with a POSIX ACL is judged readable,
// since its mode alone does not decide.
func permits(path string, st *syscall.Stat_t, uid uint32, gids map[uint64]bool, bit uint32) bool {
	if _, err := unix.Getxattr(path, "system.posix_acl_access", nil); err == nil {
		return true
	}
	switch {
	case st.Uid == uid:
		return st.Mode&(bit<<6) != 0
	case gids[uint64(st.Gid)]:
		return st.Mode&(bit<<3) != 0
	}
	return st.Mode&bit != 0
}

func statT(path string) (*syscall.Stat_t, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}

// owner names a file's owner and group, by name where known.
func owner(st *syscall.Stat_t) string {
	u, g := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if x, err := user.LookupId(u); err == nil {
		u = x.Username
	}
	if x, err := user.LookupGroupId(g); err == nil {
		g = x.Name
	}
	return u + ":" + g
}
