// Command image builds deploywatch's container image without a container
// engine and without pulling a base image: a static binary, a non-root
// user and the CA certificates of the build machine, assembled into an OCI
// image with go-containerregistry. Load it with `docker load`, or push the
// OCI layout with `crane push`.
//
//	go run ./tools/image -tag ghcr.io/deploywatch/deploywatch:0.2.0 -oci ./image -tar deploywatch.tar
//
// It is its own module, so that go-containerregistry stays out of
// deploywatch's.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options say what to build.
type Options struct {
	// Source is the deploywatch module's folder (the binary is built from
	// its cmd/deploywatch); Binary, when set, is a built binary to use.
	Source, Binary string
	Tag            string
	Version        string
	Arch           string
	// CACerts is the CA bundle copied into the image.
	CACerts string
	// Created stamps the image; the zero time makes it reproducible.
	Created time.Time
}

// UID is the image's user: non-root, as distroless's nonroot.
const UID = 65532

func main() {
	var o Options
	var oci, tarPath string
	flag.StringVar(&o.Source, "source", ".", "the deploywatch module's folder")
	flag.StringVar(&o.Binary, "binary", "", "a built static binary to use instead of building one")
	flag.StringVar(&o.Tag, "tag", "ghcr.io/deploywatch/deploywatch:dev", "the image's name and tag")
	flag.StringVar(&o.Version, "version", "dev", "the version written into the binary and the image's labels")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "the architecture to build for")
	flag.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle to put in the image")
	flag.StringVar(&oci, "oci", "", "write an OCI image layout to this folder")
	flag.StringVar(&tarPath, "tar", "", "write a tarball that docker load takes to this file")
	flag.Parse()
	if oci == "" && tarPath == "" {
		fmt.Fprintln(os.Stderr, "image: give -oci DIR and/or -tar FILE")
		os.Exit(2)
	}
	img, err := Build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	if err := Write(img, o.Tag, oci, tarPath); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	d, _ := img.Digest()
	fmt.Println(o.Tag, d)
}

// Build assembles the image.
func Build(o Options) (v1.Image, error) {
	bin := o.Binary
	if bin == "" {
		dir, err := os.MkdirTemp("", "deploywatch-image-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "deploywatch")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin,
			"-ldflags", "-s -w -X github.com/deploywatch/deploywatch/internal/cli.version="+o.Version, "./cmd/deploywatch")
		cmd.Dir = o.Source
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("the CA bundle: %w", err)
	}
	layer, err := rootfs(binary, certs)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = o.Arch, "linux"
	cfg.Created = v1.Time{Time: o.Created}
	cfg.Config = v1.Config{
		Entrypoint:   []string{"/usr/local/bin/deploywatch"},
		Cmd:          []string{"serve", "-f", "/etc/deploywatch/serve.yaml"},
		User:         fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir:   "/home/nonroot",
		Env:          []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "HOME=/home/nonroot"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "deploywatch",
			"org.opencontainers.image.description": "Watches deployments, judges them against their baseline, rolls bad releases back",
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.source":      "https://github.com/deploywatch/deploywatch",
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
	}
	return mutate.ConfigFile(img, cfg)
}

// rootfs is the image's one layer: the binary, a non-root user, the CA
// certificates, and a writable /tmp.
func rootfs(binary, certs []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(path string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode, Uid: uid, Gid: uid})
	}
	file := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)
	steps := []error{
		dir("etc", 0o755, 0), dir("etc/ssl", 0o755, 0), dir("etc/ssl/certs", 0o755, 0), dir("etc/deploywatch", 0o755, 0),
		dir("home", 0o755, 0), dir("home/nonroot", 0o700, UID), dir("tmp", 0o1777, 0),
		dir("usr", 0o755, 0), dir("usr/local", 0o755, 0), dir("usr/local/bin", 0o755, 0),
		dir("var", 0o755, 0), dir("var/lib", 0o755, 0), dir("var/lib/deploywatch", 0o700, UID),
		file("etc/passwd", 0o644, []byte(passwd)), file("etc/group", 0o644, []byte(group)),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, certs),
		file("usr/local/bin/deploywatch", 0o755, binary),
		tw.Close(),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// Write writes the image as an OCI layout and/or a docker-loadable tarball.
func Write(img v1.Image, tag, ociDir, tarPath string) error {
	if ociDir != "" {
		p, err := layout.Write(ociDir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
			return err
		}
	}
	if tarPath != "" {
		ref, err := name.NewTag(tag)
		if err != nil {
			return err
		}
		if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
			return err
		}
	}
	return nil
}
