package engine

import (
	"errors"
	"fmt"

	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/storage"
)

// Errors callers tell apart (errors.Is).
var (
	ErrNoSuchContainer = state.ErrNoSuchContainer
	ErrNameInUse       = state.ErrNameInUse
	ErrNoSuchImage     = storage.ErrImageNotFound
	ErrRunning         = errors.New("container is running")
	ErrNotRunning      = errors.New("container is not running")
	ErrInvalid         = errors.New("invalid argument")
)

// ExitError carries the exit code a command must end with: a container's
// own exit code, or 126/127 when its command could not be run.
type ExitError struct {
	Code int
	Msg  string // empty when the container itself exited with Code
}

func (e *ExitError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// exitErrorFrom turns an init-child failure into an ExitError (126/127)
// or a plain error (125).
func exitErrorFrom(err error) error {
	var se *oci.StartError
	if errors.As(err, &se) && (se.Code == 126 || se.Code == 127) {
		return &ExitError{Code: se.Code, Msg: se.Msg}
	}
	return err
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
