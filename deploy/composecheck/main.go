// Command composecheck loads a compose file with compose-go, the loader `docker compose`
// itself uses, and prints the resolved project as JSON (what `docker compose config
// --format json` prints): schema validation, interpolation of ${VAR}, ${VAR:?message} and
// the like, normalization and the consistency checks. An invalid file exits 1 with the
// loader's message on stderr.
//
//	go run . [-profile jobs] [-env-file FILE] ../compose.yaml
//
// Variables come from the process environment and the -env-file files only: unlike
// `docker compose`, a .env file next to the compose file is not read unless named, so a
// check never depends on a developer's local secrets.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var profiles, envFiles list
	flag.Var(&profiles, "profile", "a profile to enable (repeatable), as `docker compose --profile`")
	flag.Var(&envFiles, "env-file", "a file of KEY=VALUE lines for interpolation (repeatable)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-profile NAME] [-env-file FILE] COMPOSE_FILE...")
		os.Exit(2)
	}
	fns := []cli.ProjectOptionsFn{cli.WithOsEnv}
	if len(envFiles) > 0 {
		fns = append(fns, cli.WithEnvFiles(envFiles...), cli.WithDotEnv)
	}
	// the same steps as `docker compose config`: interpolation, normalization, consistency
	fns = append(fns,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithProfiles(profiles),
	)
	options, err := cli.NewProjectOptions(flag.Args(), fns...)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
