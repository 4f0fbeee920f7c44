package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The variables a query may use. Range variables are written in whole
// seconds ("37s") so they fit a PromQL range selector.
const (
	VarSelector    = "selector"
	VarWindow      = "window"
	VarSinceDeploy = "since_deploy"
	VarSinceWarmup = "since_warmup"
	// Set by the Kubernetes target; empty elsewhere.
	//
	// VarPodTemplateHash marks the pods of the version judged: a
	// Deployment's pod-template-hash, a StatefulSet's or DaemonSet's
	// controller-revision-hash. VarPods is a regular expression of exactly
	// those pods' names (StatefulSet and DaemonSet pod names do not carry
	// the hash). VarWorkload is the workload's name whatever its kind;
	// VarDeployment is the same name, kept for Deployments' configs.
	VarPodTemplateHash = "pod_template_hash"
	VarNamespace       = "namespace"
	VarDeployment      = "deployment"
	VarWorkload        = "workload"
	VarPods            = "pods"
	// The deploy's: the config's service and environment, and the version
	// judged (before the deploy, in the baseline, the version it replaces,
	// or * when that is unknown).
	VarService     = "service"
	VarEnvironment = "environment"
	VarVersion     = "version"
)

// Vars are the values of a query's variables at one evaluation.
type Vars struct {
	Selector string
	// Window is the check's sliding window.
	Window time.Duration
	// SinceDeploy is the time since the deploy started.
	SinceDeploy time.Duration
	// SinceWarmup is the time since the warm-up ended.
	SinceWarmup time.Duration
	// Platform holds the platform's variables (pod_template_hash,
	// namespace, deployment, workload, pods); a missing one expands to "".
	Platform map[string]string
	// Service, Environment and Version name the deploy.
	Service, Environment, Version string
}

func (v Vars) lookup() map[string]string {
	return map[string]string{
		VarSelector:        v.Selector,
		VarWindow:          RangeString(v.Window),
		VarSinceDeploy:     RangeString(v.SinceDeploy),
		VarSinceWarmup:     RangeString(v.SinceWarmup),
		VarPodTemplateHash: v.Platform[VarPodTemplateHash],
		VarNamespace:       v.Platform[VarNamespace],
		VarDeployment:      v.Platform[VarDeployment],
		VarWorkload:        v.Platform[VarWorkload],
		VarPods:            v.Platform[VarPods],
		VarService:         v.Service,
		VarEnvironment:     v.Environment,
		VarVersion:         v.Version,
	}
}

// RangeString writes a duration as a PromQL range in whole seconds,
// rounded up and at least 1s.
func RangeString(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return fmt.Sprintf("%ds", max(s, 1))
}

// Expand replaces $name and ${name} in a query template. "$$" is a literal
// "$". A "$" not followed by a name (as in a regular expression's "foo$")
// is left alone; an unknown name is an error. The selector may itself use
// the other variables (serve's default selector names the version's pods).
func Expand(tmpl string, v Vars) (string, error) {
	if strings.Contains(v.Selector, "$") {
		inner := v
		inner.Selector = ""
		sel, err := Expand(v.Selector, inner)
		if err != nil {
			return "", fmt.Errorf("metrics.selector: %w", err)
		}
		v.Selector = sel
	}
	vals := v.lookup()
	return expand(tmpl, func(name string) (string, error) {
		val, ok := vals[name]
		if !ok {
			return "", fmt.Errorf("unknown variable $%s (known: $%s)", name, strings.Join(slices.Sorted(maps.Keys(vals)), ", $"))
		}
		return val, nil
	})
}

// Variables returns the names of the variables a template uses, in order,
// each once. A template that cannot be expanded uses none.
func Variables(tmpl string) []string {
	var names []string
	_, err := expand(tmpl, func(name string) (string, error) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		return "", nil
	})
	if err != nil {
		return nil
	}
	return names
}

// expand replaces each variable of tmpl by what value returns for its name.
func expand(tmpl string, value func(name string) (string, error)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(tmpl) && tmpl[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		braced := i+1 < len(tmpl) && tmpl[i+1] == '{'
		start := i + 1
		if braced {
			start++
		}
		end := start
		for end < len(tmpl) && (tmpl[end] == '_' || tmpl[end] >= 'a' && tmpl[end] <= 'z' || tmpl[end] >= 'A' && tmpl[end] <= 'Z' || end > start && tmpl[end] >= '0' && tmpl[end] <= '9') {
			end++
		}
		if end == start {
			b.WriteByte(c)
			continue
		}
		name := tmpl[start:end]
		if braced {
			if end >= len(tmpl) || tmpl[end] != '}' {
				return "", fmt.Errorf("unclosed ${%s", name)
			}
			end++
		}
		val, err := value(name)
		if err != nil {
			return "", err
		}
		b.WriteString(val)
		i = end - 1
	}
	return b.String(), nil
}

// ExpandSelector is the selector with its variables expanded.
func ExpandSelector(selector string, platform map[string]string) (string, error) {
	return Expand(selector, Vars{Platform: platform})
}

// KubernetesSelector is the selector of a Kubernetes workload's metrics
// when the config names none: the series of the pods of the version
// judged, by the namespace and pod labels Prometheus's Kubernetes service
// discovery gives them.
const KubernetesSelector = `namespace="$namespace",pod=~"$pods"`
