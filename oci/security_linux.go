package oci

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/seccomp"
)

// dropBoundingSet limits the capabilities this thread (and what it execs)
// can ever get to spec.Process.Capabilities.Bounding, and asks the kernel
// to keep the permitted set across the switch to the container's user.
// It runs while berth is still fully privileged.
func dropBoundingSet(spec *specs.Spec) error {
	pc := spec.Process.Capabilities
	if pc == nil {
		return nil
	}
	keep := map[capability.Cap]bool{}
	byName := capsByName()
	for _, n := range pc.Bounding {
		if c, ok := byName[n]; ok {
			keep[c] = true
		}
	}
	supported, err := capability.ListSupported()
	if err != nil {
		return fmt.Errorf("listing capabilities: %w", err)
	}
	var drop []capability.Cap
	for _, c := range supported {
		if !keep[c] {
			drop = append(drop, c)
		}
	}
	if err := capability.DropBound(drop...); err != nil {
		return fmt.Errorf("dropping capabilities from the bounding set: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keeping capabilities across setuid: %w", err)
	}
	return nil
}

// applyProcessSecurity confines the calling thread as spec.Process asks
// right before the container's command is exec'd: after the switch to
// the container's user it sets the effective, permitted, inheritable and
// ambient capability sets, then no_new_privs. Both the init child and exec
// call it; the bounding set was dropped earlier (dropBoundingSet).
func applyProcessSecurity(spec *specs.Spec) error {
	pc := spec.Process.Capabilities
	if pc != nil {
		caps, err := capability.NewPid2(0)
		if err != nil {
			return fmt.Errorf("reading capabilities: %w", err)
		}
		byName := capsByName()
		set := func(which capability.CapType, names []string) {
			for _, n := range names {
				if c, ok := byName[n]; ok {
					caps.Set(which, c)
				}
			}
		}
		caps.Clear(capability.CAPS)
		set(capability.EFFECTIVE, pc.Effective)
		set(capability.PERMITTED, pc.Permitted)
		set(capability.INHERITABLE, pc.Inheritable)
		if err := caps.Apply(capability.CAPS); err != nil {
			return fmt.Errorf("setting capabilities: %w", err)
		}
		if err := capability.ResetAmbient(); err != nil {
			return fmt.Errorf("clearing ambient capabilities: %w", err)
		}
		for _, n := range pc.Ambient {
			if c, ok := byName[n]; ok {
				if err := capability.SetAmbient(true, c); err != nil {
					return fmt.Errorf("raising ambient %s: %w", n, err)
				}
			}
		}
	}
	if spec.Process.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	return nil
}

// loadSeccomp installs the container's seccomp filter (Docker's default
// profile unless the spec says otherwise) on every thread, while berth
// still holds CAP_SYS_ADMIN: the filter then lets the remaining steps
// (setuid, capset, execve) through, as Docker's profile allows them.
func loadSeccomp(spec *specs.Spec) error {
	if encoded := spec.Annotations[AnnotationSeccompFilter]; encoded != "" {
		data, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			return fmt.Errorf("decoding seccomp filter: %w", err)
		}
		filter, err := seccomp.FilterFromBytes(data)
		if err != nil {
			return err
		}
		if err := filter.Load(); err != nil {
			return fmt.Errorf("loading seccomp filter: %w", err)
		}
		return nil
	}
	filter, err := compileSeccomp(spec)
	if err != nil || filter == nil {
		return err
	}
	if err := filter.Load(); err != nil {
		return fmt.Errorf("loading seccomp filter: %w", err)
	}
	return nil
}

// compileSeccomp compiles the spec's profile for its capabilities; nil
// when the container is unconfined.
func compileSeccomp(spec *specs.Spec) (*seccomp.Filter, error) {
	profile, err := seccompProfile(spec)
	if err != nil || profile == nil {
		return nil, err
	}
	var caps []string
	if pc := spec.Process.Capabilities; pc != nil {
		caps = pc.Bounding
	}
	filter, err := seccomp.Compile(profile, seccomp.Options{Capabilities: caps})
	if err != nil {
		return nil, fmt.Errorf("compiling seccomp profile: %w", err)
	}
	return filter, nil
}

// PrecompileSeccomp puts the spec's compiled seccomp filter into it, taken
// from cacheDir when a filter for the same profile and capabilities was
// compiled before (compiling takes milliseconds; loading, microseconds).
func PrecompileSeccomp(spec *specs.Spec, cacheDir string) error {
	if spec.Annotations[AnnotationSeccomp] == SeccompUnconfined {
		return nil
	}
	var caps []string
	if pc := spec.Process.Capabilities; pc != nil {
		caps = pc.Bounding
	}
	key := sha256.Sum256([]byte(spec.Annotations[AnnotationSeccomp] + "\x00" + strings.Join(caps, ",")))
	path := filepath.Join(cacheDir, hex.EncodeToString(key[:])+".bpf")
	data, err := os.ReadFile(path)
	if err != nil {
		filter, err := compileSeccomp(spec)
		if err != nil {
			return err
		}
		data = filter.Bytes()
		if err := os.MkdirAll(cacheDir, 0o700); err == nil {
			// A cache: temp file and rename, no fsync.
			if tmp, err := os.CreateTemp(cacheDir, ".bpf*"); err == nil {
				tmp.Write(data)
				tmp.Close()
				os.Rename(tmp.Name(), path)
			}
		}
	}
	spec.Annotations[AnnotationSeccompFilter] = base64.StdEncoding.EncodeToString(data)
	return nil
}

// seccompProfile reads the spec's seccomp choice: nil for unconfined.
func seccompProfile(spec *specs.Spec) (*seccomp.Profile, error) {
	switch v := spec.Annotations[AnnotationSeccomp]; v {
	case "":
		return seccomp.Default(), nil
	case SeccompUnconfined:
		return nil, nil
	default:
		p, err := seccomp.ParseProfile([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("reading seccomp profile: %w", err)
		}
		return p, nil
	}
}

// maskPaths hides paths as the spec asks: directories get an empty
// read-only tmpfs, files /dev/null. Paths that do not exist are skipped.
func maskPaths(paths []string) error {
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			continue
		}
		var err error
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0k")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	return nil
}

// readonlyPaths makes paths read-only with a bind mount on themselves.
func readonlyPaths(paths []string) error {
	for _, p := range paths {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return fmt.Errorf("read-only %s: %w", p, err)
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if err := unix.Mount("", p, "", flags, ""); err != nil {
			// Some /proc entries refuse nosuid/nodev/noexec changes: keep ro.
			if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("read-only %s: %w", p, err)
			}
		}
	}
	return nil
}

// confineAndExec ends the init child and exec alike: the user's
// capabilities, no stray descriptors, the seccomp filter (loaded while
// berth still has CAP_SYS_ADMIN), the switch to the container's user, the
// final capability sets, then execve. It returns only on failure, with the
// exit code the user should see.
func confineAndExec(spec *specs.Spec, cred *credential, path string, env []string) (int, error) {
	limitToUser(spec, cred)
	if err := CloseOnExecAll(); err != nil {
		return 125, err
	}
	if err := loadSeccomp(spec); err != nil {
		return 125, err
	}
	if err := setCredentials(cred); err != nil {
		return 125, err
	}
	if err := applyProcessSecurity(spec); err != nil {
		return 125, err
	}
	err := unix.Exec(path, spec.Process.Args, env)
	return execErrorCode(err), fmt.Errorf("exec: %q: %w", spec.Process.Args[0], err)
}
