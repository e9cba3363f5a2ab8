package rootless

import (
	"os/user"
	"path/filepath"
	"strconv"
)

// ManagerPaths are the store and runtime directory that a berth started by
// the user's systemd manager (systemctl --user) uses by default: systemd
// sets HOME from the user's passwd entry and XDG_RUNTIME_DIR to
// /run/user/UID, and sets no XDG_DATA_HOME. A unit for a container in
// another store names it (BERTH_ROOT, BERTH_RUNROOT). ok is false when
// the user's home is unknown.
func ManagerPaths(uid int) (root, runRoot string, ok bool) {
	runRoot = filepath.Join("/run/user", strconv.Itoa(uid), "berth")
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil || !filepath.IsAbs(u.HomeDir) {
		return "", runRoot, false
	}
	return filepath.Join(u.HomeDir, ".local", "share", "berth"), runRoot, true
}
