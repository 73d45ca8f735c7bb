package fleet

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// SMTP is a real SMTP server on loopback: Debian's python3-aiosmtpd with
// its Mailbox handler, which stores every message it accepts in a Maildir.
type SMTP struct {
	Addr    string
	Maildir string
	Proc    *Proc
}

// startSMTP starts aiosmtpd on a free port, storing mail under dir.
func startSMTP(dir string, freeAddr func() (string, error)) (*SMTP, error) {
	bin, err := exec.LookPath("aiosmtpd")
	if err != nil {
		return nil, fmt.Errorf("aiosmtpd (Debian's python3-aiosmtpd) is missing: run ./.ci/deps as root: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &SMTP{Addr: addr, Maildir: filepath.Join(dir, "maildir")}
	// -n: stay root (it would switch to nobody, who cannot write here).
	s.Proc = &Proc{Name: "aiosmtpd", Log: filepath.Join(dir, "aiosmtpd.log"),
		Argv: []string{bin, "-n", "-l", addr, "-c", "aiosmtpd.handlers.Mailbox", s.Maildir}}
	if err := s.Proc.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// ready reports whether the server answers with its SMTP greeting.
func (s *SMTP) ready() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	n, _ := io.ReadFull(c, buf)
	return n == 4 && string(buf[:3]) == "220"
}

// Mail is one message the sink accepted.
type Mail struct {
	Subject string
	To      string
	Text    string
	At      time.Time
}

// Mails reads every message in the Maildir.
func (s *SMTP) Mails() ([]Mail, error) {
	var out []Mail
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(s.Maildir, sub))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			p := filepath.Join(s.Maildir, sub, e.Name())
			raw, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			m, err := parseMail(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if fi, err := e.Info(); err == nil {
				m.At = fi.ModTime()
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// Notices returns the alerts the e-mails carry.
func (s *SMTP) Notices() ([]Notice, error) {
	mails, err := s.Mails()
	if err != nil {
		return nil, err
	}
	var out []Notice
	for _, m := range mails {
		out = append(out, parseNotices("email", m.Text, m.At)...)
	}
	return out, nil
}

// parseMail decodes a message as Alertmanager writes it: headers encoded
// per RFC 2047, a multipart/alternative body whose text/plain part is
// quoted-printable.
func parseMail(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Mail{}, err
	}
	m := Mail{Subject: subject, To: msg.Header.Get("To")}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return Mail{}, err
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, err := decodePart(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		m.Text = b
		return m, err
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return Mail{}, err
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			if m.Text, err = decodePart(p, p.Header.Get("Content-Transfer-Encoding")); err != nil {
				return Mail{}, err
			}
		}
	}
}

func decodePart(r io.Reader, encoding string) (string, error) {
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}
