package secretflag

import (
	"maps"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		err  string
	}{
		{"id=npm,env=NPM_TOKEN", Spec{ID: "npm", Env: "NPM_TOKEN"}, ""},
		{"id=key,src=/etc/key", Spec{ID: "key", Src: "/etc/key"}, ""},
		{"src=/k,id=key", Spec{ID: "key", Src: "/k"}, ""},
		{"id=a,src=/f,env=V", Spec{ID: "a", Src: "/f", Env: "V"}, ""},
		{"id=a,src=/x=y", Spec{ID: "a", Src: "/x=y"}, ""},
		{"id=a,id=b,src=/f", Spec{ID: "b", Src: "/f"}, ""},
		{"env=NPM_TOKEN", Spec{}, `--secret "env=NPM_TOKEN": give id=ID`},
		{"", Spec{}, `--secret "": give id=ID`},
		{"id=npm", Spec{}, `--secret "id=npm": give src=FILE or env=VAR`},
		{"id=npm,src=", Spec{}, "give src=FILE or env=VAR"},
		{"id=npm,file=/k", Spec{}, "give src=FILE or env=VAR"},
	} {
		got, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want map[string]string
		err  string
	}{
		{"none", nil, map[string]string{}, ""},
		{"two", []string{"id=a,src=/a", "id=b,src=/b"}, map[string]string{"a": "/a", "b": "/b"}, ""},
		{"the same id twice: the last", []string{"id=a,src=/1", "id=a,src=/2"}, map[string]string{"a": "/2"}, ""},
		{"an environment variable", []string{"id=a,env=A"}, nil, `--secret "id=a,env=A": give id=ID,src=FILE`},
		{"no id", []string{"src=/a"}, nil, `--secret "src=/a": give id=ID,src=FILE`},
		{"one bad of two", []string{"id=a,src=/a", "id=b"}, nil, `--secret "id=b": give id=ID,src=FILE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Files(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("Files = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
