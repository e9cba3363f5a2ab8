package engine

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage/pkg/idtools"

	"github.com/berth-dev/berth/rootless"
	"github.com/berth-dev/berth/state"
)

// --userns modes besides host and keep-id (engine/rootless.go), as podman
// has them (docs/compat.md, Rootless):
//
//	nomap       rootless only: the user's own uid and gid are not mapped;
//	            container root is the first subordinate id and the
//	            container's ids are the subordinate range alone.
//	auto[:size=N]  a range of ids of the container's own, which no other
//	            container's maps overlap: rootless from the user's
//	            subordinate ids, as root from the ranges of user
//	            "containers" in /etc/subuid and /etc/subgid. c/storage
//	            chooses it under its userns lock when it makes the
//	            container's layer (the size, without size=, is the
//	            image's highest id + 1, at least 1024, at most 65536: its
//	            AutoUserNsMinSize/MaxSize); the record keeps it.
const (
	usernsNomap = "nomap"
	usernsAuto  = "auto"

	// autoUsernsUser owns root's ranges for --userns=auto (podman's name,
	// c/storage's RootAutoUserNsUser).
	autoUsernsUser = "containers"
)

// The files of root's --userns=auto ranges (variables for the tests).
var subuidFile, subgidFile = "/etc/subuid", "/etc/subgid"

// usernsMode is a parsed --userns.
type usernsMode struct {
	kind string // "" (host), keep-id, nomap, auto
	size uint32 // auto:size=N; 0 lets c/storage size it from the image
}

// parseUserns parses --userns; its errors name the part that is wrong.
func parseUserns(s string) (usernsMode, error) {
	kind, opts, hasOpts := strings.Cut(s, ":")
	switch kind {
	case "", "host":
		if hasOpts {
			break
		}
		return usernsMode{}, nil
	case usernsKeepID, usernsNomap:
		if hasOpts {
			return usernsMode{}, invalidf("--userns=%s: %s takes no options here (berth has no keep-id:uid=,gid=)", s, kind)
		}
		return usernsMode{kind: kind}, nil
	case usernsAuto:
		m := usernsMode{kind: kind}
		if !hasOpts {
			return m, nil
		}
		for _, o := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "size":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil || n == 0 {
					return usernsMode{}, invalidf("--userns=%s: invalid size %q (a positive number of ids)", s, v)
				}
				m.size = uint32(n)
			case "uidmapping", "gidmapping":
				return usernsMode{}, invalidf("--userns=%s: the auto option %s is not supported (size only)", s, k)
			default:
				return usernsMode{}, invalidf("--userns=%s: unknown auto option %q (size=N)", s, o)
			}
		}
		return m, nil
	}
	return usernsMode{}, invalidf("--userns=%s: unknown mode %q (host, keep-id, nomap, auto[:size=N])", s, kind)
}

func usernsOf(hc *container.HostConfig) usernsMode {
	m, _ := parseUserns(string(hc.UsernsMode)) // checked by Create
	return m
}

// checkAutoRanges says, for root's --userns=auto, whether user
// "containers" has ranges in both files.
func checkAutoRanges() error {
	for _, f := range []string{subuidFile, subgidFile} {
		if len(rootless.SubIDs(f, autoUsernsUser, -1)) == 0 {
			return invalidf("--userns=auto needs ranges of user %q in /etc/subuid and /etc/subgid (e.g. %s:2147483647:2147483648); %s has none", autoUsernsUser, autoUsernsUser, f)
		}
	}
	return nil
}

// nomapMaps are a --userns=nomap container's: root at the first
// subordinate id (1 in berth's namespace), then the rest of the range;
// the user's own id (0 in berth's namespace) is not mapped.
func nomapMaps() *idMaps {
	return &idMaps{
		uid: []idMap{{0, 1, usernsSize("/proc/self/uid_map") - 1}},
		gid: []idMap{{0, 1, usernsSize("/proc/self/gid_map") - 1}},
	}
}

// fixedMaps are the maps of a container whose maps follow from its mode
// alone (keep-id, nomap); nil for host and auto.
func fixedMaps(hc *container.HostConfig) *idMaps {
	switch usernsOf(hc).kind {
	case usernsKeepID:
		return keepIDMaps(hc)
	case usernsNomap:
		if rootless.SingleMapping() {
			return nil // (refused by Create)
		}
		return nomapMaps()
	}
	return nil
}

// containerMaps are the maps the init child of container id gets: those
// of its mode, or for auto the range recorded at create time.
func (e *Engine) containerMaps(id string, hc *container.HostConfig) (*idMaps, error) {
	if usernsOf(hc).kind != usernsAuto {
		if !e.cfg.Rootless {
			return nil, nil
		}
		return fixedMaps(hc), nil
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return nil, err
	}
	if rec.IDMaps == nil || len(rec.IDMaps.UID) == 0 || len(rec.IDMaps.GID) == 0 {
		return nil, fmt.Errorf("container %s: --userns=auto without recorded id maps", id)
	}
	return mapsFromRecord(rec.IDMaps), nil
}

func mapsFromRecord(r *state.IDMaps) *idMaps {
	conv := func(in []state.IDMap) (out []idMap) {
		for _, x := range in {
			out = append(out, idMap{x.Container, x.Host, x.Size})
		}
		return out
	}
	return &idMaps{uid: conv(r.UID), gid: conv(r.GID)}
}

func (m *idMaps) record() *state.IDMaps {
	conv := func(in []idMap) (out []state.IDMap) {
		for _, x := range in {
			out = append(out, state.IDMap{Container: x.Container, Host: x.Host, Size: x.Size})
		}
		return out
	}
	return &state.IDMaps{UID: conv(m.uid), GID: conv(m.gid)}
}

// withRootlessUser makes USER the rootless user's name while fn runs:
// c/storage finds a rootless user's subordinate ids for --userns=auto by
// $USER (getAdditionalSubIDs), which a `sudo -u` or `runuser` may have
// left as another user's.
func withRootlessUser(fn func() error) error {
	if !rootless.Joined() {
		return fn()
	}
	name := strconv.Itoa(rootless.UID())
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	old, had := os.LookupEnv("USER")
	os.Setenv("USER", name)
	defer func() {
		if had {
			os.Setenv("USER", old)
		} else {
			os.Unsetenv("USER")
		}
	}()
	return fn()
}

// InspectIDMappings is podman's HostConfig.IDMappings: the maps of a
// container with a user namespace of its own, as
// "container:host:size" (host ids as berth sees them: for a rootless
// berth, ids of the user's namespace, 0 the user and 1… the
// subordinate ids).
type InspectIDMappings struct {
	UIDMap []string `json:"UidMap"`
	GIDMap []string `json:"GidMap"`
}

func inspectIDMappings(r *state.IDMaps) *InspectIDMappings {
	if r == nil {
		return nil
	}
	conv := func(in []state.IDMap) []string {
		out := []string{}
		for _, x := range in {
			out = append(out, fmt.Sprintf("%d:%d:%d", x.Container, x.Host, x.Size))
		}
		return out
	}
	return &InspectIDMappings{UIDMap: conv(r.UID), GIDMap: conv(r.GID)}
}

func idMapsFrom(uids, gids []idtools.IDMap) *idMaps {
	conv := func(in []idtools.IDMap) (out []idMap) {
		for _, x := range in {
			out = append(out, idMap{x.ContainerID, x.HostID, x.Size})
		}
		return out
	}
	return &idMaps{uid: conv(uids), gid: conv(gids)}
}

// reachableFor lets the root of a container whose maps leave out the
// owner of berth's files (nomap, auto) reach its rootfs and the files
// bound from the store (hosts, volumes), as podman does (libpod's
// makeAccessible): every directory on the way that the container's
// root does not own gets --x for others (search only, no listing). The
// sealed binary is exec'd through a descriptor instead (oci.Fork).
func (e *Engine) reachableFor(rec *state.Record, spec *specs.Spec) error {
	if rec.IDMaps == nil {
		return nil
	}
	m := mapsFromRecord(rec.IDMaps)
	if m.mapsHost(0) {
		return nil // (keep-id: berth's owner is mapped, root may pass)
	}
	uid, gid := m.rootHost()
	dirs := []string{spec.Root.Path}
	for _, mt := range spec.Mounts {
		if mt.Type != "bind" || !strings.HasPrefix(mt.Source, e.cfg.Root+"/") {
			continue
		}
		if fi, err := os.Stat(mt.Source); err == nil && !fi.IsDir() {
			dirs = append(dirs, filepath.Dir(mt.Source))
			if filepath.Dir(mt.Source) == e.containers.Dir(rec.ID) {
				// hosts, hostname, resolv.conf: the container's root's,
				// as with any other user namespace.
				if err := os.Lchown(mt.Source, uid, gid); err != nil {
					return fmt.Errorf("--userns=%s: %w", rec.HostConfig.UsernsMode, err)
				}
			}
		} else {
			dirs = append(dirs, mt.Source)
		}
	}
	for _, d := range dirs {
		if err := makeAccessible(d, uid, gid); err != nil {
			return fmt.Errorf("--userns=%s: letting the container's root reach %s: %w", rec.HostConfig.UsernsMode, d, err)
		}
	}
	return nil
}

// makeAccessible adds --x--x--x to dir and each directory above it that
// is not owned by uid and gid (podman's rule).
func makeAccessible(dir string, uid, gid int) error {
	for ; dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) == uid && int(st.Gid) == gid {
			continue
		}
		if fi.Mode()&0o111 != 0o111 {
			if err := os.Chmod(dir, fi.Mode()|0o111); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapsHost tells whether host id h (of berth's namespace) is mapped, in
// both the uid and the gid maps.
func (m *idMaps) mapsHost(h int) bool {
	in := func(l []idMap) bool {
		for _, x := range l {
			if h >= x.Host && h < x.Host+x.Size {
				return true
			}
		}
		return false
	}
	return in(m.uid) && in(m.gid)
}

// rootHost is where container root's uid and gid are, outside.
func (m *idMaps) rootHost() (uid, gid int) {
	find := func(l []idMap) int {
		for _, x := range l {
			if x.Container == 0 {
				return x.Host
			}
		}
		return -1
	}
	return find(m.uid), find(m.gid)
}
