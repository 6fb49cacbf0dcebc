// Package cli holds pei's cobra commands. Each command parses its flags
// into a library's options, calls that library and prints what it
// returns; output goes to the command's writers. The rules behind the
// flags (the namespace rule, token grants, --secret's form) are the
// libraries', so a flag's error names the flag around the library's
// message. pei serve's command also owns its listener and the graceful
// shutdown (long polls and log streams end, uploads get a few seconds).
package cli
