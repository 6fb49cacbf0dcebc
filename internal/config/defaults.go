package config

import "strings"

// Default names and values, applied by WithDefaults.
const (
	DefaultStage1Output = "pei-image:stage-1"
	DefaultStage2Output = "pei-image:stage-2"
	DefaultSSHPort      = 22
	DefaultProxyAddress = "host.docker.internal"
)

func ptr[T any](v T) *T { return &v }

// WithDefaults returns a copy of a validated config with every default
// filled in: after it, stage_2 exists, pointers that have a default are set,
// stage_2's null proxy fields and device are stage_1's, and every storage
// item has a type. It is the one place defaults live; Load never applies
// them, so the config keeps what the user wrote.
func WithDefaults(in Config) Config {
	c := in
	s1 := c.Stage1
	if s1.Image.Output == "" {
		s1.Image.Output = DefaultStage1Output
	}
	if s1.SSH != nil {
		ssh := *s1.SSH
		if ssh.Enable == nil {
			ssh.Enable = ptr(true)
		}
		if ssh.Port == nil {
			ssh.Port = ptr(DefaultSSHPort)
		}
		s1.SSH = &ssh
	} else {
		s1.SSH = &SSH{Enable: ptr(false), Port: ptr(DefaultSSHPort)}
	}
	s1.Proxy = proxyDefaults(s1.Proxy, &Proxy{
		Address: ptr(DefaultProxyAddress), EnableGlobally: ptr(false),
		RemoveAfterBuild: ptr(false), UseHTTPS: ptr(false),
	})
	apt := Apt{}
	if s1.Apt != nil {
		apt = *s1.Apt
	}
	if apt.KeepRepoAfterBuild == nil {
		apt.KeepRepoAfterBuild = ptr(true)
	}
	if apt.UseProxy == nil {
		apt.UseProxy = ptr(false)
	}
	if apt.KeepProxyAfterBuild == nil {
		apt.KeepProxyAfterBuild = ptr(false)
	}
	s1.Apt = &apt
	if s1.Device == nil {
		s1.Device = &Device{Type: "cpu"}
	}
	if s1.Custom == nil {
		s1.Custom = &Custom{}
	}
	c.Stage1 = s1

	s2 := Stage2{}
	if c.Stage2 != nil {
		s2 = *c.Stage2
	}
	if s2.Image.Base == nil || s2.Image.Base.Raw == "" {
		s2.Image.Base = &ImageRef{Raw: s1.Image.Output}
	}
	if s2.Image.Output == "" {
		s2.Image.Output = DefaultStage2Output
	}
	if s2.Device == nil {
		s2.Device = s1.Device
	}
	s2.Proxy = proxyDefaults(s2.Proxy, s1.Proxy)
	st := Storage{}
	if s2.Storage != nil {
		st = *s2.Storage
	}
	for _, item := range []**StorageItem{&st.App, &st.Data, &st.Workspace} {
		if *item == nil {
			*item = &StorageItem{Type: "image"}
		}
	}
	s2.Storage = &st
	if s2.Custom == nil {
		s2.Custom = &Custom{}
	}
	if s2.Final != nil {
		f := *s2.Final
		if f.Base == nil || f.Base.Raw == "" {
			f.Base = s1.Image.Base
		}
		if f.Output == "" {
			f.Output = FinalOutput(s2.Image.Output)
		}
		s2.Final = &f
	}
	c.Stage2 = &s2
	return c
}

// FinalOutput is the default final image name: the stage-2 output's name
// with the tag final.
func FinalOutput(stage2 string) string {
	name := stage2
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name + ":final"
}

// proxyDefaults returns p with its null fields taken from base.
func proxyDefaults(p, base *Proxy) *Proxy {
	out := Proxy{}
	if p != nil {
		out = *p
	}
	if out.Address == nil {
		out.Address = base.Address
	}
	if out.Port == nil {
		out.Port = base.Port
	}
	if out.EnableGlobally == nil {
		out.EnableGlobally = base.EnableGlobally
	}
	if out.RemoveAfterBuild == nil {
		out.RemoveAfterBuild = base.RemoveAfterBuild
	}
	if out.UseHTTPS == nil {
		out.UseHTTPS = base.UseHTTPS
	}
	return &out
}
