package service

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// loopbackHooks lets webhooks reach test receivers on 127.0.0.1.
var loopbackHooks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// TestHookAddresses: which addresses webhooks may be sent to, by default
// and with --webhook-allow ranges; IPv4 addresses hidden in IPv6 forms
// (mapped, NAT64, 6to4) count as themselves.
func TestHookAddresses(t *testing.T) {
	allow, err := ParseWebhookAllow([]string{"127.0.0.0/8", "10.0.0.0/8", "fd00::/8", "169.254.0.0/16", "192.168.7.7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr        string
		byDefault   string // "" allowed, else a word of the refusal
		withAllowed string
		note        string // what the address is
	}{
		// Public addresses: allowed (positive controls).
		{"1.1.1.1", "", "", "public v4"},
		{"8.8.8.8", "", "", "public v4"},
		{"172.32.0.1", "", "", "just past 172.16.0.0/12"},
		{"100.128.0.1", "", "", "just past 100.64.0.0/10"},
		{"11.0.0.1", "", "", "just past 10/8"},
		{"2606:4700:4700::1111", "", "", "public v6"},
		{"::ffff:8.8.8.8", "", "", "mapped public v4"},
		{"64:ff9b::808:808", "", "", "NAT64 of 8.8.8.8"},
		{"2002:808:808::1", "", "", "6to4 of 8.8.8.8"},
		// Loopback, private, CGNAT, ULA, link-local: refused unless allowed.
		{"127.0.0.1", "loopback", "", ""},
		{"127.8.9.10", "loopback", "", ""},
		{"::1", "loopback", "loopback", "not in an allowed range"},
		{"10.1.2.3", "RFC 1918", "", ""},
		{"172.16.0.1", "RFC 1918", "RFC 1918", ""},
		{"172.31.255.255", "RFC 1918", "RFC 1918", ""},
		{"192.168.1.1", "RFC 1918", "RFC 1918", "192.168.7.7 alone is allowed"},
		{"192.168.7.7", "RFC 1918", "", "a single allowed address"},
		{"100.64.0.1", "CGNAT", "CGNAT", ""},
		{"100.127.255.254", "CGNAT", "CGNAT", ""},
		{"fc00::1", "ULA", "ULA", "fc00::/8 is not allowed"},
		{"fd12:3456::1", "ULA", "", "in fd00::/8"},
		{"fe80::1", "link-local", "link-local", ""},
		{"fe80::1%eth0", "link-local", "link-local", "with a zone"},
		{"169.254.10.10", "link-local", "", ""},
		{"0.1.2.3", "this network", "this network", ""},
		{"192.0.0.8", "IETF", "IETF", ""},
		{"198.18.0.1", "benchmarking", "benchmarking", ""},
		{"240.0.0.1", "reserved", "reserved", ""},
		{"64:ff9b:1::1", "local-use NAT64", "local-use NAT64", ""},
		// The same, hidden in IPv6 forms.
		{"::ffff:127.0.0.1", "loopback", "", "IPv4-mapped"},
		{"::ffff:10.0.0.1", "RFC 1918", "", "IPv4-mapped"},
		{"::ffff:192.168.1.1", "RFC 1918", "RFC 1918", "IPv4-mapped"},
		{"64:ff9b::7f00:1", "loopback", "", "NAT64 of 127.0.0.1"},
		{"64:ff9b::c0a8:101", "RFC 1918", "RFC 1918", "NAT64 of 192.168.1.1"},
		{"2002:7f00:1::", "loopback", "", "6to4 of 127.0.0.1"},
		{"2002:c0a8:101::", "RFC 1918", "RFC 1918", "6to4 of 192.168.1.1"},
		{"::7f00:1", "IPv4-compatible", "IPv4-compatible", ""},
		// Never: metadata services, multicast, unspecified, broadcast,
		// even inside an allowed range.
		{"169.254.169.254", "metadata", "metadata", "in allowed 169.254/16"},
		{"169.254.170.2", "metadata", "metadata", ""},
		{"fd00:ec2::254", "metadata", "metadata", "in allowed fd00::/8"},
		{"168.63.129.16", "metadata", "metadata", "Azure, a public address"},
		{"100.100.100.200", "metadata", "metadata", ""},
		{"::ffff:169.254.169.254", "metadata", "metadata", "IPv4-mapped"},
		{"64:ff9b::a9fe:a9fe", "metadata", "metadata", "NAT64 of 169.254.169.254"},
		{"2002:a9fe:a9fe::", "metadata", "metadata", "6to4 of 169.254.169.254"},
		{"224.0.0.1", "multicast", "multicast", ""},
		{"ff02::1", "multicast", "multicast", ""},
		{"0.0.0.0", "unspecified", "unspecified", ""},
		{"::", "unspecified", "unspecified", ""},
		{"255.255.255.255", "broadcast", "broadcast", ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.addr)
			for _, c := range []struct {
				allow []netip.Prefix
				want  string
			}{{nil, tc.byDefault}, {allow, tc.withAllowed}} {
				got := hookRefused(ip, c.allow)
				if c.want == "" && got != "" {
					t.Errorf("allow %v: refused (%s), want it allowed", c.allow, got)
				}
				if c.want != "" && !strings.Contains(got, c.want) {
					t.Errorf("allow %v: %q, want a refusal naming %q", c.allow, got, c.want)
				}
			}
		})
	}
}

func TestParseWebhookAllow(t *testing.T) {
	got, err := ParseWebhookAllow([]string{"10.20.0.0/16", "10.1.2.3/8", "127.0.0.1", "fd12::/64", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.20.0.0/16", "10.0.0.0/8", "127.0.0.1/32", "fd12::/64", "::1/128"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("%d: %s, want %s", i, p, want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", ""} {
		if _, err := ParseWebhookAllow([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestWebhookClientChecksDialedAddress: the delivery client refuses a
// receiver on 127.0.0.1, by address or by a name that resolves there, and
// reaches it when the range is allowed.
func TestWebhookClientChecksDialedAddress(t *testing.T) {
	var calls atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer recv.Close()
	byName := strings.Replace(recv.URL, "127.0.0.1", "localhost", 1)
	for _, tc := range []struct {
		name  string
		allow []netip.Prefix
		url   string
		ok    bool
	}{
		{"loopback by address, default", nil, recv.URL, false},
		{"loopback by name, default", nil, byName, false},
		{"loopback by address, allowed", loopbackHooks, recv.URL, true},
		{"loopback by name, allowed", append(loopbackHooks, netip.MustParsePrefix("::1/128")), byName, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			resp, err := newWebhooks(tc.allow).client.Post(tc.url, "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
			}
			if tc.ok != (err == nil) {
				t.Fatalf("delivered=%v, want %v (%v)", err == nil, tc.ok, err)
			}
			if !tc.ok && !strings.Contains(err.Error(), "refused: loopback") {
				t.Fatalf("error %v does not say why", err)
			}
			if got := calls.Load() - before; (got == 1) != tc.ok {
				t.Fatalf("the receiver was called %d times", got)
			}
		})
	}
}

// TestWebhookToLoopback: a build's webhook aimed at a receiver on
// 127.0.0.1 is refused by default and given up, saying why, and is
// delivered when pei serve runs with --webhook-allow 127.0.0.0/8.
func TestWebhookToLoopback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		allow []netip.Prefix
	}{{"default", nil}, {"allowed", loopbackHooks}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
			defer recv.Close()
			h := newHarness(t, func(c *Config) { c.WebhookAllow = tc.allow })
			h.srv.hooks.attempts = 2
			h.srv.hooks.backoff = 10 * time.Millisecond
			alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
			wsec := h.token("w", nil, api.ScopeWorker)
			good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
			b := decode[api.BuildView](t, h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64&webhook="+recv.URL+"/hook", alice, bytes.NewReader(good)))
			w := fakeWorker{h, wsec, "w"}
			w.lease("linux/amd64")
			w.post(b.ID, "finish", `{"state":"failed","error":"x"}`).Body.Close()
			waitFor(t, func() bool {
				_, ok, gaveUp, _, _ := h.srv.Store().WebhookState(context.Background(), b.ID)
				return ok || gaveUp
			})
			_, ok, _, lastErr, _ := h.srv.Store().WebhookState(context.Background(), b.ID)
			if tc.allow == nil {
				if ok || calls.Load() != 0 || !strings.Contains(lastErr, "127.0.0.1 refused: loopback") {
					t.Fatalf("delivered=%v calls=%d error %q: want refused", ok, calls.Load(), lastErr)
				}
				return
			}
			if !ok || calls.Load() != 1 {
				t.Fatalf("delivered=%v calls=%d (%q): want one delivery", ok, calls.Load(), lastErr)
			}
		})
	}
}
