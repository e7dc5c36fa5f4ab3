// Package module is `weir module`: the module hub (publish, list,
// describe, pull, delete versioned transform modules kept in the cluster),
// plus `init` to scaffold a Go module project and `test` to run a module
// on sample records locally.
package module

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
	"github.com/weir-dev/weir/internal/hub"
	"github.com/weir-dev/weir/internal/transform"
)

// New returns the module command and its verbs.
func New(p *clientcmd.Params) *cobra.Command {
	var format string
	return clientcmd.Noun(p, &format, &cobra.Command{
		Use:     "module",
		Aliases: []string{"modules"},
		Short:   "Publish, list and fetch transform modules; scaffold and test them",
	}, newPublish(p, &format), newList(p, &format), newDescribe(p, &format), newPull(p), newDelete(p), newInit(), newTest())
}

// Hub connects to the catalog with the command's connection settings.
func Hub(ctx context.Context, p *clientcmd.Params) (*hub.Client, error) {
	cl, err := p.Client(ctx) // checks a broker answers
	if err != nil {
		return nil, err
	}
	cl.Close()
	return hub.New(clientOpts(p)...)
}

// WithHub runs fn with a catalog client made from the command's connection
// settings.
func WithHub(cmd *cobra.Command, p *clientcmd.Params, fn func(ctx context.Context, h *hub.Client) error) error {
	h, err := Hub(cmd.Context(), p)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(cmd.Context(), h)
}

// PrintFromHub prints, in the command's --format, the view fn makes with a
// catalog client.
func PrintFromHub(cmd *cobra.Command, p *clientcmd.Params, format *string, fn func(ctx context.Context, h *hub.Client) (clientcmd.Texter, error)) error {
	f, err := clientcmd.ParseFormat(*format)
	if err != nil {
		return err
	}
	return WithHub(cmd, p, func(ctx context.Context, h *hub.Client) error {
		v, err := fn(ctx, h)
		if err != nil {
			return err
		}
		return f.Print(cmd.OutOrStdout(), v)
	})
}

// Inspect compiles a module and starts it once (no parameters) to learn
// its kind: what publish and deploy check before anything is stored.
func Inspect(ctx context.Context, wasm []byte) (transform.Kind, error) {
	rt, err := transform.NewRuntime(ctx, transform.Options{})
	if err != nil {
		return 0, err
	}
	defer rt.Close(ctx)
	m, err := rt.Compile(ctx, wasm)
	if err != nil {
		return 0, err
	}
	inst, err := m.Instantiate(ctx, transform.Config{}, nil)
	if err != nil {
		return 0, err
	}
	defer inst.Close(ctx)
	return inst.Kind(), nil
}

func newPublish(p *clientcmd.Params, format *string) *cobra.Command {
	var name, version, description string
	var params []string
	cmd := &cobra.Command{
		Use:   "publish FILE.wasm --name NAME --version MAJOR.MINOR.PATCH",
		Short: "Check a module and store it in the cluster as NAME@VERSION",
		Args:  clientcmd.ExactArgs(1, "the module file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			if name == "" || version == "" {
				return errors.New("--name and --version are required")
			}
			info := hub.ModuleInfo{Name: name, Version: version, Description: description, Published: time.Now().UTC()}
			if _, _, err := hub.ParseRef(info.Ref()); err != nil {
				return err
			}
			for _, s := range params {
				n, d, _ := strings.Cut(s, "=")
				if n == "" {
					return fmt.Errorf("--param %q is not NAME[=description]", s)
				}
				info.Params = append(info.Params, hub.ParamInfo{Name: n, Description: d})
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			kind, err := Inspect(ctx, wasm)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			info.Kind, info.Digest, info.Size = kind.String(), transform.Digest(wasm), len(wasm)
			h, err := Hub(ctx, p)
			if err != nil {
				return err
			}
			defer h.Close()
			if err := h.PublishModule(ctx, info, wasm); err != nil {
				return err
			}
			return f.Print(cmd.OutOrStdout(), moduleView(info))
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "module name")
	cmd.Flags().StringVar(&version, "version", "", "version, MAJOR.MINOR.PATCH; published versions are immutable")
	cmd.Flags().StringVar(&description, "description", "", "what the module does")
	cmd.Flags().StringArrayVar(&params, "param", nil, "a parameter the module takes, as NAME[=description] (repeatable)")
	return cmd
}

type moduleView hub.ModuleInfo

func (m moduleView) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w)
	t.Row("MODULE", hub.ModuleInfo(m).Ref())
	t.Row("KIND", m.Kind)
	t.Row("DIGEST", "sha256:"+m.Digest)
	t.Row("SIZE", m.Size)
	t.Row("PUBLISHED", m.Published.Format(time.RFC3339))
	if m.Description != "" {
		t.Row("DESCRIPTION", m.Description)
	}
	for _, p := range m.Params {
		t.Row("PARAM", p.Name+"  "+p.Description)
	}
	return t.Flush()
}

type moduleList []hub.ModuleInfo

func (l moduleList) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w, "MODULE", "KIND", "SIZE", "DIGEST", "PUBLISHED")
	for _, m := range l {
		t.Row(m.Ref(), m.Kind, m.Size, m.Digest[:min(12, len(m.Digest))], m.Published.Format(time.RFC3339))
	}
	return t.Flush()
}

func newList(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List published modules and versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return PrintFromHub(cmd, p, format, func(ctx context.Context, h *hub.Client) (clientcmd.Texter, error) {
				ms, err := h.Modules(ctx)
				return append(moduleList{}, ms...), err
			})
		},
	}
}

func newDescribe(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME[@VERSION]",
		Short: "Show a module version (the newest without @VERSION)",
		Args:  clientcmd.ExactArgs(1, "a module name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return PrintFromHub(cmd, p, format, func(ctx context.Context, h *hub.Client) (clientcmd.Texter, error) {
				info, _, err := h.Module(ctx, args[0])
				return moduleView(info), err
			})
		},
	}
}

func newPull(p *clientcmd.Params) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "pull NAME[@VERSION] [-o FILE]",
		Short: "Download a module (checked against its digest)",
		Args:  clientcmd.ExactArgs(1, "a module name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := Hub(cmd.Context(), p)
			if err != nil {
				return err
			}
			defer h.Close()
			info, wasm, err := h.Module(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if transform.Digest(wasm) != info.Digest {
				return fmt.Errorf("%s: the stored bytes do not match digest %s", info.Ref(), info.Digest)
			}
			if out == "" {
				out = info.Name + "-" + info.Version + ".wasm"
			}
			if err := os.WriteFile(out, wasm, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s (%d bytes, sha256:%s)\n", info.Ref(), out, len(wasm), info.Digest)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default NAME-VERSION.wasm)")
	return cmd
}

func newDelete(p *clientcmd.Params) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME@VERSION",
		Short: "Delete a published version (refused while a transform runs it)",
		Args:  clientcmd.ExactArgs(1, "NAME@VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := WithHub(cmd, p, func(ctx context.Context, h *hub.Client) error { return h.DeleteModule(ctx, args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
}
