package storage

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"unicode"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ApplyChanges applies Dockerfile-style instructions (as given to
// `import --change` or `commit --change`) to cfg, in order.
//
// Each change is either Dockerfile syntax, `CMD ["/bin/sh","-c","x"]`,
// `CMD echo hi`, `ENV A=b C=d`, or podman's `KEY=rest` form (`CMD=/bin/sh`,
// `ENV=A=b`), which means the same as `KEY rest`. Supported instructions:
// CMD ENTRYPOINT ENV EXPOSE LABEL USER WORKDIR VOLUME STOPSIGNAL ONBUILD.
func ApplyChanges(cfg *v1.Config, changes []string) error {
	for _, change := range changes {
		if err := applyChange(cfg, change); err != nil {
			return fmt.Errorf("invalid --change %q: %w", change, err)
		}
	}
	return nil
}

func applyChange(cfg *v1.Config, change string) error {
	instruction, args := splitInstruction(change)
	if instruction == "" {
		return fmt.Errorf("empty instruction")
	}
	instruction = strings.ToUpper(instruction)
	switch instruction {
	case "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR", "VOLUME", "STOPSIGNAL", "ONBUILD":
	default:
		return fmt.Errorf("unknown instruction %s", instruction)
	}
	if args == "" {
		return fmt.Errorf("%s requires at least one argument", instruction)
	}

	switch instruction {
	case "CMD":
		cfg.Cmd = parseCommand(args)
	case "ENTRYPOINT":
		cfg.Entrypoint = parseCommand(args)
	case "ENV":
		pairs, err := parseKeyValues(args)
		if err != nil {
			return err
		}
		for _, pair := range pairs {
			cfg.Env = setEnv(cfg.Env, pair[0], pair[1])
		}
	case "LABEL":
		pairs, err := parseKeyValues(args)
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, pair := range pairs {
			cfg.Labels[pair[0]] = pair[1]
		}
	case "EXPOSE":
		words, err := splitWords(args)
		if err != nil {
			return err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, port := range words {
			port, err := normalizePort(port)
			if err != nil {
				return err
			}
			cfg.ExposedPorts[port] = struct{}{}
		}
	case "USER":
		cfg.User = args
	case "WORKDIR":
		dir := args
		if !path.IsAbs(dir) {
			base := cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			dir = path.Join(base, dir)
		}
		cfg.WorkingDir = path.Clean(dir)
	case "VOLUME":
		volumes, ok := parseJSONArray(args)
		if !ok {
			var err error
			if volumes, err = splitWords(args); err != nil {
				return err
			}
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, volume := range volumes {
			if volume == "" {
				return fmt.Errorf("VOLUME path must not be empty")
			}
			cfg.Volumes[volume] = struct{}{}
		}
	case "STOPSIGNAL":
		cfg.StopSignal = args
	case "ONBUILD":
		trigger, _ := splitInstruction(args)
		switch strings.ToUpper(trigger) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return fmt.Errorf("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(trigger))
		}
		cfg.OnBuild = append(cfg.OnBuild, args)
	}
	return nil
}

// splitInstruction splits "CMD echo hi" or podman's "CMD=echo hi" into the
// instruction and its (trimmed) arguments.
func splitInstruction(change string) (instruction, args string) {
	change = strings.TrimSpace(change)
	end := strings.IndexFunc(change, func(r rune) bool { return unicode.IsSpace(r) || r == '=' })
	if end < 0 {
		return change, ""
	}
	return change[:end], strings.TrimSpace(change[end+1:])
}

// parseCommand reads the exec form (a JSON array) or the shell form of
// CMD and ENTRYPOINT.
func parseCommand(args string) []string {
	if command, ok := parseJSONArray(args); ok {
		return command
	}
	return []string{"/bin/sh", "-c", args}
}

func parseJSONArray(args string) ([]string, bool) {
	if !strings.HasPrefix(args, "[") {
		return nil, false
	}
	var list []string
	if err := json.Unmarshal([]byte(args), &list); err != nil {
		return nil, false
	}
	return list, true
}

// parseKeyValues reads the arguments of ENV and LABEL: either
// "KEY=value KEY2=value2" (values may be quoted) or the legacy
// "KEY value with spaces".
func parseKeyValues(args string) ([][2]string, error) {
	words, err := splitWords(args)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("missing key")
	}
	if !strings.Contains(words[0], "=") {
		key, value, _ := strings.Cut(args, " ")
		key = strings.TrimSpace(key)
		value = strings.TrimSpace(value)
		if len(words) == 1 {
			return nil, fmt.Errorf("%s needs a value (KEY value or KEY=value)", key)
		}
		unquoted, err := splitWords(value)
		if err == nil && len(unquoted) == 1 {
			value = unquoted[0]
		}
		return [][2]string{{key, value}}, nil
	}
	pairs := make([][2]string, 0, len(words))
	for _, word := range words {
		key, value, ok := strings.Cut(word, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("%q is not of the form KEY=value", word)
		}
		pairs = append(pairs, [2]string{key, value})
	}
	return pairs, nil
}

// splitWords splits s at unquoted whitespace, removing single and double
// quotes and backslash escapes the way a Dockerfile does.
func splitWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			word.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped = true
			inWord = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote = r
			inWord = true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if escaped {
		word.WriteRune('\\')
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// setEnv sets KEY=value in env, replacing an earlier value of KEY.
func setEnv(env []string, key, value string) []string {
	entry := key + "=" + value
	for i, existing := range env {
		if existingKey, _, _ := strings.Cut(existing, "="); existingKey == key {
			env[i] = entry
			return env
		}
	}
	return append(env, entry)
}

// normalizePort turns "80" into "80/tcp" and checks "53/udp" style ports.
func normalizePort(port string) (string, error) {
	number, protocol, hasProtocol := strings.Cut(port, "/")
	if !hasProtocol {
		protocol = "tcp"
	}
	protocol = strings.ToLower(protocol)
	switch protocol {
	case "tcp", "udp", "sctp":
	default:
		return "", fmt.Errorf("invalid protocol %q in port %q", protocol, port)
	}
	if !validPortNumber(number) {
		return "", fmt.Errorf("invalid port %q", port)
	}
	return number + "/" + protocol, nil
}

// validPortNumber accepts "80" and ranges like "8000-8010".
func validPortNumber(s string) bool {
	low, high, isRange := strings.Cut(s, "-")
	if !isPort(low) {
		return false
	}
	return !isRange || isPort(high)
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}
