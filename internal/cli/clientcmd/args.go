package clientcmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// ExactArgs is cobra.ExactArgs with an error that names what is missing.
func ExactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %s (got %d arguments; see --help)", verb(cmd), what, len(args))
		}
		return nil
	}
}

// MinArgs is cobra.MinimumNArgs with an error that names what is missing.
func MinArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s takes %s (got %d arguments; see --help)", verb(cmd), what, len(args))
		}
		return nil
	}
}

// NounRunE makes a command that only groups verbs print its help when run
// alone; with cobra.NoArgs an unknown verb is then an error rather than help
// and exit status 0.
func NounRunE(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// verb is the command path without the program name, which the error
// printer already puts first.
func verb(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// Noun finishes a command that only groups verbs: no arguments, help when
// run alone, --brokers/--timeout and --format for every verb (format is
// filled in before a verb runs), and the verbs.
func Noun(p *Params, format *string, cmd *cobra.Command, verbs ...*cobra.Command) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.RunE = NounRunE
	p.AddConnFlags(cmd.PersistentFlags())
	AddFormatFlag(cmd.PersistentFlags(), format)
	cmd.AddCommand(verbs...)
	return cmd
}
