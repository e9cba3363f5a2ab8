package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/rootless"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/storage"
)

// CreateOptions is what `create` and `run` ask for, in Docker's own types
// (the REST API receives the same).
type CreateOptions struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	Pull       string // "missing", "always", or "never" ("" is never)
	// Networking holds the endpoint settings (--ip, --mac-address,
	// --network-alias) of the network of HostConfig.NetworkMode.
	Networking *network.NetworkingConfig
	// HealthOnFailure is podman's --health-on-failure (engine/health.go).
	HealthOnFailure string
	// CreateCommand is recorded as the command line that made the
	// container (generate systemd --new replays it).
	CreateCommand []string
	// SdNotify: "" or "conmon", "container", "ignore" (--sdnotify).
	SdNotify string
	// Replace removes a container of the same name first (--replace).
	Replace bool
	// Warn, when set, receives warnings about the container made (a
	// rootless berth's limits that cannot be applied).
	Warn func(msg string)

	id string // set by Run when it forked the init child before creating
}

// Create makes a container: its record, its own writable layer over the
// image, and its hosts, hostname and resolv.conf files. On any error
// nothing is left behind.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (*state.Record, error) {
	if o.Config == nil || o.Config.Image == "" {
		return nil, invalidf("no image given")
	}
	if o.HostConfig == nil {
		o.HostConfig = &container.HostConfig{}
	}
	if err := validateHostConfig(o.HostConfig); err != nil {
		return nil, err
	}
	if err := validateUserns(o.HostConfig, e.cfg.Rootless); err != nil {
		return nil, err
	}
	if e.cfg.Rootless {
		hc, err := rootlessHostConfig(o.HostConfig)
		if err != nil {
			return nil, err
		}
		o.HostConfig = hc
		if string(hc.UsernsMode) == usernsKeepID && o.Config.User == "" {
			// keep-id runs as the user, as podman does.
			cfg := *o.Config
			cfg.User = strconv.Itoa(rootless.UID()) + ":" + strconv.Itoa(rootless.GID())
			o.Config = &cfg
		}
	}
	if err := validateRestartPolicy(o.HostConfig.RestartPolicy, o.HostConfig.AutoRemove); err != nil { // engine/restart.go
		return nil, err
	}
	if err := validatePorts(o.Config, o.HostConfig); err != nil { // engine/ports.go
		return nil, err
	}
	if err := validateSecurity(o.HostConfig); err != nil {
		return nil, err
	}
	if err := validateHealthcheck(o.Config.Healthcheck); err != nil { // engine/health.go
		return nil, err
	}
	if !ValidHealthOnFailure(o.HealthOnFailure) {
		return nil, invalidf("invalid --health-on-failure %q (want none, kill, restart or stop)", o.HealthOnFailure)
	}
	if p := o.HostConfig.RestartPolicy.Name; o.HealthOnFailure == HealthOnFailureRestart && p != "" && p != container.RestartPolicyDisabled {
		return nil, invalidf("--health-on-failure=restart cannot be combined with a restart policy (--restart %s)", p)
	}
	if err := validateLogging(o.Config, o.HostConfig, o.SdNotify); err != nil { // engine/systemd.go
		return nil, err
	}
	// Volumes and bind mounts are checked before the image is looked up.
	if _, err := e.planMounts(o.HostConfig, nil); err != nil {
		return nil, err
	}
	endpoints, err := e.prepareNetworking(&o)
	if err != nil {
		return nil, err
	}
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	img, err := e.imageForCreate(ctx, images, o.Config.Image, o.Pull, "") // engine/registry.go
	if err != nil {
		return nil, err
	}
	rec, err := newRecord(o, img)
	if err != nil {
		return nil, err
	}
	// The image's VOLUMEs and those of the request's Config (docker's API)
	// become anonymous volumes; Config.Volumes lists them, and -v /path
	// ones, as docker's inspect does.
	volumes := map[string]struct{}{}
	for d := range img.Config.Config.Volumes {
		volumes[d] = struct{}{}
	}
	for d := range o.Config.Volumes {
		volumes[d] = struct{}{}
	}
	plan, err := e.planMounts(o.HostConfig, volumes)
	if err != nil {
		return nil, err
	}
	rec.Mounts = plan.mounts
	for _, b := range o.HostConfig.Binds {
		if !strings.Contains(b, ":") {
			volumes[b] = struct{}{}
		}
	}
	if len(volumes) > 0 {
		rec.Config.Volumes = volumes
	}
	rec.Networks = endpoints
	rec.CreateCommand = o.CreateCommand
	rec.SdNotify = o.SdNotify
	if o.Replace && rec.Name != "" {
		if err := e.replaceNamed(ctx, rec.Name); err != nil {
			return nil, err
		}
	}

	// The container's layer is made while its record is written: the two
	// do not depend on each other, and both wait on the disk.
	// With --userns=auto the layer is made first: c/storage chooses the
	// container's range then, and the record keeps it.
	rootfsDone := make(chan error, 1)
	ro := storage.RootfsOptions{Volatile: rec.HostConfig.AutoRemove}
	if m := usernsOf(rec.HostConfig); m.kind == usernsAuto {
		err := withRootlessUser(func() error {
			uids, gids, err := images.CreateRootfsAuto(rec.ID, img.ID, ro, m.size)
			rec.IDMaps = idMapsFrom(uids, gids).record()
			return err
		})
		if err != nil {
			return nil, err
		}
		rootfsDone <- nil
	} else {
		if m := fixedMaps(rec.HostConfig); m != nil && e.cfg.Rootless {
			ro.UIDMap, ro.GIDMap = m.storageMaps()
			rec.IDMaps = m.record()
		}
		go func() { rootfsDone <- images.CreateRootfs(rec.ID, img.ID, ro) }()
	}
	rec.Driver = images.Driver()
	createdVolumes, err := e.createRecordWithVolumes(rec, plan)
	if err != nil {
		if <-rootfsDone == nil {
			images.RemoveRootfs(rec.ID)
		}
		return nil, err
	}
	if err := <-rootfsDone; err != nil {
		e.containers.Remove(rec.ID)
		e.removeVolumesQuietly(createdVolumes)
		return nil, fmt.Errorf("creating container rootfs: %w", err)
	}
	if u := unappliedLimits(rec.HostConfig.Resources); len(u) > 0 && o.Warn != nil {
		o.Warn(limitsWarning(u)) // engine/rootlesscg.go
	}
	return rec, nil
}

// createRecordWithVolumes creates the missing bind sources of -v (as
// docker does) and the volumes the container needs, and writes its record.
// The volume lock is held from creating the volumes to writing the record,
// so that a concurrent `volume rm` or `prune` either sees the container or
// runs before its volumes exist, and concurrent containers naming the same
// new volume create it once.
func (e *Engine) createRecordWithVolumes(rec *state.Record, plan *mountPlan) ([]string, error) {
	if len(plan.volumes) == 0 && len(plan.hostDirs) == 0 {
		return nil, e.createRecord(rec)
	}
	lock, err := e.volumes.Lock()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	created, err := e.ensureVolumes(plan.volumes)
	if err == nil {
		err = e.createRecord(rec)
	}
	if err != nil {
		e.removeVolumesQuietly(created)
		return nil, err
	}
	// Made last: a refused name leaves no directory behind.
	for _, d := range plan.hostDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			e.containers.Remove(rec.ID)
			e.removeVolumesQuietly(created)
			return nil, fmt.Errorf("creating bind source %s: %w", d, err)
		}
	}
	return created, nil
}

// createRecord reserves the container's name (under the short global lock)
// and writes its record and its hosts, hostname and resolv.conf.
func (e *Engine) createRecord(rec *state.Record) error {
	glock, err := e.containers.LockGlobal()
	if err != nil {
		return err
	}
	if rec.Name == "" {
		rec.Name = e.freeName()
	}
	if e.containers.NameTaken(rec.Name) {
		glock.Unlock()
		id, _ := e.containers.Resolve(rec.Name)
		return fmt.Errorf("%w: the container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name", ErrNameInUse, rec.Name, id)
	}
	err = e.containers.Create(rec)
	glock.Unlock()
	if err != nil {
		return err
	}
	if err := e.writeEtcFiles(rec); err != nil {
		e.containers.Remove(rec.ID)
		return err
	}
	return nil
}

func validateHostConfig(hc *container.HostConfig) error {
	if mode := string(hc.NetworkMode); mode == "container:" {
		return invalidf("--network container: needs a container name")
	}
	return nil
}

// validateUserns checks --userns (engine/userns.go): host (the default,
// berth's own user namespace: the host's for root); keep-id and nomap for
// a rootless berth with subordinate ids; auto rootless, or as root with
// ranges of user "containers".
func validateUserns(hc *container.HostConfig, isRootless bool) error {
	m, err := parseUserns(string(hc.UsernsMode))
	if err != nil {
		return err
	}
	switch {
	case m.kind == "":
		return nil
	case !isRootless && m.kind == usernsAuto:
		return checkAutoRanges()
	case !isRootless:
		return invalidf("--userns=%s is for rootless berth: root's containers are in the host's user namespace (or --userns=auto)", m.kind)
	case m.kind != usernsKeepID && rootless.SingleMapping():
		// (keep-id: rootlessHostConfig says the same)
		return invalidf("rootless: --userns=%s needs subordinate ids (/etc/subuid, /etc/subgid) for the container's root", m.kind)
	}
	return nil
}

// newRecord merges the image's config with what was asked for, the way
// Docker does it.
func newRecord(o CreateOptions, img *storage.Image) (*state.Record, error) {
	id := o.id
	if id == "" {
		var err error
		if id, err = newID(); err != nil {
			return nil, err
		}
	}
	cfg := *o.Config
	ic := img.Config.Config
	if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		cfg.Entrypoint = nil // --entrypoint "" clears the image's
	} else if cfg.Entrypoint == nil {
		cfg.Entrypoint = ic.Entrypoint
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = ic.Cmd
		}
	}
	cfg.Env = mergeEnv(ic.Env, cfg.Env)
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = ic.WorkingDir
	}
	if cfg.User == "" {
		cfg.User = ic.User
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = ic.StopSignal
	}
	mergeExposedPorts(&cfg, ic.ExposedPorts)
	cfg.Healthcheck = mergeHealthcheck(cfg.Healthcheck, ic.Healthcheck) // docker's rules
	labels := map[string]string{}
	for k, v := range ic.Labels {
		labels[k] = v
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	cfg.Labels = labels
	if cfg.Hostname == "" && string(o.HostConfig.NetworkMode) != "host" {
		cfg.Hostname = id[:12]
	} else if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	argv := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	if len(argv) == 0 {
		return nil, invalidf("no command specified")
	}
	hc := *o.HostConfig
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = "bridge"
	}
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = "json-file"
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	onFailure := o.HealthOnFailure
	if onFailure == HealthOnFailureNone {
		onFailure = "" // the default: not recorded
	}
	return &state.Record{
		ID:              id,
		Name:            strings.TrimPrefix(o.Name, "/"),
		Created:         time.Now().UTC(),
		Image:           o.Config.Image,
		ImageID:         img.ID,
		Path:            argv[0],
		Args:            argv[1:],
		Config:          &cfg,
		HostConfig:      &hc,
		HealthOnFailure: onFailure,
	}, nil
}

// mergeEnv returns base with the entries of over replacing those of the
// same name.
func mergeEnv(base, over []string) []string {
	out := append([]string{}, base...)
	index := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
		} else {
			index[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func newID() (string, error) {
	for {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("generating container ID: %w", err)
		}
		id := hex.EncodeToString(b)
		// Like Docker: a short ID that is all digits could be read as a number.
		if strings.Trim(id[:12], "0123456789") != "" {
			return id, nil
		}
	}
}

func (e *Engine) freeName() string {
	for i := 0; ; i++ {
		n := randomName(i > 10)
		if !e.containers.NameTaken(n) {
			return n
		}
	}
}

// writeEtcFiles writes the container's /etc/hosts, /etc/hostname and
// /etc/resolv.conf, which are bind-mounted into it at start. The hosts
// file is written again at start with the container's addresses.
func (e *Engine) writeEtcFiles(rec *state.Record) error {
	host := rec.HostConfig.NetworkMode == "host"
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	files := map[string]string{
		"hosts":       e.hostsContent(rec, nil),
		"hostname":    rec.Config.Hostname + "\n",
		"resolv.conf": resolvConf(string(resolv), slirpDNSConfig(rec.HostConfig, e.cfg.Rootless), host),
	}
	for name, content := range files {
		if err := e.containers.WriteFile(rec.ID, name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
