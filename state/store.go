// Package state keeps containers' records and runtime state on disk.
//
// Layout:
//
//	ROOT/containers/ID/record.json   what was asked for (config, host config)
//	ROOT/containers/ID/state.json    status, pid, exit code, times
//	ROOT/containers/ID/lock          flock held by whoever changes this container
//	ROOT/containers/ID/volatile      present for --rm containers: their files are not fsynced
//	ROOT/containers/.names/NAME      one file per name, holding the ID
//	ROOT/containers/.lock            short global lock for IDs and names
//	RUNROOT/containers/ID/monitor.lock  held by the container's monitor while it lives
//
// Every file is replaced atomically (temp file, fsync, rename), so readers
// (ps, inspect) take no lock. A volatile container (--rm) skips the fsync:
// no crash should bring it back, as c/storage treats its layer too.
package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Sentinel errors that callers tell apart.
var (
	ErrNoSuchContainer = errors.New("no such container")
	ErrNameInUse       = errors.New("name already in use")
	ErrAmbiguous       = errors.New("ambiguous container ID prefix")
)

// Store is the on-disk container store.
type Store struct {
	dir    string // ROOT/containers
	rundir string // RUNROOT/containers
}

// Open prepares the store directories under root and runroot.
func Open(root, runroot string) (*Store, error) {
	s := &Store{dir: filepath.Join(root, "containers"), rundir: filepath.Join(runroot, "containers")}
	for _, d := range []string{filepath.Join(s.dir, ".names"), s.rundir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating state directory: %w", err)
		}
	}
	return s, nil
}

// Dir is the persistent directory of a container.
func (s *Store) Dir(id string) string { return filepath.Join(s.dir, id) }

// RunDir is the runtime directory of a container (sockets, monitor lock).
func (s *Store) RunDir(id string) string { return filepath.Join(s.rundir, id) }

// MonitorLockPath is the file the monitor holds locked while it runs.
func (s *Store) MonitorLockPath(id string) string {
	return filepath.Join(s.RunDir(id), "monitor.lock")
}

// LockGlobal takes the short global lock used for reserving IDs and names.
func (s *Store) LockGlobal() (*Lock, error) { return LockFile(filepath.Join(s.dir, ".lock")) }

// LockContainer takes the lock of one container. It fails with
// ErrNoSuchContainer if the container was removed meanwhile.
func (s *Store) LockContainer(id string) (*Lock, error) {
	l, err := LockFile(filepath.Join(s.Dir(id), "lock"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, id)
		}
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(s.Dir(id), "record.json")); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, id)
	}
	return l, nil
}

// Create writes a new container's record and initial state and reserves
// its name. Call it with the global lock held.
func (s *Store) Create(rec *Record) error {
	if rec.Name == "" || rec.ID == "" {
		return fmt.Errorf("container record needs an ID and a name")
	}
	if err := s.reserveName(rec.Name, rec.ID, !rec.Volatile()); err != nil {
		return err
	}
	dir := s.Dir(rec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.releaseName(rec.Name, rec.ID)
		return fmt.Errorf("creating container directory: %w", err)
	}
	if rec.Volatile() {
		if err := os.WriteFile(filepath.Join(dir, "volatile"), nil, 0o600); err != nil {
			s.releaseName(rec.Name, rec.ID)
			os.RemoveAll(dir)
			return fmt.Errorf("creating container directory: %w", err)
		}
	}
	if err := s.SaveState(rec.ID, &State{Status: StatusCreated}); err != nil {
		s.releaseName(rec.Name, rec.ID)
		os.RemoveAll(dir)
		return err
	}
	// The record is written last: a directory without record.json is not a
	// container (List skips it), so a crash here leaves nothing visible.
	if err := s.SaveRecord(rec); err != nil {
		s.releaseName(rec.Name, rec.ID)
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// SaveRecord replaces a container's record.
func (s *Store) SaveRecord(rec *Record) error {
	return writeJSON(filepath.Join(s.Dir(rec.ID), "record.json"), rec, !rec.Volatile())
}

// SaveState replaces a container's state.
func (s *Store) SaveState(id string, st *State) error {
	return writeJSON(filepath.Join(s.Dir(id), "state.json"), st, s.Durable(id))
}

// WriteFile writes one of a container's own files (hosts, …) atomically,
// durably unless the container is volatile.
func (s *Store) WriteFile(id, name string, data []byte, perm os.FileMode) error {
	return writeFile(filepath.Join(s.Dir(id), name), data, perm, s.Durable(id))
}

// Durable tells whether a container's files are fsynced (not for --rm).
func (s *Store) Durable(id string) bool {
	_, err := os.Stat(filepath.Join(s.Dir(id), "volatile"))
	return err != nil
}

// Record reads a container's record.
func (s *Store) Record(id string) (*Record, error) {
	var rec Record
	if err := readJSON(filepath.Join(s.Dir(id), "record.json"), &rec); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, id)
		}
		return nil, err
	}
	return &rec, nil
}

// State reads a container's state as recorded (see Engine for the fix-up
// of stale "running" states).
func (s *Store) State(id string) (*State, error) {
	var st State
	if err := readJSON(filepath.Join(s.Dir(id), "state.json"), &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, id)
		}
		return nil, err
	}
	return &st, nil
}

// Remove deletes a container's directories and releases its name.
func (s *Store) Remove(id string) error {
	rec, err := s.Record(id)
	if err != nil {
		return err
	}
	// Drop the record first so the container disappears from listings at
	// once, even if removing the rest is slow or fails half-way.
	if err := os.Remove(filepath.Join(s.Dir(id), "record.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing container %s: %w", id, err)
	}
	s.releaseName(rec.Name, id)
	os.RemoveAll(s.RunDir(id))
	if err := os.RemoveAll(s.Dir(id)); err != nil {
		return fmt.Errorf("removing container %s: %w", id, err)
	}
	return nil
}

// Rename gives a container a new name. Call it with the global lock held.
func (s *Store) Rename(id, newName string) error {
	rec, err := s.Record(id)
	if err != nil {
		return err
	}
	if err := s.reserveName(newName, id, s.Durable(id)); err != nil {
		return err
	}
	old := rec.Name
	rec.Name = newName
	if err := s.SaveRecord(rec); err != nil {
		s.releaseName(newName, id)
		return err
	}
	s.releaseName(old, id)
	return nil
}

// IDs lists all container IDs, oldest first.
func (s *Store) IDs() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	type idTime struct {
		id string
		t  time.Time
	}
	var found []idTime
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(s.dir, e.Name(), "record.json"))
		if err != nil {
			continue // being created or removed
		}
		found = append(found, idTime{e.Name(), fi.ModTime()})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].id < found[j].id })
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.id
	}
	return ids, nil
}

// Resolve finds a container by full ID, name, or unique ID prefix.
func (s *Store) Resolve(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%w: empty reference", ErrNoSuchContainer)
	}
	if isHex(ref) && len(ref) == 64 {
		if _, err := os.Stat(filepath.Join(s.Dir(ref), "record.json")); err == nil {
			return ref, nil
		}
	}
	if id, err := os.ReadFile(filepath.Join(s.dir, ".names", ref)); err == nil && validName(ref) {
		if _, err := os.Stat(filepath.Join(s.Dir(string(id)), "record.json")); err == nil {
			return string(id), nil
		}
	}
	if isHex(ref) {
		ids, err := s.IDs()
		if err != nil {
			return "", err
		}
		var match string
		for _, id := range ids {
			if strings.HasPrefix(id, ref) {
				if match != "" {
					return "", fmt.Errorf("%w: %s", ErrAmbiguous, ref)
				}
				match = id
			}
		}
		if match != "" {
			return match, nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrNoSuchContainer, ref)
}

// NameTaken tells whether a name is reserved by an existing container.
func (s *Store) NameTaken(name string) bool {
	id, err := os.ReadFile(filepath.Join(s.dir, ".names", name))
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(s.Dir(string(id)), "record.json"))
	return err == nil
}

func (s *Store) reserveName(name, id string, durable bool) error {
	if !validName(name) {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	path := filepath.Join(s.dir, ".names", name)
	if s.NameTaken(name) {
		old, _ := os.ReadFile(path)
		return fmt.Errorf("%w: the container name %q is already in use by container %s", ErrNameInUse, "/"+name, string(old))
	}
	// A stale name file (its container is gone) is replaced.
	return writeFile(path, []byte(id), 0o600, durable)
}

func (s *Store) releaseName(name, id string) {
	path := filepath.Join(s.dir, ".names", name)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == id {
		os.Remove(path)
	}
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// validName is Docker's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (one char allowed too).
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}
