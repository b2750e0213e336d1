#!/usr/bin/env bash
# Installs what BlockDance needs on Debian 12 (bookworm); safe to run again, installs only what is missing.
#   eng/install-deps.sh runtime   OpenBLAS (the CPU device's GEMM)
#   eng/install-deps.sh test      runtime + the native toolchain, NVRTC (non-free) and Debian's PyTorch for the reference tools
set -euo pipefail
mode=${1:-runtime}
here=$(cd "$(dirname "$0")" && pwd)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "install-deps: need root (or sudo) to run: $*" >&2; exit 1; fi
}
missing() { for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done; }

main_pkgs=(libopenblas0-pthread)
case "$mode" in
  runtime) ;;
  test) main_pkgs+=(cmake g++ make libgtest-dev binutils python3-torch python3-numpy python3-skimage python3-matplotlib) ;;
  *) echo "usage: $0 runtime|test" >&2; exit 2 ;;
esac

need=$(missing "${main_pkgs[@]}")
if [ -n "$need" ]; then
  echo "install-deps: installing $need" >&2
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ "$mode" = test ] && [ -n "$(missing libnvrtc11.2)" ]; then
  # NVRTC lives in Debian's non-free component; use the project's own source list without touching the system's.
  lists=/var/lib/blockdance-apt/lists
  as_root mkdir -p "$lists/partial"
  opts=(-o "Dir::Etc::sourcelist=$here/apt/debian-bookworm-non-free.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$lists")
  echo "install-deps: installing libnvrtc11.2 from Debian non-free" >&2
  as_root apt-get "${opts[@]}" update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -qq --no-install-recommends libnvrtc11.2 >/dev/null
fi
