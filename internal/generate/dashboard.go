package generate

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/promql"
)

// panel is a Grafana panel in the dashboard's JSON.
type panel map[string]any

// dsRef refers to the dashboard's Prometheus datasource variable.
var dsRef = map[string]any{"type": "prometheus", "uid": "${datasource}"}

type builder struct {
	panels []panel
	id     int
	y      int
}

func (b *builder) row(title string) {
	b.id++
	b.panels = append(b.panels, panel{"id": b.id, "type": "row", "title": title, "collapsed": false,
		"gridPos": map[string]int{"h": 1, "w": 24, "x": 0, "y": b.y}, "panels": []any{}})
	b.y++
}

// line adds a row of panels, each an equal share of the width.
func (b *builder) line(ps ...panel) {
	w := 24 / len(ps)
	for i, p := range ps {
		b.id++
		p["id"] = b.id
		p["gridPos"] = map[string]int{"h": 8, "w": w, "x": i * w, "y": b.y}
		b.panels = append(b.panels, p)
	}
	b.y += 8
}

type target struct{ expr, legend string }

func timeseries(title, unit string, targets ...target) panel {
	var ts []map[string]any
	for i, t := range targets {
		ts = append(ts, map[string]any{"datasource": dsRef, "expr": t.expr, "legendFormat": t.legend, "refId": string(rune('A' + i))})
	}
	return panel{"type": "timeseries", "title": title, "datasource": dsRef, "targets": ts,
		"fieldConfig": map[string]any{"defaults": map[string]any{"unit": unit}, "overrides": []any{}},
		"options":     map[string]any{"legend": map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true}}}
}

func stat(title, unit string, t target) panel {
	p := timeseries(title, unit, t)
	p["type"] = "stat"
	delete(p, "options")
	return p
}

// Dashboard builds Grafana dashboard JSON, importable as is: the seed's
// four rows (health, traffic, resources, business), a Prometheus
// datasource variable, service and environment variables, and deployment
// annotations both from deploywatch's Grafana annotations (by tag) and
// from a query on deploy events.
func Dashboard(c *config.Config) ([]byte, error) {
	n, err := names(c)
	if err != nil {
		return nil, err
	}
	k := c.Target.Kubernetes
	var pods, kind, workload string
	if k != nil {
		kind, workload = k.Workload()
		pods = fmt.Sprintf(`namespace=%q,pod=~"%s-.*"`, k.Namespace, workload)
	}
	ri := "$__rate_interval"
	b := &builder{}

	b.row("Health")
	if k != nil {
		b.line(
			stat("Pods ready", "short", target{fmt.Sprintf(`sum(kube_pod_status_ready{%s,condition="true"})`, pods), "ready"}),
			timeseries("Container restarts (last hour)", "short", target{fmt.Sprintf(`sum by (pod) (increase(kube_pod_container_status_restarts_total{%s}[1h]))`, pods), "{{pod}}"}),
			timeseries("Rollout status", "short", rolloutTargets(kind, k.Namespace, workload)...),
		)
	} else {
		b.line(
			stat("Targets up", "short", target{fmt.Sprintf(`sum(up{%s})`, n.sel), "up"}),
			timeseries("Process restarts (last hour)", "short", target{fmt.Sprintf(`changes(process_start_time_seconds{%s}[1h])`, n.sel), "{{instance}}"}),
			timeseries("Instances", "short", target{fmt.Sprintf(`count(up{%s} == 1)`, n.sel), "up"}),
		)
	}

	b.row("Traffic")
	b.line(
		timeseries("Request rate (now and a day before)", "reqps",
			target{fmt.Sprintf(`sum(rate(%s{%s}[%s]))`, n.req, n.sel, ri), "now"},
			target{fmt.Sprintf(`sum(rate(%s{%s}[%s] offset 1d))`, n.req, n.sel, ri), "a day before"}),
		timeseries("Error rate", "percentunit", target{n.errorRatio(ri), "error rate"}),
		timeseries("Latency", "s",
			target{n.quantile(0.5, ri, ""), "p50"}, target{n.quantile(0.95, ri, ""), "p95"}, target{n.quantile(0.99, ri, ""), "p99"}),
	)

	b.row("Resources")
	if k != nil {
		b.line(
			timeseries("CPU by pod", "percentunit", target{fmt.Sprintf(`sum by (pod) (rate(container_cpu_usage_seconds_total{%s,container!=""}[%s])) / sum by (pod) (kube_pod_container_resource_limits{%s,resource="cpu"})`, pods, ri, pods), "{{pod}}"}),
			timeseries("Memory by pod", "bytes", target{fmt.Sprintf(`sum by (pod) (container_memory_working_set_bytes{%s,container!=""})`, pods), "{{pod}}"}),
			timeseries("Network I/O by pod", "Bps",
				target{fmt.Sprintf(`sum by (pod) (rate(container_network_receive_bytes_total{%s}[%s]))`, pods, ri), "{{pod}} in"},
				target{fmt.Sprintf(`-sum by (pod) (rate(container_network_transmit_bytes_total{%s}[%s]))`, pods, ri), "{{pod}} out"}),
		)
	} else {
		b.line(
			timeseries("CPU by instance", "short", target{fmt.Sprintf(`rate(process_cpu_seconds_total{%s}[%s])`, n.sel, ri), "{{instance}}"}),
			timeseries("Memory by instance", "bytes", target{fmt.Sprintf(`process_resident_memory_bytes{%s}`, n.sel), "{{instance}}"}),
			timeseries("Network I/O by instance", "Bps",
				target{fmt.Sprintf(`rate(process_network_receive_bytes_total{%s}[%s])`, n.sel, ri), "{{instance}} in"},
				target{fmt.Sprintf(`-rate(process_network_transmit_bytes_total{%s}[%s])`, n.sel, ri), "{{instance}} out"}),
		)
	}

	b.row("Business")
	if len(c.Dashboard.Business) > 0 {
		var ps []panel
		for _, bp := range c.Dashboard.Business {
			unit := bp.Unit
			if unit == "" {
				unit = "short"
			}
			ps = append(ps, timeseries(bp.Title, unit, target{bp.Query, bp.Title}))
		}
		b.line(ps...)
	} else {
		b.line(panel{"type": "text", "title": "Business metrics",
			"options": map[string]any{"mode": "markdown", "content": "Add the panels that say whether users are served: active users, transactions per minute, revenue.\n\nList them in deploywatch.yaml and regenerate:\n\n```yaml\ndashboard:\n  business:\n    - title: Orders per minute\n      query: sum(rate(orders_total[$__rate_interval])) * 60\n```"}})
	}

	deployQuery := fmt.Sprintf(`changes(process_start_time_seconds{%s}[1m]) > 0`, n.sel)
	if k != nil {
		label := strings.ToLower(kind)
		deployQuery = fmt.Sprintf(`changes(kube_%s_status_observed_generation{namespace=%q,%s=%q}[1m]) > 0`, label, k.Namespace, label, workload)
	}
	dash := map[string]any{
		"title":         fmt.Sprintf("%s deployments", c.Service),
		"uid":           "deploywatch-" + c.Service,
		"tags":          []string{"deploywatch", "deployment"},
		"schemaVersion": 39,
		"version":       1,
		"editable":      true,
		"refresh":       "30s",
		"time":          map[string]string{"from": "now-6h", "to": "now"},
		"panels":        b.panels,
		"templating": map[string]any{"list": []any{
			map[string]any{"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": map[string]any{}, "hide": 0},
			map[string]any{"name": "service", "type": "constant", "query": c.Service, "hide": 2},
			map[string]any{"name": "environment", "type": "constant", "query": c.Environment, "hide": 2},
		}},
		"annotations": map[string]any{"list": []any{
			map[string]any{"name": "deploywatch", "datasource": map[string]any{"type": "grafana", "uid": "-- Grafana --"}, "enable": true,
				"iconColor": "#5794F2", "target": map[string]any{"type": "tags", "tags": []string{"deployment", "service:$service"}, "matchAny": false, "limit": 100}},
			map[string]any{"name": "Deployments", "datasource": dsRef, "enable": true, "iconColor": "#FADE2A",
				"expr": deployQuery, "step": "1m", "titleFormat": "Deployment", "tagKeys": "deployment"},
		}},
	}
	for _, p := range b.panels {
		ts, _ := p["targets"].([]map[string]any)
		for _, t := range ts {
			if err := checkDashboardExpr(t["expr"].(string)); err != nil {
				return nil, fmt.Errorf("panel %q: %w", p["title"], err)
			}
		}
	}
	if err := checkDashboardExpr(deployQuery); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(dash, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// checkDashboardExpr parses a panel's PromQL with Grafana's variables
// replaced by values.
func checkDashboardExpr(expr string) error {
	if err := promql.Check(grafanaVars(expr)); err != nil {
		return fmt.Errorf("PromQL %q: %w", expr, err)
	}
	return nil
}

// grafanaVars replaces the dashboard variables a query may use.
func grafanaVars(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "${datasource}", "x", "$service", "x", "$environment", "x").Replace(expr)
}

// rolloutTargets are kube-state-metrics' updated, available and desired
// replicas of the workload.
func rolloutTargets(kind, ns, name string) []target {
	metrics := map[string][3]string{
		config.KindDeployment:  {"kube_deployment_status_replicas_updated", "kube_deployment_status_replicas_available", "kube_deployment_spec_replicas"},
		config.KindStatefulSet: {"kube_statefulset_status_replicas_updated", "kube_statefulset_status_replicas_available", "kube_statefulset_replicas"},
		config.KindDaemonSet:   {"kube_daemonset_status_updated_number_scheduled", "kube_daemonset_status_number_available", "kube_daemonset_status_desired_number_scheduled"},
	}[kind]
	label := strings.ToLower(kind)
	var out []target
	for i, legend := range []string{"updated", "available", "desired"} {
		out = append(out, target{fmt.Sprintf(`%s{namespace=%q,%s=%q}`, metrics[i], ns, label, name), legend})
	}
	return out
}
