package engine

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/storage"
)

// Info is `berth info`.
type Info struct {
	Containers, ContainersRunning, ContainersPaused, ContainersStopped int
	Images                                                             int
	Driver                                                             string
	DriverStatus                                                       [][2]string
	StorageNote                                                        string
	CgroupVersion                                                      string
	KernelVersion                                                      string
	OperatingSystem                                                    string
	MemTotal                                                           int64
	Root, RunRoot                                                      string
	Rootless                                                           bool
	RootlessNotes                                                      []string // what cannot work rootless here
}

// Info gathers system-wide information.
func (e *Engine) Info(ctx context.Context) (*Info, error) {
	info := &Info{Root: e.cfg.Root, RunRoot: e.cfg.RunRoot, CgroupVersion: "1", Rootless: e.cfg.Rootless, RootlessNotes: e.RootlessNotes()}
	if oci.IsCgroup2() {
		info.CgroupVersion = "2"
	}
	list, err := e.List(ctx, ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		info.Containers++
		switch c.State.Status {
		case "running":
			info.ContainersRunning++
		case "paused":
			info.ContainersPaused++
		default:
			info.ContainersStopped++
		}
	}
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	imgs, err := images.Images()
	if err != nil {
		return nil, err
	}
	info.Images = len(imgs)
	info.Driver = images.Driver()
	info.DriverStatus = images.DriverStatus()
	switch mp, why := images.MountProgram(); {
	case info.Driver == "vfs" && images.NoOverlay() != "":
		info.StorageNote = "overlay could not be mounted here (" + images.NoOverlay() + "); vfs copies each layer in full"
	case info.Driver == "vfs" && e.cfg.StorageDriver == "":
		info.StorageNote = "overlay could not be mounted here; vfs copies each layer in full"
	case mp != "" && why == storage.MountProgramKernel:
		info.StorageNote = "the kernel's overlay cannot be mounted here: layers are mounted by " + mp + " (FUSE)"
	case mp != "" && why == storage.MountProgramStore:
		info.StorageNote = "this store was made with a mount program: layers are mounted by " + mp + " (FUSE)"
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		info.KernelVersion = unix.ByteSliceToString(uts.Release[:])
	}
	info.OperatingSystem = osRelease()
	info.MemTotal = memTotal()
	return info, nil
}

func osRelease() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "linux"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "linux"
}

func memTotal() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n * 1024
		}
	}
	return 0
}
