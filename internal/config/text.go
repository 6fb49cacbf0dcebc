package config

import "fmt"

// oneLine refuses control characters (a newline above all) in the values
// that are written into a line of a generated file: image names go into
// FROM lines and image names of Compose, repo_source into shell scripts.
// It runs before the other checks, which skip a value holding ${VAR}, and
// marks a refused value failed so it is reported once. The renderers
// refuse such values too; this gives the file:line of the field.
func (v *validator) oneLine() {
	if v.failed == nil {
		v.failed = map[string]bool{}
	}
	check := func(path, s string) {
		if i, r := controlAt(s); i >= 0 {
			v.errorf(path, "%q has a control character (%U) at byte %d; an image name, path or host is one line without newlines, tabs or other control characters", s, r, i+1)
			v.failed[path] = true
		}
	}
	ref := func(path string, r *ImageRef) {
		if r != nil {
			check(path, r.Raw)
		}
	}
	s1 := &v.c.Stage1
	ref("stage_1.image.base", s1.Image.Base)
	check("stage_1.image.output", s1.Image.Output)
	for i, p := range s1.Ports {
		check(fmt.Sprintf("stage_1.ports[%d]", i), p)
	}
	if s1.Apt != nil {
		check("stage_1.apt.repo_source", s1.Apt.RepoSource)
	}
	if s1.Proxy != nil && s1.Proxy.Address != nil {
		check("stage_1.proxy.address", *s1.Proxy.Address)
	}
	if s2 := v.c.Stage2; s2 != nil {
		ref("stage_2.image.base", s2.Image.Base)
		check("stage_2.image.output", s2.Image.Output)
		if s2.Proxy != nil && s2.Proxy.Address != nil {
			check("stage_2.proxy.address", *s2.Proxy.Address)
		}
		if f := s2.Final; f != nil {
			ref("stage_2.final.base", f.Base)
			check("stage_2.final.output", f.Output)
		}
	}
	for _, c := range v.c.Compose {
		p := "compose." + c.Name
		check(p+".output", c.Output)
		for i := range c.Layers {
			l := &c.Layers[i]
			at := fmt.Sprintf("%s.layers[%d]", p, i)
			check(at+".image", l.Image.Raw)
			if l.Diff != nil {
				check(at+".diff.lower", l.Diff.Lower.Raw)
				check(at+".diff.upper", l.Diff.Upper.Raw)
			}
		}
	}
}
