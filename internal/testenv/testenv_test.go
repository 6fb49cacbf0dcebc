package testenv

import (
	"flag"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how a helper ended the test: Fatalf and Skipf stop the
// goroutine, as the real ones do.
type fakeTB struct {
	testing.TB
	failed, skipped string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// call runs fn on a fake test in a goroutine of its own, as Goexit needs.
func call(fn func(testing.TB)) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func setShort(t *testing.T, on bool) {
	t.Helper()
	old := flag.Lookup("test.short").Value.String()
	if err := flag.Set("test.short", fmt.Sprint(on)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flag.Set("test.short", old) })
}

// In CI a helper that would skip fails the test instead; outside CI it
// skips with the reason; when nothing is missing the test goes on.
func TestSkipsOnlyOutsideCI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ci       string
		short    bool
		fn       func(testing.TB)
		wantSkip string
		wantFail string
	}{
		{"short outside CI", "", true, func(t testing.TB) { Short(t, "PostgreSQL") }, "-short (PostgreSQL)", ""},
		{"short in CI", "true", true, func(t testing.TB) { Short(t, "PostgreSQL") }, "", "-short is not allowed in CI"},
		{"short with CI=false", "false", true, func(t testing.TB) { Short(t, "PostgreSQL") }, "-short (PostgreSQL)", ""},
		{"not short in CI", "true", false, func(t testing.TB) { Short(t, "PostgreSQL") }, "", ""},
		{"missing tool outside CI", "", false, func(t testing.TB) { Tools(t, "pei-no-such-tool") }, "pei-no-such-tool is not on PATH", ""},
		{"missing tool in CI", "1", false, func(t testing.TB) { Tools(t, "pei-no-such-tool") }, "", "pei-no-such-tool is not on PATH"},
		{"present tool in CI", "true", false, func(t testing.TB) { Tools(t, "sh") }, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			setShort(t, tc.short)
			f := call(tc.fn)
			if tc.wantSkip == "" && f.skipped != "" || !strings.Contains(f.skipped, tc.wantSkip) {
				t.Errorf("skipped %q, want %q", f.skipped, tc.wantSkip)
			}
			if tc.wantFail == "" && f.failed != "" || !strings.Contains(f.failed, tc.wantFail) {
				t.Errorf("failed %q, want %q", f.failed, tc.wantFail)
			}
		})
	}
}

// WantErr ends a case that expected an error only when the error says
// what was expected, and fails a case that expected none on any error.
func TestWantErr(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		want   string
		done   bool
		failed bool
	}{
		{"the expected error", fmt.Errorf("config: bad port"), "bad port", true, false},
		{"another error", fmt.Errorf("config: bad user"), "bad port", false, true},
		{"no error where one was expected", nil, "bad port", false, true},
		{"no error, none expected", nil, "", false, false},
		{"an error, none expected", fmt.Errorf("boom"), "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var done bool
			f := call(func(tb testing.TB) { done = WantErr(tb, tc.err, tc.want) })
			if (f.failed != "") != tc.failed || done != tc.done {
				t.Errorf("failed %q, done %v; want failed %v, done %v", f.failed, done, tc.failed, tc.done)
			}
		})
	}
}

// Without Docker Compose v2 on PATH, Compose fails the test in CI and
// skips it outside, saying what is missing.
func TestComposeMissing(t *testing.T) {
	for _, tc := range []struct {
		ci                 string
		wantSkip, wantFail string
	}{
		{"", "Docker Compose v2 is not installed", ""},
		{"true", "", "Docker Compose v2 is not installed"},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			t.Setenv("PATH", t.TempDir())
			var cmd []string
			f := call(func(tb testing.TB) { cmd = Compose(tb) })
			if cmd != nil {
				t.Errorf("Compose returned %q with nothing on PATH", cmd)
			}
			if tc.wantSkip == "" && f.skipped != "" || !strings.Contains(f.skipped, tc.wantSkip) {
				t.Errorf("skipped %q, want %q", f.skipped, tc.wantSkip)
			}
			if tc.wantFail == "" && f.failed != "" || !strings.Contains(f.failed, tc.wantFail) {
				t.Errorf("failed %q, want %q", f.failed, tc.wantFail)
			}
		})
	}
}
