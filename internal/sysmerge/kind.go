package sysmerge

import (
	"path"
	"strings"
)

// Format is how a shared file is merged.
type Format int

const (
	// Unknown files are not merged: one layer's change wins, two layers'
	// different changes are reported.
	Unknown Format = iota
	// DpkgStatus is /var/lib/dpkg/status, merged by package stanza.
	DpkgStatus
	// Passwd, Group, Shadow and GShadow are merged by entry name.
	Passwd
	Group
	Shadow
	GShadow
	// DpkgInfo is one package's file under /var/lib/dpkg/info: whole file.
	DpkgInfo
	// Alternatives is one link group under /var/lib/dpkg/alternatives.
	Alternatives
	// LineSet files are sets of lines (/etc/shells, .pth, ld.so.conf.d).
	LineSet
	// Triggers are dpkg's trigger databases, merged as line sets; what they
	// leave pending is reported.
	Triggers
	// Cache files are generated: rebuilt after the merge, never merged.
	Cache
	// Paragraphs are deb822 files other than dpkg's status, merged by
	// paragraph: apt's extended_states (by package), debconf's databases
	// (by Name).
	Paragraphs
	// Log files under /var/log: what each layer appended is appended.
	Log
	// Backup files are the copies dpkg, shadow and debconf keep of a
	// database's previous state (status-old, passwd-, config.dat-old):
	// taken from the last layer that changed them, not reported. Merging
	// them would be wrong: a layer's status-old is a state in the middle
	// of its install, with packages unpacked but not configured.
	Backup
)

var formatNames = [...]string{"unknown", "dpkg status", "passwd", "group", "shadow", "gshadow",
	"dpkg info file", "alternatives", "line set", "dpkg triggers", "cache", "deb822 paragraphs", "log", "backup"}

func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return "Format(?)"
	}
	return formatNames[f]
}

// Kind classifies an absolute path in the image.
func Kind(p string) Format {
	p = path.Clean("/" + p)
	dir, base := path.Split(p)
	switch p {
	case "/var/lib/dpkg/status":
		return DpkgStatus
	case "/etc/passwd":
		return Passwd
	case "/etc/group":
		return Group
	case "/etc/shadow":
		return Shadow
	case "/etc/gshadow":
		return GShadow
	case "/var/lib/dpkg/status-old", "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-",
		"/etc/subuid-", "/etc/subgid-",
		"/var/cache/debconf/config.dat-old", "/var/cache/debconf/templates.dat-old", "/var/cache/debconf/passwords.dat-old":
		return Backup
	case "/etc/shells", "/etc/ld.so.conf", "/var/lib/dpkg/statoverride",
		"/var/lib/ucf/hashfile", "/var/lib/ucf/registry":
		return LineSet
	case "/var/lib/apt/extended_states",
		"/var/cache/debconf/config.dat", "/var/cache/debconf/templates.dat", "/var/cache/debconf/passwords.dat":
		return Paragraphs
	}
	if RebuildStep(p) != "" {
		return Cache
	}
	switch dir {
	case "/var/lib/dpkg/info/":
		// PKG[:ARCH].EXT; the dot-less files there (format) are dpkg's own.
		if strings.Contains(base, ".") {
			return DpkgInfo
		}
	case "/var/lib/dpkg/alternatives/":
		return Alternatives
	case "/var/lib/dpkg/triggers/":
		if base != "Lock" {
			return Triggers
		}
	case "/etc/ld.so.conf.d/":
		return LineSet
	}
	if strings.HasPrefix(p, "/var/log/") {
		return Log
	}
	if strings.HasSuffix(base, ".pth") &&
		(strings.HasPrefix(p, "/usr/lib/python3") || strings.HasPrefix(p, "/usr/local/lib/python3")) {
		return LineSet
	}
	return Unknown
}

// AptCachesStep removes apt's binary caches, which apt regenerates from its
// lists when it next runs.
const AptCachesStep = "rm -f /var/cache/apt/pkgcache.bin /var/cache/apt/srcpkgcache.bin"

// RebuildStep names the command that regenerates the cache at p, or "" when
// p is not a cache.
func RebuildStep(p string) string {
	p = path.Clean("/" + p)
	dir, base := path.Split(p)
	switch {
	case p == "/etc/ld.so.cache", p == "/var/cache/ldconfig/aux-cache":
		return "ldconfig"
	case p == "/var/cache/apt/pkgcache.bin", p == "/var/cache/apt/srcpkgcache.bin":
		// apt makes them again when it next needs them.
		return AptCachesStep
	case p == "/etc/ssl/certs/ca-certificates.crt",
		dir == "/etc/ssl/certs/" && (strings.HasSuffix(base, ".pem") || isHashLink(base)):
		return "update-ca-certificates"
	case strings.HasPrefix(p, "/var/cache/fontconfig/"):
		return "fc-cache"
	case strings.HasPrefix(p, "/usr/share/icons/") && base == "icon-theme.cache":
		return "gtk-update-icon-cache"
	case strings.HasPrefix(p, "/var/cache/man/"):
		return "mandb"
	case strings.HasPrefix(p, "/usr/share/mime/") && !strings.HasPrefix(p, "/usr/share/mime/packages/"):
		// packages/*.xml are the sources packages ship; the rest is generated.
		return "update-mime-database"
	}
	return ""
}

// isHashLink matches OpenSSL's subject-hash names: 8 hex digits, '.', digit(s).
func isHashLink(name string) bool {
	h, n, ok := strings.Cut(name, ".")
	if !ok || len(h) != 8 || n == "" {
		return false
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
