package engine

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/creack/pty"
	"github.com/moby/moby/api/types/container"
)

// containerIO holds both ends of a container's standard streams.
type containerIO struct {
	childStdin, childStdout, childStderr *os.File
	childSide                            []*os.File // closed in the monitor once the child has them
	pty                                  *os.File   // -t: the master side
	stdinW                               *os.File   // -i without -t: we write the input here
	copiers                              sync.WaitGroup
	outputs                              []*os.File
	sources                              []outputSource // copied to the log by startCopying
}

// outputSource is one stream of the container's output and where it goes
// besides the log.
type outputSource struct {
	r      *os.File
	stream string
	to     io.Writer
}

// newContainerIO makes the container's standard streams for a container
// configured by cfg: a pty with -t, else pipes (and /dev/null for no
// input). Output is copied once startCopying is called. With the
// passthrough log driver the container's stdout and stderr are this
// process's own (a systemd unit's journal): nothing is copied.
func newContainerIO(cfg *container.Config, logDriver string, streams *Streams, hub *attachHub) (*containerIO, error) {
	cio := &containerIO{}
	var stdout, stderr io.Writer
	var stdin io.Reader
	switch {
	case streams != nil:
		stdout, stderr = streams.Stdout, streams.Stderr
		if cfg.OpenStdin {
			stdin = streams.Stdin
		}
	case hub != nil:
		stdout, stderr = hub.writer(frameStdout), hub.writer(frameStderr)
	}
	if cfg.Tty {
		master, slave, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("opening a terminal: %w", err)
		}
		cio.pty = master
		if streams != nil && streams.TerminalSize != nil {
			if rows, cols, ok := streams.TerminalSize(); ok {
				pty.Setsize(master, &pty.Winsize{Rows: rows, Cols: cols})
			}
		}
		if hub != nil {
			hub.pty = master
			if cfg.OpenStdin {
				hub.stdin = master // a terminal's input is never closed by a client
			}
		}
		cio.childStdin, cio.childStdout, cio.childStderr = slave, slave, slave
		cio.childSide = []*os.File{slave}
		cio.sources = []outputSource{{master, "stdout", stdout}}
		if stdin != nil {
			go io.Copy(master, stdin)
		}
		return cio, nil
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	cio.childStdin = null
	cio.childSide = append(cio.childSide, null)
	if stdin != nil || (hub != nil && cfg.OpenStdin) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cio.childStdin, cio.stdinW = r, w
		cio.childSide = append(cio.childSide, r)
		if stdin != nil {
			go func() {
				io.Copy(w, stdin)
				w.Close()
			}()
		} else {
			hub.stdin, hub.closeIn = w, cfg.StdinOnce
		}
	}
	if logDriver == LogDriverPassthrough {
		cio.childStdout, cio.childStderr = os.Stdout, os.Stderr
		return cio, nil
	}
	for _, s := range []struct {
		name string
		dst  *(*os.File)
		out  io.Writer
	}{{"stdout", &cio.childStdout, stdout}, {"stderr", &cio.childStderr, stderr}} {
		r, w, err := os.Pipe()
		if err != nil {
			cio.closeAll()
			return nil, err
		}
		*s.dst = w
		cio.childSide = append(cio.childSide, w)
		cio.outputs = append(cio.outputs, r)
		cio.sources = append(cio.sources, outputSource{r, s.name, s.out})
	}
	return cio, nil
}

// startCopying copies the container's output to the log (and to the
// caller or attached clients).
func (c *containerIO) startCopying(log *jsonLog) {
	for _, src := range c.sources {
		c.copiers.Add(1)
		go func(src outputSource) {
			defer c.copiers.Done()
			copyOutput(src.r, src.stream, log, src.to)
		}(src)
	}
}

// closeChildSide closes the monitor's copies of the child's ends, so the
// copiers see EOF when the container exits.
func (c *containerIO) closeChildSide() {
	for _, f := range c.childSide {
		f.Close()
	}
	c.childSide = nil
}

// drain waits for all output to be copied.
func (c *containerIO) drain() {
	c.copiers.Wait()
	if c.pty != nil {
		c.pty.Close()
	}
}

func (c *containerIO) closeAll() {
	c.closeChildSide()
	for _, f := range c.outputs {
		f.Close()
	}
	if c.pty != nil {
		c.pty.Close()
	}
	if c.stdinW != nil {
		c.stdinW.Close()
	}
}
