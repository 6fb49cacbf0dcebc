package buildkit

import (
	"reflect"
	"testing"

	gateway "github.com/moby/buildkit/frontend/gateway/client"
)

func TestCacheImports(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    map[string]string
		want    []gateway.CacheOptionsEntry
		wantErr bool
	}{
		{"none", map[string]string{}, nil, false},
		{"local and registry", map[string]string{"cache-imports": `[{"Type":"local","Attrs":{"digest":"sha256:ab","src":"/c"}},{"Type":"registry","Attrs":{"ref":"r/c"}}]`},
			[]gateway.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"digest": "sha256:ab", "src": "/c"}}, {Type: "registry", Attrs: map[string]string{"ref": "r/c"}}}, false},
		{"malformed", map[string]string{"cache-imports": `[{`}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cacheImports(tc.opts)
			if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cacheImports = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
