package storage

// Registries: configuration (registries.conf), credentials (auth.json /
// ~/.docker/config.json, credential helpers), and the HTTP transport that
// pull, push, login and search share.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrRegistry is wrapped by errors that come from talking to a registry
// (unknown tag, access denied, registry down, bad credentials).
var ErrRegistry = errors.New("registry error")

// LoopbackOnlyEnv, when set in the environment, makes every registry
// request to a host other than localhost, 127.0.0.0/8 or ::1 fail before
// it is sent. The tests set it so that nothing can ever reach docker.io.
const LoopbackOnlyEnv = "BERTH_REGISTRY_LOOPBACK_ONLY"

// RegistriesConfig is the small registries.conf berth reads (TOML or JSON):
//
//	insecure = ["myregistry:5000"]         # plain HTTP or unverified TLS
//	search   = ["docker.io"]               # registries `search` asks for an unqualified term
//	[mirrors]
//	"docker.io" = ["mirror.example:5000"]  # tried in order before the registry itself (pull)
type RegistriesConfig struct {
	Insecure []string            `toml:"insecure" json:"insecure"`
	Search   []string            `toml:"search" json:"search"`
	Mirrors  map[string][]string `toml:"mirrors" json:"mirrors"`
}

// LoadRegistriesConfig reads the first of paths that exists. No file at
// all is an empty configuration.
func LoadRegistriesConfig(paths ...string) (*RegistriesConfig, error) {
	for _, path := range paths {
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading registries configuration: %w", err)
		}
		var c RegistriesConfig
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
			err = json.Unmarshal(trimmed, &c)
		} else {
			_, err = toml.Decode(string(data), &c)
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		return &c, nil
	}
	return &RegistriesConfig{}, nil
}

// RegistryOptions are the settings every registry operation takes.
type RegistryOptions struct {
	// TLSVerify nil: HTTPS with verification, except for localhost and
	// 127.0.0.0/8 (plain HTTP, as docker) and registries the config lists
	// as insecure. False: HTTP allowed and certificates not verified.
	TLSVerify *bool
	// AuthFile overrides where credentials are read and written
	// (REGISTRY_AUTH_FILE does the same).
	AuthFile string
	// Config is the registries configuration; nil is empty.
	Config *RegistriesConfig
	// UserAgent is sent with every request.
	UserAgent string
}

func (o RegistryOptions) config() *RegistriesConfig {
	if o.Config == nil {
		return &RegistriesConfig{}
	}
	return o.Config
}

// insecure tells whether registry (host[:port]) may be reached over plain
// HTTP or without verifying its certificate.
func (o RegistryOptions) insecure(registry string) bool {
	if o.TLSVerify != nil && !*o.TLSVerify {
		return true
	}
	for _, r := range o.config().Insecure {
		if r == registry || canonicalRegistry(r) == canonicalRegistry(registry) {
			return true
		}
	}
	return false
}

// nameOptions are go-containerregistry's parse options for a reference to
// registry.
func (o RegistryOptions) nameOptions(registry string) []name.Option {
	opts := []name.Option{name.WithDefaultRegistry(dockerHub)}
	if o.insecure(registry) {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// parseReference parses a full reference (see NormalizeName) for use with
// go-containerregistry's remote package.
func (o RegistryOptions) parseReference(fullName string) (name.Reference, error) {
	registry := registryOf(fullName)
	ref, err := name.ParseReference(fullName, o.nameOptions(registry)...)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format %q: %w", fullName, err)
	}
	return ref, nil
}

// registryOf returns the registry part of a full reference.
func registryOf(fullName string) string {
	registry, _, _ := strings.Cut(fullName, "/")
	return registry
}

// baseTransport is the HTTP transport below go-containerregistry's auth
// and retry layers.
func (o RegistryOptions) baseTransport() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	if o.TLSVerify != nil && !*o.TLSVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --tls-verify=false asks for it
	}
	t.ResponseHeaderTimeout = 2 * time.Minute
	return &guardTransport{inner: t, loopbackOnly: os.Getenv(LoopbackOnlyEnv) != ""}
}

// remoteOptions are the options of every remote call.
func (o RegistryOptions) remoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithTransport(o.baseTransport()),
		remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 2}),
	}
	if o.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(o.UserAgent))
	}
	return opts
}

// authTransport is an authenticated transport for the given scopes (see
// transport.PullScope, transport.PushScope) on registry.
func (o RegistryOptions) authTransport(ctx context.Context, registry name.Registry, scopes []string) (http.RoundTripper, error) {
	auth, err := o.keychain().Resolve(registry)
	if err != nil {
		return nil, err
	}
	var inner http.RoundTripper = o.baseTransport()
	if o.UserAgent != "" {
		inner = transport.NewUserAgent(inner, o.UserAgent)
	}
	inner = transport.NewRetry(inner)
	return transport.NewWithContext(ctx, registry, auth, inner, scopes)
}

// guardTransport refuses non-loopback hosts when loopbackOnly is set.
type guardTransport struct {
	inner        http.RoundTripper
	loopbackOnly bool
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.loopbackOnly && !isLoopbackHost(req.URL.Hostname()) {
		return nil, fmt.Errorf("refusing to contact %s: %s is set (only localhost registries may be used)", req.URL.Host, LoopbackOnlyEnv)
	}
	return g.inner.RoundTrip(req)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// canonicalRegistry maps docker hub's many names to "docker.io" and strips
// a scheme and path from a stored server address.
func canonicalRegistry(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case name.DefaultRegistry, "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub
	}
	return s
}

// ---------------------------------------------------------------------------
// Credentials.

// authFiles returns the credential files read, in order, and the one
// written by login: --authfile or REGISTRY_AUTH_FILE if set; else
// $XDG_RUNTIME_DIR/containers/auth.json (podman) when XDG_RUNTIME_DIR is
// set, else ~/.docker/config.json ($DOCKER_CONFIG/config.json) (docker).
// Both are read.
func (o RegistryOptions) authFiles() (read []string, write string) {
	if o.AuthFile != "" {
		return []string{o.AuthFile}, o.AuthFile
	}
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		return []string{f}, f
	}
	dockerConfig := ""
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		dockerConfig = filepath.Join(d, "config.json")
	} else if home, err := os.UserHomeDir(); err == nil {
		dockerConfig = filepath.Join(home, ".docker", "config.json")
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		podman := filepath.Join(x, "containers", "auth.json")
		read = append(read, podman)
		write = podman
	}
	if dockerConfig != "" {
		read = append(read, dockerConfig)
		if write == "" {
			write = dockerConfig
		}
	}
	return read, write
}

// authConfigFile is the part of auth.json / config.json berth uses; other
// fields are kept as they are when the file is rewritten.
type authConfigFile struct {
	Auths       map[string]authEntry `json:"auths"`
	CredsStore  string               `json:"credsStore,omitempty"`
	CredHelpers map[string]string    `json:"credHelpers,omitempty"`
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

func readAuthConfig(path string) (*authConfigFile, map[string]json.RawMessage, error) {
	raw := map[string]json.RawMessage{}
	var f authConfigFile
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &f, raw, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &f, raw, nil
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return &f, raw, nil
}

func writeAuthConfig(path string, f *authConfigFile, raw map[string]json.RawMessage) error {
	auths, err := json.Marshal(f.Auths)
	if err != nil {
		return err
	}
	if f.Auths == nil {
		auths = []byte("{}")
	}
	raw["auths"] = auths
	data, err := json.MarshalIndent(raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".auth-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// authKey is the key a registry's entry has in an auth file.
func authKey(registry, path string) string {
	if registry == dockerHub && !strings.HasSuffix(path, "auth.json") {
		return "https://index.docker.io/v1/" // docker's own key
	}
	return registry
}

// helperServerURL is the server name passed to a credential helper.
func helperServerURL(registry string) string {
	if registry == dockerHub {
		return "https://index.docker.io/v1/"
	}
	return registry
}

// lookup finds the entry for a registry (and optionally a repository, for
// podman's repository-scoped entries) in an auth file.
func (f *authConfigFile) lookup(registry, repository string) (authEntry, bool) {
	if repository != "" {
		for path := registry + "/" + repository; strings.Contains(path, "/"); path = path[:strings.LastIndex(path, "/")] {
			if e, ok := f.Auths[path]; ok && e.hasCredentials() {
				return e, true
			}
		}
	}
	if e, ok := f.Auths[registry]; ok && e.hasCredentials() {
		return e, true
	}
	for key, e := range f.Auths {
		// A key without a scheme but with a path is podman's entry for one
		// repository (handled above), never the registry's own.
		if !strings.Contains(key, "://") && strings.Contains(key, "/") {
			continue
		}
		if canonicalRegistry(key) == registry && e.hasCredentials() {
			return e, true
		}
	}
	return authEntry{}, false
}

func (e authEntry) hasCredentials() bool {
	return e.Auth != "" || e.IdentityToken != "" || e.Username != ""
}

func (e authEntry) authConfig() (authn.AuthConfig, error) {
	c := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
	if e.Auth != "" {
		decoded, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return c, fmt.Errorf("decoding stored credentials: %w", err)
		}
		user, pass, ok := strings.Cut(string(decoded), ":")
		if !ok {
			return c, errors.New("stored credentials are not user:password")
		}
		c.Username, c.Password = user, pass
	}
	return c, nil
}

// keychain resolves credentials from the auth files and credential
// helpers, the way docker and podman do.
func (o RegistryOptions) keychain() authn.Keychain { return fileKeychain{o} }

type fileKeychain struct{ o RegistryOptions }

func (k fileKeychain) Resolve(resource authn.Resource) (authn.Authenticator, error) {
	registry := canonicalRegistry(resource.RegistryStr())
	repository := ""
	if repo, ok := resource.(name.Repository); ok {
		repository = repo.RepositoryStr()
	}
	read, _ := k.o.authFiles()
	for _, path := range read {
		f, _, err := readAuthConfig(path)
		if err != nil {
			return nil, err
		}
		if helper := f.CredHelpers[registry]; helper != "" {
			if c, ok, err := helperGet(helper, registry); err != nil {
				return nil, err
			} else if ok {
				return authn.FromConfig(c), nil
			}
		}
		if e, ok := f.lookup(registry, repository); ok {
			c, err := e.authConfig()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return authn.FromConfig(c), nil
		}
		if f.CredsStore != "" {
			if c, ok, err := helperGet(f.CredsStore, registry); err != nil {
				return nil, err
			} else if ok {
				return authn.FromConfig(c), nil
			}
		}
	}
	return authn.Anonymous, nil
}

// helperGet asks docker-credential-HELPER for a registry's credentials.
func helperGet(helper, registry string) (authn.AuthConfig, bool, error) {
	out, err := runHelper(helper, "get", helperServerURL(registry))
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "credentials not found") {
			return authn.AuthConfig{}, false, nil
		}
		return authn.AuthConfig{}, false, err
	}
	var resp struct{ Username, Secret string }
	if err := json.Unmarshal(out, &resp); err != nil {
		return authn.AuthConfig{}, false, fmt.Errorf("credential helper %s: %w", helper, err)
	}
	if resp.Username == "<token>" {
		return authn.AuthConfig{IdentityToken: resp.Secret}, true, nil
	}
	return authn.AuthConfig{Username: resp.Username, Password: resp.Secret}, true, nil
}

func runHelper(helper, action, input string) ([]byte, error) {
	cmd := exec.Command("docker-credential-"+helper, action)
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		return nil, fmt.Errorf("credential helper %s %s: %v: %s", helper, action, err, msg)
	}
	return stdout.Bytes(), nil
}

// ---------------------------------------------------------------------------
// login / logout.

// LoginOptions is `login`.
type LoginOptions struct {
	Registry RegistryOptions
	Server   string // "" is docker.io
	Username string
	Password string
}

// Login checks the credentials against the registry (basic or token
// auth) and stores them. It returns the registry's name.
func Login(ctx context.Context, o LoginOptions) (string, error) {
	server := canonicalRegistry(o.Server)
	if server == "" {
		server = dockerHub
	}
	if o.Username == "" && o.Password == "" {
		if user, pass, ok := o.Registry.storedCredentials(server); ok {
			o.Username, o.Password = user, pass
		}
	}
	if o.Username == "" || o.Password == "" {
		return "", errors.New("username and password are required (use -u and -p or --password-stdin; berth never prompts)")
	}
	registry, err := name.NewRegistry(server, o.Registry.nameOptions(server)...)
	if err != nil {
		return "", fmt.Errorf("invalid registry %q: %w", o.Server, err)
	}
	if err := verifyLogin(ctx, registry, o); err != nil {
		return "", err
	}
	_, path := o.Registry.authFiles()
	if path == "" {
		return "", errors.New("no place to store credentials: set REGISTRY_AUTH_FILE or HOME")
	}
	f, raw, err := readAuthConfig(path)
	if err != nil {
		return "", err
	}
	helper := f.CredHelpers[server]
	if helper == "" {
		helper = f.CredsStore
	}
	if helper != "" {
		payload, _ := json.Marshal(map[string]string{"ServerURL": helperServerURL(server), "Username": o.Username, "Secret": o.Password})
		if _, err := runHelper(helper, "store", string(payload)); err != nil {
			return "", err
		}
		return server, nil
	}
	if f.Auths == nil {
		f.Auths = map[string]authEntry{}
	}
	for key := range f.Auths {
		if canonicalRegistry(key) == server {
			delete(f.Auths, key)
		}
	}
	f.Auths[authKey(server, path)] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(o.Username + ":" + o.Password))}
	if err := writeAuthConfig(path, f, raw); err != nil {
		return "", fmt.Errorf("storing credentials in %s: %w", path, err)
	}
	return server, nil
}

// verifyLogin authenticates once against the registry's /v2/ endpoint.
func verifyLogin(ctx context.Context, registry name.Registry, o LoginOptions) error {
	auth := authn.FromConfig(authn.AuthConfig{Username: o.Username, Password: o.Password})
	tr, err := transport.NewWithContext(ctx, registry, auth, o.Registry.baseTransport(), nil)
	if err != nil {
		return loginError(registry, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, registry.Scheme()+"://"+registry.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return loginError(registry, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return registryErrorf("login to %s failed: unauthorized: incorrect username or password", registry.RegistryStr())
	default:
		return registryErrorf("login to %s failed: %s", registry.RegistryStr(), resp.Status)
	}
}

func loginError(registry name.Registry, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return registryErrorf("login to %s failed: unauthorized: incorrect username or password", registry.RegistryStr())
	}
	return registryErrorf("login to %s failed: %s", registry.RegistryStr(), oneLineError(err))
}

// Logout removes stored credentials of server from every credential file
// berth reads. It reports whether there were any.
func Logout(o RegistryOptions, server string) (registry string, removed bool, err error) {
	registry = canonicalRegistry(server)
	if registry == "" {
		registry = dockerHub
	}
	read, _ := o.authFiles()
	for _, path := range read {
		f, raw, err := readAuthConfig(path)
		if err != nil {
			return registry, removed, err
		}
		helper := f.CredHelpers[registry]
		if helper == "" {
			helper = f.CredsStore
		}
		if helper != "" {
			if _, err := runHelper(helper, "erase", helperServerURL(registry)); err == nil {
				removed = true
			}
		}
		changed := false
		for key := range f.Auths {
			if canonicalRegistry(key) == registry || strings.HasPrefix(key, registry+"/") {
				delete(f.Auths, key)
				changed = true
			}
		}
		if changed {
			if err := writeAuthConfig(path, f, raw); err != nil {
				return registry, removed, fmt.Errorf("removing credentials from %s: %w", path, err)
			}
			removed = true
		}
	}
	return registry, removed, nil
}

// oneLineError keeps a registry error on one line.
func oneLineError(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// registryError is an error from talking to a registry: errors.Is(err,
// ErrRegistry) holds, but the message does not repeat it.
type registryError struct{ err error }

func (e *registryError) Error() string        { return e.err.Error() }
func (e *registryError) Unwrap() error        { return e.err }
func (e *registryError) Is(target error) bool { return target == ErrRegistry }

func registryErrorf(format string, args ...any) error {
	return &registryError{err: fmt.Errorf(format, args...)}
}

// storedCredentials returns the user name and password stored for
// server, if any (login without -u/-p reuses them, as docker does).
func (o RegistryOptions) storedCredentials(server string) (string, string, bool) {
	registry, err := name.NewRegistry(server, o.nameOptions(server)...)
	if err != nil {
		return "", "", false
	}
	auth, err := o.keychain().Resolve(registry)
	if err != nil || auth == authn.Anonymous {
		return "", "", false
	}
	c, err := auth.Authorization()
	if err != nil || c.Username == "" || c.Password == "" {
		return "", "", false
	}
	return c.Username, c.Password, true
}

// ListTags lists the tags of ref's repository (`pull --all-tags`).
func ListTags(ctx context.Context, ref string, o RegistryOptions) ([]string, error) {
	fullName, err := NormalizeName(ref)
	if err != nil {
		return nil, err
	}
	parsed, err := o.parseReference(fullName)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(parsed.Context(), o.remoteOptions(ctx)...)
	if err != nil {
		return nil, pullError(parsed, err)
	}
	return tags, nil
}
