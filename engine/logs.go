package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// LogsOptions is `logs`.
type LogsOptions struct {
	Follow     bool
	Tail       int // lines from the end; negative: all
	Timestamps bool
	Since      time.Time
	Until      time.Time
}

// Logs writes a container's log to stdout and stderr, each line to the
// stream it came from. With Follow it keeps going until the container
// stops or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, o LogsOptions, stdout, stderr io.Writer) error {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return err
	}
	if rec, err := e.containers.Record(id); err == nil {
		if err := checkLogsReadable(rec); err != nil { // none, passthrough
			return err
		}
	}
	f, err := os.Open(e.LogPath(id))
	if errors.Is(err, os.ErrNotExist) {
		if !o.Follow {
			return nil
		}
		for errors.Is(err, os.ErrNotExist) && e.isActive(id) {
			time.Sleep(50 * time.Millisecond)
			f, err = os.Open(e.LogPath(id))
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	defer f.Close()

	write := func(ent *logEntry) {
		if !o.Since.IsZero() && ent.Time.Before(o.Since) {
			return
		}
		if !o.Until.IsZero() && ent.Time.After(o.Until) {
			return
		}
		w := stdout
		if ent.Stream == "stderr" {
			w = stderr
		}
		if o.Timestamps {
			io.WriteString(w, ent.Time.Format("2006-01-02T15:04:05.000000000Z")+" ")
		}
		io.WriteString(w, ent.Log)
	}
	r := bufio.NewReader(f)
	entries, partial, err := readEntries(r)
	if err != nil {
		return err
	}
	if o.Tail >= 0 && len(entries) > o.Tail {
		entries = entries[len(entries)-o.Tail:]
	}
	for i := range entries {
		write(&entries[i])
	}
	if !o.Follow {
		return nil
	}
	for {
		active := e.isActive(id)
		more, rest, err := readEntries(io.MultiReader(bytesReader(partial), r))
		if err != nil {
			return err
		}
		partial = rest
		for i := range more {
			write(&more[i])
		}
		if !active {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (e *Engine) isActive(id string) bool {
	st, err := e.State(id)
	return err == nil && st.Active()
}

// readEntries reads whole lines; an unfinished last line is returned to be
// completed by the next read.
func readEntries(r io.Reader) ([]logEntry, []byte, error) {
	br := bufio.NewReader(r)
	var out []logEntry
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if err == io.EOF {
				return out, line, nil
			}
			return out, nil, fmt.Errorf("reading log: %w", err)
		}
		var ent logEntry
		if json.Unmarshal(line, &ent) == nil {
			out = append(out, ent)
		}
	}
}

type byteSliceReader struct{ b []byte }

func (r *byteSliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &byteSliceReader{b} }

func itoa(i int) string { return strconv.Itoa(i) }
