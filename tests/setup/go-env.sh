# Sourced by the setup scripts that build from Go modules: the shared cache directory and a Go
# environment that keeps modules and build cache there (never the toolchain auto-download).
CACHE=${FERROLB_CACHE:-$HOME/.cache/ferrolb}
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOPATH=${GOPATH:-$CACHE/go}
export GOMODCACHE=${GOMODCACHE:-$CACHE/go/pkg/mod}
export GOCACHE=${FERROLB_GOCACHE:-$CACHE/go-build}

# go_install_cached NAME BIN LDFLAGS PACKAGE@VERSION…
# Installs the packages' commands into BIN (each named after its package's last element) unless
# all are there already, then prints BIN as the last line — the contract of the setup scripts.
go_install_cached() {
  local name=$1 bin=$2 ldflags=$3; shift 3
  local pkg tool missing=0 start
  for pkg in "$@"; do
    tool=${pkg%@*}; tool=${tool##*/}
    [ -x "$bin/$tool" ] || missing=1
  done
  if [ "$missing" = 0 ]; then
    printf '[%s] cached: %s\n' "$name" "$bin" >&2
    echo "$bin"
    return 0
  fi
  command -v go >/dev/null || { printf '[%s] go is required (https://go.dev); none on PATH\n' "$name" >&2; return 1; }
  mkdir -p "$bin" "$GOMODCACHE" "$GOCACHE"
  start=$(date +%s)
  printf '[%s] building %s\n' "$name" "$*" >&2
  GOBIN="$bin" go install -trimpath -ldflags "-s -w $ldflags" "$@"
  for pkg in "$@"; do
    tool=${pkg%@*}; tool=${tool##*/}
    [ -x "$bin/$tool" ] || { printf '[%s] build finished but %s is missing\n' "$name" "$bin/$tool" >&2; return 1; }
  done
  printf '[%s] built in %ss: %s\n' "$name" "$(( $(date +%s) - start ))" "$bin" >&2
  echo "$bin"
}
