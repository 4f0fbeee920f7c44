package demo

import (
	"fmt"
	"strings"
	"time"
)

// Timings are the demo's clock: the default tells the story in about two
// minutes, Fast in about twenty seconds (for tests).
type Timings struct {
	Scrape, Baseline, Warmup, Monitor, Interval time.Duration
	// RPS is the traffic the service sends itself.
	RPS float64
}

// Normal and Fast timings.
var (
	Normal = Timings{Scrape: time.Second, Baseline: 30 * time.Second, Warmup: 5 * time.Second, Monitor: 40 * time.Second, Interval: 2 * time.Second, RPS: 40}
	Fast   = Timings{Scrape: 200 * time.Millisecond, Baseline: 6 * time.Second, Warmup: time.Second, Monitor: 6 * time.Second, Interval: 400 * time.Millisecond, RPS: 60}
)

// Config is the deploywatch.yaml the demo runs with, for a service at addr.
func Config(addr string, t Timings) string {
	r := strings.NewReplacer(
		"{{addr}}", addr, "{{scrape}}", d(t.Scrape), "{{baseline}}", d(t.Baseline),
		"{{warmup}}", d(t.Warmup), "{{monitor}}", d(t.Monitor), "{{interval}}", d(t.Interval),
	)
	return r.Replace(configTemplate)
}

func d(v time.Duration) string { return fmt.Sprint(v) }

const configTemplate = `# The configuration deploywatch demo runs with: the default checks (the
# seed's table) over the embedded engine, which scrapes the service itself.
#
# To use it for real: replace metrics.embedded with
#   prometheus:
#     url: http://prometheus:9090
# and put your own deploy and rollback commands under target.command (in the
# demo, releases are switched in process and these hooks are not run).
service: shop-api
environment: demo
target:
  command:
    deploy: "./deploy.sh $DEPLOYWATCH_VERSION"
    rollback: "./deploy.sh $DEPLOYWATCH_PREVIOUS_VERSION"
metrics:
  embedded:
    scrape:
      - job: shop-api
        targets: ["{{addr}}"]
        interval: {{scrape}}
  selector: 'job="shop-api"'
baseline:
  window: {{baseline}}
phases:
  warmup: {{warmup}}
  monitor: {{monitor}}
  interval: {{interval}}
on_failure: rollback
`
