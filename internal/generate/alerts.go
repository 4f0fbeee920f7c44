// Package generate writes what teams hand-write today, from the same
// deploywatch.yaml that judges deploys: Prometheus alert rules, a Grafana
// dashboard, Kubernetes probes and a GitHub Actions job. The lines that
// roll a deploy back are the lines that page people.
package generate

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/promql"
)

// RuleFile is a Prometheus rule file.
type RuleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// Rule is one alerting rule.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// metricNames are the conventions of the config's metrics section.
type metricNames struct {
	sel, req, dur, status, errStatus string
}

func names(c *config.Config) (metricNames, error) {
	m := c.Metrics
	if m == nil {
		return metricNames{}, fmt.Errorf("%s has no metrics section: the generated rules and dashboard need its selector and metric names", c.Path)
	}
	return metricNames{sel: m.Selector, req: m.RequestsMetric, dur: m.DurationMetric, status: m.StatusLabel, errStatus: m.ErrorStatus}, nil
}

func (n metricNames) errorRatio(w string) string {
	return fmt.Sprintf(`sum(rate(%s{%s,%s=~"%s"}[%s])) / sum(rate(%s{%s}[%s]))`, n.req, n.sel, n.status, n.errStatus, w, n.req, n.sel, w)
}

func (n metricNames) quantile(q float64, w, offset string) string {
	off := ""
	if offset != "" {
		off = " offset " + offset
	}
	return fmt.Sprintf(`histogram_quantile(%g, sum by (le) (rate(%s_bucket{%s}[%s]%s)))`, q, n.dur, n.sel, w, off)
}

// checkRule returns a default check's fail rule, and whether it is
// configured.
func checkRule(c *config.Config, name string) (config.Check, bool) {
	for _, ch := range c.Checks {
		if ch.Name == name {
			return ch, true
		}
	}
	return config.Check{}, false
}

func promDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", int64(d.Seconds()))
}

func num(v float64) string { return fmt.Sprintf("%g", v) }

// Alerts builds the rule file: the seed's HighErrorRateAfterDeploy and
// HighLatencyAfterDeploy with the config's lines and selector, restarts,
// CPU and memory from the same table, and burn-rate alerts when an SLO is
// set. Every expression is parsed before it is returned.
func Alerts(c *config.Config) (*RuleFile, error) {
	n, err := names(c)
	if err != nil {
		return nil, err
	}
	w := promDuration(c.Alerts.Window.D())
	forDur := promDuration(c.Alerts.For.D())
	labels := func(severity string) map[string]string {
		l := map[string]string{"severity": severity, "service": c.Service}
		if c.Environment != "" {
			l["environment"] = c.Environment
		}
		return l
	}
	ann := func(summary, description string) map[string]string {
		a := map[string]string{"summary": summary, "description": description}
		if c.Alerts.RunbookURL != "" {
			a["runbook_url"] = c.Alerts.RunbookURL
		}
		if c.DashboardURL != "" {
			a["dashboard_url"] = c.DashboardURL
		}
		return a
	}
	var rules []Rule

	errLine := 0.01
	if ch, ok := checkRule(c, "error_rate"); ok && !ch.Fail.IsZero() && !ch.Fail.Relative {
		errLine = ch.Fail.Value
	}
	rules = append(rules, Rule{
		Alert: "HighErrorRateAfterDeploy",
		Expr:  fmt.Sprintf("%s > %s", n.errorRatio(w), num(errLine)),
		For:   forDur, Labels: labels("critical"),
		Annotations: ann(
			fmt.Sprintf("High error rate on %s", c.Service),
			fmt.Sprintf("%s: {{ $value | humanizePercentage }} of requests failed over the last %s (line %s). If a deploy just happened, deploywatch judges it; see the deploy annotations.", c.Service, w, pct(errLine))),
	})

	factor, floor := 2.0, 0.1
	if ch, ok := checkRule(c, "latency_p99"); ok {
		if ch.Fail.Relative {
			factor = ch.Fail.Value
		}
		if ch.Floor != nil {
			floor = float64(*ch.Floor)
		}
	}
	p99 := n.quantile(0.99, w, "")
	rules = append(rules, Rule{
		Alert: "HighLatencyAfterDeploy",
		Expr:  fmt.Sprintf("(%s > %s * %s) and (%s > %s)", p99, num(factor), n.quantile(0.99, w, "1h"), p99, num(floor)),
		For:   forDur, Labels: labels("warning"),
		Annotations: ann(
			fmt.Sprintf("p99 latency of %s more than %gx an hour ago", c.Service, factor),
			fmt.Sprintf("%s: p99 is {{ $value | humanizeDuration }}, more than %gx its value an hour ago and above %s.", c.Service, factor, secs(floor))),
	})

	if k := c.Target.Kubernetes; k != nil {
		_, workload := k.Workload()
		rules = append(rules, Rule{
			Alert: "PodRestartsHigh",
			Expr: fmt.Sprintf(`sum by (pod) (increase(kube_pod_container_status_restarts_total{namespace=%q,pod=~"%s-.*"}[15m])) > %d`,
				k.Namespace, workload, k.RestartLimit),
			Labels: labels("critical"),
			Annotations: ann(fmt.Sprintf("Pods of %s restart", c.Service),
				fmt.Sprintf("Pod {{ $labels.pod }} restarted {{ $value }} times in 15m (line %d).", k.RestartLimit)),
		})
	} else {
		rules = append(rules, Rule{
			Alert:  "ProcessRestartsHigh",
			Expr:   fmt.Sprintf(`changes(process_start_time_seconds{%s}[15m]) > 2`, n.sel),
			Labels: labels("critical"),
			Annotations: ann(fmt.Sprintf("%s restarts", c.Service),
				"{{ $labels.instance }} restarted {{ $value }} times in 15m (line 2)."),
		})
	}
	vars := config.Vars{Selector: n.sel, Window: c.Alerts.Window.D(), SinceDeploy: c.Alerts.Window.D(), SinceWarmup: c.Alerts.Window.D()}
	if k := c.Target.Kubernetes; k != nil {
		// Alerts outlive any one revision: every pod of the workload.
		_, workload := k.Workload()
		vars.Platform = map[string]string{config.VarNamespace: k.Namespace, config.VarDeployment: workload, config.VarWorkload: workload,
			config.VarPodTemplateHash: "[a-z0-9]+", config.VarPods: workload + "-.*"}
	}
	for _, r := range []struct{ check, alert, what string }{{"cpu", "CPUUsageHigh", "CPU"}, {"memory", "MemoryUsageHigh", "memory"}} {
		ch, ok := checkRule(c, r.check)
		if !ok || ch.Query == "" || ch.Fail.IsZero() || ch.Fail.Relative {
			continue
		}
		expr, err := config.Expand(ch.Query, vars)
		if err != nil {
			return nil, err
		}
		rules = append(rules, Rule{
			Alert: r.alert, Expr: fmt.Sprintf("%s %s %s", expr, ch.Fail.Op, num(ch.Fail.Value)), For: forDur, Labels: labels("critical"),
			Annotations: ann(fmt.Sprintf("%s %s usage high", c.Service, r.what),
				fmt.Sprintf("%s uses {{ $value | humanizePercentage }} of its %s limit (line %s).", c.Service, r.what, pct(ch.Fail.Value))),
		})
	}
	if slo := float64(c.Alerts.SLO); slo > 0 {
		budget := 1 - slo
		for _, b := range []struct {
			name, severity, long, short, forDur string
			factor                              float64
		}{
			{"ErrorBudgetBurnFast", "critical", "1h", "5m", "2m", 14.4},
			{"ErrorBudgetBurnSlow", "warning", "6h", "30m", "15m", 6},
		} {
			line := num(b.factor * budget)
			rules = append(rules, Rule{
				Alert:  b.name,
				Expr:   fmt.Sprintf("(%s) > %s and (%s) > %s", n.errorRatio(b.long), line, n.errorRatio(b.short), line),
				For:    b.forDur,
				Labels: labels(b.severity),
				Annotations: ann(fmt.Sprintf("%s burns its error budget %gx too fast", c.Service, b.factor),
					fmt.Sprintf("The error ratio over %s and %s exceeds %gx the budget of a %s SLO.", b.long, b.short, b.factor, pct(slo))),
			})
		}
	}
	for _, r := range rules {
		if err := promql.Check(r.Expr); err != nil {
			return nil, fmt.Errorf("generated rule %s: %q: %w", r.Alert, r.Expr, err)
		}
	}
	return &RuleFile{Groups: []RuleGroup{{Name: "deploywatch-" + c.Service, Rules: rules}}}, nil
}

// YAML renders the rule file.
func (f *RuleFile) YAML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Generated by deploywatch generate alerts: the lines that roll a deploy back\n# are the lines that page people. Regenerate rather than edit.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func pct(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.4g", v*100), ".0") + "%" }

func secs(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%gms", v*1000)
	}
	return fmt.Sprintf("%gs", v)
}
