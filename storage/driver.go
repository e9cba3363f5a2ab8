package storage

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"go.podman.io/storage/drivers/overlay"
)

// The graph drivers berth opens, and the options c/storage's drivers
// accept (go.podman.io/storage drivers/overlay parseOptions and
// drivers/vfs Init), so that a typo is refused before the store is opened.
var driverOptions = map[string][]string{
	"overlay": {"mount_program", "mountopt", "size", "inodes", "skip_mount_home", "ignore_chown_errors",
		"force_mask", "sync", "imagestore", "additionalimagestore", "additionallayerstore", "use_composefs"},
	"vfs": {"imagestore", "ignore_chown_errors", "sync"},
}

// fuseOverlayfs is the mount program berth (and c/storage) looks up in
// PATH when the kernel's overlay cannot be mounted.
const fuseOverlayfs = "fuse-overlayfs"

// Why overlay goes through a mount program (Store.MountProgram).
const (
	MountProgramAsked  = "asked"  // overlay.mount_program was given
	MountProgramStore  = "store"  // the store was made with one (c/storage's .has-mount-program)
	MountProgramKernel = "kernel" // the kernel's overlay cannot be mounted here
)

// CheckDriver checks a storage driver name and driver options (podman's
// --storage-driver and --storage-opt) without opening anything. Options
// are DRIVER.KEY=VALUE (or KEY=VALUE, for any driver). The error names
// the bad part.
func CheckDriver(driver string, options []string) error {
	if driver != "" && driverOptions[driver] == nil {
		return fmt.Errorf("unknown storage driver %q (berth has overlay and vfs)", driver)
	}
	for _, opt := range options {
		key, val, ok := strings.Cut(opt, "=")
		if !ok || strings.TrimSpace(key) == "" {
			return fmt.Errorf("malformed storage option %q: want DRIVER.KEY=VALUE, e.g. overlay.mount_program=/usr/bin/fuse-overlayfs", opt)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		drv, name, dotted := strings.Cut(key, ".")
		if !dotted {
			drv, name = "", drv
		}
		if drv == "overlay2" {
			drv = "overlay"
		}
		switch {
		case dotted && driverOptions[drv] == nil:
			return fmt.Errorf("storage option %q: unknown driver %q (overlay or vfs)", opt, drv)
		case drv != "" && !slices.Contains(driverOptions[drv], name):
			return fmt.Errorf("storage option %q: unknown %s option %q", opt, drv, name)
		case drv == "" && !slices.Contains(driverOptions["overlay"], name) && !slices.Contains(driverOptions["vfs"], name):
			return fmt.Errorf("storage option %q: unknown option %q", opt, name)
		case val == "":
			return fmt.Errorf("storage option %q has no value", opt)
		}
		if name == "mount_program" {
			if _, err := exec.LookPath(val); err != nil || !filepath.IsAbs(val) {
				return fmt.Errorf("storage option %q: the mount program must be an absolute path to an executable", opt)
			}
		}
	}
	return nil
}

// driverOption returns the value of the last option KEY for the driver
// (DRIVER.KEY=, or KEY= for any driver).
func driverOption(options []string, driver, name string) string {
	var v string
	for _, opt := range options {
		key, val, _ := strings.Cut(opt, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if key == name || key == driver+"."+name || (driver == "overlay" && key == "overlay2."+name) {
			v = val
		}
	}
	return v
}

// overlayPlan is how overlay can be used in a store: natively, through a
// mount program, or not at all (vfs then).
type overlayPlan struct {
	mountProgram string
	why          string // Mount program: MountProgram*
	native       bool
	problem      string // neither: what c/storage recorded about the kernel
}

// planOverlay decides what c/storage's overlay.Init would decide, before
// it, so that berth knows the mount program (for `info`) and can go to
// vfs when overlay cannot work at all. It reads what c/storage keeps:
// the driver home's ".has-mount-program" (true once a mount program was
// used: the store's layers stay fuse-overlayfs's) and the run home's
// "overlay-true"/"overlay-false" result of its test mount, so the test
// mount happens once per boot, not per command. Both are read again by
// overlay.Init; together a few small file reads.
func planOverlay(graphRoot, runRoot string) (overlayPlan, error) {
	home := filepath.Join(graphRoot, "overlay")
	runhome := filepath.Join(runRoot, "overlay")
	if b, err := os.ReadFile(filepath.Join(home, ".has-mount-program")); err == nil && strings.TrimSpace(string(b)) == "true" {
		p, err := exec.LookPath(fuseOverlayfs)
		if err != nil {
			return overlayPlan{}, fmt.Errorf("the overlay store %s was made with a mount program, and %s is not in PATH: install it or give --storage-opt overlay.mount_program=PATH", home, fuseOverlayfs)
		}
		why := MountProgramStore
		if _, err := os.Stat(filepath.Join(runhome, "overlay-false")); err == nil {
			why = MountProgramKernel // and the kernel's test mount failed this boot
		}
		return overlayPlan{mountProgram: p, why: why}, nil
	}
	native, err := overlay.SupportsNativeOverlay(home, runhome)
	if err != nil {
		return overlayPlan{}, fmt.Errorf("checking overlay support: %w", err)
	}
	if native {
		return overlayPlan{native: true}, nil
	}
	if p, err := exec.LookPath(fuseOverlayfs); err == nil {
		return overlayPlan{mountProgram: p, why: MountProgramKernel}, nil
	}
	problem := "the kernel's overlay cannot be mounted here"
	if b, err := os.ReadFile(filepath.Join(runhome, "overlay-false")); err == nil && len(b) > 0 {
		problem = strings.TrimSpace(string(b))
	}
	return overlayPlan{problem: problem + "; " + fuseOverlayfs + " is not in PATH"}, nil
}
