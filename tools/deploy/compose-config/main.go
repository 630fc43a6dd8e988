// compose-config loads a Compose file with compose-go, the loader `docker compose config`
// uses, and prints the project as Docker Compose would run it: interpolated, merged,
// paths resolved. It exits non-zero, naming the problem, on whatever Docker Compose would
// refuse (unknown keys, a depends_on naming no service, an undefined volume, ...).
//
//	compose-config docker/compose.yaml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-config COMPOSE_FILE")
		os.Exit(64)
	}
	options, err := cli.NewProjectOptions([]string{os.Args[1]},
		cli.WithOsEnv, cli.WithDotEnv, cli.WithInterpolation(true), cli.WithResolvedPaths(true))
	if err != nil {
		fail(err)
	}
	project, err := cli.ProjectFromOptions(context.Background(), options)
	if err != nil {
		fail(err)
	}
	text, err := project.MarshalYAML()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(text)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-config:", err)
	os.Exit(1)
}
