// Package config reads PeiDocker-compatible user_config.yml files into typed
// values. Decoding is strict (unknown keys, wrong types and bad values are
// errors), every problem is reported at once with its file:line:col and
// dotted field path, configure-time variables are expanded through an
// injected lookup, and defaults are applied separately by WithDefaults.
// Values written as one string with a structure are parsed once, while
// validating, and kept beside the text: image references (ImageRef, with
// the LayoutRef of an oci-layout:// base) and hook entries (Hook: script
// and arguments). Later packages read the parsed form.
package config
