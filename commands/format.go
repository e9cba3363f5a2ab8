package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
)

// templateFuncs are the functions docker offers in --format templates.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"pad": func(s string, before, after int) string {
		return strings.Repeat(" ", before) + s + strings.Repeat(" ", after)
	},
	"truncate": func(s string, n int) string {
		if len(s) > n {
			return s[:n]
		}
		return s
	},
	"println": func(args ...any) string { return fmt.Sprintln(args...) },
}

// parseTemplate reads a --format value. A "table " prefix asks for a
// header row and aligned columns.
func parseTemplate(format string) (tmpl *template.Template, table bool, err error) {
	if rest, ok := strings.CutPrefix(format, "table"); ok {
		table, format = true, strings.TrimLeft(rest, " ")
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err = template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, false, usagef("invalid --format template: %v", err)
	}
	return tmpl, table, nil
}

// writeFormatted prints one line per row with the template, or a table
// (header from headers, keyed by field name) when table is true.
func writeFormatted(w io.Writer, format string, rows []any, headers map[string]string) error {
	tmpl, table, err := parseTemplate(format)
	if err != nil {
		return err
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
		out = tw
		// The header is the same template run over the column titles.
		var hdr strings.Builder
		if err := tmpl.Execute(&hdr, headerRow(headers)); err == nil {
			fmt.Fprintln(out, hdr.String())
		}
	}
	for _, row := range rows {
		if err := tmpl.Execute(out, row); err != nil {
			return fmt.Errorf("executing --format template: %w", err)
		}
		fmt.Fprintln(out)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// headerRow answers every field and method name with its column title.
type headerRow map[string]string

// humanDuration is docker's (go-units) HumanDuration.
func humanDuration(d time.Duration) string {
	seconds := int(d.Seconds())
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	}
	minutes := int(d.Minutes())
	switch {
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	}
	hours := int(d.Hours() + 0.5)
	switch {
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// humanSize is docker's HumanSize (decimal units, 3 significant digits).
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
