package secretflag

import (
	"fmt"
	"strings"
)

// Spec is one --secret flag's value.
type Spec struct {
	ID  string
	Src string // a file holding the secret, or ""
	Env string // an environment variable holding it, or ""
}

// fields splits "k=v,k=v"; a later key wins, a field without = is a key
// with an empty value.
func fields(s string) Spec {
	var sp Spec
	for _, part := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "id":
			sp.ID = v
		case "src":
			sp.Src = v
		case "env":
			sp.Env = v
		}
	}
	return sp
}

// Parse reads pei build's form: an id and a file or a variable (both
// given, the file is used).
func Parse(s string) (Spec, error) {
	sp := fields(s)
	switch {
	case sp.ID == "":
		return Spec{}, fmt.Errorf("--secret %q: give id=ID", s)
	case sp.Src == "" && sp.Env == "":
		return Spec{}, fmt.Errorf("--secret %q: give src=FILE or env=VAR", s)
	}
	return sp, nil
}

// Files reads pei worker's form, an id and a file each (a worker serves
// secrets from files only), into files by id.
func Files(specs []string) (map[string]string, error) {
	files := map[string]string{}
	for _, s := range specs {
		sp := fields(s)
		if sp.ID == "" || sp.Src == "" {
			return nil, fmt.Errorf("--secret %q: give id=ID,src=FILE", s)
		}
		files[sp.ID] = sp.Src
	}
	return files, nil
}
