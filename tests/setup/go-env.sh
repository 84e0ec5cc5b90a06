# Sourced by the setup scripts that build from Go modules: the shared cache directory and a Go
# environment that keeps modules and build cache there (never the toolchain auto-download).
CACHE=${FERROLB_CACHE:-$HOME/.cache/ferrolb}
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOPATH=${GOPATH:-$CACHE/go}
export GOMODCACHE=${GOMODCACHE:-$CACHE/go/pkg/mod}
export GOCACHE=${FERROLB_GOCACHE:-$CACHE/go-build}
