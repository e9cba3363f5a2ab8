package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/state"
)

// Network modes of a container (HostConfig.NetworkMode, as given).
const (
	modeNone      = "none"
	modeHost      = "host"
	modeContainer = "container"
	modeBridge    = "bridge" // the default network or a user-defined one
)

// ErrNoSuchNetwork is an unknown network.
var ErrNoSuchNetwork = netns.ErrNoSuchNetwork

// networkMode splits a NetworkMode into its kind and, for bridge
// networks, the network's name (for container:NAME, the container).
func networkMode(hc *container.HostConfig) (kind, name string) {
	m := string(hc.NetworkMode)
	switch {
	case m == "" || m == "default" || m == "bridge" || m == "podman":
		return modeBridge, netns.DefaultNetwork
	case m == "none":
		return modeNone, ""
	case m == "host":
		return modeHost, ""
	case m == modeSlirp:
		return modeSlirp, ""
	case strings.HasPrefix(m, "container:"):
		return modeContainer, strings.TrimPrefix(m, "container:")
	}
	return modeBridge, m
}

// networkNames lists the networks a bridge-mode container is on, its
// primary network (NetworkMode) first.
func networkNames(rec *state.Record) []string {
	kind, primary := networkMode(rec.HostConfig)
	if kind != modeBridge {
		return nil
	}
	var rest []string
	hasPrimary := rec.Networks == nil
	for name := range rec.Networks {
		if name == primary {
			hasPrimary = true
		} else {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	if hasPrimary {
		return append([]string{primary}, rest...)
	}
	return rest
}

// prepareNetworking checks the networking options of a new container and
// returns its endpoint settings by network. Nothing is made here.
func (e *Engine) prepareNetworking(o *CreateOptions) (map[string]*network.EndpointSettings, error) {
	hc := o.HostConfig
	kind, name := networkMode(hc)
	var ep *network.EndpointSettings
	if o.Networking != nil {
		for _, v := range o.Networking.EndpointsConfig {
			ep = v
		}
	}
	userNet := kind == modeBridge && name != netns.DefaultNetwork
	if ep != nil && kind != modeBridge && (len(ep.Aliases) > 0 || ep.IPAMConfig != nil || len(ep.MacAddress) > 0) {
		return nil, invalidf("--ip, --mac-address and --network-alias need a bridge network (not --network %s)", hc.NetworkMode)
	}
	if ep != nil && !userNet && len(ep.Aliases) > 0 {
		return nil, invalidf("network-scoped aliases are only supported for user-defined networks")
	}
	if ep != nil && !userNet && ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
		return nil, invalidf("user specified IP address is supported on user defined networks only")
	}
	if len(hc.Links) > 0 && kind != modeBridge {
		return nil, invalidf("--link needs a bridge network (not --network %s)", hc.NetworkMode)
	}
	for _, l := range hc.Links {
		target, _, err := parseLink(l)
		if err != nil {
			return nil, err
		}
		id, err := e.containers.Resolve(target)
		if err != nil {
			return nil, invalidf("could not get container for %s", target)
		}
		if st, err := e.State(id); err != nil || !st.Active() {
			return nil, invalidf("cannot link to a non running container: %s", target)
		}
	}
	switch kind {
	case modeContainer:
		id, err := e.containers.Resolve(name)
		if err != nil {
			return nil, err
		}
		if o.Config.Hostname != "" {
			return nil, invalidf("conflicting options: hostname and the network mode")
		}
		other, err := e.containers.Record(id)
		if err != nil {
			return nil, err
		}
		o.Config.Hostname = other.Config.Hostname
		return nil, nil
	case modeBridge:
	case modeSlirp:
		if !e.cfg.Rootless {
			return nil, invalidf("--network slirp4netns is for rootless berth: root's containers use bridge networks")
		}
		return nil, nil
	default:
		return nil, nil
	}
	var n *netns.Network
	var err error
	if userNet {
		if n, err = e.netStore().Lookup(name); err != nil {
			return nil, fmt.Errorf("network %s not found", name)
		}
		if n.Name != name {
			hc.NetworkMode = container.NetworkMode(n.Name) // an ID was given
		}
	}
	if ep == nil {
		ep = &network.EndpointSettings{}
	}
	ep = ep.Copy()
	if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
		ip := net.IP(ep.IPAMConfig.IPv4Address.AsSlice())
		if err := netns.CheckIP(n, ip); err != nil {
			return nil, err
		}
		eps, _ := e.netStore().Endpoints(n.Name)
		for _, x := range eps {
			if x.IP == ip.String() {
				return nil, invalidf("address %s is already in use on network %s", ip, n.Name)
			}
		}
	}
	netName := netns.DefaultNetwork
	if n != nil {
		netName = n.Name
	}
	return map[string]*network.EndpointSettings{netName: ep}, nil
}

// parseLink splits --link NAME[:ALIAS].
func parseLink(l string) (name, alias string, err error) {
	name, alias, _ = strings.Cut(l, ":")
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		return "", "", invalidf("invalid --link %q", l)
	}
	if alias == "" {
		alias = name
	}
	// docker's own form: /name:/linker/alias
	return name, alias[strings.LastIndex(alias, "/")+1:], nil
}

// connectNetworks gives a starting container (its init child is pid) its
// interfaces on all its networks, records them in its state and writes
// the hosts files. On error what was made is released.
func (e *Engine) connectNetworks(rec *state.Record, pid int) (err error) {
	names := networkNames(rec)
	if len(names) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			e.releaseNetworks(rec, false)
		}
	}()
	haveDefault := false
	for i, name := range names {
		att, err := e.connectOne(rec, pid, name, "eth"+strconv.Itoa(i), !haveDefault)
		if err != nil {
			return err
		}
		haveDefault = haveDefault || att.Gateway != ""
	}
	return nil
}

// connectOne attaches a running (or starting) container to one network.
func (e *Engine) connectOne(rec *state.Record, pid int, name, ifname string, defaultRoute bool) (*netns.Attachment, error) {
	ns := e.netStore()
	var n *netns.Network
	var err error
	if name == netns.DefaultNetwork {
		n, err = ns.EnsureDefault()
	} else {
		n, err = ns.Get(name)
		if errors.Is(err, netns.ErrNoSuchNetwork) {
			err = fmt.Errorf("network %s not found", name)
		}
	}
	if err != nil {
		return nil, err
	}
	if n, err = ns.EnsureBridge(n); err != nil {
		return nil, err
	}
	ep := rec.Networks[name]
	if ep == nil {
		ep = &network.EndpointSettings{}
	}
	var want net.IP
	if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
		want = net.IP(ep.IPAMConfig.IPv4Address.AsSlice())
	}
	var aliases []string
	if !n.IsDefault() {
		aliases = append([]string{rec.Name, rec.ID[:12]}, ep.Aliases...)
	}
	// The veth pair needs no address: it is made while one is allocated.
	hostVeth := netns.VethName(e.cfg.Root, rec.ID, n.Name)
	vethDone := make(chan error, 1)
	go func() {
		vethDone <- ns.Do(func() error {
			netns.DetachVeth(hostVeth) // a leftover of a crash
			return netns.CreateVeth(n, pid, ifname, hostVeth)
		})
	}()
	detach := func() { ns.Do(func() error { return netns.DetachVeth(hostVeth) }) }
	vethMade := false
	defer func() {
		if !vethMade {
			if <-vethDone == nil {
				detach()
			}
		}
	}()
	lock, err := ns.LockNetwork(n.Name)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	ip, err := ns.Allocate(n, rec.ID, want, aliases)
	if err != nil {
		return nil, err
	}
	mac := netns.MACFor(ip)
	if len(ep.MacAddress) == 6 {
		mac = net.HardwareAddr(ep.MacAddress)
	}
	att := netns.Attachment{
		Network: n.Name, NetworkID: n.ID, Bridge: n.Bridge, Table: n.Table(), Interface: ifname,
		HostVeth: hostVeth, IP: ip.String(), Prefix: n.Prefix(),
		MAC: mac.String(), Aliases: ep.Aliases, Internal: n.Internal,
	}
	var gw net.IP
	if !n.Internal {
		att.Gateway = n.Gateway
		if defaultRoute {
			gw = net.ParseIP(n.Gateway)
		}
	}
	fail := func(err error) (*netns.Attachment, error) {
		ns.Release(n.Name, rec.ID)
		e.updateState(rec.ID, func(st *state.State) { st.Networks = removeAttachment(st.Networks, n.Name) })
		return nil, err
	}
	// Recorded before the interface is configured: a crash from here on
	// leaves a record that the next command's fix-up releases.
	if err := e.updateState(rec.ID, func(st *state.State) {
		st.Networks = append(removeAttachment(st.Networks, n.Name), att)
	}); err != nil {
		return fail(err)
	}
	vethMade = true
	if err := <-vethDone; err != nil {
		return fail(err)
	}
	if err := netns.ConfigurePeer(netns.Interface{
		Pid: pid, Name: ifname, HostVeth: hostVeth, IP: ip, Prefix: n.Prefix(), Gateway: gw, MAC: mac,
	}); err != nil {
		detach()
		return fail(err)
	}
	e.writeHosts(rec.ID)
	if !n.IsDefault() {
		e.refreshPeers(n.Name, rec.ID)
	}
	return &att, nil
}

// renameOnNetworks gives a running container's new name to the hosts
// files of its user-defined networks.
func (e *Engine) renameOnNetworks(id string) {
	rec, err := e.containers.Record(id)
	if err != nil {
		return
	}
	st, err := e.containers.State(id)
	if err != nil || !st.Active() {
		return
	}
	ns := e.netStore()
	for _, a := range st.Networks {
		n, err := ns.Get(a.Network)
		if err != nil || n.IsDefault() {
			continue
		}
		lock, err := ns.LockNetwork(n.Name)
		if err != nil {
			continue
		}
		var aliases []string
		if ep := rec.Networks[n.Name]; ep != nil {
			aliases = ep.Aliases
		}
		ns.Allocate(n, id, net.ParseIP(a.IP), append([]string{rec.Name, id[:12]}, aliases...))
		e.refreshPeers(n.Name, "")
		lock.Unlock()
	}
}

func removeAttachment(atts []state.Attachment, name string) []state.Attachment {
	var out []state.Attachment
	for _, a := range atts {
		if a.Network != name {
			out = append(out, a)
		}
	}
	return out
}

// releaseNetworks undoes connectNetworks: veths deleted, addresses freed,
// the container's names removed from its peers' hosts files. It is
// idempotent, and also cleans up after a crash between the steps.
//
// exited says the container's processes are gone. Its network namespace
// then goes away by itself, and the kernel deletes its veths with it, in
// the background: deleting them here would cost the caller 10–20 ms
// (the kernel waits for an RCU grace period). They are deleted here
// only when a running container joined the namespace (--network
// container:NAME), which keeps it alive.
func (e *Engine) releaseNetworks(rec *state.Record, exited bool) {
	deleteVeths := !exited || e.hasNetJoiners(rec.ID)
	st, _ := e.containers.State(rec.ID)
	names := map[string]bool{}
	for _, n := range networkNames(rec) {
		names[n] = true
	}
	if st != nil {
		for _, a := range st.Networks {
			names[a.Network] = true
		}
	}
	if len(names) == 0 {
		return
	}
	if st != nil && len(st.Ports) > 0 {
		// The monitor died with ports published: its proxies went with
		// it, the nftables rules stay until now.
		for _, a := range st.Networks {
			e.unpublishPorts(rec.ID, a.Table)
		}
	}
	for name := range names {
		e.disconnectOne(rec.ID, name, deleteVeths)
	}
	if st != nil && len(st.Networks) > 0 {
		e.updateState(rec.ID, func(st *state.State) { st.Networks = nil })
	}
}

// netJoinMarker is the file that says container joiner shares id's
// network namespace (--network container:ID).
func (e *Engine) netJoinMarker(id, joiner string) string {
	return filepath.Join(e.containers.RunDir(id), "netjoin-"+joiner)
}

// hasNetJoiners tells whether a running container joined id's network
// namespace; markers of containers that no longer run are removed.
func (e *Engine) hasNetJoiners(id string) bool {
	markers, _ := filepath.Glob(e.netJoinMarker(id, "*"))
	found := false
	for _, m := range markers {
		joiner := strings.TrimPrefix(filepath.Base(m), "netjoin-")
		if st, err := e.containers.State(joiner); err == nil && st.Active() && pidAlive(st.Pid, st.PidStart) {
			found = true
		} else {
			os.Remove(m)
		}
	}
	return found
}

// disconnectOne releases container id's interface on one network.
func (e *Engine) disconnectOne(id, name string, deleteVeth bool) {
	ns := e.netStore()
	lock, err := ns.LockNetwork(name)
	if err != nil {
		return
	}
	defer lock.Unlock()
	if deleteVeth && (ns.Namespace() == "" || netns.IsNamespace(ns.Namespace())) {
		ns.Do(func() error { return netns.DetachVeth(netns.VethName(e.cfg.Root, id, name)) })
	}
	if changed, _ := ns.Release(name, id); changed && name != netns.DefaultNetwork {
		e.refreshPeers(name, id)
	}
}

// writeHosts rewrites a container's hosts file in place (it is
// bind-mounted: a new file would not be seen inside).
func (e *Engine) writeHosts(id string) {
	rec, err := e.containers.Record(id)
	if err != nil {
		return
	}
	st, err := e.containers.State(id)
	if err != nil {
		return
	}
	writeInPlace(filepath.Join(e.containers.Dir(id), "hosts"), []byte(e.hostsContent(rec, st.Networks)))
}

// refreshPeers rewrites the hosts files of the containers on a network
// (but except). The caller holds the network's lock.
func (e *Engine) refreshPeers(name, except string) {
	eps, err := e.netStore().Endpoints(name)
	if err != nil {
		return
	}
	for _, ep := range eps {
		if ep.ContainerID != except {
			e.writeHosts(ep.ContainerID)
		}
	}
}

// writeInPlace replaces a file's content keeping its inode: the new
// content is written over the old, then the file is cut to its length.
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(data)))
}

const hostsBase = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"

// hostsContent is a container's /etc/hosts: localhost, its own name (on
// its first address, else 127.0.1.1), --add-host entries, --link
// entries, and on user-defined networks every container of the network
// by name, short ID and alias.
func (e *Engine) hostsContent(rec *state.Record, atts []state.Attachment) string {
	if rec.HostConfig.NetworkMode == modeHost {
		b, _ := os.ReadFile("/etc/hosts")
		s := string(b)
		for _, h := range rec.HostConfig.ExtraHosts {
			if name, ip, ok := strings.Cut(h, ":"); ok {
				s += ip + "\t" + name + "\n"
			}
		}
		return s
	}
	var b strings.Builder
	b.WriteString(hostsBase)
	if len(atts) > 0 {
		b.WriteString(atts[0].IP + "\t" + rec.Config.Hostname + "\n")
	} else {
		b.WriteString("127.0.1.1\t" + rec.Config.Hostname + "\n")
	}
	for _, h := range rec.HostConfig.ExtraHosts {
		if name, ip, ok := strings.Cut(h, ":"); ok {
			if ip == "host-gateway" {
				// docker's special value: the host, as the container
				// reaches it (its bridge's address).
				if ip = hostGateway(atts); ip == "" {
					continue
				}
			}
			b.WriteString(ip + "\t" + name + "\n")
		}
	}
	for _, l := range rec.HostConfig.Links {
		if ip, names := e.linkTarget(l, atts); ip != "" {
			b.WriteString(ip + "\t" + strings.Join(names, " ") + "\n")
		}
	}
	for _, a := range atts {
		if a.Network == netns.DefaultNetwork {
			continue
		}
		eps, _ := e.netStore().Endpoints(a.Network)
		for _, ep := range eps {
			if len(ep.Names) > 0 {
				b.WriteString(ep.IP + "\t" + strings.Join(ep.Names, " ") + "\n")
			}
		}
	}
	return b.String()
}

// hostGateway is the host's address on the container's first network
// that has one ("" without).
func hostGateway(atts []state.Attachment) string {
	for _, a := range atts {
		if a.Gateway != "" {
			return a.Gateway
		}
	}
	return ""
}

// linkTarget finds a --link's container's address on a network the two
// share (else its first) and the names it has in the linking container.
func (e *Engine) linkTarget(link string, atts []state.Attachment) (ip string, names []string) {
	name, alias, err := parseLink(link)
	if err != nil {
		return "", nil
	}
	id, err := e.containers.Resolve(name)
	if err != nil {
		return "", nil
	}
	st, err := e.containers.State(id)
	if err != nil || len(st.Networks) == 0 {
		return "", nil
	}
	ip = st.Networks[0].IP
	for _, a := range st.Networks {
		for _, mine := range atts {
			if a.Network == mine.Network {
				ip = a.IP
			}
		}
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return "", nil
	}
	names = []string{alias}
	if rec.Name != alias {
		names = append(names, rec.Name)
	}
	names = append(names, id[:12])
	return ip, names
}

// linkEnv is docker's legacy environment of --link: ALIAS_NAME,
// ALIAS_PORT*, ALIAS_ENV_* for each linked container.
func (e *Engine) linkEnv(rec *state.Record) ([]string, error) {
	var env []string
	for _, l := range rec.HostConfig.Links {
		name, alias, err := parseLink(l)
		if err != nil {
			return nil, err
		}
		id, err := e.containers.Resolve(name)
		if err != nil {
			return nil, invalidf("could not get container for %s", name)
		}
		st, err := e.State(id)
		if err != nil || !st.Active() {
			return nil, invalidf("cannot link to a non running container: %s", name)
		}
		target, err := e.containers.Record(id)
		if err != nil {
			return nil, err
		}
		ip, _ := e.linkTarget(l, nil)
		prefix := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(alias))
		env = append(env, prefix+"_NAME=/"+rec.Name+"/"+alias)
		type port struct {
			num   int
			proto string
		}
		var ports []port
		for p := range target.Config.ExposedPorts {
			ports = append(ports, port{int(p.Num()), string(p.Proto())})
		}
		sort.Slice(ports, func(i, j int) bool {
			if ports[i].num != ports[j].num {
				return ports[i].num < ports[j].num
			}
			return ports[i].proto < ports[j].proto
		})
		for i, p := range ports {
			n := strconv.Itoa(p.num)
			url := p.proto + "://" + ip + ":" + n
			if i == 0 {
				env = append(env, prefix+"_PORT="+url)
			}
			k := prefix + "_PORT_" + n + "_" + strings.ToUpper(p.proto)
			env = append(env, k+"="+url, k+"_ADDR="+ip, k+"_PORT="+n, k+"_PROTO="+p.proto)
		}
		for _, kv := range target.Config.Env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "HOME" || k == "PATH" {
				continue
			}
			env = append(env, prefix+"_ENV_"+k+"="+v)
		}
	}
	return env, nil
}

// resolvConf is a container's /etc/resolv.conf by docker's rules: the
// host's, with --dns, --dns-search and --dns-option replacing its
// nameservers, search domains and options; outside the host's network
// localhost nameservers are dropped (they would be the container's own),
// and if none is left docker's public defaults are used.
func resolvConf(host string, hc *container.HostConfig, hostNetwork bool) string {
	var other, ns, search, opts []string
	for _, line := range strings.Split(host, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "nameserver" && len(f) > 1:
			ns = append(ns, f[1])
		case (f[0] == "search" || f[0] == "domain") && len(f) > 1:
			search = f[1:]
		case f[0] == "options" && len(f) > 1:
			opts = append(opts, f[1:]...)
		default:
			other = append(other, line)
		}
	}
	if len(hc.DNS) > 0 {
		ns = nil
		for _, a := range hc.DNS {
			ns = append(ns, a.String())
		}
	} else if !hostNetwork {
		var kept []string
		for _, s := range ns {
			if ip := net.ParseIP(s); ip != nil && ip.IsLoopback() {
				continue
			}
			kept = append(kept, s)
		}
		ns = kept
		if len(ns) == 0 {
			ns = []string{"8.8.8.8", "8.8.4.4"}
		}
	}
	if len(hc.DNSSearch) > 0 {
		search = nil
		if !(len(hc.DNSSearch) == 1 && hc.DNSSearch[0] == ".") {
			search = hc.DNSSearch
		}
	}
	if len(hc.DNSOptions) > 0 {
		opts = hc.DNSOptions
	}
	var b strings.Builder
	for _, l := range other {
		b.WriteString(l + "\n")
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, s := range ns {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(opts) > 0 {
		b.WriteString("options " + strings.Join(opts, " ") + "\n")
	}
	return b.String()
}
