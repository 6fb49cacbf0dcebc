package service

import (
	"io"
	"strings"
)

// sseLineEnds are the line ends of the event-stream format: a client
// following the spec ends a line at any of them.
var sseLineEnds = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// writeSSEData writes text as the data lines of one event. Every line end
// the format knows (\r\n, \r, \n) starts a new "data:" line, so no byte of
// a build's log can end a field early and start one of its own (an
// "event: end" forged by a recipe). A single trailing line end is dropped:
// the event's lines carry it.
func writeSSEData(w io.Writer, text string) {
	text = strings.TrimSuffix(sseLineEnds.Replace(text), "\n")
	for _, line := range strings.Split(text, "\n") {
		io.WriteString(w, "data: "+line+"\n")
	}
}
