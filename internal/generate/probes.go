package generate

import (
	"bytes"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/config"
)

// ProbePort is the container port the probes use unless verify.base_url
// names another.
const ProbePort = 8000

type httpGet struct {
	Path string `yaml:"path"`
	Port int    `yaml:"port"`
}

type probe struct {
	HTTPGet             httpGet `yaml:"httpGet"`
	InitialDelaySeconds int     `yaml:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int     `yaml:"periodSeconds"`
	FailureThreshold    int     `yaml:"failureThreshold"`
}

type probes struct {
	Liveness  probe `yaml:"livenessProbe"`
	Readiness probe `yaml:"readinessProbe"`
	Startup   probe `yaml:"startupProbe"`
}

// Probes writes the liveness, readiness and startup probes for the
// service's container, on the health package's endpoints, with the seed's
// timings: live every 10s after 10s, ready every 5s after 5s, startup
// allowing 30 x 10s.
func Probes(c *config.Config) ([]byte, error) {
	port, ready := ProbePort, "/health/ready"
	if v := c.Verify; v != nil {
		if p := portOf(v.BaseURL); p > 0 {
			port = p
		}
		if v.ReadyURL != "" && strings.HasPrefix(v.ReadyURL, "/") {
			ready = v.ReadyURL
		}
	}
	live := strings.TrimSuffix(ready, "/ready") + "/live"
	if !strings.HasSuffix(ready, "/ready") {
		live = "/health/live"
	}
	p := probes{
		Liveness:  probe{HTTPGet: httpGet{live, port}, InitialDelaySeconds: 10, PeriodSeconds: 10, FailureThreshold: 3},
		Readiness: probe{HTTPGet: httpGet{ready, port}, InitialDelaySeconds: 5, PeriodSeconds: 5, FailureThreshold: 3},
		Startup:   probe{HTTPGet: httpGet{live, port}, PeriodSeconds: 10, FailureThreshold: 30},
	}
	var b bytes.Buffer
	b.WriteString("# Probes for the " + c.Service + " container (deploywatch generate probes),\n# on the endpoints of github.com/deploywatch/deploywatch/health.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func portOf(base string) int {
	i := strings.LastIndexByte(base, ':')
	if i < 0 || strings.HasSuffix(base[:i], "http") || strings.HasSuffix(base[:i], "https") {
		return 0
	}
	n := 0
	for _, r := range strings.TrimRight(base[i+1:], "/") {
		if r < '0' || r > '9' {
			return 0
		}
		n = n*10 + int(r-'0')
	}
	return n
}
