package oci

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/sys/capability"
)

// DefaultCapabilities is Docker's default capability set.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Docker's masked paths (hidden: an empty read-only tmpfs or /dev/null
// over them) and read-only paths inside /proc and /sys.
var (
	DefaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	DefaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// AllCapabilities lists every capability berth can give: those the
// kernel knows that are in berth's own bounding set (a host may withhold
// some, and no container can get more than berth has).
func AllCapabilities() []string {
	caps, err := capability.ListSupported()
	if err != nil {
		caps = capability.ListKnown()
	}
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		if ok, err := capability.GetBound(c); err == nil && !ok {
			continue
		}
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	sort.Strings(out)
	return out
}

// NormalizeCapability turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN"
// into "CAP_NET_ADMIN"; "ALL" stays "ALL". Unknown names are an error.
func NormalizeCapability(name string) (string, error) {
	up := strings.ToUpper(strings.TrimSpace(name))
	if up == "ALL" {
		return up, nil
	}
	if !strings.HasPrefix(up, "CAP_") {
		up = "CAP_" + up
	}
	for _, c := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(c.String()) == up {
			return up, nil
		}
	}
	return "", fmt.Errorf("unknown capability %q", name)
}

// Capabilities computes a container's capability set the way Docker does:
// the default set (or all of them with privileged), minus drops, plus
// adds; "ALL" in drops empties the base, "ALL" in adds gives every one.
func Capabilities(privileged bool, add, drop []string) ([]string, error) {
	set := map[string]bool{}
	base := DefaultCapabilities
	if privileged {
		base = AllCapabilities()
	}
	for _, c := range base {
		set[c] = true
	}
	for _, d := range drop {
		n, err := NormalizeCapability(d)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, n)
	}
	for _, a := range add {
		n, err := NormalizeCapability(a)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			for _, c := range AllCapabilities() {
				set[c] = true
			}
			continue
		}
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

func capsByName() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
}
