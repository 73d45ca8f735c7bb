package evidence

import (
	"regexp"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	r := NewRedactor(regexp.MustCompile(`card=\d{12,19}`))
	for _, tc := range []struct {
		name, in, secret string
	}{
		{"bearer", "GET /x Authorization: Bearer eyJhbGciOi.J9.sig", "eyJhbGciOi"},
		{"bearer alone", "sent bearer abc.def-ghi to upstream", "abc.def-ghi"},
		{"token=", "auth failed for token=3f9a2b7c1d0e... user_id=7", "3f9a2b7c1d0e"},
		{"access_token in query", "GET /cb?access_token=zz9988&x=1", "zz9988"},
		{"password quoted", `login {"user":"a","password":"hunter2"}`, "hunter2"},
		{"api key", "api_key: AKIA1234567890", "AKIA1234567890"},
		{"x-api-key header", "X-Api-Key: k-123456", "k-123456"},
		{"url password", "connect postgres://app:s3cr3t@db:5432/app", "s3cr3t"},
		{"basic auth header", "authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"},
		{"user regex", "charged card=4111111111111111 ok", "4111111111111111"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := r.Redact(tc.in)
			if strings.Contains(out, tc.secret) {
				t.Errorf("Redact(%q) = %q still holds %q", tc.in, out, tc.secret)
			}
			if !strings.Contains(out, Redacted) {
				t.Errorf("Redact(%q) = %q has no %s marker", tc.in, out, Redacted)
			}
		})
	}
	if got := r.Redact("GET /health 200 rt_ms=3"); got != "GET /health 200 rt_ms=3" {
		t.Errorf("harmless line changed: %q", got)
	}
}
