//go:build tools

// Package cli pins the Pulumi CLI's main package so that `go mod tidy` records its full dependency graph in go.sum;
// engine/build.sh then builds it with `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi`.
package cli

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
