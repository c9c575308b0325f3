//go:build tools

// Package kine pins kine (the etcd API over SQL that k3s uses for external datastores) so that `go mod tidy`
// records its full dependency graph in go.sum; testtools/build.sh then builds it with
// `go build github.com/k3s-io/kine`. Built without cgo, kine's sqlite driver uses modernc.org/sqlite (pure Go).
// Refresh go.sum with `go mod tidy -e`: plain tidy also wants the modules of modernc.org/sqlite's own tests, one
// of which (a github.com/google/pprof pseudo-version) the module proxy refuses; the build does not need it.
package kine

import _ "github.com/k3s-io/kine"
