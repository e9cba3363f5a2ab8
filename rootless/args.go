package rootless

import (
	"path/filepath"
	"strings"
)

// globalValueFlags are berth's global flags that take a value (commands/app.go).
var globalValueFlags = map[string]bool{"root": true, "runroot": true, "storage-driver": true}

// RunRootArg returns the value of the global --runroot flag in args
// (os.Args), made absolute, or "" when it is not given. A rootless berth
// needs it before the command line is parsed: the pause process, whose
// pid file is in the runtime directory, is found (or made) before the
// re-exec into its namespaces. Global flags come before the command name
// (urfave/cli): the scan stops at the first argument that is no flag and
// at "--"; other global flags are skipped with their values.
func RunRootArg(args []string) string {
	val := ""
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !globalValueFlags[name] {
			continue // a boolean: --help, --version
		}
		if !hasValue {
			if i+1 >= len(args) {
				break // a missing value: the parser says so later
			}
			i++
			v = args[i]
		}
		if name == "runroot" {
			val = v // the last one wins, as for the parser
		}
	}
	if val == "" {
		return ""
	}
	if abs, err := filepath.Abs(val); err == nil {
		return abs
	}
	return val
}
