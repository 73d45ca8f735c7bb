// Package safefile opens the files an operator names in the configuration
// (the configuration itself, rule files, templates, the web config, secrets,
// CA bundles, log files) so that a wrong path cannot hang or exhaust the
// agent.
//
// os.Open on a FIFO blocks until a writer appears, for ever if none does;
// reading /dev/zero or /dev/urandom never ends; opening some devices has
// side effects (a watchdog device arms the machine's hardware watchdog). So
// every configured file is stat'ed first and refused unless it is a regular
// file, opened with O_NONBLOCK (a FIFO swapped in after the stat then opens
// at once instead of blocking), checked again on the open descriptor, and
// read with a size cap. Every refusal names the file and says what to do.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Size caps of the kinds of file the agent reads whole. They are far above
// any real file of the kind and far below what would hurt the agent.
const (
	// MaxConfig bounds agent.yaml.
	MaxConfig = 4 << 20
	// MaxRuleFile bounds a rule file or a rule test file.
	MaxRuleFile = 16 << 20
	// MaxTemplate bounds a notification template file.
	MaxTemplate = 1 << 20
	// MaxWebConfig bounds the exporter-toolkit web configuration file.
	MaxWebConfig = 1 << 20
	// MaxSecret bounds a secret file (a token, a key, a password).
	MaxSecret = 64 << 10
	// MaxPEM bounds a CA bundle, a certificate or a key file.
	MaxPEM = 4 << 20
)

// ErrNotRegular is wrapped by the error for a path that is not a regular
// file (a FIFO, a socket, a device or a directory).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error for a file larger than its cap.
var ErrTooLarge = errors.New("file too large")

// Kind names a file's type the way an operator knows it.
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "special file"
}

// CheckRegular returns nil for a regular file and otherwise an error, naming
// path and its kind, that wraps ErrNotRegular.
func CheckRegular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%s is a %s, %w; point the setting at a regular file (the agent never reads pipes, sockets or devices, which could block it or never end)",
		path, Kind(fi.Mode()), ErrNotRegular)
}

// Open opens path for reading once it is known to be a regular file. It
// never blocks on a FIFO and never opens a device. The caller closes the
// file; the FileInfo is that of the open descriptor.
func Open(path string) (*os.File, fs.FileInfo, error) {
	// Stat before open: opening a device can itself have effects.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := CheckRegular(path, fi); err != nil {
		return nil, nil, err
	}
	// O_NONBLOCK: if the path was replaced by a FIFO since the stat, the
	// open returns at once instead of waiting for a writer. It changes
	// nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := CheckRegular(path, fi); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// ReadFile reads the regular file at path whole, refusing one larger than
// max bytes. what names the setting in the error ("rule file",
// "web.config_file").
func ReadFile(path string, max int64, what string) ([]byte, error) {
	data, _, err := Read(path, max, what)
	return data, err
}

// Read is ReadFile that also returns the file's FileInfo (for a check of
// its permissions).
func Read(path string, max int64, what string) ([]byte, fs.FileInfo, error) {
	f, fi, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if fi.Size() > max {
		return nil, nil, tooLarge(path, max, what)
	}
	// The size can change between the stat and the read (a file being
	// written); the limit holds whatever the stat said.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > max {
		return nil, nil, tooLarge(path, max, what)
	}
	return data, fi, nil
}

func tooLarge(path string, max int64, what string) error {
	return fmt.Errorf("%s %s is larger than %s, the most the agent reads (%w); point the setting at the right file or make it smaller",
		what, path, human(max), ErrTooLarge)
}

// human formats a cap for a message: "4 MiB", "64 KiB", "1500 bytes".
func human(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadableByOthers reports whether users outside the file's owner and group
// may read it. A secret the agent's group reads (0640 root:tokpulse-agent,
// the packages' convention: docs/configuration.md, "Secret files") is fine;
// one every user reads is not.
func ReadableByOthers(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o004 != 0 }
