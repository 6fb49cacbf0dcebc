package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
)

func newCatalogCmd() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "List, set, show and remove the items of pei serve's catalogs",
		Long: `Catalog manages pei serve's catalogs: prebuilt diffs by name, one catalog
per namespace, which a pei project's compose layer takes with catalog: NAME
when the project's own catalog has no item of that name. An item's lower
and upper are images of the server in the catalog's namespace, written
without the host (team-a/dev-base:bookworm), pushed before the item is set.
A build takes the namespace's item, else the shared catalog's (pei serve
--shared-catalog), pinned by digest when it is submitted.

Reading a catalog needs pull in its namespace (every tenant's token may
read the shared one); writing needs push, and admin in the shared
namespace. The token comes from PEI_TOKEN.`,
		Example: `  pei catalog set pei/python --lower pei/dev-base:bookworm --upper pei/lang-python:3.11-bookworm --exclude /pei-init --server $PEI_SERVER
  pei catalog list team-a --server http://127.0.0.1:5000
  pei catalog get team-a/python
  pei catalog rm team-a/python`,
	}
	cmd.PersistentFlags().StringVar(&server, "server", os.Getenv("PEI_SERVER"), "pei serve URL ($PEI_SERVER)")
	connect := func() (*client.Client, error) {
		if server == "" {
			return nil, errors.New("--server: give pei serve's URL (or set PEI_SERVER)")
		}
		return client.New(server, os.Getenv("PEI_TOKEN")), nil
	}
	// forItem reads an NS/NAME argument and connects.
	forItem := func(arg string) (c *client.Client, ns, name string, err error) {
		if ns, name, err = catalogItemArg(arg); err == nil {
			c, err = connect()
		}
		return c, ns, name, err
	}

	list := &cobra.Command{
		Use:   "list NS",
		Short: "List a namespace's catalog and the shared items its builds may take",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect()
			if err != nil {
				return err
			}
			cat, err := c.Catalog(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			printCatalogItems(w, cat.Items)
			if len(cat.Shared) > 0 {
				fmt.Fprintf(w, "\nfrom the shared catalog (namespace %s):\n", cat.SharedNamespace)
				printCatalogItems(w, cat.Shared)
			}
			return nil
		},
	}

	var it api.CatalogItem
	set := &cobra.Command{
		Use:   "set NS/NAME --lower REF --upper REF [--exclude PATH]...",
		Short: "Create or replace a catalog item",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, name, err := forItem(args[0])
			if err != nil {
				return err
			}
			it.Name = name
			stored, err := c.PutCatalogItem(cmd.Context(), ns, it)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "catalog item %s/%s: lower %s, upper %s, exclude %s\n", ns, stored.Name, stored.Lower, stored.Upper, orDash(stored.Exclude))
			return nil
		},
	}
	set.Flags().StringVar(&it.Lower, "lower", "", "the dev base, an image of NS: NS/REPO:TAG or NS/REPO@DIGEST")
	set.Flags().StringVar(&it.Upper, "upper", "", "the dev base with the item built on it, an image of NS")
	set.Flags().StringArrayVar(&it.Exclude, "exclude", nil, "an absolute path the diff leaves out (repeatable)")
	_ = set.MarkFlagRequired("lower")
	_ = set.MarkFlagRequired("upper")

	get := &cobra.Command{
		Use:   "get NS/NAME",
		Short: "Print a catalog item as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, name, err := forItem(args[0])
			if err != nil {
				return err
			}
			it, err := c.CatalogItem(cmd.Context(), ns, name)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(it)
		},
	}

	rm := &cobra.Command{
		Use:   "rm NS/NAME",
		Short: "Remove a catalog item (queued builds keep what they pinned)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, name, err := forItem(args[0])
			if err != nil {
				return err
			}
			if err := c.DeleteCatalogItem(cmd.Context(), ns, name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed catalog item %s/%s\n", ns, name)
			return nil
		},
	}
	cmd.AddCommand(list, set, get, rm)
	return cmd
}

// catalogItemArg reads NS/NAME.
func catalogItemArg(s string) (ns, name string, err error) {
	ns, name, _ = strings.Cut(s, "/")
	if err := api.CheckNamespace(ns); err != nil || ns == "*" || !api.ValidCatalogName(name) {
		return "", "", fmt.Errorf("%q: give NS/NAME, a namespace and an item name (letters, digits, '_', '.', '-'), e.g. team-a/python", s)
	}
	return ns, name, nil
}

func printCatalogItems(w io.Writer, items []api.CatalogItem) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLOWER\tUPPER\tEXCLUDE\tUPDATED BY")
	for _, it := range items {
		by := it.UpdatedBy
		if by == "" {
			by = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Name, it.Lower, it.Upper, orDash(it.Exclude), by)
	}
	tw.Flush()
}

// orDash joins paths with commas, or is "-" for none.
func orDash(paths []string) string {
	if len(paths) == 0 {
		return "-"
	}
	return strings.Join(paths, ",")
}
