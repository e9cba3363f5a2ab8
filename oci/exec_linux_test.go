package oci

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExecSpec(t *testing.T) {
	base := &specs.Spec{
		Process: &specs.Process{
			Args:            []string{"sleep", "300"},
			Env:             []string{"HOSTNAME=box", "FOO=bar", "PATH=/bin"},
			Cwd:             "/srv",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}, Effective: []string{"CAP_CHOWN"}},
		},
		Annotations: map[string]string{AnnotationUser: "nobody"},
	}
	s := ExecSpec(base, ExecConfig{Args: []string{"env"}, Env: []string{"FOO=baz", "NEW=1"}})
	if !reflect.DeepEqual(s.Process.Args, []string{"env"}) {
		t.Errorf("args %q", s.Process.Args)
	}
	if want := []string{"HOSTNAME=box", "FOO=baz", "PATH=/bin", "NEW=1"}; !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env %q, want %q", s.Process.Env, want)
	}
	if s.Process.Cwd != "/srv" || s.Annotations[AnnotationUser] != "nobody" || !s.Process.NoNewPrivileges {
		t.Errorf("container defaults not kept: cwd %q user %q nnp %v", s.Process.Cwd, s.Annotations[AnnotationUser], s.Process.NoNewPrivileges)
	}
	if s.Process.Terminal || hasEnv(s.Process.Env, "TERM") {
		t.Errorf("terminal without -t")
	}

	s = ExecSpec(base, ExecConfig{Args: []string{"sh"}, Cwd: "/tmp", User: "1000:1000", Terminal: true, Rows: 30, Cols: 100, Privileged: true})
	if s.Process.Cwd != "/tmp" || s.Annotations[AnnotationUser] != "1000:1000" {
		t.Errorf("overrides: cwd %q user %q", s.Process.Cwd, s.Annotations[AnnotationUser])
	}
	if !s.Process.Terminal || !hasEnv(s.Process.Env, "TERM") || s.Process.ConsoleSize == nil || s.Process.ConsoleSize.Width != 100 {
		t.Errorf("terminal: %+v", s.Process)
	}
	if s.Annotations[AnnotationExecPrivileged] != "true" || len(s.Process.Capabilities.Effective) <= 1 {
		t.Errorf("privileged: caps %v", s.Process.Capabilities)
	}

	// The container's spec is left as it was.
	if base.Process.Args[0] != "sleep" || base.Process.Env[1] != "FOO=bar" || base.Annotations[AnnotationUser] != "nobody" ||
		len(base.Process.Capabilities.Effective) != 1 || base.Process.Terminal {
		t.Errorf("base spec changed: %+v %v", base.Process, base.Annotations)
	}
}

func TestExecSpecDefaults(t *testing.T) {
	s := ExecSpec(&specs.Spec{}, ExecConfig{Args: []string{"true"}})
	if s.Process.Cwd != "/" || s.Annotations == nil {
		t.Errorf("defaults: cwd %q annotations %v", s.Process.Cwd, s.Annotations)
	}
}
