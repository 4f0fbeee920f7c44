package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PrometheusCredentials reads the metric source's secrets from the
// environment and files named in the config. Errors name the field and
// the variable or file, never the value.
func (c *Config) PrometheusCredentials(lookup func(string) (string, bool)) (token, username, password string, err error) {
	if c.Metrics == nil || c.Metrics.Prometheus == nil {
		return "", "", "", nil
	}
	pr := c.Metrics.Prometheus
	token, err = c.Secret(lookup, "metrics.prometheus.bearer_token", pr.BearerTokenEnv, pr.BearerTokenFile)
	if err != nil {
		return "", "", "", err
	}
	if ba := pr.BasicAuth; ba != nil {
		password, err = c.Secret(lookup, "metrics.prometheus.basic_auth.password", ba.PasswordEnv, ba.PasswordFile)
		if err != nil {
			return "", "", "", err
		}
		username = ba.Username
	}
	return token, username, password, nil
}

// Secret reads the secret of field from the environment variable env
// (through lookup, os.LookupEnv when nil) or from file (relative to the
// config file). Neither set is no secret. Errors point at the field and
// name the variable or file, never the value.
func (c *Config) Secret(lookup func(string) (string, bool), field, env, file string) (string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	switch {
	case env != "":
		v, ok := lookup(env)
		if !ok || v == "" {
			return "", c.problem(field+"_env", "environment variable %s is not set", env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(c.Resolve(file))
		if err != nil {
			return "", c.problem(field+"_file", "reading secret file: %v", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// Resolve makes a path from the config file relative to the file's folder.
func (c *Config) Resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(c.Path), path)
}

func (c *Config) problem(field, format string, args ...any) error {
	p := &Problems{Path: c.Path}
	p.add(c.pos(field), field, format, args...)
	return fmt.Errorf("%w", p.err())
}
