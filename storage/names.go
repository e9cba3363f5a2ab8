package storage

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

const dockerHub = "docker.io"

// NormalizeName turns a reference as typed by a user into the full form
// stored as an image name: "busybox" -> "docker.io/library/busybox:latest",
// "quay.io/x/y@sha256:..." stays a digest reference.
func NormalizeName(ref string) (string, error) {
	parsed, err := name.ParseReference(ref, name.WithDefaultRegistry(dockerHub))
	if err != nil {
		return "", fmt.Errorf("invalid reference format %q: %w", ref, err)
	}
	registry := parsed.Context().RegistryStr()
	if registry == name.DefaultRegistry { // "index.docker.io"
		registry = dockerHub
	}
	repository := registry + "/" + parsed.Context().RepositoryStr()
	switch r := parsed.(type) {
	case name.Digest:
		return repository + "@" + r.DigestStr(), nil
	case name.Tag:
		return repository + ":" + r.TagStr(), nil
	default:
		return "", fmt.Errorf("invalid reference format %q", ref)
	}
}

// FamiliarName shortens a full reference the way docker prints it:
// "docker.io/library/busybox:latest" -> "busybox:latest",
// "docker.io/foo/bar:1" -> "foo/bar:1". Other references are unchanged.
func FamiliarName(ref string) string {
	if rest, ok := strings.CutPrefix(ref, dockerHub+"/library/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	if rest, ok := strings.CutPrefix(ref, dockerHub+"/"); ok {
		return rest
	}
	return ref
}
