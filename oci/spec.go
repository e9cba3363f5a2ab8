// Package oci runs containers: it turns what a container asks for into an
// OCI runtime spec, starts berth's own init child from it (namespaces,
// rootfs, pivot_root, exec), and manages the container's cgroup.
package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Annotations berth reads back in its init child.
const (
	// AnnotationUser holds the user as the operator gave it ("name:group",
	// "1000", …); the init child resolves it in the container's /etc/passwd.
	AnnotationUser = "io.berth.user"
	// AnnotationInit asks for berth's tiny init as pid 1.
	AnnotationInit = "io.berth.init"
	// AnnotationSeccomp holds the seccomp profile: empty for Docker's
	// default, SeccompUnconfined, or a profile in Docker's JSON format.
	AnnotationSeccomp = "io.berth.seccomp"
	// AnnotationSeccompFilter carries the compiled filter (base64, see
	// PrecompileSeccomp) to the init child; it is not kept in config.json.
	AnnotationSeccompFilter = "io.berth.seccomp.filter"
	// SeccompUnconfined turns seccomp off.
	SeccompUnconfined = "unconfined"
	// AnnotationGroupAdd holds --group-add values (names or ids, comma
	// separated), resolved in the container's /etc/group.
	AnnotationGroupAdd = "io.berth.group-add"
)

// SpecInput is what a container's spec is generated from.
type SpecInput struct {
	Rootfs         string
	Args           []string
	Env            []string
	Cwd            string
	User           string // as given by the operator; "" is root
	Terminal       bool
	Hostname       string
	HostsPath      string
	HostnamePath   string
	ResolvConfPath string
	HostNetwork    bool // share the host's network namespace
	// NetNSPath joins an existing network namespace (--network
	// container:NAME): /proc/PID/ns/net of that container's pid 1.
	NetNSPath   string
	Init        bool
	CgroupsPath string
	ShmSize     int64

	// Security: see Capabilities for how the set is computed.
	Privileged      bool
	Capabilities    []string
	NoNewPrivileges bool
	ReadonlyRootfs  bool
	GroupAdd        []string
	Sysctls         map[string]string
	Tmpfs           map[string]string // path → mount options
	// Mounts are the container's volumes and bind mounts, mounted after
	// the others in this order; one at /etc/hosts, /etc/hostname or
	// /etc/resolv.conf replaces berth's own file.
	Mounts  []specs.Mount
	Rlimits []specs.POSIXRlimit
	Seccomp string // "" Docker's default profile, "unconfined", or a JSON profile
}

// Generate builds the OCI runtime spec for one container.
func Generate(in SpecInput) *specs.Spec {
	shm := in.ShmSize
	if shm <= 0 {
		shm = 64 << 20
	}
	cwd := in.Cwd
	if cwd == "" {
		cwd = "/"
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: in.Hostname,
		Root:     &specs.Root{Path: in.Rootfs, Readonly: in.ReadonlyRootfs},
		Process: &specs.Process{
			Terminal:        in.Terminal,
			Args:            in.Args,
			Env:             in.Env,
			Cwd:             cwd,
			NoNewPrivileges: in.NoNewPrivileges,
			Rlimits:         in.Rlimits,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  in.Capabilities,
				Effective: in.Capabilities,
				Permitted: in.Capabilities,
			},
		},
		Annotations: map[string]string{},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", fmt.Sprintf("size=%dk", shm/1024)}},
		},
		Linux: &specs.Linux{
			CgroupsPath: in.CgroupsPath,
			Namespaces:  withNetNSPath(Namespaces(in.HostNetwork), in.NetNSPath),
			Devices:     defaultDevices(),
			Sysctl:      in.Sysctls,
		},
	}
	if in.Privileged {
		// /sys writable, no masked or read-only paths, every host device.
		for i := range s.Mounts {
			if s.Mounts[i].Destination == "/sys" {
				s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev", "rw"}
			}
		}
		s.Linux.Devices = append(s.Linux.Devices, hostDevices()...)
	} else {
		s.Linux.MaskedPaths = DefaultMaskedPaths
		s.Linux.ReadonlyPaths = DefaultReadonlyPaths
	}
	for _, dst := range sortedKeys(in.Tmpfs) {
		opts := []string{"nosuid", "nodev", "noexec"}
		if o := in.Tmpfs[dst]; o != "" {
			opts = append(opts, strings.Split(o, ",")...)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: opts})
	}
	switch {
	case in.Privileged:
		s.Annotations[AnnotationSeccomp] = SeccompUnconfined
	case in.Seccomp != "":
		s.Annotations[AnnotationSeccomp] = in.Seccomp
	}
	if len(in.GroupAdd) > 0 {
		s.Annotations[AnnotationGroupAdd] = strings.Join(in.GroupAdd, ",")
	}
	user := map[string]bool{}
	for _, m := range in.Mounts {
		user[m.Destination] = true
	}
	for dst, src := range map[string]string{"/etc/hosts": in.HostsPath, "/etc/hostname": in.HostnamePath, "/etc/resolv.conf": in.ResolvConfPath} {
		if src != "" && !user[dst] {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}})
		}
	}
	s.Mounts = append(s.Mounts, in.Mounts...)
	// Parents before children, whoever asked for them (docker sorts the
	// same way): a volume on /etc must not hide the /etc/hosts bind.
	sort.SliceStable(s.Mounts, func(i, j int) bool {
		return mountDepth(s.Mounts[i].Destination) < mountDepth(s.Mounts[j].Destination)
	})
	if in.User != "" {
		s.Annotations[AnnotationUser] = in.User
	}
	if in.Init {
		s.Annotations[AnnotationInit] = "true"
	}
	return s
}

func mountDepth(p string) int {
	return strings.Count(path.Clean("/"+p), "/")
}

// Namespaces lists the namespaces a container gets of its own.
func Namespaces(hostNetwork bool) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.IPCNamespace}, {Type: specs.CgroupNamespace},
	}
	if !hostNetwork {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	return ns
}

func withNetNSPath(ns []specs.LinuxNamespace, path string) []specs.LinuxNamespace {
	if path == "" {
		return ns
	}
	for i := range ns {
		if ns[i].Type == specs.NetworkNamespace {
			ns[i].Path = path
		}
	}
	return ns
}

func defaultDevices() []specs.LinuxDevice {
	mode := os.FileMode(0o666)
	zero := uint32(0)
	dev := func(path string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &zero, GID: &zero}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3), dev("/dev/zero", 1, 5), dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8), dev("/dev/urandom", 1, 9), dev("/dev/tty", 5, 0),
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteSpec stores a spec as JSON at path, atomically, without the
// compiled seccomp filter it may carry.
func WriteSpec(path string, s *specs.Spec, write func(string, []byte, os.FileMode) error) error {
	if filter, ok := s.Annotations[AnnotationSeccompFilter]; ok {
		delete(s.Annotations, AnnotationSeccompFilter)
		defer func() { s.Annotations[AnnotationSeccompFilter] = filter }()
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding runtime spec: %w", err)
	}
	return write(path, data, 0o600)
}

// hostDevices lists the host's character and block devices at the top of
// /dev, for --privileged containers.
func hostDevices() []specs.LinuxDevice {
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return nil
	}
	skip := map[string]bool{"null": true, "zero": true, "full": true, "random": true, "urandom": true, "tty": true, "console": true, "ptmx": true}
	var out []specs.LinuxDevice
	for _, e := range entries {
		if skip[e.Name()] {
			continue
		}
		var st unix.Stat_t
		if unix.Lstat("/dev/"+e.Name(), &st) != nil {
			continue
		}
		typ := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			continue
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{
			Path: "/dev/" + e.Name(), Type: typ,
			Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
			FileMode: &mode, UID: &uid, GID: &gid,
		})
	}
	return out
}
