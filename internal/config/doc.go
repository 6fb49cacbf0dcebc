// Package config reads PeiDocker-compatible user_config.yml files into typed
// values. Decoding is strict (unknown keys, wrong types and bad values are
// errors), every problem is reported at once with its file:line:col and
// dotted field path, configure-time variables are expanded through an
// injected lookup, and defaults are applied separately by WithDefaults.
package config
