package smoke

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// Line renders one result for people: "✓ name  GET url  200 in 12ms".
func Line(r Result) string {
	mark := "✓"
	if !r.Passed {
		mark = "✗"
	}
	s := fmt.Sprintf("%s %s  %s %s", mark, r.Name, r.Method, r.URL)
	if r.Status != 0 {
		s += fmt.Sprintf("  %d in %s", r.Status, r.Latency.Round(time.Millisecond))
	}
	if r.Attempts > 1 {
		s += fmt.Sprintf(" (attempt %d)", r.Attempts)
	}
	for _, reason := range r.Reasons {
		s += "\n    " + reason
	}
	return s
}

// Summary is the closing line.
func (r Report) Summary() string {
	if r.OK() {
		return fmt.Sprintf("All %d smoke checks passed in %s", r.Passed, r.Duration.Round(time.Millisecond))
	}
	return fmt.Sprintf("FAILED: %d of %d smoke checks failed in %s", r.Failed, len(r.Results), r.Duration.Round(time.Millisecond))
}

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML, the format CI systems read.
func (r Report) WriteJUnit(w io.Writer, suiteName string) error {
	js := junitSuite{Name: suiteName, Tests: len(r.Results), Failures: r.Failed, Time: secs(r.Duration)}
	for _, res := range r.Results {
		c := junitCase{Name: res.Name, ClassName: suiteName, Time: secs(res.Latency)}
		if !res.Passed {
			c.Failure = &junitFailure{Message: strings.Join(res.Reasons, "; "), Type: "smoke",
				Text: fmt.Sprintf("%s %s\n%s", res.Method, res.URL, strings.Join(res.Reasons, "\n"))}
		}
		js.Cases = append(js.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(js); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
