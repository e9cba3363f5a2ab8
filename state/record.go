package state

import (
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Container statuses, as Docker names them.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusRemoving   = "removing"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// Record is what was asked for when the container was created. It changes
// only on rename (and later on update).
type Record struct {
	ID         string                `json:"id"`
	Name       string                `json:"name"`
	Created    time.Time             `json:"created"`
	Image      string                `json:"image"` // the reference the user gave
	ImageID    string                `json:"imageID"`
	Path       string                `json:"path"` // argv[0] of the process
	Args       []string              `json:"args"` // the rest of argv
	Config     *container.Config     `json:"config"`
	HostConfig *container.HostConfig `json:"hostConfig"`
	Driver     string                `json:"driver"`
	// Mounts are the container's volumes, bind mounts and --mount tmpfs
	// mounts, resolved at create time (-v, --mount, --volumes-from and the
	// image's VOLUME entries), in the order they are mounted.
	Mounts []MountPoint `json:"mounts,omitempty"`

	// Networks are the networks the container is connected to besides
	// the one of HostConfig.NetworkMode (network connect), and the
	// endpoint settings (aliases, --ip, --mac-address) of all of them.
	Networks map[string]*network.EndpointSettings `json:"networks"`

	// HealthOnFailure is podman's --health-on-failure: what the monitor
	// does when the container becomes unhealthy (none, kill, restart,
	// stop; "" is none).
	HealthOnFailure string `json:"healthOnFailure,omitempty"`
	// CreateCommand is the command line that created the container
	// (berth's argv, from `run` or `create`): `generate systemd --new`
	// turns it into the unit's `run`.
	CreateCommand []string `json:"createCommand,omitempty"`
	// SdNotify is how systemd's NOTIFY_SOCKET is used when the container
	// is started with one (--sdnotify): "conmon" (berth tells READY=1
	// and MAINPID; also when empty), "container" (the container's service
	// tells READY=1 through a socket berth forwards) or "ignore".
	SdNotify string `json:"sdNotify,omitempty"`
	// IDMaps are the maps of a container with a user namespace of its own
	// (--userns=keep-id, nomap, auto): container ids to the ids of
	// berth's own namespace (the host's for root). For auto they are the
	// range chosen at create time, which no other container's overlaps.
	IDMaps *IDMaps `json:"idMaps,omitempty"`
}

// IDMaps are a container's uid and gid maps.
type IDMaps struct {
	UID []IDMap `json:"uid"`
	GID []IDMap `json:"gid"`
}

// IDMap maps Size ids from Container to Host.
type IDMap struct {
	Container int `json:"container"`
	Host      int `json:"host"`
	Size      int `json:"size"`
}

// MountPoint is one resolved mount of a container.
type MountPoint struct {
	Type        string `json:"type"`             // bind, volume or tmpfs
	Name        string `json:"name,omitempty"`   // the volume's name
	Source      string `json:"source,omitempty"` // host path of a bind mount
	Destination string `json:"destination"`
	Mode        string `json:"mode,omitempty"` // the mode string as given (-v)
	RW          bool   `json:"rw"`
	Propagation string `json:"propagation,omitempty"`
	NoCopy      bool   `json:"nocopy,omitempty"` // do not seed a new volume from the image
	// TmpfsOptions are the mount options of a tmpfs mount (size=, mode=).
	TmpfsOptions string `json:"tmpfsOptions,omitempty"`
}

// Volatile tells whether the container is removed when it exits (--rm):
// such a container's files are written without fsync.
func (r *Record) Volatile() bool { return r.HostConfig != nil && r.HostConfig.AutoRemove }

// State is what happened to the container since.
type State struct {
	Status     string    `json:"status"`
	Pid        int       `json:"pid,omitempty"`
	PidStart   uint64    `json:"pidStart,omitempty"` // start time of Pid in clock ticks, guards against pid reuse
	MonitorPid int       `json:"monitorPid,omitempty"`
	ExitCode   int       `json:"exitCode"`
	Error      string    `json:"error,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Ports are the ports published for the running container, host
	// ports resolved (docker's NetworkSettings.Ports); meaningful only
	// while the state is active.
	Ports        network.PortMap `json:"ports,omitempty"`
	RestartCount int             `json:"restartCount,omitempty"`
	// StoppedByUser is set by stop and kill so that restart policies and
	// unless-stopped know the exit was asked for.
	StoppedByUser bool `json:"stoppedByUser,omitempty"`
	// Networks are the container's network interfaces while it runs
	// (see Attachment); empty when it is stopped and everything was
	// released.
	Networks []Attachment `json:"networks,omitempty"`
	// Health is the healthcheck's status and last results (docker's
	// State.Health), for a container that has a healthcheck and ran.
	Health *container.Health `json:"health,omitempty"`
}

// Active tells whether the state says a process should be there.
func (s *State) Active() bool {
	return s.Status == StatusRunning || s.Status == StatusPaused || s.Status == StatusRestarting
}
