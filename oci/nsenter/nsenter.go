//go:build linux && cgo

package nsenter

// The C part lives in this preamble rather than in a .c file, so that the
// package still builds (without the constructor) when cgo is off.

/*
#cgo CFLAGS: -Wall
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

// Keep in sync with the constants in doc.go.
#define BERTH_EXEC_ARG "__exec"
#define BERTH_EXEC_PID_ENV "_BERTH_EXEC_PID"
#define BERTH_EXEC_REPORT_ENV "_BERTH_EXEC_REPORT"
#define BERTH_EXEC_SYNC_ENV "_BERTH_EXEC_SYNC"
#define BERTH_EXEC_DETACH_ENV "_BERTH_EXEC_DETACH"
#define BERTH_USERNS_PID_ENV "_BERTH_USERNS_PID"

static int berth_nsenter_entered;
static int berth_report_fd = -1;

// berth_fail reports a setup error to berth on the report pipe ("!" and a
// message) and exits.
static void berth_fail(const char *what, const char *arg, int err) {
	char buf[512];
	int n = snprintf(buf, sizeof buf, "!%s%s%s: %s", what, *arg ? " " : "", arg, strerror(err));
	if (berth_report_fd >= 0 && n > 0) {
		ssize_t w = write(berth_report_fd, buf, (size_t)n);
		(void)w; // nothing more to do: berth then sees no pid
	}
	_exit(125);
}

static const char *berth_env(char **envp, const char *name) {
	size_t len = strlen(name);
	for (char **e = envp; e && *e; e++) {
		if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
			return *e + len + 1;
	}
	return NULL;
}

static int berth_atoi(const char *s) {
	if (!s || !*s)
		return -1;
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v < 0 || v > (1L << 30))
		return -1;
	return (int)v;
}

// The namespaces joined, in this order: user first (a rootless
// --userns=keep-id container has its own, which owns the others; shared
// with berth otherwise, and then skipped), mnt last, since it changes the
// root and working directory (and /proc would be the container's).
static const struct {
	const char *name;
	int type;
} berth_ns[] = {
	{"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
	{"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS},
};
#define BERTH_NNS (sizeof berth_ns / sizeof berth_ns[0])

// berth_nsenter runs on every start of berth, before the Go runtime, with
// the arguments glibc passes to constructors. It does nothing unless
// argv[1] is the exec role.
// berth_join_userns moves a rootless berth into its user's user and mount
// namespaces (those of the pause process named by BERTH_USERNS_PID_ENV),
// unless it is in them already (children of a berth inside inherit both,
// and the variable). setns(CLONE_NEWUSER) needs a single-threaded process:
// hence here, before the Go runtime.
static void berth_join_userns(char **envp) {
	const char *s = berth_env(envp, BERTH_USERNS_PID_ENV);
	if (!s)
		return;
	int pid = berth_atoi(s);
	if (pid <= 0) {
		fprintf(stderr, "Error: bad %s=%s\n", BERTH_USERNS_PID_ENV, s);
		_exit(125);
	}
	static const struct {
		const char *name;
		int type;
	} ns[] = {{"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS}};
	int fds[2];
	char path[64];
	for (int i = 0; i < 2; i++) {
		struct stat theirs, ours;
		fds[i] = -1;
		snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, ns[i].name);
		if (stat(path, &theirs) < 0) {
			fprintf(stderr, "Error: joining berth's user namespace: %s: %s\n", path, strerror(errno));
			_exit(125);
		}
		snprintf(path, sizeof path, "/proc/self/ns/%s", ns[i].name);
		if (stat(path, &ours) == 0 && ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino)
			continue;
		snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, ns[i].name);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			fprintf(stderr, "Error: joining berth's user namespace: %s: %s\n", path, strerror(errno));
			_exit(125);
		}
	}
	// Joining a mount namespace moves the working directory to its root:
	// come back to the same path (the namespace is a copy of the host's).
	static char cwd[4096];
	int have_cwd = fds[1] >= 0 && getcwd(cwd, sizeof cwd) != NULL;
	for (int i = 0; i < 2; i++) {
		if (fds[i] < 0)
			continue;
		if (setns(fds[i], ns[i].type) < 0) {
			fprintf(stderr, "Error: joining berth's %s namespace (pid %d): %s\n", ns[i].name, pid, strerror(errno));
			_exit(125);
		}
		close(fds[i]);
	}
	if (have_cwd && chdir(cwd) < 0) {
		int r = chdir("/");
		(void)r;
	}
	// Root inside: the user's own uid and gid map to 0 there.
	if (fds[0] >= 0 || fds[1] >= 0) {
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
			fprintf(stderr, "Error: becoming root in berth's user namespace: %s\n", strerror(errno));
			_exit(125);
		}
	}
}

__attribute__((constructor)) static void berth_nsenter(int argc, char **argv, char **envp) {
	berth_join_userns(envp);
	if (argc < 2 || strcmp(argv[1], BERTH_EXEC_ARG) != 0)
		return;

	berth_report_fd = berth_atoi(berth_env(envp, BERTH_EXEC_REPORT_ENV));
	if (berth_report_fd < 3)
		_exit(125);
	// Nothing in the container may reach into this process (descriptors,
	// memory) through /proc while it still runs berth; exec resets this.
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	int pid = berth_atoi(berth_env(envp, BERTH_EXEC_PID_ENV));
	if (pid <= 0)
		berth_fail("no target pid in " BERTH_EXEC_PID_ENV, "", EINVAL);

	// Open every namespace first: once in the mount namespace, /proc is
	// the container's.
	int fds[BERTH_NNS];
	char path[64];
	for (size_t i = 0; i < BERTH_NNS; i++) {
		struct stat theirs, ours;
		fds[i] = -1;
		snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, berth_ns[i].name);
		if (stat(path, &theirs) < 0) {
			if (errno == ENOENT && berth_ns[i].type == CLONE_NEWCGROUP)
				continue; // a kernel without cgroup namespaces
			berth_fail("opening namespace", path, errno);
		}
		snprintf(path, sizeof path, "/proc/self/ns/%s", berth_ns[i].name);
		if (stat(path, &ours) == 0 && ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino)
			continue; // shared with berth (e.g. --network host)
		snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, berth_ns[i].name);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			berth_fail("opening namespace", path, errno);
	}
	for (size_t i = 0; i < BERTH_NNS; i++) {
		if (fds[i] < 0)
			continue;
		if (setns(fds[i], berth_ns[i].type) < 0)
			berth_fail("joining namespace", berth_ns[i].name, errno);
		close(fds[i]);
	}

	// A joined pid namespace applies to children only.
	pid_t child = fork();
	if (child < 0)
		berth_fail("fork", "", errno);
	if (child > 0) {
		// fork's return value is the child's pid as berth sees it.
		char buf[32];
		int n = snprintf(buf, sizeof buf, "%d", (int)child);
		if (write(berth_report_fd, buf, (size_t)n) != n)
			_exit(125);
		_exit(0);
	}
	close(berth_report_fd);
	berth_report_fd = -1;

	const char *detach = berth_env(envp, BERTH_EXEC_DETACH_ENV);
	if (detach && strcmp(detach, "1") == 0) {
		// exec -d: nobody will wait for the command, so it must not stay
		// an orphan of berth (the host's init may never reap it). Wait
		// until berth has put this process in the container's cgroup and
		// sent the exec request (peeked at: it is left for the Go side),
		// then fork once more and exit: the command's parent becomes the
		// container's init, which reaps it or takes it along when it stops.
		int sync_fd = berth_atoi(berth_env(envp, BERTH_EXEC_SYNC_ENV));
		char c;
		ssize_t n;
		do {
			n = recv(sync_fd, &c, 1, MSG_PEEK);
		} while (n < 0 && errno == EINTR);
		if (n <= 0)
			_exit(125); // berth gave up
		child = fork();
		if (child < 0)
			_exit(125);
		if (child > 0)
			_exit(0);
	}
	berth_nsenter_entered = 1;
	// Return: the Go runtime starts inside the container's namespaces.
}

static int berth_nsenter_done(void) { return berth_nsenter_entered; }
*/
import "C"

// Entered tells whether this process is the exec helper's child that the
// constructor moved into a container's namespaces.
func Entered() bool { return C.berth_nsenter_done() != 0 }
