package config

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// LayoutPrefix marks a base image read from an OCI image layout directory
// in the project (as buildx names them): oci-layout://PATH[:TAG][@DIGEST].
const LayoutPrefix = "oci-layout://"

// ImageRef is an image a stage or a composed image is built from, as
// written (after ${VAR} expansion), with its parsed form: Layout is set when
// it names an OCI image layout in the project. Load parses it once; nothing
// after Load looks at the text to tell a layout from an image name.
type ImageRef struct {
	Raw    string
	Layout *LayoutRef // nil for an image name
}

// String returns the reference as written.
func (r ImageRef) String() string { return r.Raw }

func (r *ImageRef) setRaw(s string) { r.Raw = s }

// LayoutRef is a base image in an OCI image layout directory.
type LayoutRef struct {
	Path   string // project-relative, slash-separated
	Tag    string // the index's org.opencontainers.image.ref.name, or ""
	Digest string // manifest (or index) digest, or ""
}

// tagRe is the distribution spec's tag grammar, anchored: the one
// definition (distribution/reference's), which pei serve's API uses too.
var tagRe = regexp.MustCompile(`^(?:` + reference.TagRegexp.String() + `)$`)

// ValidTag says whether s is a valid image tag (as the OCI distribution
// spec defines it).
func ValidTag(s string) bool { return tagRe.MatchString(s) }

// ParseLayoutRef parses an oci-layout:// reference; ok is false when s is
// not one. A config's references come parsed from Load (ImageRef); this
// is for strings that do not come from a config.
func ParseLayoutRef(s string) (ref LayoutRef, ok bool, err error) {
	rest, ok := strings.CutPrefix(s, LayoutPrefix)
	if !ok {
		return LayoutRef{}, false, nil
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return LayoutRef{}, true, fmt.Errorf("%q: %q is not a digest (sha256:<64 hex digits>)", s, rest[i+1:])
		}
		ref.Digest, rest = d.String(), rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		ref.Tag, rest = rest[i+1:], rest[:i]
		if !ValidTag(ref.Tag) {
			return LayoutRef{}, true, fmt.Errorf("%q: %q is not a valid tag", s, ref.Tag)
		}
	}
	if rest == "" {
		return LayoutRef{}, true, fmt.Errorf("%q names no directory; write oci-layout://DIR[:TAG], DIR relative to the project", s)
	}
	ref.Path = path.Clean(rest)
	return ref, true, nil
}

// EngineName is the name a Docker engine would know this base by, for the
// generated Dockerfile: Compose cannot read OCI layouts.
func (r LayoutRef) EngineName() string {
	slug := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(r.Path), "-"), "-.")
	if slug == "" {
		slug = "base"
	}
	tag := r.Tag
	if tag == "" {
		tag = "latest"
	}
	return "pei-layout/" + slug + ":" + tag
}

var nonSlug = regexp.MustCompile(`[^a-z0-9._-]+`)
