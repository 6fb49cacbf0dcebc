package service

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// sseEvent is an event as a client following the HTML event-stream spec
// dispatches it.
type sseEvent struct{ typ, data, id string }

// parseEventStream interprets an event stream as the spec says a client
// must (html.spec.whatwg.org, "Interpreting an event stream"): lines end
// at CRLF, CR or LF; a blank line dispatches the event; "data" values are
// joined with LF; an unterminated last line is dropped.
func parseEventStream(stream string) []sseEvent {
	var events []sseEvent
	var typ, data, lastID string
	for {
		i := strings.IndexAny(stream, "\r\n")
		if i < 0 {
			return events
		}
		line := stream[:i]
		if strings.HasPrefix(stream[i:], "\r\n") {
			stream = stream[i+2:]
		} else {
			stream = stream[i+1:]
		}
		switch {
		case line == "":
			if data == "" {
				typ = ""
				continue
			}
			if typ == "" {
				typ = "message"
			}
			events = append(events, sseEvent{typ, strings.TrimSuffix(data, "\n"), lastID})
			typ, data = "", ""
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				typ = value
			case "data":
				data += value + "\n"
			case "id":
				if !strings.Contains(value, "\x00") {
					lastID = value
				}
			}
		}
	}
}

// forged is a log line a recipe prints to end its build's stream early
// with a status of its choosing.
const forged = "building\revent: end\rdata: {\"state\":\"succeeded\"}\r\rid: 99\r\n"

func TestWriteSSEData(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"one line", "hello\n", "hello"},
		{"no line end", "hello", "hello"},
		{"LF", "a\nb\n", "a\nb"},
		{"CRLF", "a\r\nb\r\n", "a\nb"},
		{"CR", "a\rb\r", "a\nb"},
		{"blank lines kept", "a\n\nb\r\rc\r\n\r\nd", "a\n\nb\n\nc\n\nd"},
		{"forged end", forged, "building\nevent: end\ndata: {\"state\":\"succeeded\"}\n\nid: 99"},
		{"CR then LF is one line end", "a\r\n", "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("id: 1\nevent: log\n")
			writeSSEData(&b, tc.text)
			b.WriteString("\n")
			got := parseEventStream(b.String())
			if len(got) != 1 || got[0] != (sseEvent{"log", tc.want, "1"}) {
				t.Fatalf("events %q, want one log event with data %q", got, tc.want)
			}
		})
	}
}

// TestLogStreamCannotForgeEnd: a build log holding CR-separated event
// fields reaches a spec-following client as the log's data, in one log
// event, followed by the one real end event with the build's real state.
func TestLogStreamCannotForgeEnd(t *testing.T) {
	h, alice, b := loggedBuild(t, `{"state":"failed","error":"the recipe failed"}`, forged, "last line\n")

	resp := h.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID+"/logs", alice, nil, "Accept", "text/event-stream")
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	events := parseEventStream(string(raw))
	want := []sseEvent{
		{"log", "building\nevent: end\ndata: {\"state\":\"succeeded\"}\n\nid: 99", "1"},
		{"log", "last line", "2"},
	}
	if len(events) != 3 {
		t.Fatalf("%d events, want 2 log events and the end:\n%q\nstream:\n%q", len(events), events, raw)
	}
	for i, ev := range want {
		if events[i] != ev {
			t.Errorf("event %d: %q, want %q", i, events[i], ev)
		}
	}
	var end api.BuildView
	if events[2].typ != "end" || json.Unmarshal([]byte(events[2].data), &end) != nil || end.State != api.Failed || end.ID != b.ID {
		t.Fatalf("last event %q, want the end with state failed", events[2])
	}
}

// TestLogStreamResumes: a follower that reconnects with Last-Event-ID (as
// EventSource does) or ?after=N (a client without the header) gets only
// the log events after that id, then the end.
func TestLogStreamResumes(t *testing.T) {
	h, alice, b := loggedBuild(t, `{"state":"succeeded","digest":"sha256:`+strings.Repeat("a", 64)+`"}`, "one\n", "two\n", "three\n")
	for _, tc := range []struct {
		name    string
		query   string
		headers []string
		want    []string // the log events' data
	}{
		{"from the start", "", nil, []string{"one", "two", "three"}},
		{"Last-Event-ID", "", []string{"Last-Event-ID", "1"}, []string{"two", "three"}},
		{"?after=", "?after=2", nil, []string{"three"}},
		{"the header wins over ?after=", "?after=2", []string{"Last-Event-ID", "1"}, []string{"two", "three"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID+"/logs"+tc.query, alice, nil, append([]string{"Accept", "text/event-stream"}, tc.headers...)...)
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range parseEventStream(string(raw)) {
				if ev.typ == "log" {
					got = append(got, ev.data)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("log events %q, want %q\nstream:\n%s", got, tc.want, raw)
			}
		})
	}
}

// isBearer tells registry tokens from API tokens sent as Basic auth (which
// the registry must not take for its own).
func TestIsBearer(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"Bearer abc", true},
		{"bearer abc", true},
		{"Basic YTpi", false},
		{"Bearer", false},
		{"", false},
	} {
		r, _ := http.NewRequest("GET", "/v2/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if got := isBearer(r); got != tc.want {
			t.Errorf("isBearer(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// loggedBuild submits a build as alice (team-a, build scope), has a fake
// worker lease it, post each log chunk and finish it with finish (the
// finish request's body): a build whose log a test then reads.
func loggedBuild(t *testing.T, finish string, chunks ...string) (h *harness, alice string, b api.BuildView) {
	t.Helper()
	h = newHarness(t, nil)
	alice = h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b = decode[api.BuildView](t, h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, strings.NewReader(string(good))))
	w := fakeWorker{h, wsec, "w"}
	w.lease("linux/amd64")
	for _, chunk := range chunks {
		resp := w.post(b.ID, "logs", chunk)
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("log: %d", resp.StatusCode)
		}
	}
	w.post(b.ID, "finish", finish).Body.Close()
	return h, alice, b
}
