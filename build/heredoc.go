package build

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Heredocs (Dockerfile syntax 1.4), with BuildKit's semantics:
//
//   - `RUN <<EOF` alone: the document (tabs stripped with <<-) is the
//     script the shell runs (`SHELL` + [document]); if it starts with
//     `#!`, it is run by the interpreter its first line names instead
//     (the kernel's rule: interpreter, optional single argument, script).
//     Variables are left to the shell, quoted delimiter or not.
//   - any other RUN with heredocs (`RUN cat <<EOF >/f`, `RUN python3 <<EOF`):
//     the first line, the documents and their delimiters are handed to the
//     shell, which processes the heredocs itself.
//   - `COPY <<EOF /dest`: a file named after the delimiter, mode 0644,
//     whose content is the document, with ARG/ENV expanded unless the
//     delimiter is quoted.

// runHeredocArgs rewrites the shell form of a RUN with heredocs into the
// command string the shell is given; ok is false when n has none.
func runHeredocArgs(n *parser.Node, cmd string) (args []string, shebang bool, ok bool) {
	if len(n.Heredocs) == 0 || n.Attributes["json"] {
		return nil, false, false
	}
	if hd := parser.MustParseHeredoc(strings.TrimSpace(cmd)); hd != nil {
		data := n.Heredocs[0].Content
		if n.Heredocs[0].Chomp || hd.Chomp {
			data = parser.ChompHeredocContent(data)
		}
		if strings.HasPrefix(data, "#!") {
			return []string{shebangScript(data)}, true, true
		}
		return []string{data}, false, true
	}
	var b strings.Builder
	b.WriteString(cmd)
	for _, h := range n.Heredocs {
		b.WriteByte('\n')
		b.WriteString(h.Content)
		b.WriteString(h.Name)
	}
	return []string{b.String()}, false, true
}

// shebangScript is a shell command that runs script with the interpreter
// its `#!` line names. BuildKit mounts the script as a file; berth hands
// it over on file descriptor 3 (a shell heredoc), so nothing of it ends up
// in the step's layer: the interpreter reads /dev/fd/3.
func shebangScript(script string) string {
	first, _, _ := strings.Cut(script, "\n")
	first = strings.TrimSpace(strings.TrimPrefix(first, "#!"))
	interp, arg, _ := strings.Cut(first, " ")
	arg = strings.TrimSpace(arg)
	delim := "BERTH_HEREDOC_EOF"
	for i := 0; strings.Contains(script, delim); i++ {
		delim = fmt.Sprintf("BERTH_HEREDOC_EOF_%d", i)
	}
	if !strings.HasSuffix(script, "\n") {
		script += "\n"
	}
	cmd := "exec " + shellQuote(interp)
	if arg != "" {
		cmd += " " + shellQuote(arg)
	}
	return fmt.Sprintf("exec 3<<'%s'\n%s%s\n%s /dev/fd/3", delim, script, delim, cmd)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// inlineFile is a COPY/ADD source given as a heredoc.
type inlineFile struct {
	name string
	data string
}

// heredocSource returns the inline file for a COPY/ADD source word that
// is a heredoc (word before expansion), expanding its content with env
// unless the delimiter was quoted.
func (b *builder) heredocSource(n *parser.Node, word string, env []string) (*inlineFile, error) {
	hd := parser.MustParseHeredoc(word)
	if hd == nil {
		return nil, nil
	}
	var doc *parser.Heredoc
	for i := range n.Heredocs {
		if n.Heredocs[i].Name == hd.Name {
			doc = &n.Heredocs[i]
			break
		}
	}
	if doc == nil {
		return nil, fmt.Errorf("%s: heredoc %s has no content", strings.ToUpper(n.Value), hd.Name)
	}
	data := doc.Content
	if hd.Chomp {
		data = parser.ChompHeredocContent(data)
	}
	if hd.Expand {
		lex := shell.NewLex('\\')
		lex.SkipProcessQuotes = true
		x, _, err := lex.ProcessWord(data, shell.EnvsFromSlice(env))
		if err != nil {
			return nil, err
		}
		data = x
	}
	return &inlineFile{name: hd.Name, data: data}, nil
}
