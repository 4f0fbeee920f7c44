package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds the image from the repository, writes it both ways,
// reads the OCI layout back, and checks what a user would: the entrypoint
// and user, the labels, the files and their owners, and that the binary
// in it runs.
func TestImage(t *testing.T) {
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err != nil {
		t.Skip("no CA bundle on this machine")
	}
	dir := t.TempDir()
	img, err := Build(Options{Source: "../..", Tag: "ghcr.io/deploywatch/deploywatch:test", Version: "0.2.0-test", Arch: "amd64", CACerts: "/etc/ssl/certs/ca-certificates.crt"})
	if err != nil {
		t.Fatal(err)
	}
	oci, tarPath := filepath.Join(dir, "oci"), filepath.Join(dir, "image.tar")
	if err := Write(img, "ghcr.io/deploywatch/deploywatch:test", oci, tarPath); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	man, err := idx.IndexManifest()
	if err != nil || len(man.Manifests) != 1 || man.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "ghcr.io/deploywatch/deploywatch:test" {
		t.Fatalf("OCI index %+v, %v", man, err)
	}
	back, err := idx.Image(man.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/deploywatch" || strings.Join(c.Cmd, " ") != "serve -f /etc/deploywatch/serve.yaml" ||
		c.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("config: entrypoint %v cmd %v user %q %s/%s", c.Entrypoint, c.Cmd, c.User, cf.OS, cf.Architecture)
	}
	if c.Labels["org.opencontainers.image.version"] != "0.2.0-test" || c.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("labels %v", c.Labels)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	layers, err := back.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	var binary []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		if h.Name == "usr/local/bin/deploywatch" {
			binary, _ = io.ReadAll(tr)
		}
		if h.Name == "etc/passwd" {
			b, _ := io.ReadAll(tr)
			if !bytes.Contains(b, []byte("nonroot:x:65532:65532")) {
				t.Errorf("/etc/passwd has no nonroot user: %s", b)
			}
		}
	}
	for path, want := range map[string]int64{"usr/local/bin/deploywatch": 0o755, "tmp/": 0o1777, "etc/ssl/certs/ca-certificates.crt": 0o644} {
		if h := files[path]; h == nil || h.Mode != want {
			t.Errorf("%s: %+v, want mode %o", path, h, want)
		}
	}
	if h := files["var/lib/deploywatch/"]; h == nil || h.Uid != UID {
		t.Errorf("the SQLite folder is not the user's: %+v", h)
	}
	// The binary is static and runs.
	exe := filepath.Join(dir, "deploywatch")
	if err := os.WriteFile(exe, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "deploywatch 0.2.0-test") {
		t.Fatalf("the image's binary: %v\n%s", err, out)
	}
	// The tarball is one docker load takes.
	if _, err := tarball.ImageFromPath(tarPath, nil); err != nil {
		t.Fatalf("the tarball: %v", err)
	}
}
