// Command testreport reads `go test -json` events (several streams may be
// concatenated: one per test process) on standard input, shows the output of
// the tests that fail, crash or skip as they end, and ends with a summary:
// tests run, passed, failed, crashed and skipped, and time per package. It
// exits 1 if a test failed or crashed, a package failed outside its tests,
// no test ran, or, with CI set, a test skipped.
//
//	go test -json ./... 2>&1 | go run ./scripts/testreport [-v]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	verbose := flag.Bool("v", false, "show the output of every test, not only of those that fail, crash or skip")
	flag.Parse()
	r := NewReport(os.Stdout)
	r.Verbose = *verbose
	if err := r.Read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if !r.Summary(os.Stdout, inCI()) {
		os.Exit(1)
	}
}

// inCI reads CI as internal/testenv.InCI does.
func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}
