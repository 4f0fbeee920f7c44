package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "2026-11-25T10:04:00Z", want: time.Date(2026, 11, 25, 10, 4, 0, 0, time.UTC)},
		{in: "1764064800", want: time.Unix(1764064800, 0).UTC()},
		{in: " 1764064800.5 ", want: time.Unix(1764064800, 5e8).UTC()},
		{in: "1764064800abc", wantErr: "want an RFC 3339 time"},
		{in: "1764064800000", wantErr: "milliseconds"},
		{in: "1e300", wantErr: "milliseconds"},
		{in: "Inf", wantErr: "want an RFC 3339 time"},
		{in: "NaN", wantErr: "want an RFC 3339 time"},
		{in: "90", wantErr: "want an RFC 3339 time"},
		{in: "yesterday", wantErr: "want an RFC 3339 time"},
	} {
		got, err := parseTime(c.in, "--deployed-at")
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%q: err %v, want %q", c.in, err, c.wantErr)
		case c.wantErr == "" && (err != nil || !got.Equal(c.want)):
			t.Errorf("%q = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestReadDeploys(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, csv, wantErr string
		rows               int
	}{
		{name: "ok", csv: "version,deployed_at,outcome\nv1,1764064800,good\nv2,2026-11-25T10:04:00Z,\n", rows: 2},
		{name: "a spreadsheet's byte-order mark", csv: "\ufeffversion,deployed_at\nv1,1764064800\n", rows: 1},
		{name: "no deployed_at", csv: "version,when\nv1,1764064800\n", wantErr: "no deployed_at column"},
		{name: "a column twice", csv: "version,deployed_at,version\nv1,1764064800,v2\n", wantErr: "named twice"},
		{name: "a bad time", csv: "version,deployed_at\nv1,1764064800\nv2,soon\n", wantErr: ".csv:3: deployed_at"},
		{name: "a bad outcome", csv: "version,deployed_at,outcome\nv1,1764064800,ugly\n", wantErr: `:2: outcome "ugly"`},
		{name: "a short row", csv: "version,deployed_at\nv1\n", wantErr: "wrong number of fields"},
		{name: "only a header", csv: "version,deployed_at\n", wantErr: "no deploys"},
		{name: "empty", csv: "", wantErr: "a header row is needed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".csv")
			if err := os.WriteFile(path, []byte(c.csv), 0o600); err != nil {
				t.Fatal(err)
			}
			rows, err := readDeploys(path)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || len(rows) != c.rows {
				t.Fatalf("%d rows, %v; want %d", len(rows), err, c.rows)
			}
		})
	}
}
