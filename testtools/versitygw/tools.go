//go:build tools

// Package versitygw pins the versitygw S3 gateway so that `go mod tidy` records its full dependency graph in
// go.sum; testtools/build.sh then builds it with `go build github.com/versity/versitygw/cmd/versitygw`.
package versitygw

import _ "github.com/versity/versitygw/cmd/versitygw"
