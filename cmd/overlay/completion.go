package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// runCompletion prints a completion script for bash or zsh, made from the
// commands and their flag sets, so it never lists a flag that is gone.
func runCompletion(args []string) error {
	fs := newFlags("completion", `completion bash|zsh

Prints a completion script for the shell: the commands, their first words
(config check, psk new) and each command's flags.

  bash: source <(overlay completion bash)     # or save it in /etc/bash_completion.d/overlay
  zsh:  overlay completion zsh > "${fpath[1]}/_overlay"   # then restart zsh`)
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "bash":
		return writeBash(os.Stdout)
	case "zsh":
		return writeZsh(os.Stdout)
	}
	fmt.Fprintf(fs.Output(), "overlay completion: no script for %q (bash or zsh)\n", fs.Arg(0))
	fs.Usage()
	return errUsage
}

// completionFlag is one flag as a completion script offers it.
type completionFlag struct {
	name, usage string
	value       bool // takes a value
}

func flagList(c command) []completionFlag {
	fs := flagsOf(c)
	if fs == nil {
		return nil
	}
	var out []completionFlag
	fs.VisitAll(func(f *flag.Flag) {
		out = append(out, completionFlag{name: f.Name, usage: f.Usage, value: !isBool(f)})
	})
	return out
}

func writeBash(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`# bash completion for overlay (overlay completion bash)
_overlay() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local subs="" flags="" valued=""
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W "`)
	var names []string
	for _, c := range allCommands() {
		names = append(names, c.name)
	}
	b.WriteString(strings.Join(names, " ") + "\" -- \"$cur\"))\n\t\treturn\n\tfi\n\tcase ${COMP_WORDS[1]} in\n")
	for _, c := range allCommands() {
		var flags, valued []string
		for _, f := range flagList(c) {
			flags = append(flags, "--"+f.name)
			if f.value {
				valued = append(valued, "--"+f.name)
			}
		}
		fmt.Fprintf(&b, "\t%s) subs=%q flags=%q valued=%q ;;\n", c.name,
			strings.Join(c.subs, " "), strings.Join(flags, " "), strings.Join(valued, " "))
	}
	b.WriteString(`	esac
	if [[ " $valued " == *" $prev "* ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
	elif [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
	elif [[ $COMP_CWORD -eq 2 && -n $subs ]]; then
		COMPREPLY=($(compgen -W "$subs" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -o filenames -F _overlay overlay
`)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeZsh(w io.Writer) error {
	var b strings.Builder
	b.WriteString("#compdef overlay\n# zsh completion for overlay (overlay completion zsh)\n_overlay() {\n\tlocal -a commands\n\tcommands=(\n")
	for _, c := range allCommands() {
		fmt.Fprintf(&b, "\t\t%s\n", zshQuote(c.name+":"+c.summary))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe 'command' commands\n\t\treturn\n\tfi\n\tcase $words[2] in\n")
	for _, c := range allCommands() {
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments \\\n", c.name)
		for _, f := range flagList(c) {
			spec := "--" + f.name + "[" + zshDesc(f.usage) + "]"
			if f.value {
				spec += ":" + f.name + ":_files"
			}
			fmt.Fprintf(&b, "\t\t\t%s \\\n", zshQuote(spec))
		}
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "\t\t\t%s \\\n", zshQuote("1:"+c.name+":("+strings.Join(c.subs, " ")+")"))
		}
		b.WriteString("\t\t\t'*:argument:_files'\n\t\t;;\n")
	}
	b.WriteString("\tesac\n}\n_overlay \"$@\"\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// zshDesc shortens a flag's usage to its first clause and escapes what
// _arguments would read as syntax.
func zshDesc(s string) string {
	if i := strings.IndexAny(s, ";("); i > 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if len(s) > 70 {
		s = s[:67] + "..."
	}
	return strings.NewReplacer(`[`, `\[`, `]`, `\]`, `:`, `\:`).Replace(s)
}

// zshQuote quotes s in single quotes.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
