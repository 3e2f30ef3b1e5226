//go:build tools

// Package tools pins the command this module builds, so `go mod tidy` keeps it: the one
// argocd binary (application controller, repo-server, ApplicationSet controller, chosen by
// ARGOCD_BINARY_NAME or argv[0]).
package tools

import (
	_ "github.com/argoproj/argo-cd/v3/cmd"
)
