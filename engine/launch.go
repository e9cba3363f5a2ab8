package engine

import (
	"sync"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/oci"
)

// launch is a container start under way: the init child is forked and
// waits for its spec, its standard streams are open, and its move into the
// container's cgroup runs alongside whatever the caller does meanwhile.
type launch struct {
	cio     *containerIO
	pending *oci.Pending
	cg      *oci.Cgroup
	joined  chan error // the result of putting the child in its cgroup
	// lateMounts: the child makes its mount namespace when the spec comes,
	// so the rootfs may be mounted after the fork.
	lateMounts bool
	aborted    sync.Once
}

// forkInit forks the init child of container id. Without --init the child
// makes its own mount namespace late, which lets a foreground `run` fork
// it before the container is even created: the child's start-up and its
// cgroup move then overlap with the creation of the container's layer.
// With --init the rootfs must be mounted before forkInit is called.
func (e *Engine) forkInit(id string, cfg *container.Config, hc *container.HostConfig, streams *Streams, hub *attachHub) (*launch, error) {
	cio, err := newContainerIO(cfg, logDriver(hc), streams, hub)
	if err != nil {
		return nil, err
	}
	exe, err := oci.SealedExe(e.cfg.RunRoot)
	if err != nil {
		cio.closeAll()
		return nil, err
	}
	l := &launch{cio: cio, lateMounts: !withInit(hc), joined: make(chan error, 1)}
	fo := oci.ForkOptions{
		Exe: exe, HostNetwork: hc.NetworkMode == "host", JoinNetwork: isContainerMode(hc), Terminal: cfg.Tty, LateMounts: l.lateMounts,
		Stdin: cio.childStdin, Stdout: cio.childStdout, Stderr: cio.childStderr,
	}
	m, err := e.containerMaps(id, hc) // engine/userns.go
	if err != nil {
		cio.closeAll()
		return nil, err
	}
	if m != nil {
		fo.UidMappings, fo.GidMappings = m.forkMaps()
	}
	l.pending, err = oci.Fork(fo)
	if err != nil {
		cio.closeAll()
		return nil, err
	}
	l.cg, err = oci.CreateCgroup(cgroupName(id))
	if err != nil {
		l.pending.Abort()
		cio.closeAll()
		return nil, err
	}
	go func() { l.joined <- l.cg.Add(l.pending.Pid()) }()
	return l, nil
}

// abort undoes a launch whose container will not start.
func (l *launch) abort() {
	l.aborted.Do(func() {
		l.pending.Abort()
		<-l.joined
		l.cg.Remove()
		l.cio.closeAll()
	})
}

func isContainerMode(hc *container.HostConfig) bool {
	kind, _ := networkMode(hc)
	return kind == modeContainer
}

func withInit(hc *container.HostConfig) bool { return hc.Init != nil && *hc.Init }

// isForeground tells whether a start is monitored by the caller's own
// process (see Engine.start).
func isForeground(detach bool, cfg *container.Config, streams *Streams) bool {
	interactive := cfg.Tty && cfg.OpenStdin && streams != nil && streams.Stdin != nil
	return !detach && !interactive
}
