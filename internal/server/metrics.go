package server

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// metrics are serve's own, on /metrics. Label values are the report's:
// verdict is stable, failed or inconclusive; result is ok or failed.
type metrics struct {
	registry      *prometheus.Registry
	deploys       *prometheus.CounterVec
	rollbacks     *prometheus.CounterVec
	inProgress    prometheus.Gauge
	detection     prometheus.Histogram
	checkValue    *prometheus.GaugeVec
	checkLine     *prometheus.GaugeVec
	checkStatus   *prometheus.GaugeVec
	notifications *prometheus.CounterVec
	configErrors  prometheus.Gauge
	leader        prometheus.Gauge
	storeErrors   *prometheus.CounterVec
}

// checkStatuses are the values of deploywatch_check_status's status label.
var checkStatuses = []judge.Status{judge.Pass, judge.Warn, judge.Fail, judge.NoData, judge.Error}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploywatch_deploys_total", Help: "Watched deploys by verdict (stable, failed, inconclusive).",
		}, []string{"namespace", "workload", "verdict"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploywatch_rollbacks_total", Help: "Rollbacks performed, by result (ok, failed).",
		}, []string{"namespace", "workload", "result"}),
		inProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deploywatch_watches_in_progress", Help: "Watches running on this replica.",
		}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "deploywatch_detection_seconds", Help: "Time from a deploy's start to its failure being detected.",
			Buckets: []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200},
		}),
		checkValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deploywatch_check_value", Help: "The latest value of each running watch's checks.",
		}, []string{"namespace", "workload", "check"}),
		checkLine: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deploywatch_check_threshold", Help: "The fail line each running watch's checks are judged against.",
		}, []string{"namespace", "workload", "check"}),
		checkStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deploywatch_check_status", Help: "1 for the current status of each running watch's checks (pass, warn, fail, nodata, error).",
		}, []string{"namespace", "workload", "check", "status"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploywatch_notifications_total", Help: "Notification deliveries by sink and result (ok, failed).",
		}, []string{"sink", "result"}),
		configErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deploywatch_config_errors", Help: "Watched workloads whose config cannot be used.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deploywatch_leader", Help: "1 while this replica is the leader that watches.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploywatch_store_errors_total", Help: "Writes to the store that failed, by what (checkpoint, events); retried until the store is back.",
		}, []string{"what"}),
	}
	m.registry.MustRegister(m.deploys, m.rollbacks, m.inProgress, m.detection, m.checkValue, m.checkLine, m.checkStatus,
		m.notifications, m.configErrors, m.leader, m.storeErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// checks shows a running watch's checks.
func (m *metrics) checks(namespace, workload string, results []*watch.CheckResult) {
	for _, c := range results {
		if c.Value != nil && !math.IsNaN(*c.Value) {
			m.checkValue.WithLabelValues(namespace, workload, c.Name).Set(*c.Value)
		}
		if c.Line != nil && !math.IsNaN(*c.Line) {
			m.checkLine.WithLabelValues(namespace, workload, c.Name).Set(*c.Line)
		}
		for _, s := range checkStatuses {
			v := 0.0
			if c.Verdict == s {
				v = 1
			}
			m.checkStatus.WithLabelValues(namespace, workload, c.Name, s.String()).Set(v)
		}
	}
}

// ended records a watch's verdict and drops its checks' series.
func (m *metrics) ended(namespace, workload string, r *watch.Report) {
	m.deploys.WithLabelValues(namespace, workload, string(r.Verdict)).Inc()
	if rb := r.Rollback; rb != nil && rb.Performed {
		result := "ok"
		if !rb.OK {
			result = "failed"
		}
		m.rollbacks.WithLabelValues(namespace, workload, result).Inc()
	}
	if r.DetectedAt != nil {
		m.detection.Observe(r.DetectedAt.Sub(r.Deploy.StartedAt).Seconds())
	}
	m.forget(namespace, workload)
}

// forget drops a workload's check series.
func (m *metrics) forget(namespace, workload string) {
	labels := map[string]string{"namespace": namespace, "workload": workload}
	m.checkValue.DeletePartialMatch(labels)
	m.checkLine.DeletePartialMatch(labels)
	m.checkStatus.DeletePartialMatch(labels)
}
