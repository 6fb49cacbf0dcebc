package service

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// A webhook URL is a tenant's choice; the call comes from the server's
// network. So that a tenant cannot make pei serve reach what only the
// server can (its loopback services, the site's private networks, a cloud
// metadata service), webhooks go to public addresses only, checked at
// connect time on the address actually dialed (after name resolution, so
// DNS rebinding cannot swap in another address), unless the admin opens a
// range with --webhook-allow for receivers on site.

type addrRange struct {
	prefix netip.Prefix
	what   string
}

func ranges(what string, prefixes ...string) []addrRange {
	out := make([]addrRange, len(prefixes))
	for i, p := range prefixes {
		out[i] = addrRange{netip.MustParsePrefix(p), what}
	}
	return out
}

// neverHook are refused even inside --webhook-allow ranges: no webhook
// receiver lives there.
var neverHook = concat(
	// AWS, GCP, Azure, OpenStack (169.254.169.254), AWS ECS task
	// metadata, AWS over IPv6, Azure's wire server, Alibaba Cloud.
	ranges("a cloud metadata service", "169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128", "168.63.129.16/32", "100.100.100.200/32"),
	ranges("unspecified", "0.0.0.0/32", "::/128"),
	ranges("broadcast", "255.255.255.255/32"),
	ranges("multicast", "224.0.0.0/4", "ff00::/8"),
)

// privateHook are refused unless --webhook-allow opens them.
var privateHook = concat(
	ranges("loopback", "127.0.0.0/8", "::1/128"),
	ranges("\"this network\" (0.0.0.0/8 reaches the host itself)", "0.0.0.0/8"),
	ranges("private (RFC 1918)", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
	ranges("shared address space (CGNAT, RFC 6598)", "100.64.0.0/10"),
	ranges("link-local", "169.254.0.0/16", "fe80::/10"),
	ranges("unique local (ULA, fc00::/7)", "fc00::/7"),
	ranges("site-local (deprecated)", "fec0::/10"),
	ranges("IETF protocol assignments", "192.0.0.0/24"),
	ranges("documentation", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"),
	ranges("benchmarking", "198.18.0.0/15", "2001:2::/48"),
	ranges("reserved", "240.0.0.0/4", "192.88.99.0/24"),
	ranges("IPv4-compatible (deprecated)", "::/96"),
	ranges("local-use NAT64 (RFC 8215)", "64:ff9b:1::/48"),
	ranges("discard-only", "100::/64"),
)

func concat(lists ...[]addrRange) []addrRange {
	var out []addrRange
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func match(list []addrRange, ip netip.Addr) string {
	for _, r := range list {
		if r.prefix.Contains(ip) {
			return r.what
		}
	}
	return ""
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// hookForms are the addresses a connection to ip reaches: ip itself and
// the IPv4 address it carries when it is IPv4-mapped (::ffff:a.b.c.d),
// NAT64 (64:ff9b::a.b.c.d, RFC 6052) or 6to4 (2002:AABB:CCDD::).
func hookForms(ip netip.Addr) []netip.Addr {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return []netip.Addr{ip.Unmap()}
	}
	forms := []netip.Addr{ip}
	if ip.Is6() {
		b := ip.As16()
		if nat64.Contains(ip) {
			forms = append(forms, netip.AddrFrom4([4]byte(b[12:16])))
		}
		if sixToFour.Contains(ip) {
			forms = append(forms, netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return forms
}

// hookRefused says why a webhook may not be sent to ip, or "" when it
// may: every form of the address must be public or inside an allowed
// range, and none a metadata service, multicast or unspecified address.
func hookRefused(ip netip.Addr, allow []netip.Prefix) string {
	forms := hookForms(ip)
	for _, a := range forms {
		if what := match(neverHook, a); what != "" {
			return what + " address"
		}
	}
	for _, a := range forms {
		what := match(privateHook, a)
		if what == "" {
			continue
		}
		opened := false
		for _, p := range allow {
			opened = opened || p.Contains(a)
		}
		if !opened {
			return what + " address; pei serve --webhook-allow CIDR opens a range for receivers on site"
		}
	}
	return ""
}

// hookDialControl refuses, as the socket is about to connect, an address
// hookRefused refuses.
func hookDialControl(allow []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("webhook address %q: %w", address, err)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("webhook address %q refused: not an IP address", host)
		}
		if why := hookRefused(ip, allow); why != "" {
			return fmt.Errorf("webhook address %s refused: %s", ip, why)
		}
		return nil
	}
}

// ParseWebhookAllow reads --webhook-allow values: CIDR ranges, or single
// addresses.
func ParseWebhookAllow(specs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range specs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			ip, ierr := netip.ParseAddr(s)
			if ierr != nil {
				return nil, fmt.Errorf("--webhook-allow %q: give a CIDR range such as 10.20.0.0/16 or fd12::/64: %w", s, err)
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
