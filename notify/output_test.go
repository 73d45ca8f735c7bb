package notify

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	cases := []struct {
		status     int
		retryAfter string
		wantErr    bool
		permanent  bool
		wait       time.Duration
	}{
		{200, "", false, false, 0},
		{204, "", false, false, 0},
		{400, "", true, true, 0},
		{401, "", true, true, 0},
		{404, "", true, true, 0},
		{408, "", true, false, 0},
		{429, "7", true, false, 7 * time.Second},
		{429, now.Add(90 * time.Second).Format(http.TimeFormat), true, false, 90 * time.Second},
		{503, "99999", true, false, time.Hour}, // capped
		{503, "soon", true, false, 0},          // unparsable: backoff only
		{500, "-5", true, false, 0},
		{302, "", true, false, 0},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status)+"/"+tc.retryAfter, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Status: http.StatusText(tc.status), Header: http.Header{},
				Body: http.NoBody}
			if tc.retryAfter != "" {
				resp.Header.Set("Retry-After", tc.retryAfter)
			}
			err := classify(resp, now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil {
				return
			}
			if permanent(err) != tc.permanent || retryAfterOf(err) != tc.wait {
				t.Errorf("permanent %v, retry after %s; want %v, %s", permanent(err), retryAfterOf(err), tc.permanent, tc.wait)
			}
			if tc.permanent && !strings.Contains(err.Error(), "/api/v1/outbox") {
				t.Errorf("a permanent failure should tell the operator where to look: %v", err)
			}
		})
	}
}
