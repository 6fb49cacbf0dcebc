package inspect

import (
	"bytes"
	"io"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// smallFile is the size up to which a file is read whole and matched
// against the token patterns; larger files are streamed and searched for
// fixed strings only, so a multi-gigabyte layer costs one pass.
const smallFile = 1 << 20

// privateKey is in the first line of every PEM or OpenSSH private key;
// the programs that read keys hold it too, so a finding also needs the key
// itself: a base64 line after the header (and any PEM header fields).
var (
	privateKey   = []byte("PRIVATE KEY-----")
	privateKeyRe = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n(?:[A-Za-z-]+: [^\r\n]*\r?\n)*\r?\n?[A-Za-z0-9+/=]{32,}`)
)

// window is how far a match may reach back into the previous chunk of a
// large file.
const window = 512

// tokens are credentials with a recognisable shape. A pattern runs only
// where one of its literal prefixes occurs: searching for those is many
// times faster than running the expressions over every file.
var tokens = []struct {
	kind     string
	prefixes []string
	re       *regexp.Regexp
}{
	{"GitHub token", []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}\b`)},
	{"GitLab token", []string{"glpat-"}, regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20,}\b`)},
	{"AWS access key id", []string{"AKIA", "ASIA"}, regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"Slack token", []string{"xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-"}, regexp.MustCompile(`\bxox[abprs]-[A-Za-z0-9-]{10,}\b`)},
}

type scanner struct {
	needles [][]byte // the given secrets
	keep    int      // bytes carried between chunks, to see across them
	buf     []byte
	small   []byte // a whole small file
}

func newScanner(secrets []string) *scanner {
	s := &scanner{keep: window, buf: make([]byte, 64<<10)}
	for _, v := range secrets {
		if v == "" {
			continue
		}
		s.needles = append(s.needles, []byte(v))
		if len(v) > s.keep {
			s.keep = len(v)
		}
	}
	return s
}

// textual says whether a file is text, judged by its start as git and grep
// do (no NUL byte in the first 8000). Keys and tokens are looked for in
// text only: programs and libraries carry their own test and self-check
// keys (GnuTLS does), which are not leaks, and searching every binary for
// every shape would cost more than reading the image. Given secrets are
// looked for everywhere.
func textual(start []byte) bool {
	return bytes.IndexByte(start[:min(len(start), 8000)], 0) < 0
}

// match names what data holds; shapes turns on the key and token patterns.
func (s *scanner) match(data []byte, shapes bool) []string {
	var kinds []string
	if shapes && bytes.Contains(data, privateKey) && privateKeyRe.Match(data) {
		kinds = append(kinds, "private key")
	}
	for _, n := range s.needles {
		if bytes.Contains(data, n) {
			kinds = append(kinds, "given secret")
			break
		}
	}
	if shapes {
		for _, t := range tokens {
			for _, p := range t.prefixes {
				if bytes.Contains(data, []byte(p)) {
					if t.re.Match(data) {
						kinds = append(kinds, t.kind)
					}
					break
				}
			}
		}
	}
	return kinds
}

// file scans a file's contents from r (size bytes), reading all of it.
func (s *scanner) file(r io.Reader, size int64) []string {
	if size <= smallFile {
		if int64(cap(s.small)) < size {
			s.small = make([]byte, smallFile)
		}
		data := s.small[:size]
		if _, err := io.ReadFull(r, data); err != nil {
			return nil
		}
		return s.match(data, textual(data))
	}
	found := map[string]bool{}
	var kinds []string
	carry := 0
	shapes := true
	for first := true; ; first = false {
		n, err := io.ReadFull(r, s.buf[carry:])
		window := s.buf[:carry+n]
		if first {
			shapes = textual(window)
		}
		for _, k := range s.match(window, shapes) {
			if !found[k] {
				found[k] = true
				kinds = append(kinds, k)
			}
		}
		if err != nil {
			return kinds
		}
		// Keep the tail, so that a match across two chunks is seen.
		carry = min(s.keep, len(window))
		copy(s.buf, window[len(window)-carry:])
	}
}

// config scans the image config: env, labels, command, history.
func (s *scanner) config(cf *v1.ConfigFile) []Finding {
	var out []Finding
	add := func(where, text string) {
		for _, k := range s.match([]byte(text), true) {
			out = append(out, Finding{Layer: -1, Path: where, Kind: k})
		}
	}
	for _, e := range cf.Config.Env {
		add("config env", e)
	}
	for k, v := range cf.Config.Labels {
		add("config label "+k, v)
	}
	for _, c := range append(append([]string{}, cf.Config.Entrypoint...), cf.Config.Cmd...) {
		add("config command", c)
	}
	for _, h := range cf.History {
		add("history", h.CreatedBy+"\n"+h.Comment)
	}
	return out
}
