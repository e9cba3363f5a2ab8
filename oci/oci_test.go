package oci

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestGenerate(t *testing.T) {
	s := Generate(SpecInput{Rootfs: "/r", Args: []string{"sh"}, User: "1000:50", Init: true, HostNetwork: true, Hostname: "h"})
	if s.Root.Path != "/r" || s.Process.Cwd != "/" || s.Hostname != "h" {
		t.Errorf("basic fields: %+v %+v", s.Root, s.Process)
	}
	if s.Annotations[AnnotationUser] != "1000:50" || s.Annotations[AnnotationInit] != "true" {
		t.Errorf("annotations = %v", s.Annotations)
	}
	if hasNamespace(s, specs.NetworkNamespace) {
		t.Error("host network must not get a network namespace")
	}
	if !hasNamespace(s, specs.PIDNamespace) || !hasNamespace(s, specs.MountNamespace) {
		t.Error("pid and mount namespaces missing")
	}
	s = Generate(SpecInput{Rootfs: "/r", Args: []string{"sh"}, HostsPath: "/c/hosts", ShmSize: 1 << 20})
	if !hasNamespace(s, specs.NetworkNamespace) {
		t.Error("a private network namespace is missing")
	}
	var shm, hosts bool
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			for _, o := range m.Options {
				shm = shm || o == "size=1024k"
			}
		}
		hosts = hosts || (m.Destination == "/etc/hosts" && m.Source == "/c/hosts")
	}
	if !shm || !hosts {
		t.Errorf("shm size or hosts bind missing: %+v", s.Mounts)
	}
}

func TestParseMountOptions(t *testing.T) {
	flags, prop, data := parseMountOptions([]string{"rbind", "ro", "nosuid", "rprivate", "mode=755", "size=1k"})
	if flags != unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY|unix.MS_NOSUID {
		t.Errorf("flags = %#x", flags)
	}
	if prop != unix.MS_PRIVATE|unix.MS_REC || data != "mode=755,size=1k" {
		t.Errorf("propagation %#x, data %q", prop, data)
	}
	if flags, _, _ := parseMountOptions([]string{"ro", "rw"}); flags&unix.MS_RDONLY != 0 {
		t.Error("rw after ro did not clear read-only")
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	plain := filepath.Join(dir, "data")
	os.WriteFile(plain, []byte("x"), 0o644)
	env := []string{"PATH=/nonexistent:" + dir}
	if p, code, err := lookPath("tool", env); err != nil || p != exe || code != 0 {
		t.Errorf("lookPath(tool) = %q %d %v", p, code, err)
	}
	if _, code, err := lookPath("missing", env); err == nil || code != 127 {
		t.Errorf("missing command: code %d err %v, want 127", code, err)
	}
	if _, code, err := lookPath(plain, env); err == nil || code != 126 {
		t.Errorf("non-executable file: code %d err %v, want 126", code, err)
	}
	if _, code, err := lookPath(dir, env); err == nil || code != 126 {
		t.Errorf("directory: code %d err %v, want 126", code, err)
	}
	if _, code, _ := lookPath("/no/such/file", env); code != 127 {
		t.Errorf("missing path: code %d, want 127", code)
	}
}

func TestCgroupLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("cgroup tests need root (CI runs as root)")
	}
	name := "berth-test/" + filepath.Base(t.TempDir())
	cg, err := CreateCgroup(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(cg.Dirs) == 0 {
		t.Fatal("no cgroup directories were created")
	}
	for _, d := range cg.Dirs {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err != nil {
			t.Errorf("cgroup %s not usable: %v", d, err)
		}
	}
	if err := cg.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := cg.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	for _, d := range cg.Dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still exists", d)
		}
		os.Remove(filepath.Dir(d))
	}
}
