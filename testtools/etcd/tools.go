//go:build tools

// Package etcd pins the etcd server and etcdctl main packages so that `go mod tidy` records their full dependency
// graph in go.sum; testtools/build.sh then builds them with `go build go.etcd.io/etcd/server/v3` and
// `go build go.etcd.io/etcd/etcdctl/v3`. etcd's own go.mod files point its sibling modules at ../api and the like
// with relative replaces, which do not apply from outside its repository, so go.mod requires every
// go.etcd.io/etcd/* module at the same release instead.
package etcd

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
