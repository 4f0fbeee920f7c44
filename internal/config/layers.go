package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Layer is one source of a config merged from several: serve.yaml's
// defaults, the workload it watches, the workload's ConfigMap.
type Layer struct {
	// Path names the source in errors: a file, or "ConfigMap ns/name".
	Path string
	root *yaml.Node
}

// ParseLayer reads one YAML document whose root is a mapping.
func ParseLayer(data []byte, path string) (Layer, error) {
	root, err := parseMapping(data, path)
	if err != nil {
		return Layer{}, err
	}
	return Layer{Path: path, root: root}, nil
}

// LayerOf builds a layer from a value, such as the settings a workload
// implies (its service name, its target).
func LayerOf(path string, v any) (Layer, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return Layer{}, fmt.Errorf("%s: %w", path, err)
	}
	if n.Kind != yaml.MappingNode {
		return Layer{}, fmt.Errorf("%s: want a mapping", path)
	}
	return Layer{Path: path, root: &n}, nil
}

// Has reports whether the layer sets the top-level key.
func (l Layer) Has(key string) bool { return child(l.root, key) != nil }

// Encode writes the layer back as YAML.
func (l Layer) Encode() ([]byte, error) { return yaml.Marshal(l.root) }

// LoadLayers loads a config merged from layers, each over the ones before
// it: mappings merge key by key, and a list or a value replaces what was
// there (a ConfigMap's checks replace the default checks whole).
//
// Each layer is first decoded alone, so that an unknown key, a wrong type
// or a bad duration is reported with that layer's own path, line and
// column; the merged config is then completed and validated, and each of
// its problems names the layer the field was written in.
func LoadLayers(layers ...Layer) (*Config, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("no config layers")
	}
	for _, l := range layers {
		cfg := Default()
		if _, err := decodeNode(deepCopy(l.root), l.Path, &cfg, func(root *yaml.Node) { presetSections(root, &cfg) }, nil); err != nil {
			return nil, err
		}
	}
	origin := map[*yaml.Node]string{}
	merged := deepCopy(layers[0].root)
	mark(merged, layers[0].Path, origin)
	for _, l := range layers[1:] {
		over := deepCopy(l.root)
		mark(over, l.Path, origin)
		merged = mergeNodes(merged, over)
	}
	last := layers[len(layers)-1].Path
	cfg := Default()
	cfg.Path = last
	data, err := yaml.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", last, err)
	}
	sum := sha256.Sum256(data)
	cfg.Digest = hex.EncodeToString(sum[:])
	cfg.Source = data
	src := func(n *yaml.Node) string { return origin[n] }
	doc, err := decodeNode(merged, last, &cfg, func(root *yaml.Node) { presetSections(root, &cfg) }, src)
	if err != nil {
		return nil, err
	}
	cfg.positions = doc.positions
	cfg.complete()
	cfg.validate(doc.probs)
	if err := doc.Err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// mergeNodes lays over onto base: mapping keys merge, anything else is
// replaced.
func mergeNodes(base, over *yaml.Node) *yaml.Node {
	if base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		replaced := false
		for j := 0; j+1 < len(base.Content); j += 2 {
			if base.Content[j].Value == k.Value {
				base.Content[j+1] = mergeNodes(base.Content[j+1], v)
				replaced = true
				break
			}
		}
		if !replaced {
			base.Content = append(base.Content, k, v)
		}
	}
	return base
}

func deepCopy(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	cp := *n
	if n.Kind == yaml.AliasNode {
		cp = *n.Alias
		cp.Anchor = ""
	}
	cp.Content = make([]*yaml.Node, len(cp.Content))
	src := n.Content
	if n.Kind == yaml.AliasNode {
		src = n.Alias.Content
	}
	for i, c := range src {
		cp.Content[i] = deepCopy(c)
	}
	return &cp
}

func mark(n *yaml.Node, path string, origin map[*yaml.Node]string) {
	origin[n] = path
	for _, c := range n.Content {
		mark(c, path, origin)
	}
}
