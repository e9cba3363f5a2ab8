package netns

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/state"
)

// Attachment is a container's interface on a network, as recorded in its
// state (state.State.Networks). The port-publishing code reads IP, Bridge
// and Table from it.
type Attachment = state.Attachment

// DefaultNetwork is the name of the default bridge network (docker's).
const DefaultNetwork = "bridge"

// DefaultRoot is the store whose default bridge is called berth0.
const DefaultRoot = "/var/lib/berth"

// GlobalLockPath is the host-wide lock held while a subnet is chosen and
// a bridge is made, by every berth store on the host.
var GlobalLockPath = "/run/berth-net.lock"

// Errors callers tell apart.
var (
	ErrNoSuchNetwork = errors.New("network not found")
	ErrNetworkExists = errors.New("network already exists")
	ErrInvalid       = errors.New("invalid network request")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Network is a bridge network's configuration: ROOT/networks/NAME.json.
type Network struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`
	Bridge   string            `json:"bridge"`
	Subnet   string            `json:"subnet"` // CIDR
	Gateway  string            `json:"gateway"`
	IPRange  string            `json:"ipRange,omitempty"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
}

// Table is the name of berth's nftables table (family ip) of the network:
// the bridge's name.
func (n *Network) Table() string { return n.Bridge }

// IsDefault tells whether n is the default bridge network.
func (n *Network) IsDefault() bool { return n.Name == DefaultNetwork }

// IPNet is the network's subnet.
func (n *Network) IPNet() *net.IPNet {
	_, sn, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return nil
	}
	return sn
}

// Prefix is the subnet's prefix length.
func (n *Network) Prefix() int {
	if sn := n.IPNet(); sn != nil {
		ones, _ := sn.Mask.Size()
		return ones
	}
	return 0
}

// Store holds a berth store's networks: ROOT/networks.
type Store struct {
	root string
	dir  string

	// Where the bridges are (a rootless user's: see In): the network
	// namespace at nsPath ("" for the caller's), made ready by prepare,
	// with globalLock as the lock of subnet choices in it.
	nsPath     string
	prepare    func() error
	globalLock string
}

// OpenStore opens the networks of the berth store at root, whose bridges
// are in the caller's network namespace (the host's).
func OpenStore(root string) *Store {
	return &Store{root: root, dir: filepath.Join(root, "networks"), globalLock: GlobalLockPath}
}

// In puts the store's bridges, their nftables tables and the host ends
// of the containers' veths in the network namespace at path, which
// prepare makes ready (called before each use; it must be cheap when the
// namespace is there already), and makes lockPath the lock held while a
// subnet is chosen there. This is a rootless berth's: its bridges live
// in a namespace of the user's (engine/rootlessnet.go).
func (s *Store) In(path, lockPath string, prepare func() error) *Store {
	c := *s
	c.nsPath, c.prepare, c.globalLock = path, prepare, lockPath
	return &c
}

// Namespace is the path of the network namespace holding the store's
// bridges; "" for the caller's own.
func (s *Store) Namespace() string { return s.nsPath }

// Do runs fn where the store's bridges are: in the caller's namespace,
// or (see In) on a thread moved into the store's, made ready first.
// Host-side operations of veths and port rules go through it.
func (s *Store) Do(fn func() error) error {
	if s.nsPath == "" {
		return fn()
	}
	if s.prepare != nil {
		if err := s.prepare(); err != nil {
			return err
		}
	}
	return Do(s.nsPath, fn)
}

// Root is the berth store's root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) mkdir() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("creating network directory: %w", err)
	}
	return nil
}

func (s *Store) configPath(name string) string { return filepath.Join(s.dir, name+".json") }

// Lock takes the store's lock for creating and removing networks.
func (s *Store) Lock() (*state.Lock, error) {
	if err := s.mkdir(); err != nil {
		return nil, err
	}
	return state.LockFile(filepath.Join(s.dir, ".lock"))
}

// LockNetwork takes a network's lock: held while its addresses are
// allocated or released and while the hosts files of its containers are
// rewritten.
func (s *Store) LockNetwork(name string) (*state.Lock, error) {
	if err := s.mkdir(); err != nil {
		return nil, err
	}
	return state.LockFile(filepath.Join(s.dir, name+".lock"))
}

// LockGlobal takes the host-wide network lock.
func LockGlobal() (*state.Lock, error) {
	return lockGlobalAt(GlobalLockPath)
}

func lockGlobalAt(path string) (*state.Lock, error) {
	os.MkdirAll(filepath.Dir(path), 0o755)
	return state.LockFile(path)
}

// lockGlobal takes the lock of subnet choices where the store's bridges
// are (the host's, or a rootless user's namespace's).
func (s *Store) lockGlobal() (*state.Lock, error) { return lockGlobalAt(s.globalLock) }

// Get reads a network's configuration by name.
func (s *Store) Get(name string) (*Network, error) {
	data, err := os.ReadFile(s.configPath(name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchNetwork, name)
		}
		return nil, err
	}
	var n Network
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("decoding network %s: %w", name, err)
	}
	return &n, nil
}

// List returns the store's networks by name.
func (s *Store) List() ([]*Network, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []*Network
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".ipam") {
			continue
		}
		if n, err := s.Get(name); err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lookup finds a network by name, full ID or unique ID prefix.
func (s *Store) Lookup(ref string) (*Network, error) {
	if validNetworkName(ref) {
		if n, err := s.Get(ref); err == nil {
			return n, nil
		}
	}
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var match *Network
	for _, n := range all {
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			if match != nil {
				return nil, fmt.Errorf("%w: %s is ambiguous", ErrNoSuchNetwork, ref)
			}
			match = n
		}
	}
	if match == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchNetwork, ref)
	}
	return match, nil
}

func (s *Store) save(n *Network) error {
	data, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(s.configPath(n.Name), append(data, '\n'), 0o600)
}

// hash6 is 6 hex digits of a hash of s.
func hash6(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:6]
}

// DevicePrefix is the name prefix of every bridge and nftables table of a
// store other than the default one ("bth" + 6 hex of its root).
func DevicePrefix(root string) string { return "bth" + hash6(root) }

// VethPrefix is the name prefix of the host ends of a store's veth pairs.
func VethPrefix(root string) string { return "vb" + hash6(root) }

// bridgeName names a network's bridge device (at most 15 characters):
// berth0 and berth-ID9 in the default store, bth+hash(root)+hash(name) in
// any other, so that stores on one host never share a device.
func bridgeName(root, name, id string) string {
	if root == DefaultRoot {
		if name == DefaultNetwork {
			return "berth0"
		}
		return "berth-" + id[:9]
	}
	return DevicePrefix(root) + hash6(name)
}

// VethName is the host end of container id's veth on network name.
func VethName(root, id, network string) string {
	h := sha256.Sum256([]byte(id + "\x00" + network))
	return VethPrefix(root) + hex.EncodeToString(h[:])[:7]
}

func newNetworkID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// validNetworkName is docker's rule for names.
func validNetworkName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// CreateRequest is `network create`.
type CreateRequest struct {
	Name     string
	Driver   string // "" or "bridge"
	Subnet   string
	Gateway  string
	IPRange  string
	Internal bool
	Labels   map[string]string
}

// reserved names are network modes, not networks.
func reserved(name string) bool {
	return name == "host" || name == "none" || name == "default" || name == "podman" || name == "container" || strings.HasPrefix(name, "container:")
}

// Create makes a network: its configuration, its bridge device with the
// gateway address, and its nftables table. Nothing is left on error.
func (s *Store) Create(req CreateRequest) (*Network, error) {
	if !validNetworkName(req.Name) {
		return nil, invalidf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.Name)
	}
	if reserved(req.Name) {
		return nil, invalidf("network name %q is reserved", req.Name)
	}
	if req.Driver != "" && req.Driver != "bridge" {
		return nil, invalidf("network driver %q is not supported (only bridge)", req.Driver)
	}
	n, err := s.newNetwork(req)
	if err != nil {
		return nil, err
	}
	lock, err := s.Lock()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if _, err := s.Get(req.Name); err == nil {
		return nil, fmt.Errorf("%w: network with name %s already exists", ErrNetworkExists, req.Name)
	}
	if err := s.allocateAndMake(n, req.Subnet == ""); err != nil {
		return nil, err
	}
	return n, nil
}

// newNetwork checks a request's addresses and fills in a Network without
// a subnet when none was asked for.
func (s *Store) newNetwork(req CreateRequest) (*Network, error) {
	id, err := newNetworkID()
	if err != nil {
		return nil, err
	}
	n := &Network{ID: id, Name: req.Name, Driver: "bridge", Internal: req.Internal, Labels: req.Labels, Created: time.Now().UTC()}
	n.Bridge = bridgeName(s.root, n.Name, n.ID)
	if req.Subnet == "" {
		if req.Gateway != "" || req.IPRange != "" {
			return nil, invalidf("--gateway and --ip-range need --subnet")
		}
		return n, nil
	}
	ip, sn, err := net.ParseCIDR(req.Subnet)
	if err != nil || ip.To4() == nil {
		return nil, invalidf("invalid subnet %q: want an IPv4 CIDR such as 10.1.2.0/24", req.Subnet)
	}
	if ones, _ := sn.Mask.Size(); ones > 30 || ones < 8 {
		return nil, invalidf("invalid subnet %s: the prefix length must be between 8 and 30", req.Subnet)
	}
	if !ip.Equal(sn.IP) {
		return nil, invalidf("invalid subnet %s: host bits are set (did you mean %s?)", req.Subnet, sn)
	}
	n.Subnet = sn.String()
	if req.IPRange != "" {
		rip, rn, err := net.ParseCIDR(req.IPRange)
		if err != nil || rip.To4() == nil || !rip.Equal(rn.IP) {
			return nil, invalidf("invalid --ip-range %q", req.IPRange)
		}
		ro, _ := rn.Mask.Size()
		so, _ := sn.Mask.Size()
		if ro < so || !sn.Contains(rn.IP) {
			return nil, invalidf("--ip-range %s is not inside subnet %s", req.IPRange, n.Subnet)
		}
		n.IPRange = rn.String()
	}
	if req.Gateway != "" {
		gw := net.ParseIP(req.Gateway).To4()
		if gw == nil || !sn.Contains(gw) || gw.Equal(sn.IP) || gw.Equal(broadcast(sn)) {
			return nil, invalidf("invalid --gateway %s: not a host address of subnet %s", req.Gateway, n.Subnet)
		}
		n.Gateway = gw.String()
	} else {
		n.Gateway = addIP(sn.IP, 1).String()
	}
	return n, nil
}

// allocateAndMake chooses the network's subnet if it has none, checks it
// against the host and the store's other networks, writes the
// configuration and makes the bridge, all under the host-wide lock.
func (s *Store) allocateAndMake(n *Network, choose bool) error {
	glock, err := s.lockGlobal()
	if err != nil {
		return err
	}
	defer glock.Unlock()
	var taken []takenNet
	if err := s.Do(func() (err error) { taken, err = hostNetworks(""); return err }); err != nil {
		return err
	}
	others, err := s.List()
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Name != n.Name {
			if sn := o.IPNet(); sn != nil {
				taken = append(taken, takenNet{sn, "network " + o.Name})
			}
		}
	}
	if choose {
		sn, err := chooseSubnet(taken)
		if err != nil {
			return err
		}
		n.Subnet = sn.String()
		n.Gateway = addIP(sn.IP, 1).String()
	} else if t := overlapping(n.IPNet(), taken); t != "" {
		return invalidf("subnet %s overlaps with %s", n.Subnet, t)
	}
	if err := s.save(n); err != nil {
		return err
	}
	if err := s.Do(func() error { return makeBridge(n) }); err != nil {
		os.Remove(s.configPath(n.Name))
		return err
	}
	return nil
}

// EnsureDefault returns the default bridge network, making its
// configuration on first use.
func (s *Store) EnsureDefault() (*Network, error) {
	if n, err := s.Get(DefaultNetwork); err == nil {
		return n, nil
	}
	lock, err := s.Lock()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if n, err := s.Get(DefaultNetwork); err == nil {
		return n, nil
	}
	n, err := s.newNetwork(CreateRequest{Name: DefaultNetwork})
	if err != nil {
		return nil, err
	}
	if err := s.allocateAndMake(n, true); err != nil {
		return nil, err
	}
	return n, nil
}

// Remove deletes a network: its bridge, nftables table and files. The
// caller checks that no container uses it.
func (s *Store) Remove(n *Network) error {
	lock, err := s.Lock()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := s.removeBridge(n); err != nil {
		return err
	}
	os.Remove(s.ipamPath(n.Name))
	os.Remove(filepath.Join(s.dir, n.Name+".lock"))
	if err := os.Remove(s.configPath(n.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
