package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testRecord(id, name string) *Record {
	return &Record{ID: id, Name: name, Created: time.Now(), Config: &container.Config{}, HostConfig: &container.HostConfig{}}
}

func hexID(n int) string { return fmt.Sprintf("%064x", n+0xabc000) }

func TestCreateResolveRemove(t *testing.T) {
	s := newTestStore(t)
	id := hexID(1)
	if err := s.Create(testRecord(id, "web")); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{id, id[:12], id[:5], "web"} {
		got, err := s.Resolve(ref)
		if err != nil || got != id {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, got, err, id)
		}
	}
	if _, err := s.Resolve("nope"); !errors.Is(err, ErrNoSuchContainer) {
		t.Errorf("Resolve(nope) error = %v, want ErrNoSuchContainer", err)
	}
	st, err := s.State(id)
	if err != nil || st.Status != StatusCreated {
		t.Fatalf("State = %+v, %v", st, err)
	}
	if err := s.Create(testRecord(hexID(2), "web")); !errors.Is(err, ErrNameInUse) {
		t.Errorf("duplicate name: err = %v, want ErrNameInUse", err)
	}
	if err := s.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("web"); !errors.Is(err, ErrNoSuchContainer) {
		t.Errorf("name still resolves after Remove: %v", err)
	}
	if err := s.Create(testRecord(hexID(3), "web")); err != nil {
		t.Errorf("name not reusable after Remove: %v", err)
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	s := newTestStore(t)
	a, b := "abc1"+strings.Repeat("0", 60), "abc2"+strings.Repeat("0", 60)
	for i, id := range []string{a, b} {
		if err := s.Create(testRecord(id, fmt.Sprintf("c%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Resolve("abc"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Resolve(abc) error = %v, want ErrAmbiguous", err)
	}
	if got, err := s.Resolve("abc2"); err != nil || got != b {
		t.Errorf("Resolve(abc2) = %q, %v", got, err)
	}
}

func TestRename(t *testing.T) {
	s := newTestStore(t)
	id := hexID(1)
	if err := s.Create(testRecord(id, "old")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(testRecord(hexID(2), "taken")); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(id, "taken"); !errors.Is(err, ErrNameInUse) {
		t.Errorf("rename onto a used name: %v", err)
	}
	if err := s.Rename(id, "bad/name"); err == nil {
		t.Error("rename to an invalid name succeeded")
	}
	if err := s.Rename(id, "new"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Resolve("new"); got != id {
		t.Errorf("new name resolves to %q", got)
	}
	if _, err := s.Resolve("old"); err == nil {
		t.Error("old name still resolves")
	}
	rec, _ := s.Record(id)
	if rec.Name != "new" {
		t.Errorf("record name = %q", rec.Name)
	}
}

// Many writers at once never leave a reader with a partial file.
func TestAtomicWritesUnderConcurrency(t *testing.T) {
	s := newTestStore(t)
	id := hexID(1)
	if err := s.Create(testRecord(id, "c")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readErr error
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.State(id); err != nil {
				mu.Lock()
				readErr = err
				mu.Unlock()
				return
			}
		}
	}()
	var writers sync.WaitGroup
	for w := 0; w < 8; w++ {
		writers.Add(1)
		go func(w int) {
			defer writers.Done()
			for i := 0; i < 50; i++ {
				l, err := s.LockContainer(id)
				if err != nil {
					t.Error(err)
					return
				}
				st, _ := s.State(id)
				st.RestartCount++
				st.Error = strings.Repeat("x", w*100)
				s.SaveState(id, st)
				l.Unlock()
			}
		}(w)
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatalf("a reader saw a broken state file: %v", readErr)
	}
	st, _ := s.State(id)
	if st.RestartCount != 8*50 {
		t.Errorf("RestartCount = %d, want %d: an update under the lock was lost", st.RestartCount, 8*50)
	}
	entries, _ := os.ReadDir(s.Dir(id))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	l, ok, err := TryLockFile(path)
	if err != nil || !ok {
		t.Fatalf("first TryLockFile: ok=%v err=%v", ok, err)
	}
	if _, ok, err := TryLockFile(path); ok || err != nil {
		t.Errorf("second TryLockFile: ok=%v err=%v, want false, nil", ok, err)
	}
	l.Unlock()
	l2, ok, err := TryLockFile(path)
	if err != nil || !ok {
		t.Errorf("TryLockFile after Unlock: ok=%v err=%v", ok, err)
	}
	l2.Unlock()
}

func TestVolatileContainer(t *testing.T) {
	s := newTestStore(t)
	rec := testRecord(hexID(1), "tmp")
	rec.HostConfig.AutoRemove = true
	if err := s.Create(rec); err != nil {
		t.Fatal(err)
	}
	if s.Durable(rec.ID) {
		t.Error("a --rm container is durable")
	}
	durable := testRecord(hexID(2), "kept")
	if err := s.Create(durable); err != nil {
		t.Fatal(err)
	}
	if !s.Durable(durable.ID) {
		t.Error("a plain container is not durable")
	}
	// Volatile or not, the files are whole and readable.
	if err := s.SaveState(rec.ID, &State{Status: StatusRunning}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.State(rec.ID); err != nil || st.Status != StatusRunning {
		t.Errorf("State = %+v, %v", st, err)
	}
}

func TestAttachmentSubnet(t *testing.T) {
	a := Attachment{IP: "172.18.3.7", Prefix: 16}
	if got := a.Subnet().String(); got != "172.18.0.0/16" {
		t.Errorf("subnet = %s", got)
	}
	if (Attachment{}).Subnet() != nil {
		t.Error("subnet of an empty attachment")
	}
}
