package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// logEntry is one line of Docker's json-file log format.
type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// jsonLog appends entries to a container's json-file log. Writes from the
// stdout and stderr copiers are serialized so lines never interleave.
type jsonLog struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

func openJSONLog(path string) (*jsonLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening container log: %w", err)
	}
	return &jsonLog{f: f, w: bufio.NewWriter(f)}, nil
}

func (l *jsonLog) write(stream string, p []byte) {
	if l == nil { // --log-driver none
		return
	}
	b, _ := json.Marshal(logEntry{Log: string(p), Stream: stream, Time: time.Now().UTC()})
	l.mu.Lock()
	l.w.Write(b)
	l.w.WriteByte('\n')
	l.w.Flush()
	l.mu.Unlock()
}

func (l *jsonLog) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
	return l.f.Close()
}

// copyOutput copies a container's output stream to the log, one entry per
// line (a long line is split at 16 KiB, as Docker does), and to w if set.
func copyOutput(r io.Reader, stream string, log *jsonLog, w io.Writer) {
	const maxLine = 16 << 10
	buf := make([]byte, 32<<10)
	var pending []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if w != nil {
				w.Write(chunk)
			}
			pending = append(pending, chunk...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					if len(pending) >= maxLine {
						log.write(stream, pending[:maxLine])
						pending = append([]byte(nil), pending[maxLine:]...)
						continue
					}
					break
				}
				log.write(stream, pending[:i+1])
				pending = pending[i+1:]
			}
			pending = append([]byte(nil), pending...)
		}
		if err != nil {
			if len(pending) > 0 {
				log.write(stream, pending)
			}
			return
		}
	}
}
