// Package e2e holds pei's end-to-end tests: generated projects built and run
// with the real Docker Engine and Compose v2, logged into with the real
// OpenSSH client, and images searched for leaked secrets.
package e2e
