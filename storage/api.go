// Package storage keeps images, layers and container root filesystems.
// It wraps go.podman.io/storage (containers/storage) for layers and
// mounts, and go-containerregistry for image configs and archives.
//
// CONTRACT (written by the lead before the package existed; keep these
// exported names and signatures, add whatever else is needed):
//
//	type Options struct { Root, RunRoot, Driver string }  // Driver "" = overlay, falling back to vfs
//	func Open(o Options) (*Store, error)                   // Root/RunRoot are the berth roots; storage lives in Root+"/storage", RunRoot+"/storage"
//	func (s *Store) Close() error                          // Shutdown(false); never unmounts container rootfs
//	func (s *Store) Driver() string                        // "overlay" or "vfs"
//	func (s *Store) DriverStatus() [][2]string             // for `berth info`
//
//	type Image struct {
//	    ID       string            // hex sha256 of the config JSON (docker image ID, no "sha256:")
//	    Names    []string          // full refs: "docker.io/library/busybox:latest"
//	    Digests  []string          // manifest digests "sha256:…" when known
//	    Created  time.Time
//	    Size     int64             // sum of uncompressed layer sizes
//	    Config   *v1.ConfigFile    // github.com/google/go-containerregistry/pkg/v1
//	    TopLayer string            // c/storage layer id
//	}
//	var ErrImageNotFound, ErrCorruptArchive error       // errors.Is-able sentinels
//	func (s *Store) Import(ctx context.Context, r io.Reader, o ImportOptions) (*Image, error)
//	type ImportOptions struct { Ref string; Changes []string; Message string }
//	        // Changes: "CMD [\"/bin/sh\"]" (Dockerfile syntax) or "CMD=/bin/sh" (podman);
//	        // CMD ENTRYPOINT ENV EXPOSE LABEL USER WORKDIR VOLUME STOPSIGNAL ONBUILD; bad one -> error naming it
//	func (s *Store) Load(ctx context.Context, r io.Reader) ([]string, error) // docker-archive or OCI archive; returns loaded refs (or IDs for untagged)
//	func (s *Store) LookupImage(nameOrID string) (*Image, error)              // name (short "busybox" ok), full ID, unique ID prefix, "sha256:" prefix ok
//	func (s *Store) Images() ([]*Image, error)
//	func (s *Store) CreateRootfs(containerID, imageID string) error            // new writable layer on top of the image
//	func (s *Store) MountRootfs(containerID string) (string, error)            // returns the merged dir
//	func (s *Store) UnmountRootfs(containerID string) error                    // force, idempotent
//	func (s *Store) RemoveRootfs(containerID string) error                     // unmount + delete, idempotent (missing is not an error)
//	func (s *Store) RootfsSize(containerID string) (rw int64, err error)       // size of the container's own layer (ps -s)
//	func FamiliarName(ref string) string                                      // "docker.io/library/busybox:latest" -> "busybox:latest"
//	func NormalizeName(ref string) (string, error)                            // "busybox" -> "docker.io/library/busybox:latest"
package storage
