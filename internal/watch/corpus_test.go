package watch

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/metrics"
)

// corpusScenario is one labelled deploy of testdata/corpus.yaml.
type corpusScenario struct {
	Name       string    `yaml:"name"`
	Bad        bool      `yaml:"bad"`
	Before     behaviour `yaml:"before"`
	After      behaviour `yaml:"after"`
	Ramp       float64   `yaml:"ramp"`
	ColdErrors float64   `yaml:"cold_errors"`
	ColdFor    float64   `yaml:"cold_for"`
	Bursts     *struct {
		Every, For, Errors float64
	} `yaml:"bursts"`
	Daily  float64 `yaml:"daily"`
	Outage *struct {
		From, For, Errors float64
	} `yaml:"outage"`
	Control bool `yaml:"control"`
}

type behaviour struct {
	RPS     float64 `yaml:"rps"`
	Errors  float64 `yaml:"errors"`
	Latency float64 `yaml:"latency"`
}

func loadCorpus(tb testing.TB) []corpusScenario {
	tb.Helper()
	data, err := os.ReadFile("testdata/corpus.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var out []corpusScenario
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&out); err != nil {
		tb.Fatalf("testdata/corpus.yaml: %v", err)
	}
	return out
}

// The corpus's clock: three minutes of history, then the deploy, then ten
// minutes of monitor for every policy.
var (
	corpusT0      = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	corpusDeploy  = corpusT0.Add(3 * time.Minute)
	corpusMonitor = 10 * time.Minute
)

// world builds the simulated service of a scenario, and its control
// group (the instances the deploy leaves alone) when it has one.
func (sc corpusScenario) world(seed uint64) *sim {
	shared := func(t time.Time, p profile) profile {
		since := t.Sub(corpusDeploy).Seconds()
		if b := sc.Bursts; b != nil && math.Mod(t.Sub(corpusT0).Seconds(), b.Every) < b.For {
			p.errRatio = math.Max(p.errRatio, b.Errors)
		}
		if sc.Daily > 0 {
			p.rps *= 1 + sc.Daily*math.Sin(2*math.Pi*t.Sub(corpusT0).Seconds()/600)
		}
		if o := sc.Outage; o != nil && since >= o.From && since < o.From+o.For {
			p.errRatio = math.Max(p.errRatio, o.Errors)
		}
		return p
	}
	prof := func(b behaviour) profile {
		return profile{rps: b.RPS, errRatio: b.Errors, latency: cmpOr(b.Latency, 1)}
	}
	horizon := 3*time.Minute + corpusMonitor + time.Minute
	s := generateSim(seed, corpusT0, corpusDeploy, horizon, func(t time.Time) profile {
		since := t.Sub(corpusDeploy).Seconds()
		if since < 0 {
			return shared(t, prof(sc.Before))
		}
		p := prof(sc.After)
		if sc.Ramp > 0 && since < sc.Ramp {
			f := since / sc.Ramp
			b := prof(sc.Before)
			p.rps = b.rps + f*(p.rps-b.rps)
			p.errRatio = b.errRatio + f*(p.errRatio-b.errRatio)
			p.latency = b.latency + f*(p.latency-b.latency)
		}
		if since < sc.ColdFor {
			p.errRatio = sc.ColdErrors
		}
		return shared(t, p)
	})
	if sc.Control {
		s.control = generateSim(seed+1000, corpusT0, corpusDeploy, horizon, func(t time.Time) profile {
			return shared(t, prof(sc.Before))
		})
	}
	return s
}

func cmpOr(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}

// outcome is what a policy decided about one deploy.
type outcome struct {
	verdict Verdict
	detect  time.Duration // from the deploy, when failed
	reason  string
}

// deploywatchPolicy runs the engine with the README's config (5s warm-up,
// 2s interval, looks every scrape) and a ten-minute monitor.
func deploywatchPolicy(tb testing.TB, sc corpusScenario, s *sim) outcome {
	spec := loadSpec(tb, "")
	spec.Phases.Monitor = corpusMonitor
	if sc.Control {
		spec.Metrics.Control = `job="control"`
	}
	clock := &fakeClock{now: corpusDeploy}
	rep := New(spec, s, &fakePlatform{running: "v1"}, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	o := outcome{verdict: rep.Verdict, reason: rep.Reason}
	if rep.DetectedAt != nil {
		o.detect = rep.DetectedAt.Sub(rep.Deploy.StartedAt)
	}
	return o
}

// seedPolicy is the seed document's script: wait 120s, then every 10s
// the 5-minute error ratio against 5%.
func seedPolicy(s *sim) outcome {
	for t := corpusDeploy.Add(120 * time.Second); !t.After(corpusDeploy.Add(corpusMonitor)); t = t.Add(10 * time.Second) {
		if r := simRatio(s, t, 300); r > 0.05 {
			return outcome{verdict: Failed, detect: t.Sub(corpusDeploy), reason: fmt.Sprintf("5m error ratio %.1f%% > 5%%", 100*r)}
		}
	}
	return outcome{verdict: Stable}
}

// flaggerPolicy is Flagger's documented analysis: every minute, the
// 1-minute request success rate (>= 99%) and p99 (<= 500ms); no data is
// a failed check; rollback at 5 failed checks.
func flaggerPolicy(s *sim) outcome {
	failed := 0
	for k := 1; k <= int(corpusMonitor/time.Minute); k++ {
		t := corpusDeploy.Add(time.Duration(k) * time.Minute)
		r := simRatio(s, t, 60)
		p99 := simP99(s, t, 60)
		if math.IsNaN(r) || r > 0.01 || p99 > 0.5 {
			failed++
		}
		if failed >= 5 {
			return outcome{verdict: Failed, detect: t.Sub(corpusDeploy), reason: "5 failed checks"}
		}
	}
	return outcome{verdict: Stable}
}

func simQuery(s *sim, expr string, t time.Time) metrics.Vector {
	v, _ := s.Query(context.Background(), expr, t)
	return v
}

func simRatio(s *sim, t time.Time, secs int) float64 {
	tot := simQuery(s, fmt.Sprintf(`sum(increase(http_requests_total{job="api"}[%ds]))`, secs), t)
	if len(tot) == 0 || tot[0].Value == 0 {
		return math.NaN()
	}
	var bad float64
	if e := simQuery(s, fmt.Sprintf(`sum(increase(http_requests_total{job="api",status=~"5.."}[%ds]))`, secs), t); len(e) > 0 {
		bad = e[0].Value
	}
	return bad / tot[0].Value
}

func simP99(s *sim, t time.Time, secs int) float64 {
	var bs []judge.Bucket
	for _, smp := range simQuery(s, fmt.Sprintf(`sum by (le) (increase(http_request_duration_seconds_bucket{job="api"}[%ds]))`, secs), t) {
		var le float64
		fmt.Sscan(smp.Labels["le"], &le)
		if smp.Labels["le"] == "+Inf" {
			le = math.Inf(1)
		}
		bs = append(bs, judge.Bucket{UpperBound: le, Count: smp.Value})
	}
	h := judge.NewHistogram(bs)
	if h == nil || h.Count() == 0 {
		return math.NaN()
	}
	return h.Quantile(0.99)
}

// expected is the verdict deploywatch must reach: failed for a bad
// release; stable for a good one, except that a dependency outage at the
// deploy is beyond what a before/after comparison can tell from a bad
// release (failed without a control group), and with one it is a shared
// cause (inconclusive).
func (sc corpusScenario) expected() Verdict {
	switch {
	case sc.Bad:
		return Failed
	case sc.Outage != nil && sc.Control:
		return Inconclusive
	case sc.Outage != nil:
		return Failed
	}
	return Stable
}

// TestCorpus: on every scenario of the corpus, three seeds each,
// deploywatch reaches the expected verdict.
func TestCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	for _, sc := range loadCorpus(t) {
		t.Run(sc.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				o := deploywatchPolicy(t, sc, sc.world(seed))
				if o.verdict != sc.expected() {
					t.Errorf("seed %d: %s (%s), want %s", seed, o.verdict, o.reason, sc.expected())
				}
			}
		})
	}
}

// BenchmarkCorpus prints, for every scenario of the corpus, the verdict
// and detection time of deploywatch beside the seed's policy and a
// Flagger-style one (10 seeds each), then recall, false rollbacks and the
// median and worst detection time of each policy. Run with
//
//	go test ./internal/watch -run '^$' -bench Corpus -benchtime 1x
func BenchmarkCorpus(b *testing.B) {
	corpus := loadCorpus(b)
	const seeds = 10
	type tally struct {
		caught, bad, falseRollbacks, good int
		detects                           []float64
	}
	names := []string{"deploywatch", "seed", "flagger"}
	tallies := map[string]*tally{}
	for _, n := range names {
		tallies[n] = &tally{}
	}
	for range b.N {
		var out strings.Builder
		fmt.Fprintf(&out, "\n%-74s %-22s %-22s %-22s\n", "scenario", "deploywatch", "seed (120s, 5m > 5%)", "flagger (1m, 5 checks)")
		for _, sc := range corpus {
			label := "good"
			if sc.Bad {
				label = "bad"
			}
			fmt.Fprintf(&out, "%-74s", fmt.Sprintf("%s [%s]", sc.Name, label))
			for _, n := range names {
				failed, total := 0, 0.0
				for seed := uint64(1); seed <= seeds; seed++ {
					s := sc.world(seed)
					var o outcome
					switch n {
					case "deploywatch":
						o = deploywatchPolicy(b, sc, s)
					case "seed":
						o = seedPolicy(s)
					default:
						o = flaggerPolicy(s)
					}
					tl := tallies[n]
					if o.verdict == Failed {
						failed++
						total += o.detect.Seconds()
						if sc.Bad {
							tl.detects = append(tl.detects, o.detect.Seconds())
						}
					}
					if sc.Bad {
						tl.bad++
						if o.verdict == Failed {
							tl.caught++
						}
					} else {
						tl.good++
						if o.verdict == Failed {
							tl.falseRollbacks++
						}
					}
				}
				cell := fmt.Sprintf("%d/%d failed", failed, seeds)
				if failed > 0 {
					cell += fmt.Sprintf(", %.0fs", total/float64(failed))
				}
				fmt.Fprintf(&out, " %-22s", cell)
			}
			out.WriteString("\n")
		}
		out.WriteString("\n")
		for _, n := range names {
			tl := tallies[n]
			slices.Sort(tl.detects)
			med, worst := math.NaN(), math.NaN()
			if len(tl.detects) > 0 {
				med, worst = tl.detects[len(tl.detects)/2], tl.detects[len(tl.detects)-1]
			}
			fmt.Fprintf(&out, "%-12s recall %3.0f%% (%d/%d)  false rollbacks %d/%d  detection median %.0fs, worst %.0fs\n",
				n, 100*float64(tl.caught)/float64(tl.bad), tl.caught, tl.bad, tl.falseRollbacks, tl.good, med, worst)
		}
		fmt.Print(out.String()) // the table is the benchmark's result: printed whole, not folded into a log
	}
}
