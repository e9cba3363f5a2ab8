// Package nsenter moves berth's exec helper into a running container's
// namespaces before the Go runtime starts.
//
// A Go program cannot join a mount namespace once its runtime has started
// threads (setns(CLONE_NEWNS) fails for a multi-threaded process), and a
// joined pid namespace applies to children only. So, like runc's nsexec,
// berth does this in C, in a constructor that the C library runs before
// main: when argv[1] is Arg ("__exec"), it opens /proc/PID/ns/{ipc,uts,
// net,pid,cgroup,mnt} of the container's pid 1 (PID from the environment
// variable PidEnv), joins each one that differs from its own (mnt last),
// and forks. The parent writes the child's pid, as berth sees it, to the
// descriptor named by ReportEnv and exits; the child returns and the Go
// runtime starts inside the container, where oci.ExecMain takes over. A
// failure is reported on the same descriptor as "!" and a message.
//
// With DetachEnv=1 (exec -d) the child waits until the exec request can
// be read on the descriptor named by SyncEnv (berth sends it only after
// putting the child in the container's cgroup), forks once more and
// exits, so that the command's parent is the container's init, not a
// berth process that is about to exit.
//
// Rootless berth (package rootless) uses the same constructor for its
// user namespace: with UsernsPidEnv set, it first joins the user and mount
// namespaces of that pid (the user's pause process) unless it is in them
// already, and becomes uid and gid 0 there.
//
// On any other start of berth the constructor returns after an
// environment look-up and one string comparison. Importing this package (oci does) is all that is needed.
package nsenter

// Keep in sync with nsenter.h.
const (
	Arg       = "__exec"             // argv[1] of the exec helper
	PidEnv    = "_BERTH_EXEC_PID"    // the target process (the container's pid 1)
	ReportEnv = "_BERTH_EXEC_REPORT" // descriptor for the child's pid or an error
	SyncEnv   = "_BERTH_EXEC_SYNC"   // descriptor of the sync socket (exec -d)
	DetachEnv = "_BERTH_EXEC_DETACH" // "1": exec -d
	// UsernsPidEnv names a rootless user's pause process: a berth started
	// with it joins that process's user and mount namespaces first.
	UsernsPidEnv = "_BERTH_USERNS_PID"
)
