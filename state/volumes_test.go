package state

import (
	"errors"
	"sync"
	"testing"
)

func TestVolumeStore(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenVolumes(dir+"/root", dir+"/run")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNoSuchVolume) {
		t.Errorf("Get(nope) = %v", err)
	}
	if err := s.Create(&Volume{Name: "x"}); err == nil {
		t.Error("a one-letter name was accepted (docker needs two)")
	}
	// Many creators under the lock: one volume, created once.
	var wg sync.WaitGroup
	created := 0
	var mu sync.Mutex
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := s.Lock()
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Unlock()
			if _, err := s.Get("shared"); err == nil {
				return
			}
			if err := s.Create(&Volume{Name: "shared", Driver: "local", Labels: map[string]string{AnonymousLabel: ""}}); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			created++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("created %d times", created)
	}
	v, err := s.Get("shared")
	if err != nil || !v.Anonymous() || v.CreatedAt.IsZero() {
		t.Fatalf("Get(shared) = %+v, %v", v, err)
	}
	vols, _ := s.List()
	if len(vols) != 1 {
		t.Errorf("List = %v", vols)
	}
	if err := s.Remove("shared"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("shared"); !errors.Is(err, ErrNoSuchVolume) {
		t.Errorf("second Remove = %v", err)
	}
	if vols, _ := s.List(); len(vols) != 0 {
		t.Errorf("List after Remove = %v", vols)
	}
}
