package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/netns"
)

// InitArg is the hidden first argument that makes berth run as a
// container's init child.
const InitArg = "__init"

// lateMountsArg follows InitArg when the child must make its own mount
// namespace (see ForkOptions.LateMounts).
const lateMountsArg = "late-mounts"

// syncFd is the init child's end of the sync socket (ExtraFiles[0]).
const syncFd = 3

// initError travels from the init child to its parent over the sync
// socket when setup fails; Code is the exit code the user should see.
type initError struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

// InitMain is the entry point of the re-exec'd init child. It runs inside
// the new namespaces, waits for its spec on the sync socket (sent once it
// is in its cgroup), sets up the root filesystem and execs the command.
// It never returns.
func InitMain() {
	runtime.LockOSThread() // unshare and exec must happen on this thread
	sync := os.NewFile(syncFd, "sync")
	unix.CloseOnExec(syncFd) // a successful exec closes it: the parent reads EOF
	lateMounts := len(os.Args) > 2 && os.Args[2] == lateMountsArg
	code, err := initContainer(sync, lateMounts)
	if err == nil {
		err = errors.New("init returned without exec")
	}
	if code == 0 {
		code = 125
	}
	msg, _ := json.Marshal(initError{Code: code, Msg: err.Error()})
	sync.Write(msg)
	os.Exit(code)
}

func initContainer(sync *os.File, lateMounts bool) (int, error) {
	buf := make([]byte, 4<<20)
	n, err := sync.Read(buf)
	if err != nil || n == 0 {
		return 125, fmt.Errorf("waiting for the runtime spec from berth: %v", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(buf[:n], &spec); err != nil {
		return 125, fmt.Errorf("decoding runtime spec: %w", err)
	}
	if lateMounts && hasNamespace(&spec, specs.MountNamespace) {
		// This thread alone leaves the host's mounts; it is the one that
		// sets up the rootfs and execs, and exec ends the other threads.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return 125, fmt.Errorf("creating mount namespace: %w", err)
		}
	}
	if path := namespacePath(&spec, specs.NetworkNamespace); path != "" {
		// --network container:NAME, on the thread that execs.
		if err := joinNamespace(path, unix.CLONE_NEWNET); err != nil {
			return 125, err
		}
	} else if hasNamespace(&spec, specs.NetworkNamespace) {
		if err := netns.LoopbackUp(); err != nil {
			return 125, err
		}
	}
	if err := setupRootfs(&spec); err != nil {
		return 125, err
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return 125, fmt.Errorf("setting hostname: %w", err)
		}
	}
	cred, err := resolveUser(&spec)
	if err != nil {
		return 125, err
	}
	env := withDefaultEnv(spec.Process.Env, cred.Home)
	cwd := spec.Process.Cwd
	if err := os.Chdir(cwd); err != nil {
		return 125, fmt.Errorf("changing to working directory %s: %w", cwd, err)
	}
	if len(spec.Process.Args) == 0 {
		return 125, errors.New("no command specified")
	}
	path, code, err := lookPath(spec.Process.Args[0], env)
	if err != nil {
		return code, err
	}

	// The spec came once we were in our cgroup: a cgroup namespace made
	// now has the container's cgroup as its root.
	if hasNamespace(&spec, specs.CgroupNamespace) {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return 125, fmt.Errorf("creating cgroup namespace: %w", err)
		}
	}
	if err := setRlimits(spec.Process.Rlimits); err != nil {
		return 125, err
	}
	if err := dropBoundingSet(&spec); err != nil {
		return 125, err
	}
	if spec.Annotations[AnnotationInit] == "true" {
		// berth's pid 1 keeps the container's set as root; the command's
		// switch to its user drops them as below.
		return runTinyInit(&spec, path, env, cred, sync)
	}
	return confineAndExec(&spec, cred, path, env)
}

func namespacePath(s *specs.Spec, t specs.LinuxNamespaceType) string {
	if s.Linux == nil {
		return ""
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path
		}
	}
	return ""
}

func joinNamespace(path string, nstype int) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, nstype); err != nil {
		return fmt.Errorf("joining namespace %s: %w", path, err)
	}
	return nil
}

func hasNamespace(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	if s.Linux == nil {
		return false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t && ns.Path == "" {
			return true
		}
	}
	return false
}

// setupRootfs mounts everything the spec lists under the rootfs, makes the
// device nodes, and pivots into it.
func setupRootfs(spec *specs.Spec) error {
	// Nothing we mount may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	rootfs := spec.Root.Path
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding rootfs %s: %w", rootfs, err)
	}
	for _, m := range spec.Mounts {
		if err := mountInto(rootfs, m); err != nil {
			return err
		}
	}
	if err := makeDevices(rootfs, spec.Linux.Devices, spec.Process.Terminal); err != nil {
		return err
	}
	if err := pivotRoot(rootfs); err != nil {
		return err
	}
	if err := maskPaths(spec.Linux.MaskedPaths); err != nil {
		return err
	}
	// Sysctls go in before /proc/sys turns read-only.
	if err := setSysctls(spec.Linux.Sysctl); err != nil {
		return err
	}
	if err := readonlyPaths(spec.Linux.ReadonlyPaths); err != nil {
		return err
	}
	// The working directory is made before a read-only rootfs forbids it.
	if err := os.MkdirAll(spec.Process.Cwd, 0o755); err != nil {
		return fmt.Errorf("creating working directory %s: %w", spec.Process.Cwd, err)
	}
	if spec.Root.Readonly {
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("making rootfs read-only: %w", err)
		}
	}
	return nil
}

// setSysctls writes the container's (namespaced) sysctls.
func setSysctls(sysctls map[string]string) error {
	for k, v := range sysctls {
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("setting sysctl %s: %w", k, err)
		}
	}
	return nil
}

// setRlimits applies --ulimit values to the process (and what it execs).
func setRlimits(limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		res, ok := rlimitResources[l.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %s", l.Type)
		}
		if err := unix.Prlimit(0, res, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}, nil); err != nil {
			return fmt.Errorf("setting %s: %w", l.Type, err)
		}
	}
	return nil
}

// RlimitResources maps the OCI names of rlimits to their numbers.
var rlimitResources = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"strictatime": {false, unix.MS_STRICTATIME}, "relatime": {false, unix.MS_RELATIME},
	"noatime": {false, unix.MS_NOATIME},
	"bind":    {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
}

func parseMountOptions(opts []string) (flags, propagation uintptr, data string) {
	var extra []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
		} else if p, ok := propagationFlags[o]; ok {
			propagation = p
		} else {
			extra = append(extra, o)
		}
	}
	return flags, propagation, strings.Join(extra, ",")
}

func mountInto(rootfs string, m specs.Mount) error {
	dest, err := securejoin.SecureJoin(rootfs, m.Destination)
	if err != nil {
		return fmt.Errorf("resolving mount point %s: %w", m.Destination, err)
	}
	flags, propagation, data := parseMountOptions(m.Options)
	isBind := flags&unix.MS_BIND != 0
	if isBind {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		if err := makeMountPoint(dest, fi.IsDir()); err != nil {
			return err
		}
	} else if err := makeMountPoint(dest, true); err != nil {
		return err
	}
	if isBind {
		if err := unix.Mount(m.Source, dest, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return fmt.Errorf("binding %s on %s: %w", m.Source, m.Destination, err)
		}
		// A bind mount takes read-only and the other flags only on remount.
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := unix.Mount("", dest, "", rest|unix.MS_REMOUNT|unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("remounting %s: %w", m.Destination, err)
			}
		}
	} else if err := unix.Mount(m.Source, dest, m.Type, flags, data); err != nil {
		if err := mountInUserns(m, dest, flags, data, err); err != nil {
			return err
		}
	}
	if propagation != 0 {
		if err := unix.Mount("", dest, "", propagation, ""); err != nil {
			return fmt.Errorf("setting propagation of %s: %w", m.Destination, err)
		}
	}
	return nil
}

// mountInUserns retries, the way a user namespace allows, a mount that
// failed with err (a rootless berth: package rootless).
func mountInUserns(m specs.Mount, dest string, flags uintptr, data string, err error) error {
	switch {
	case m.Type == "devpts" && errors.Is(err, unix.EINVAL) && strings.Contains(data, "gid="):
		// A user namespace with one gid has no tty group (gid 5).
		if err := unix.Mount(m.Source, dest, m.Type, flags, withoutOption(data, "gid=")); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.Type, m.Destination, err)
		}
		return nil
	case m.Type == "sysfs" && errors.Is(err, unix.EPERM):
		// sysfs can be mounted only with a network namespace of the user
		// namespace's own (not --network host): the host's /sys then,
		// bound read-only.
		if err := unix.Mount("/sys", dest, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding /sys on %s: %w", m.Destination, err)
		}
		ro := unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | flags&(unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		if err := unix.Mount("", dest, "", ro, ""); err != nil {
			return fmt.Errorf("remounting %s read-only: %w", m.Destination, err)
		}
		return nil
	}
	return fmt.Errorf("mounting %s on %s: %w", m.Type, m.Destination, err)
}

// withoutOption drops the options starting with prefix from a mount's
// comma-separated data.
func withoutOption(data, prefix string) string {
	var keep []string
	for _, o := range strings.Split(data, ",") {
		if !strings.HasPrefix(o, prefix) {
			keep = append(keep, o)
		}
	}
	return strings.Join(keep, ",")
}

func makeMountPoint(dest string, dir bool) error {
	if dir {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return fmt.Errorf("creating mount point %s: %w", dest, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("creating mount point %s: %w", dest, err)
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return fmt.Errorf("creating mount point %s: %w", dest, err)
	}
	return f.Close()
}

func makeDevices(rootfs string, devices []specs.LinuxDevice, terminal bool) error {
	dev := filepath.Join(rootfs, "dev")
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range devices {
		path, err := securejoin.SecureJoin(rootfs, d.Path)
		if err != nil {
			return err
		}
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(*d.FileMode)
		}
		if err := unix.Mknod(path, unix.S_IFCHR|mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			// Without CAP_MKNOD (user namespaces) bind the host's node.
			if err := makeMountPoint(path, false); err != nil {
				return err
			}
			if err := unix.Mount(d.Path, path, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("creating device %s: %w", d.Path, err)
			}
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	if terminal {
		// The terminal is our stdin: make it the container's /dev/console.
		console := filepath.Join(dev, "console")
		if err := makeMountPoint(console, false); err != nil {
			return err
		}
		slave, err := os.Readlink("/proc/self/fd/0")
		if err != nil {
			return fmt.Errorf("finding the terminal: %w", err)
		}
		if err := unix.Mount(slave, console, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding /dev/console: %w", err)
		}
	}
	return nil
}

func pivotRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("entering rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// The old root is stacked on "."; detach it so the host's tree is gone.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching old root: %w", err)
	}
	return unix.Chdir("/")
}

// credential is the resolved user the command runs as.
type credential struct {
	uid, gid int
	groups   []int
	Home     string
}

func resolveUser(spec *specs.Spec) (*credential, error) {
	spec.Process.User.Username = spec.Annotations[AnnotationUser]
	u, err := user.GetExecUserPath(spec.Process.User.Username, &user.ExecUser{Home: "/"}, "/etc/passwd", "/etc/group")
	if err != nil {
		return nil, fmt.Errorf("resolving user %q in the container: %w", spec.Process.User.Username, err)
	}
	groups := u.Sgids
	if extra := spec.Annotations[AnnotationGroupAdd]; extra != "" {
		gids, err := user.GetAdditionalGroupsPath(strings.Split(extra, ","), "/etc/group")
		if err != nil {
			return nil, fmt.Errorf("resolving --group-add %s in the container: %w", extra, err)
		}
		groups = append(groups, gids...)
	}
	return &credential{uid: u.Uid, gid: u.Gid, groups: groups, Home: u.Home}, nil
}

// limitToUser applies Docker's rule for a non-root user: capabilities stay
// in the bounding set only, none is effective or permitted.
func limitToUser(spec *specs.Spec, c *credential) {
	if c.uid != 0 && spec.Process.Capabilities != nil {
		spec.Process.Capabilities.Effective = nil
		spec.Process.Capabilities.Permitted = nil
		spec.Process.Capabilities.Inheritable = nil
		spec.Process.Capabilities.Ambient = nil
	}
}

// setgroupsDenied tells whether this user namespace forbids setgroups (a
// rootless user's namespace with a single gid): the process keeps the
// groups it has, which map to no group in there.
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

func setCredentials(c *credential) error {
	groups := c.groups
	if groups == nil {
		groups = []int{}
	}
	if err := unix.Setgroups(groups); err != nil && !(errors.Is(err, unix.EPERM) && setgroupsDenied()) {
		return fmt.Errorf("setting groups: %w", err)
	}
	if err := unix.Setgid(c.gid); err != nil {
		return fmt.Errorf("setting gid %d: %w", c.gid, err)
	}
	if err := unix.Setuid(c.uid); err != nil {
		return fmt.Errorf("setting uid %d: %w", c.uid, err)
	}
	return nil
}

func withDefaultEnv(env []string, home string) []string {
	has := map[string]bool{}
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		has[k] = true
	}
	if !has["PATH"] {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !has["HOME"] {
		env = append(env, "HOME="+home)
	}
	return env
}

// lookPath finds the command like execvp would, inside the container, and
// says which exit code a failure means: 127 not found, 126 not runnable.
func lookPath(file string, env []string) (string, int, error) {
	check := func(p string) (int, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return 127, err
		}
		if fi.IsDir() {
			return 126, fmt.Errorf("%s: is a directory", p)
		}
		if err := unix.Access(p, unix.X_OK); err != nil {
			return 126, fmt.Errorf("%s: permission denied", p)
		}
		return 0, nil
	}
	if strings.Contains(file, "/") {
		if code, err := check(file); err != nil {
			return "", code, fmt.Errorf("exec: %q: %w", file, err)
		}
		return file, 0, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	notRunnable := error(nil)
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		code, err := check(p)
		if err == nil {
			return p, 0, nil
		}
		if code == 126 && notRunnable == nil {
			notRunnable = err
		}
	}
	if notRunnable != nil {
		return "", 126, fmt.Errorf("exec: %q: %w", file, notRunnable)
	}
	return "", 127, fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func execErrorCode(err error) int {
	if errors.Is(err, unix.ENOENT) {
		return 127
	}
	return 126
}

// CloseOnExecAll marks every descriptor above stderr close-on-exec, so that
// nothing of the host leaks into the container. main calls it first thing,
// for descriptors berth itself inherited (a shell's, a CI runner's).
func CloseOnExecAll() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}
