package engine

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/state"
)

// Container is one container as listings and inspect see it.
type Container struct {
	Record *state.Record
	State  *state.State
	SizeRw int64 // with ListOptions.Size
}

// ListOptions is `ps`.
type ListOptions struct {
	All  bool
	Size bool
}

// List returns containers, newest first. It reads files only: no lock is
// taken, so a slow start or pull never blocks it.
func (e *Engine) List(ctx context.Context, o ListOptions) ([]Container, error) {
	ids, err := e.containers.IDs()
	if err != nil {
		return nil, err
	}
	var out []Container
	for _, id := range ids {
		rec, err := e.containers.Record(id)
		if err != nil {
			continue // removed meanwhile
		}
		st, err := e.State(id)
		if err != nil {
			continue
		}
		if !o.All && !st.Active() {
			continue
		}
		c := Container{Record: rec, State: st}
		if o.Size {
			if images, err := e.Images(); err == nil {
				c.SizeRw, _ = images.RootfsSize(id)
			}
		}
		out = append(out, c)
	}
	sortNewestFirst(out)
	return out, nil
}

func sortNewestFirst(cs []Container) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].Record.Created.After(cs[j-1].Record.Created); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// Get returns one container.
func (e *Engine) Get(ctx context.Context, ref string) (*Container, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return nil, err
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return nil, err
	}
	st, err := e.State(id)
	if err != nil {
		return nil, err
	}
	return &Container{Record: rec, State: st}, nil
}

// LogPath is where a container's json-file log lives.
func (e *Engine) LogPath(id string) string {
	return filepath.Join(e.containers.Dir(id), "ctr.log")
}

// ContainerInspect is docker's inspect of a container, with podman's
// HostConfig.IDMappings for a container with a user namespace of its own
// (engine/userns.go).
type ContainerInspect struct {
	*container.InspectResponse
	HostConfig *InspectHostConfig
}

// InspectHostConfig is docker's HostConfig plus podman's IDMappings.
type InspectHostConfig struct {
	*container.HostConfig
	IDMappings *InspectIDMappings `json:",omitempty"`
}

// Inspect returns a container in Docker's inspect format.
func (e *Engine) Inspect(ctx context.Context, ref string) (*ContainerInspect, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	rec, st := c.Record, c.State
	dir := e.containers.Dir(rec.ID)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "0001-01-01T00:00:00Z"
		}
		return t.Format(time.RFC3339Nano)
	}
	resp := &container.InspectResponse{
		ID:      rec.ID,
		Created: ts(rec.Created),
		Path:    rec.Path,
		Args:    nonNil(rec.Args),
		State: &container.State{
			Status:     container.ContainerState(st.Status),
			Running:    st.Active(), // docker: true while restarting too
			Paused:     st.Status == state.StatusPaused,
			Restarting: st.Status == state.StatusRestarting,
			OOMKilled:  st.OOMKilled,
			Dead:       st.Status == state.StatusDead,
			Pid:        st.Pid,
			ExitCode:   st.ExitCode,
			Error:      st.Error,
			StartedAt:  ts(st.StartedAt),
			FinishedAt: ts(st.FinishedAt),
			Health:     st.Health,
		},
		Image:          "sha256:" + rec.ImageID,
		ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		HostnamePath:   filepath.Join(dir, "hostname"),
		HostsPath:      filepath.Join(dir, "hosts"),
		LogPath:        e.LogPath(rec.ID),
		Name:           "/" + rec.Name,
		RestartCount:   st.RestartCount,
		Driver:         rec.Driver,
		Platform:       "linux",
		HostConfig:     rec.HostConfig,
		Config:         rec.Config,
		Mounts:         e.volumeMountPoints(rec),
		NetworkSettings: &container.NetworkSettings{
			Ports:      c.Ports(),
			SandboxKey: sandboxKey(st),
			Networks:   e.inspectNetworks(rec, st),
		},
	}
	return &ContainerInspect{
		InspectResponse: resp,
		HostConfig:      &InspectHostConfig{HostConfig: rec.HostConfig, IDMappings: inspectIDMappings(rec.IDMaps)},
	}, nil
}

// inspectNetworks is docker's NetworkSettings.Networks: one entry per
// network, with the addresses while the container runs.
func (e *Engine) inspectNetworks(rec *state.Record, st *state.State) map[string]*network.EndpointSettings {
	out := map[string]*network.EndpointSettings{}
	kind, name := networkMode(rec.HostConfig)
	switch kind {
	case modeNone, modeHost:
		out[kind] = &network.EndpointSettings{}
		return out
	case modeSlirp:
		out[kind] = &network.EndpointSettings{}
		if st != nil && st.Active() {
			out[kind] = slirpEndpoint()
		}
		return out
	case modeContainer:
		return out
	}
	ns := e.netStore()
	for _, name := range networkNames(rec) {
		ep := &network.EndpointSettings{}
		if cfg := rec.Networks[name]; cfg != nil {
			ep = cfg.Copy()
		}
		if ep.Aliases == nil {
			ep.Aliases = []string{}
		}
		if n, err := ns.Get(name); err == nil {
			ep.NetworkID = n.ID
			if !n.IsDefault() {
				ep.DNSNames = append([]string{rec.Name, rec.ID[:12]}, ep.Aliases...)
			}
		}
		for _, a := range st.Networks {
			if a.Network != name || !st.Active() {
				continue
			}
			ep.EndpointID = endpointID(rec.ID, name)
			ep.IPAddress, _ = netip.ParseAddr(a.IP)
			ep.Gateway, _ = netip.ParseAddr(a.Gateway)
			ep.IPPrefixLen = a.Prefix
			if m, err := net.ParseMAC(a.MAC); err == nil {
				ep.MacAddress = network.HardwareAddr(m)
			}
		}
		out[name] = ep
	}
	_ = name
	return out
}

func sandboxKey(st *state.State) string {
	if st.Pid == 0 {
		return ""
	}
	return filepath.Join("/proc", itoa(st.Pid), "ns", "net")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
