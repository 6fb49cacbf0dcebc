package client

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadEventsLineEnds feeds streams whose lines end with \n, \r\n and a
// lone \r, whole and a byte at a time (a \r at the end of one read must not
// be taken for a line end before the next byte is seen): the events and the
// end are the ones the HTML standard's parser finds.
func TestReadEventsLineEnds(t *testing.T) {
	type ev struct{ event, data string }
	for _, tc := range []struct {
		name   string
		stream string
		want   []ev
		end    string // the ended build's id, "" if the stream has no end
	}{
		{"lf", "id: 1\ndata: a\n\ndata: b\ndata: c\n\nevent: end\ndata: {\"id\":\"b-1\"}\n\n", []ev{{"", "a"}, {"", "b\nc"}}, "b-1"},
		{"crlf", "data: a\r\n\r\nevent: end\r\ndata: {\"id\":\"b-2\"}\r\n\r\n", []ev{{"", "a"}}, "b-2"},
		{"lone cr", "data: a\r\revent: end\rdata: {\"id\":\"b-3\"}\r\r", []ev{{"", "a"}}, "b-3"},
		// A \r inside what a \n-only parser takes for one data line: per
		// the standard it ends the line, so "event: log" there names the
		// event being read.
		{"cr splits a line", "data: x\revent: log\r\rdata: y\n\n", []ev{{"log", "x"}, {"", "y"}}, ""},
		{"mixed", "data: a\r\ndata: b\rdata: c\n\r\n", []ev{{"", "a\nb\nc"}}, ""},
		{"comment and unknown field", ": keep-alive\nretry: 10\nfoo: bar\ndata: a\n\n", []ev{{"", "a"}}, ""},
		{"no final blank line", "data: a\n\ndata: cut", []ev{{"", "a"}}, ""},
		{"cr at the very end", "data: a\r\r", []ev{{"", "a"}}, ""},
	} {
		for _, read := range []struct {
			name string
			r    func(string) io.Reader
		}{
			{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
			{"byte by byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
		} {
			t.Run(tc.name+"/"+read.name, func(t *testing.T) {
				var got []ev
				end, err := readEvents(read.r(tc.stream), func(e Event) { got = append(got, ev{e.Event, e.Data}) })
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("events %q, want %q", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Fatalf("events %q, want %q", got, tc.want)
					}
				}
				switch {
				case tc.end == "" && end != nil:
					t.Fatalf("an end event %+v in a stream without one", end)
				case tc.end != "" && (end == nil || end.ID != tc.end):
					t.Fatalf("end %+v, want build %s", end, tc.end)
				}
			})
		}
	}
}
