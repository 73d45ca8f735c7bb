package host

import (
	"sync"

	"golang.org/x/sys/unix"
)

// bufPool holds read buffers for procfs and sysfs files, which are read at
// every gather.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// readFile reads a pseudo file whole with plain open/read/close, into a
// pooled buffer that release gives back. os.ReadFile costs two more system
// calls per file here (an fstat, and epoll registration that procfs files
// refuse), which on a few dozen files per gather is a measurable share of
// the collector's CPU.
func readFile(path string) (data []byte, release func(), err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, func() {}, &pathError{"open", path, err}
	}
	defer unix.Close(fd)
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			*bp = b
			bufPool.Put(bp)
			return nil, func() {}, &pathError{"read", path, err}
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	*bp = b
	return b, func() { bufPool.Put(bp) }, nil
}

// pathError is os.PathError without importing os's file machinery; it
// unwraps to the errno, so errors.Is(err, os.ErrNotExist) holds.
type pathError struct {
	op, path string
	err      error
}

func (e *pathError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
