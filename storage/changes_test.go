package storage

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestApplyChanges(t *testing.T) {
	tests := []struct {
		change string
		start  v1.Config
		want   v1.Config
	}{
		{change: `CMD ["/bin/sh","-c","x"]`, want: v1.Config{Cmd: []string{"/bin/sh", "-c", "x"}}},
		{change: `CMD echo hi`, want: v1.Config{Cmd: []string{"/bin/sh", "-c", "echo hi"}}},
		{change: `CMD=/bin/sh`, want: v1.Config{Cmd: []string{"/bin/sh", "-c", "/bin/sh"}}},
		{change: `cmd ["top"]`, want: v1.Config{Cmd: []string{"top"}}},
		{change: `CMD [not json`, want: v1.Config{Cmd: []string{"/bin/sh", "-c", "[not json"}}},
		{change: `ENTRYPOINT ["/init", "--verbose"]`, want: v1.Config{Entrypoint: []string{"/init", "--verbose"}}},
		{change: `ENTRYPOINT=/init`, want: v1.Config{Entrypoint: []string{"/bin/sh", "-c", "/init"}}},
		{change: `ENV A=b C=d`, want: v1.Config{Env: []string{"A=b", "C=d"}}},
		{change: `ENV A b`, want: v1.Config{Env: []string{"A=b"}}},
		{change: `ENV A hello world`, want: v1.Config{Env: []string{"A=hello world"}}},
		{change: `ENV=A=b`, want: v1.Config{Env: []string{"A=b"}}},
		{change: `ENV MSG="hello world" X=1`, want: v1.Config{Env: []string{"MSG=hello world", "X=1"}}},
		{change: `ENV PATH=/x`, start: v1.Config{Env: []string{"PATH=/bin", "HOME=/"}}, want: v1.Config{Env: []string{"PATH=/x", "HOME=/"}}},
		{change: `EXPOSE 80/tcp 53/udp 8080`, want: v1.Config{ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8080/tcp": {}}}},
		{change: `EXPOSE=80`, want: v1.Config{ExposedPorts: map[string]struct{}{"80/tcp": {}}}},
		{change: `LABEL k=v`, want: v1.Config{Labels: map[string]string{"k": "v"}}},
		{change: `LABEL "a b"="c d" e=f`, want: v1.Config{Labels: map[string]string{"a b": "c d", "e": "f"}}},
		{change: `LABEL=k=v`, want: v1.Config{Labels: map[string]string{"k": "v"}}},
		{change: `USER nobody:nogroup`, want: v1.Config{User: "nobody:nogroup"}},
		{change: `USER=1000`, want: v1.Config{User: "1000"}},
		{change: `WORKDIR /x`, want: v1.Config{WorkingDir: "/x"}},
		{change: `WORKDIR sub`, start: v1.Config{WorkingDir: "/x"}, want: v1.Config{WorkingDir: "/x/sub"}},
		{change: `WORKDIR=/srv`, want: v1.Config{WorkingDir: "/srv"}},
		{change: `VOLUME ["/data"]`, want: v1.Config{Volumes: map[string]struct{}{"/data": {}}}},
		{change: `VOLUME /data /logs`, want: v1.Config{Volumes: map[string]struct{}{"/data": {}, "/logs": {}}}},
		{change: `STOPSIGNAL SIGKILL`, want: v1.Config{StopSignal: "SIGKILL"}},
		{change: `ONBUILD RUN make`, want: v1.Config{OnBuild: []string{"RUN make"}}},
		{change: `  CMD   spaced  `, want: v1.Config{Cmd: []string{"/bin/sh", "-c", "spaced"}}},
	}
	for _, test := range tests {
		config := test.start
		if err := ApplyChanges(&config, []string{test.change}); err != nil {
			t.Errorf("ApplyChanges(%q): %v", test.change, err)
			continue
		}
		if !reflect.DeepEqual(config, test.want) {
			t.Errorf("ApplyChanges(%q) = %+v, want %+v", test.change, config, test.want)
		}
	}
}

func TestApplyChangesErrors(t *testing.T) {
	for change, want := range map[string]string{
		"FOO x":             `invalid --change "FOO x": unknown instruction FOO`,
		"RUN make":          `invalid --change "RUN make": unknown instruction RUN`,
		"CMD":               `invalid --change "CMD": CMD requires at least one argument`,
		"":                  `invalid --change "": empty instruction`,
		"ENV A":             `invalid --change "ENV A": A needs a value (KEY value or KEY=value)`,
		"EXPOSE 99999":      `invalid --change "EXPOSE 99999": invalid port "99999"`,
		"EXPOSE 80/foo":     `invalid --change "EXPOSE 80/foo": invalid protocol "foo" in port "80/foo"`,
		`ENV A="unclosed`:   `invalid --change "ENV A=\"unclosed": unterminated quote in "A=\"unclosed"`,
		"ONBUILD ONBUILD x": `invalid --change "ONBUILD ONBUILD x": ONBUILD isn't allowed as an ONBUILD trigger`,
	} {
		var config v1.Config
		err := ApplyChanges(&config, []string{change})
		if err == nil || err.Error() != want {
			t.Errorf("ApplyChanges(%q) error = %v, want %s", change, err, want)
		}
	}
}

func TestApplyChangesInOrder(t *testing.T) {
	var config v1.Config
	err := ApplyChanges(&config, []string{"ENV A=1", "CMD a", "ENV A=2", `CMD ["b"]`})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(config.Env, []string{"A=2"}) || !reflect.DeepEqual(config.Cmd, []string{"b"}) {
		t.Errorf("got %+v", config)
	}
}

func TestNames(t *testing.T) {
	for input, want := range map[string]string{
		"busybox":                          "docker.io/library/busybox:latest",
		"busybox:1.36":                     "docker.io/library/busybox:1.36",
		"library/busybox":                  "docker.io/library/busybox:latest",
		"docker.io/busybox":                "docker.io/library/busybox:latest",
		"index.docker.io/library/busybox":  "docker.io/library/busybox:latest",
		"user/app:v1":                      "docker.io/user/app:v1",
		"quay.io/x/y":                      "quay.io/x/y:latest",
		"localhost:5000/app":               "localhost:5000/app:latest",
		"docker.io/library/busybox:latest": "docker.io/library/busybox:latest",
		"busybox@sha256:" + sixtyFourA:     "docker.io/library/busybox@sha256:" + sixtyFourA,
	} {
		got, err := NormalizeName(input)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", input, got, err, want)
		}
	}
	for _, bad := range []string{"UPPER", "a b", ":tag", ""} {
		if got, err := NormalizeName(bad); err == nil {
			t.Errorf("NormalizeName(%q) = %q, want error", bad, got)
		}
	}
	for input, want := range map[string]string{
		"docker.io/library/busybox:latest": "busybox:latest",
		"docker.io/user/app:v1":            "user/app:v1",
		"quay.io/x/y:latest":               "quay.io/x/y:latest",
		"docker.io/library/a/b:1":          "library/a/b:1",
	} {
		if got := FamiliarName(input); got != want {
			t.Errorf("FamiliarName(%q) = %q, want %q", input, got, want)
		}
	}
}

const sixtyFourA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
