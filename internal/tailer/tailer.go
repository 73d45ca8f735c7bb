// Package tailer follows growing log files through every common kind of
// rotation without losing or repeating a line.
//
// It is our own small tailer rather than nxadm/tail: that library lost lines
// on rename and on repeated truncation in this project's rotation torture test
// (see docs/logs.md). The design follows what the torture test demands:
//
//   - Files are identified by device and inode plus a fingerprint (a hash of
//     the first bytes), so that a reused inode is not mistaken for the file
//     it replaced.
//   - A file that is renamed, deleted or replaced behind a symlink stays open
//     and is read to its end (and for RotateWait longer, for writers that
//     reopen late) before it is let go.
//   - A truncated file (copytruncate) is first finished from its copy: a file
//     in the same folder with the same fingerprint and more bytes than our
//     offset. Only then is the truncated file read from its start.
//   - Positions advance only at line ends, and a position is published only
//     after its line was handed to the Handler, so that a checkpoint never
//     claims a line that was not processed.
//
// The tailer polls: a stat and a fingerprint read per file and poll interval
// cost microseconds, and polling sees every rotation method the same way on
// every filesystem, including network ones where inotify is silent. Watch
// adds inotify (fsnotify) wake-ups, so that new lines are read within
// milliseconds where inotify works.
package tailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// Position is where reading of one file stopped. It is what the state file
// keeps per file.
type Position struct {
	// Path is the watched name (a glob match); Real is the file it resolved
	// to, whose folder is searched after a rotation or truncation.
	Path string `json:"path"`
	Real string `json:"real"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
	// Offset is the byte after the last line handed to the Handler.
	Offset int64 `json:"offset"`
	// FPLen bytes from the file's start hash to FP.
	FPLen int    `json:"fp_len"`
	FP    uint64 `json:"fp"`
}

// Handler receives every line, without its line end. line is only valid
// during the call. cut reports a line longer than MaxLineBytes, of which only
// the first MaxLineBytes are given.
type Handler func(path string, line []byte, cut bool)

// Events receives what the tailer notices besides lines. Every method is
// called from the tailer's goroutine.
type Events interface {
	// ReadError reports a path that cannot be followed (unreadable, a
	// directory, ...). It is called at most once per path per RetryInterval.
	ReadError(path string, err error)
	// Rotated reports a followed file replaced at its path (rename,
	// delete, symlink switch); how says which.
	Rotated(path, how string)
	// Truncated reports a followed file cut short; recovered is the number
	// of bytes read from its copy.
	Truncated(path string, recovered int64)
	// Read reports n bytes read from path: every byte of the files,
	// whether it ends up in a line handed over or in the skipped rest of a
	// line longer than MaxLineBytes. It is called before the lines of
	// these bytes are handed over; behind is how many bytes of the file
	// were known to be unread after them (the file's size when this read
	// pass began, less the read position), so that a reader far behind
	// can shed optional work on them.
	Read(path string, n int, behind int64)
	// Handed follows each Read once the complete lines of its n bytes
	// have been handed over, so that a reader that keeps per-line work
	// back (counters, locks) can publish it a read at a time rather than
	// a line at a time.
	Handed(path string, n int)
}

// Config sets how a Tailer follows its files.
type Config struct {
	// Globs name the files to follow; they are re-expanded at every poll.
	Globs []string
	// StartAtEnd makes files found at the first scan, without a saved
	// position, start at their end. Files found later always start at
	// their beginning: they were created after the agent started.
	StartAtEnd bool
	// MaxLineBytes caps a line; the rest of a longer line is skipped.
	MaxLineBytes int
	// PollInterval is how often files are checked for growth and rotation.
	PollInterval time.Duration
	// RotateWait is how long a rotated file is still read after it was
	// replaced, for writers that reopen their log late.
	RotateWait time.Duration
	// RetryInterval spaces retries of a path that failed.
	RetryInterval time.Duration
	// FingerprintBytes is how many leading bytes identify a file.
	FingerprintBytes int
	Logger           *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Lines, when set, receives the complete lines of a read in one call
	// (each with its line end; NextLine splits them off as Handler would
	// be given them) instead of one Handler call per line: a busy file
	// costs a call per 64 KiB, not per line. Handler still receives the
	// others: a line completed from an earlier read's rest, a line cut
	// while being read, a file's last line without a line end.
	Lines func(path string, lines []byte)
}

// NextLine splits the first line off lines given to Config.Lines, as
// Handler would be given it: without its line end, cut to max bytes when
// longer, and without a trailing '\r' when not cut.
func NextLine(lines []byte, max int) (line, rest []byte, cut bool) {
	i := bytes.IndexByte(lines, '\n')
	if i < 0 {
		i = len(lines) // not from Config.Lines; the whole is one line
		rest = lines[i:]
	} else {
		rest = lines[i+1:]
	}
	line, cut = endLine(lines[:i], max)
	return line, rest, cut
}

// endLine cuts a complete line to max bytes, or drops its trailing '\r'.
func endLine(line []byte, max int) ([]byte, bool) {
	if len(line) > max {
		return line[:max], true
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, false
}

// Defaults for Config's zero fields.
const (
	DefaultMaxLineBytes     = 64 << 10
	DefaultPollInterval     = time.Second
	DefaultRotateWait       = 5 * time.Second
	DefaultRetryInterval    = 5 * time.Second
	DefaultFingerprintBytes = 1024
	readChunk               = 64 << 10
	// readPassBytes is the most a poll reads of one file: a source far
	// behind hands its lines over (and checkpoints) every few tens of
	// milliseconds of work rather than once it has caught up.
	readPassBytes = 8 << 20
)

// Tailer follows the files of one source. Start, Poll and Close are
// called from one goroutine, which does all reading; Positions may be
// called from any goroutine.
type Tailer struct {
	cfg    Config
	handle Handler
	events Events
	logger *slog.Logger

	active   map[string]*file // by watched path
	draining []*file
	failed   map[string]failure // by path: last error and when to retry
	// chunk is the read buffer, allocated at the first read: a source
	// whose files do not exist costs no 64 KiB.
	chunk []byte
	// chunkBytes and passBytes are readChunk and readPassBytes; tests
	// lower them so that reads and passes end in the middle of lines.
	chunkBytes int
	passBytes  int64
	// absent is set when the last poll followed no file and the folder of
	// every glob was missing.
	absent bool
	// more is set when the last poll stopped reading a file at the
	// per-pass budget with more to read.
	more bool
	// rewatch asks Watch's goroutine to retry folders it could not watch,
	// which it says in unwatched.
	rewatch   chan struct{}
	unwatched atomic.Bool
	scanned   bool
	// truncated is set when a poll found a truncated file; Poll reports
	// it as a change so that the new position is saved at once.
	truncated bool
	// truncatedFPs are the fingerprints of recently truncated files, and
	// copies the inodes found to be copies of followed files.
	truncatedFPs []Position
	copies       map[[2]uint64]bool
	hasState     bool
	saved        []Position

	mu        sync.Mutex
	published []Position
	nfiles    int
}

type failure struct {
	msg   string
	retry time.Time
}

type file struct {
	path, real string
	f          *os.File
	dev, ino   uint64
	off        int64 // committed: end of the last handled line
	readOff    int64 // next byte to read (off + len(buf) unless discarding)
	buf        []byte
	discarding bool
	fpLen      int
	fp         uint64
	rotatedAt  time.Time // set while draining
}

// New returns a Tailer that hands lines to h and events to ev.
func New(cfg Config, h Handler, ev Events) *Tailer {
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.RotateWait <= 0 {
		cfg.RotateWait = DefaultRotateWait
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.FingerprintBytes <= 0 {
		cfg.FingerprintBytes = DefaultFingerprintBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tailer{
		cfg: cfg, handle: h, events: ev, logger: cfg.Logger,
		active:     map[string]*file{},
		failed:     map[string]failure{},
		copies:     map[[2]uint64]bool{},
		chunkBytes: readChunk, passBytes: readPassBytes,
	}
}

// Positions returns the positions of every open file as of the last
// completed read. Every line before them has been handed to the Handler.
func (t *Tailer) Positions() []Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Position(nil), t.published...)
}

// Files returns how many files are being followed (including rotated ones
// still being drained).
func (t *Tailer) Files() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nfiles
}

// Start loads saved positions; the caller then steps the tailer with Poll
// (collectors.LogFile polls on its own timer and inotify wake-ups), and
// ends it with Close after the last Poll, so that its final checkpoint
// covers every handled line. resumed tells that the source ran before (so
// StartAtEnd no longer applies: a file it never saw appeared while it was
// stopped). savedAt is when the positions were saved; when set,
// rotated generations of the followed files that were written after it and
// never seen (the file was rotated more than once while the agent was
// down) are read as well.
func (t *Tailer) Start(saved []Position, resumed bool, savedAt time.Time) {
	t.saved = append([]Position(nil), saved...)
	t.hasState = resumed || len(saved) > 0
	known := t.knownInodes()
	t.resumeRotated()
	if !savedAt.IsZero() {
		t.resumeUnseen(saved, known, savedAt)
	}
	// Until the first poll, a checkpoint must keep what was saved.
	t.publish()
}

func (t *Tailer) knownInodes() map[[2]uint64]bool {
	known := map[[2]uint64]bool{}
	for _, p := range t.saved {
		known[[2]uint64{p.Dev, p.Ino}] = true
	}
	for _, p := range t.paths() {
		if st, err := os.Stat(p); err == nil {
			d, i := ids(st)
			known[[2]uint64{d, i}] = true
		}
	}
	return known
}

// compressed names are rotated generations we cannot read.
var compressed = []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip"}

// resumeUnseen finds generations of a followed file that appeared while
// the agent was down: files named like it plus a suffix ("app.log.1",
// "app.log-20261127"), in its folder, modified after the positions were
// saved, that are neither a file we know by inode nor a copy of one (by
// fingerprint). They are read from their start, oldest first.
func (t *Tailer) resumeUnseen(saved []Position, known map[[2]uint64]bool, savedAt time.Time) {
	type cand struct {
		f     *file
		mtime time.Time
	}
	var found []cand
	seenDir := map[string]bool{}
	for _, p := range saved {
		dir, base := filepath.Dir(p.Real), filepath.Base(p.Path)
		if seenDir[dir+"\x00"+base] {
			continue
		}
		seenDir[dir+"\x00"+base] = true
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
	entries:
		for _, e := range ents {
			name := e.Name()
			if !strings.HasPrefix(name, base) || name == base || !strings.ContainsAny(name[len(base):len(base)+1], ".-_") {
				continue
			}
			for _, c := range compressed {
				if strings.HasSuffix(name, c) {
					continue entries
				}
			}
			full := filepath.Join(dir, name)
			st, err := os.Stat(full)
			if err != nil || !st.Mode().IsRegular() || !st.ModTime().After(savedAt) {
				continue
			}
			d, i := ids(st)
			if known[[2]uint64{d, i}] {
				continue
			}
			fh, _, err := safefile.Open(full)
			if err != nil {
				continue
			}
			isCopy := false
			for _, q := range saved {
				if fp, ok := fingerprint(fh, q.FPLen); q.FPLen > 0 && ok && fp == q.FP {
					isCopy = true
					break
				}
			}
			if isCopy {
				fh.Close()
				continue
			}
			known[[2]uint64{d, i}] = true
			t.logger.Info("Reading a rotated log file that appeared while the agent was stopped", "path", full)
			found = append(found, cand{&file{path: p.Path, real: full, f: fh, dev: d, ino: i, rotatedAt: t.cfg.Now()}, st.ModTime()})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].mtime.Before(found[j].mtime) })
	for _, c := range found {
		t.refreshFingerprint(c.f)
		t.draining = append(t.draining, c.f)
	}
}

// Close closes every file and publishes the final positions.
func (t *Tailer) Close() { t.closeAll() }

// Poll does one round: drain rotated files, rescan the globs, read every
// file to its end. Callers call it on their schedule; tests call it to
// step deterministically.
// It reports whether the set of files changed (a rotation, a new file, a
// file let go): the caller should checkpoint then, so that a crash soon
// after a rotation does not lose track of the new file.
func (t *Tailer) Poll(ctx context.Context) (changed bool) {
	now := t.cfg.Now()
	t.more = false
	// Rotated files first, so that lines come out in the order written.
	keep := t.draining[:0]
	for _, d := range t.draining {
		if t.more {
			keep = append(keep, d)
			continue
		}
		n, more := t.readToEnd(ctx, d, t.passBytes)
		t.more = more
		if n == 0 && now.Sub(d.rotatedAt) >= t.cfg.RotateWait && ctx.Err() == nil {
			t.finish(d)
			continue
		}
		keep = append(keep, d)
	}
	t.draining = keep
	if t.more {
		// A rotated file is still behind: its lines come first, so the
		// files that replaced it wait for the next pass.
		return t.publish()
	}

	seen := map[string]bool{}
	for _, p := range t.paths() {
		if seen[p] {
			continue
		}
		seen[p] = true
		if ctx.Err() != nil {
			break
		}
		t.follow(ctx, p, now)
	}
	// A followed path that no glob matches any more was deleted or renamed
	// out of the pattern: drain it.
	for p, f := range t.active {
		if !seen[p] {
			t.retire(ctx, f, "deleted", now)
		}
	}
	t.scanned = true
	t.absent = len(t.active) == 0 && len(t.draining) == 0 && t.foldersMissing()
	if t.rewatch != nil && t.unwatched.Load() {
		select {
		case t.rewatch <- struct{}{}:
		default:
		}
	}
	changed = t.publish() || t.truncated
	t.truncated = false
	return changed
}

// Absent reports whether the last poll found no file to follow and not
// even the folder of any glob: the source's application is not installed
// (yet), and the caller may poll less often (a file that appears later is
// read from its beginning, so waiting loses nothing).
func (t *Tailer) Absent() bool { return t.absent }

// foldersMissing reports whether the folder of every glob is missing. A
// folder that is itself a pattern counts as present.
func (t *Tailer) foldersMissing() bool {
	for _, g := range t.cfg.Globs {
		d := filepath.Dir(g)
		if hasMeta(d) {
			return false
		}
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

func (t *Tailer) paths() []string {
	var out []string
	for _, g := range t.cfg.Globs {
		if !hasMeta(g) {
			out = append(out, g)
			continue
		}
		m, err := filepath.Glob(g)
		if err != nil {
			continue // validated at config load
		}
		out = append(out, m...)
	}
	return out
}

// explicit reports whether path was configured as such, not found by a
// glob.
func (t *Tailer) explicit(path string) bool {
	for _, g := range t.cfg.Globs {
		if g == path && !hasMeta(g) {
			return true
		}
	}
	return false
}

func hasMeta(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}

// follow checks one watched path and reads what it holds.
func (t *Tailer) follow(ctx context.Context, path string, now time.Time) {
	cur := t.active[path]
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Between a rename and the new file's creation, or deleted:
			// the open file is drained either way.
			if cur != nil {
				t.retire(ctx, cur, "deleted", now)
			}
			return
		}
		t.fail(path, err, now)
		return
	}
	if st.IsDir() && t.explicit(path) {
		t.fail(path, fmt.Errorf("%s is a directory, not a log file; point the glob at the files inside it (e.g. %s/*.log)", path, path), now)
		return
	}
	if st.IsDir() {
		return // a folder that a glob happens to match: not ours
	}
	if !st.Mode().IsRegular() {
		// A FIFO would block the open (and with it shutdown and reload);
		// a device could be endless. Never opened, but said and counted,
		// whether named or matched by a glob.
		if cur != nil {
			t.retire(ctx, cur, "replaced", now)
		}
		t.fail(path, fmt.Errorf("%w; the source skips it", safefile.CheckRegular(path, st)), now)
		return
	}
	dev, ino := ids(st)
	if cur != nil && (cur.dev != dev || cur.ino != ino) {
		how := "renamed"
		if li, err := os.Lstat(path); err == nil && li.Mode()&fs.ModeSymlink != 0 {
			how = "symlink"
		}
		t.retire(ctx, cur, how, now)
		cur = nil
	}
	if cur == nil {
		// The same file under another name the globs also match (a
		// rotated "app.2026-11-27.log" under "*.log", a hard link): keep
		// reading it where we are instead of from the start.
		for p, f := range t.active {
			if f.dev == dev && f.ino == ino && p != path {
				return
			}
		}
		for i, f := range t.draining {
			if f.dev == dev && f.ino == ino {
				t.draining = append(t.draining[:i], t.draining[i+1:]...)
				f.path, f.rotatedAt = path, time.Time{}
				if real, err := filepath.EvalSymlinks(path); err == nil {
					f.real = real
				}
				t.active[path] = f
				cur = f
				break
			}
		}
	}
	if cur == nil {
		if f, ok := t.failed[path]; ok && now.Before(f.retry) {
			return
		}
		if t.copies[[2]uint64{dev, ino}] {
			return
		}
		cur, err = t.open(path)
		if errors.Is(err, errCopy) {
			return
		}
		if err != nil {
			t.fail(path, err, now)
			return
		}
		delete(t.failed, path)
		t.active[path] = cur
	}
	if err := t.checkTruncation(ctx, cur); err != nil {
		t.fail(path, err, now)
		return
	}
	if _, more := t.readToEnd(ctx, cur, t.passBytes); more {
		t.more = true
	}
}

// More reports whether the last Poll left a file with more to read: it
// read at most readPassBytes of each file, so that a source far behind
// still checkpoints and hands its lines over regularly. The caller should
// poll again at once.
func (t *Tailer) More() bool { return t.more }

func (t *Tailer) fail(path string, err error, now time.Time) {
	if f, ok := t.failed[path]; ok && now.Before(f.retry) {
		return
	}
	msg := err.Error()
	if f, ok := t.failed[path]; !ok || f.msg != msg {
		t.logger.Warn("Cannot read log file; retrying", "path", path, "err", err, "retry_every", t.cfg.RetryInterval)
	}
	t.failed[path] = failure{msg: msg, retry: now.Add(t.cfg.RetryInterval)}
	if t.events != nil {
		t.events.ReadError(path, err)
	}
}

// open opens path and decides where to start reading it.
func (t *Tailer) open(path string) (*file, error) {
	fh, st, err := safefile.Open(path)
	if errors.Is(err, safefile.ErrNotRegular) {
		return nil, fmt.Errorf("%w; the source skips it", err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w (give the agent's user read access, e.g. add it to the group adm)", path, err)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path
	}
	dev, ino := ids(st)
	f := &file{path: path, real: real, f: fh, dev: dev, ino: ino}
	if p, ok := t.takeSaved(dev, ino); ok {
		f.off, f.fpLen, f.fp = p.Offset, p.FPLen, p.FP
		f.readOff = f.off
		t.logger.Debug("Resuming log file", "path", path, "offset", f.off)
		return f, nil
	}
	if t.isCopy(fh, dev, ino) {
		fh.Close()
		t.copies[[2]uint64{dev, ino}] = true
		t.logger.Info("Not reading a copy of a followed log file (copytruncate); its lines are read from the original", "path", path)
		return nil, errCopy
	}
	if !t.scanned && !t.hasState && t.cfg.StartAtEnd {
		f.off = st.Size()
		f.readOff = f.off
	}
	t.refreshFingerprint(f)
	return f, nil
}

// errCopy marks a file that is a copy of a followed one.
var errCopy = errors.New("copy of a followed file")

// minCopyFingerprint is the fewest leading bytes that identify a copy: two
// distinct logs practically never share their first 256 bytes (timestamps
// differ), while a new file that merely starts like a short followed file
// is not a copy.
const minCopyFingerprint = 256

// isCopy reports whether fh starts with the same bytes as a followed file
// (before copytruncate truncates it) or as a file just truncated: a copy
// made by copytruncate that the globs also match (app-20261127.log under
// *.log). Reading it would count its lines twice.
func (t *Tailer) isCopy(fh *os.File, dev, ino uint64) bool {
	check := func(n int, fp uint64) bool {
		if n < minCopyFingerprint {
			return false
		}
		got, ok := fingerprint(fh, n)
		return ok && got == fp
	}
	for _, f := range t.active {
		if (f.dev != dev || f.ino != ino) && check(f.fpLen, f.fp) {
			return true
		}
	}
	for _, f := range t.draining {
		if (f.dev != dev || f.ino != ino) && check(f.fpLen, f.fp) {
			return true
		}
	}
	for _, p := range t.truncatedFPs {
		if check(p.FPLen, p.FP) {
			return true
		}
	}
	return false
}

func (t *Tailer) takeSaved(dev, ino uint64) (Position, bool) {
	for i, p := range t.saved {
		if p.Dev == dev && p.Ino == ino {
			t.saved = append(t.saved[:i], t.saved[i+1:]...)
			return p, true
		}
	}
	return Position{}, false
}

// resumeRotated finds, after a restart, files that were being read when the
// agent stopped but have since been rotated away from their watched path:
// they are looked up by inode in their folder and drained from the saved
// offset.
func (t *Tailer) resumeRotated() {
	if len(t.saved) == 0 {
		return
	}
	watched := map[[2]uint64]bool{}
	for _, p := range t.paths() {
		if st, err := os.Stat(p); err == nil {
			d, i := ids(st)
			watched[[2]uint64{d, i}] = true
		}
	}
	var rest []Position
	for _, p := range t.saved {
		if watched[[2]uint64{p.Dev, p.Ino}] {
			rest = append(rest, p)
			continue
		}
		f := t.findInode(p)
		if f == nil {
			t.logger.Info("A log file read before the restart is gone (deleted, or moved out of its folder); lines written to it after the last checkpoint were not read",
				"path", p.Path, "offset", p.Offset)
			continue
		}
		f.rotatedAt = t.cfg.Now()
		t.draining = append(t.draining, f)
	}
	t.saved = rest
}

func (t *Tailer) findInode(p Position) *file {
	dir := filepath.Dir(p.Real)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		name := filepath.Join(dir, e.Name())
		st, err := os.Stat(name)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if d, i := ids(st); d != p.Dev || i != p.Ino {
			continue
		}
		fh, _, err := safefile.Open(name)
		if err != nil {
			return nil
		}
		if fp, ok := fingerprint(fh, p.FPLen); p.FPLen > 0 && (!ok || fp != p.FP) {
			fh.Close()
			return nil // the inode was reused by another file
		}
		return &file{path: p.Path, real: name, f: fh, dev: p.Dev, ino: p.Ino,
			off: p.Offset, readOff: p.Offset, fpLen: p.FPLen, fp: p.FP}
	}
	return nil
}

// checkTruncation notices a file cut short (copytruncate, or "> file") and
// a reused inode: the size fell below our offset, or the first bytes are
// not the ones we fingerprinted. Before starting again at 0 it finishes the
// old content from its copy.
func (t *Tailer) checkTruncation(ctx context.Context, f *file) error {
	st, err := f.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.path, err)
	}
	size := st.Size()
	same := size >= f.off
	if same && f.fpLen > 0 {
		fp, ok := fingerprint(f.f, f.fpLen)
		same = ok && fp == f.fp
	}
	if same {
		return nil
	}
	// One line per truncation, and a warning only when lines may have been
	// lost: with copytruncate the copy is normally there, and a reader that
	// had read everything before the truncation lost nothing.
	recovered, copyName := t.recoverFromCopy(ctx, f)
	switch {
	case copyName == "":
		t.logger.Warn("Log file was truncated and no uncompressed copy with its content was found; lines written since the last read may be lost (with logrotate, add delaycompress next to copytruncate)",
			"path", f.path, "offset", f.off)
	case recovered == 0:
		t.logger.Info("Log file was truncated (copytruncate); the reader had read all of it, nothing was lost", "path", f.path, "copy", copyName)
	default:
		t.logger.Info("Log file was truncated (copytruncate); read the lines written since the last read from the copy", "path", f.path, "copy", copyName, "bytes", recovered)
	}
	if t.events != nil {
		t.events.Truncated(f.path, recovered)
	}
	t.truncated = true
	f.off, f.readOff, f.buf, f.discarding = 0, 0, f.buf[:0], false
	// Remember what the file started with: its copy may show up under a
	// name the globs match.
	t.truncatedFPs = append(t.truncatedFPs, Position{FPLen: f.fpLen, FP: f.fp})
	if len(t.truncatedFPs) > 16 {
		t.truncatedFPs = t.truncatedFPs[1:]
	}
	f.fpLen, f.fp = 0, 0
	t.refreshFingerprint(f)
	return nil
}

// recoverFromCopy reads, from a copy of f's old content, the bytes after
// our offset: the lines written between our last read and the truncation.
// It returns how many bytes it read and the copy's name, "" when no copy
// was found. A copy exactly as long as our offset is found too: it proves
// that nothing was written after our last read.
func (t *Tailer) recoverFromCopy(ctx context.Context, f *file) (int64, string) {
	if f.fpLen == 0 {
		return 0, ""
	}
	dir := filepath.Dir(f.real)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, ""
	}
	type cand struct {
		name  string
		mtime time.Time
	}
	var cands []cand
	for _, e := range ents {
		name := filepath.Join(dir, e.Name())
		st, err := os.Stat(name)
		if err != nil || !st.Mode().IsRegular() || st.Size() < f.off {
			continue
		}
		if d, i := ids(st); d == f.dev && i == f.ino {
			continue
		}
		cands = append(cands, cand{name, st.ModTime()})
	}
	// The newest copy is the likeliest; fingerprints decide.
	sort.Slice(cands, func(i, j int) bool { return cands[i].mtime.After(cands[j].mtime) })
	for _, c := range cands {
		fh, _, err := safefile.Open(c.name)
		if err != nil {
			continue
		}
		fp, ok := fingerprint(fh, f.fpLen)
		if !ok || fp != f.fp {
			fh.Close()
			continue
		}
		cp := &file{path: f.path, real: c.name, f: fh, off: f.off, readOff: f.off,
			buf: append([]byte(nil), f.buf...), discarding: f.discarding}
		cp.readOff = f.readOff
		start := f.off
		t.readToEnd(ctx, cp, 0)
		t.flushPartial(cp)
		fh.Close()
		return cp.off - start, c.name
	}
	return 0, ""
}

// retire moves an active file to the draining list, reading it to its end
// first: its lines come before those of the file that replaced it.
func (t *Tailer) retire(ctx context.Context, f *file, how string, now time.Time) {
	t.readToEnd(ctx, f, 0)
	delete(t.active, f.path)
	f.rotatedAt = now
	t.draining = append(t.draining, f)
	t.logger.Debug("Log file rotated", "path", f.path, "how", how)
	if t.events != nil {
		t.events.Rotated(f.path, how)
	}
}

// finish closes a drained file; a last line without a line end is handed
// over, since no writer will complete it now.
func (t *Tailer) finish(f *file) {
	t.flushPartial(f)
	f.f.Close()
}

func (t *Tailer) flushPartial(f *file) {
	if len(f.buf) > 0 && !f.discarding {
		t.handle(f.path, f.buf, false)
		f.off += int64(len(f.buf))
		f.buf = f.buf[:0]
	}
}

func (t *Tailer) closeAll() {
	for _, f := range t.active {
		f.f.Close()
	}
	for _, f := range t.draining {
		f.f.Close()
	}
	t.publish()
}

// readToEnd reads f from readOff to its current end, handing over complete
// lines, or until it has read limit bytes (0: no limit); more reports that
// it stopped at the limit with more to read. Each read tells the Events
// how far behind the file's end it still is, the size read again whenever
// the reader passes it (the file grows while it is read).
func (t *Tailer) readToEnd(ctx context.Context, f *file, limit int64) (total int64, more bool) {
	max := t.cfg.MaxLineBytes
	var size int64
	if st, err := f.f.Stat(); err == nil {
		size = st.Size()
	}
	for ctx.Err() == nil {
		if limit > 0 && total >= limit {
			more = true
			break
		}
		if t.chunk == nil {
			t.chunk = make([]byte, t.chunkBytes)
		}
		n, err := f.f.ReadAt(t.chunk, f.readOff)
		if n > 0 {
			total += int64(n)
			f.readOff += int64(n)
			if t.events != nil {
				if f.readOff >= size {
					if st, err := f.f.Stat(); err == nil {
						size = st.Size()
					}
				}
				t.events.Read(f.path, n, max64(size-f.readOff, 0))
			}
			t.split(f, t.chunk[:n], max)
			if t.events != nil {
				t.events.Handed(f.path, n)
			}
		}
		if err != nil || n < len(t.chunk) {
			if err != nil && !errors.Is(err, io.EOF) {
				t.logger.Warn("Reading log file failed", "path", f.path, "err", err)
				if t.events != nil {
					t.events.ReadError(f.path, err)
				}
			}
			break
		}
	}
	// Also when the pass ends at its limit: a file first seen with a few
	// bytes and read at the limit ever since would otherwise keep a
	// fingerprint of those few bytes, which any file starting alike (a
	// log of the same application, with the same timestamp prefix)
	// matches, and be "recovered" from it after a truncation.
	if f.fpLen < t.cfg.FingerprintBytes && f.readOff > int64(f.fpLen) {
		t.refreshFingerprint(f)
	}
	return total, more
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// split hands the complete lines of data (which follows f.buf) to the
// Handler and keeps the partial rest, bounded by max.
func (t *Tailer) split(f *file, data []byte, max int) {
	for len(data) > 0 {
		if t.cfg.Lines != nil && len(f.buf) == 0 && !f.discarding {
			// The complete lines in one call (once the line an earlier
			// read left unfinished is handed over); the rest as below.
			if j := bytes.LastIndexByte(data, '\n'); j >= 0 {
				t.cfg.Lines(f.path, data[:j+1])
				f.off += int64(j + 1)
				if data = data[j+1:]; len(data) == 0 {
					return
				}
			}
		}
		i := bytes.IndexByte(data, '\n')
		if f.discarding {
			if i < 0 {
				f.off += int64(len(data))
				return
			}
			f.off += int64(i + 1)
			data = data[i+1:]
			f.discarding = false
			continue
		}
		if i < 0 {
			room := max - len(f.buf)
			if len(data) <= room {
				// Up to max bytes wait for their line end: a line of
				// exactly max bytes is not cut.
				f.buf = append(f.buf, data...)
				return
			}
			// The line is longer than max: hand over its head, skip the rest.
			f.buf = append(f.buf, data[:room]...)
			t.handle(f.path, f.buf, true)
			f.off += int64(len(f.buf)) + int64(len(data)-room)
			f.buf = f.buf[:0]
			f.discarding = true
			return
		}
		line := data[:i]
		consumed := int64(i + 1)
		if len(f.buf) > 0 {
			consumed += int64(len(f.buf))
			f.buf = append(f.buf, line...)
			line = f.buf
		}
		line, cut := endLine(line, max)
		t.handle(f.path, line, cut)
		f.off += consumed
		f.buf = f.buf[:0]
		data = data[i+1:]
	}
}

func (t *Tailer) refreshFingerprint(f *file) {
	n := min(int64(t.cfg.FingerprintBytes), f.readOff)
	if f.readOff == 0 {
		// Nothing read yet: fingerprint what is there, so that a
		// truncation before our first read is still noticed.
		if st, err := f.f.Stat(); err == nil {
			n = min(int64(t.cfg.FingerprintBytes), st.Size())
		}
	}
	if n <= int64(f.fpLen) {
		return
	}
	if fp, ok := fingerprint(f.f, int(n)); ok {
		f.fpLen, f.fp = int(n), fp
	}
}

func fingerprint(r io.ReaderAt, n int) (uint64, bool) {
	buf := make([]byte, n)
	m, err := r.ReadAt(buf, 0)
	if m < n {
		return 0, false
	}
	_ = err
	return xxhash.Sum64(buf), true
}

func (t *Tailer) publish() (changed bool) {
	ps := make([]Position, 0, len(t.active)+len(t.draining))
	add := func(f *file) {
		ps = append(ps, Position{Path: f.path, Real: f.real, Dev: f.dev, Ino: f.ino,
			Offset: f.off, FPLen: f.fpLen, FP: f.fp})
	}
	for _, f := range t.draining {
		add(f)
	}
	for _, f := range t.active {
		add(f)
	}
	// Saved positions not taken up yet (a file that cannot be opened right
	// now) stay in the checkpoint, so that they are not forgotten.
	ps = append(ps, t.saved...)
	t.mu.Lock()
	changed = len(ps) != len(t.published)
	if !changed {
		old := map[[2]uint64]bool{}
		for _, p := range t.published {
			old[[2]uint64{p.Dev, p.Ino}] = true
		}
		for _, p := range ps {
			changed = changed || !old[[2]uint64{p.Dev, p.Ino}]
		}
	}
	t.published = ps
	t.nfiles = len(t.active) + len(t.draining)
	t.mu.Unlock()
	return changed
}

func ids(st fs.FileInfo) (dev, ino uint64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), s.Ino
	}
	return 0, 0
}
