package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problems is every problem found in a file, each with its position.
type Problems struct {
	Path  string
	Items []Problem
}

// Problem is one thing wrong in a config file.
type Problem struct {
	// Path names the source the problem is in, when it is not the
	// Problems' own (a config merged from layers).
	Path         string
	Line, Column int
	// Field is the dotted path of the field, e.g. checks[1].fail.
	Field string
	Msg   string
}

func (p *Problems) Error() string {
	var b strings.Builder
	for i, it := range p.Items {
		if i > 0 {
			b.WriteByte('\n')
		}
		if it.Path != "" {
			b.WriteString(it.Path)
		} else {
			b.WriteString(p.Path)
		}
		if it.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", it.Line, it.Column)
		}
		b.WriteString(": ")
		if it.Field != "" {
			b.WriteString(it.Field + ": ")
		}
		b.WriteString(it.Msg)
	}
	return b.String()
}

func (p *Problems) add(pos position, field, format string, args ...any) {
	path := pos.path
	if path == p.Path {
		path = ""
	}
	p.Items = append(p.Items, Problem{Path: path, Line: pos.line, Column: pos.col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *Problems) err() error {
	if len(p.Items) == 0 {
		return nil
	}
	sort.SliceStable(p.Items, func(i, j int) bool {
		a, b := p.Items[i], p.Items[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return p
}

// position is where a value was written; path names its source when a
// config is merged from several.
type position struct {
	line, col int
	path      string
}

// LoadFile reads and validates a config file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		probs := &Problems{Path: path}
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		probs.add(position{}, "", "cannot read the config: %s (give it with -f)", msg)
		return nil, probs.err()
	}
	return Load(data, path)
}

// Load parses and validates a config; path names it in errors and anchors
// relative paths.
func Load(data []byte, path string) (*Config, error) {
	cfg := Default()
	cfg.Path = path
	sum := sha256.Sum256(data)
	cfg.Digest = hex.EncodeToString(sum[:])
	cfg.Source = data
	doc, err := DecodeStrict(data, path, &cfg, func(root *yaml.Node) { presetSections(root, &cfg) })
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

// Document is a strictly decoded YAML file. It remembers where each field
// was written so that validation can point at it.
type Document struct {
	positions map[string]position
	probs     *Problems
}

// DecodeStrict decodes one YAML document into out, a pointer to a struct
// that already holds its defaults. Unknown and duplicate keys are errors
// with their positions; preset, if set, sees the root mapping first, to
// give optional sections present in the file their defaults.
func DecodeStrict(data []byte, path string, out any, preset func(root *yaml.Node)) (*Document, error) {
	root, err := parseMapping(data, path)
	if err != nil {
		return nil, err
	}
	return decodeNode(root, path, out, preset, nil)
}

// parseMapping parses one YAML document whose root is a mapping.
func parseMapping(data []byte, path string) (*yaml.Node, error) {
	probs := &Problems{Path: path}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			probs.add(position{}, "", "the file is empty")
			return nil, probs.err()
		}
		probs.add(yamlErrPos(err), "", "%s", yamlErrMsg(err))
		return nil, probs.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		probs.add(position{line: extra.Line, col: extra.Column}, "", "a second YAML document; deploywatch reads one")
		return nil, probs.err()
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		probs.add(position{line: doc.Line, col: doc.Column}, "", "want a mapping of settings")
		return nil, probs.err()
	}
	return doc.Content[0], nil
}

// decodeNode decodes a mapping into out, strictly. src, when set, names the
// source of each node (a config merged from layers).
func decodeNode(root *yaml.Node, path string, out any, preset func(root *yaml.Node), src func(*yaml.Node) string) (*Document, error) {
	probs := &Problems{Path: path}
	w := &walker{pos: map[string]position{}, probs: probs, src: src}
	w.pos[""] = w.at(root)
	d := &Document{positions: w.pos, probs: probs}
	if preset != nil {
		preset(root)
	}
	w.walk(root, reflect.TypeOf(out).Elem(), "")
	if len(probs.Items) > 0 {
		return nil, probs.err()
	}
	if err := root.Decode(out); err != nil {
		addDecodeErrors(err, probs, root, d.positions)
		return nil, probs.err()
	}
	return d, nil
}

// Problem records a problem with field, at the place it was written (or
// its nearest written parent).
func (d *Document) Problem(field, format string, args ...any) {
	d.probs.add(lookupPos(d.positions, field), field, format, args...)
}

// Err returns the problems found, or nil.
func (d *Document) Err() error { return d.probs.err() }

// presetSections fills the defaults of optional sections that the file
// has, so that decoding overrides the defaults instead of zero values.
func presetSections(root *yaml.Node, cfg *Config) {
	if n := child(root, "metrics"); n != nil {
		m := defaultMetrics()
		cfg.Metrics = &m
		if child(n, "prometheus") != nil {
			p := defaultPrometheus()
			m.Prometheus = &p
		}
		if child(n, "datadog") != nil {
			m.Datadog = &Datadog{Site: "datadoghq.com", Span: "http.request", Timeout: Duration(10 * time.Second), Retries: 2}
		}
		if child(n, "command") != nil {
			m.Command = &CommandSource{Shell: "/bin/sh", Timeout: Duration(10 * time.Second)}
		}
		if child(n, "http") != nil {
			m.HTTP = &HTTPSource{Timeout: Duration(10 * time.Second)}
		}
	}
	if t := child(root, "target"); t != nil && child(t, "command") != nil {
		c := defaultCommandTarget()
		cfg.Target.Command = &c
	}
	if v := child(root, "verify"); v != nil {
		cfg.Verify = &Verify{VersionField: ".commit", Settle: Duration(30 * time.Second)}
		if child(v, "logs") != nil {
			cfg.Verify.Logs = &VerifyLogs{Patterns: []string{`(?i)\berror\b`, `panic:`}, Window: Duration(5 * time.Minute)}
		}
	}
	if t := child(root, "target"); t != nil && child(t, "kubernetes") != nil {
		k := defaultKubernetesTarget()
		cfg.Target.Kubernetes = &k
	}
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	// nodeType is a field kept as YAML, such as serve.yaml's defaults,
	// checked when it is used.
	nodeType = reflect.TypeOf(yaml.Node{})
)

// walker compares a document with the struct it decodes into: unknown and
// duplicate keys are problems (with their position), and every field's
// position is recorded under its dotted path for later validation.
type walker struct {
	pos   map[string]position
	probs *Problems
	src   func(*yaml.Node) string
}

func (w *walker) at(n *yaml.Node) position {
	p := position{line: n.Line, col: n.Column}
	if w.src != nil {
		p.path = w.src(n)
	}
	return p
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || t == nodeType {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				w.probs.add(w.at(n), path, "want a mapping, got %s", kindName(n))
			}
			return
		}
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if line, dup := seen[k.Value]; dup {
				w.probs.add(w.at(k), p, "duplicate key (first set on line %d)", line)
				continue
			}
			seen[k.Value] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				w.probs.add(w.at(k), p, "unknown field%s", suggest(k.Value, fields))
				continue
			}
			w.pos[p] = w.at(v)
			w.walk(v, f.Type, p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				w.probs.add(w.at(n), path, "want a list, got %s", kindName(n))
			}
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.pos[p] = w.at(item)
			w.walk(item, t.Elem(), p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if line, dup := seen[k.Value]; dup {
				w.probs.add(w.at(k), join(path, k.Value), "duplicate key (first set on line %d)", line)
			}
			seen[k.Value] = k.Line
			w.pos[join(path, k.Value)] = w.at(n.Content[i+1])
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		out[tag] = f
	}
	return out
}

func suggest(key string, fields map[string]reflect.StructField) string {
	var names []string
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s)) }
	best, bestDist := "", 3 // a typo: at most two edits
	for _, name := range names {
		if d := editDistance(norm(name), norm(key)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (known here: %s)", strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func yamlErrPos(err error) position {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		l, _ := strconv.Atoi(m[1])
		return position{line: l, col: 1}
	}
	return position{}
}

func yamlErrMsg(err error) string {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		return m[2]
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// addDecodeErrors turns yaml's decode errors into positioned problems. Our
// own unmarshalers return posErrors; yaml's type errors say "line N: ...",
// and the column is that of the first value on that line.
func addDecodeErrors(err error, probs *Problems, root *yaml.Node, fields map[string]position) {
	var pe *posError
	if errors.As(err, &pe) {
		at := position{line: pe.line, col: pe.col}
		probs.add(at, fieldAt(fields, at), "%s", pe.msg)
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			m := yamlLineRE.FindStringSubmatch(e)
			if m == nil {
				probs.add(position{}, "", "%s", e)
				continue
			}
			l, _ := strconv.Atoi(m[1])
			col := firstColumn(root, l)
			msg := strings.Replace(m[2], "!!str ", "", 1)
			msg = strings.Replace(msg, "cannot unmarshal", "cannot read", 1)
			probs.add(position{line: l, col: col}, "", "%s", msg)
		}
		return
	}
	probs.add(position{}, "", "%v", err)
}

// fieldAt finds the field whose value was written at p.
func fieldAt(fields map[string]position, p position) string {
	for name, at := range fields {
		if at.line == p.line && at.col == p.col {
			return name
		}
	}
	return ""
}

func firstColumn(n *yaml.Node, line int) int {
	best := 0
	var visit func(*yaml.Node)
	visit = func(n *yaml.Node) {
		if n.Line == line && n.Kind == yaml.ScalarNode && (best == 0 || n.Column > best) {
			best = n.Column // the value, which follows its key on the line
		}
		for _, c := range n.Content {
			visit(c)
		}
	}
	visit(n)
	if best == 0 {
		return 1
	}
	return best
}
