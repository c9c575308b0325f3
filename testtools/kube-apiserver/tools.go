//go:build tools

// Package kubeapiserver pins kube-apiserver and kubectl from k8s.io/kubernetes so that `go mod tidy` records their
// full dependency graph in go.sum; testtools/build.sh then builds them with
// `go build k8s.io/kubernetes/cmd/kube-apiserver` and `go build k8s.io/kubernetes/cmd/kubectl`.
package kubeapiserver

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
