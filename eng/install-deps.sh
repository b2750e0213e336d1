#!/usr/bin/env bash
# Installs what BlockDance needs on Debian 12 (bookworm); safe to run again, installs only what is missing.
#   eng/install-deps.sh runtime   OpenBLAS (the CPU device's GEMM) and DejaVu Sans (the text of the analysis plots)
#   eng/install-deps.sh test      runtime + the native toolchain, OpenBLAS's headers and link name, GoogleTest, NVRTC
#                                 (non-free) and Debian's PyTorch for the reference tools
#   eng/install-deps.sh --list M  prints the packages of mode M, one a line, and installs nothing (used by
#                                 eng/check-deps-owned.sh, which proves that the builds find no file these do not own)
set -euo pipefail
list=false
if [ "${1:-}" = --list ]; then list=true; shift; fi
mode=${1:-runtime}
here=$(cd "$(dirname "$0")" && pwd)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "install-deps: need root (or sudo) to run: $*" >&2; exit 1; fi
}
missing() { for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done; }

main_pkgs=(libopenblas0-pthread fonts-dejavu-core)
case "$mode" in
  runtime) ;;
  # libopenblas-dev + libopenblas-pthread-dev: cblas.h and the libopenblas.so link name of native/'s cuBLAS emulator.
  test) main_pkgs+=(cmake g++ make libgtest-dev libgmock-dev binutils libopenblas-dev libopenblas-pthread-dev
                    python3-torch python3-numpy python3-skimage python3-matplotlib) ;;
  *) echo "usage: $0 [--list] runtime|test" >&2; exit 2 ;;
esac
nonfree_pkgs=()
[ "$mode" = test ] && nonfree_pkgs=(libnvrtc11.2)
if $list; then printf '%s\n' "${main_pkgs[@]}" "${nonfree_pkgs[@]}"; exit 0; fi

need=$(missing "${main_pkgs[@]}")
if [ -n "$need" ]; then
  echo "install-deps: installing $need" >&2
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ ${#nonfree_pkgs[@]} -gt 0 ] && [ -n "$(missing "${nonfree_pkgs[@]}")" ]; then
  # NVRTC lives in Debian's non-free component; use the project's own source list without touching the system's.
  lists=/var/lib/blockdance-apt/lists
  as_root mkdir -p "$lists/partial"
  opts=(-o "Dir::Etc::sourcelist=$here/apt/debian-bookworm-non-free.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$lists")
  echo "install-deps: installing ${nonfree_pkgs[*]} from Debian non-free" >&2
  as_root apt-get "${opts[@]}" update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -qq --no-install-recommends "${nonfree_pkgs[@]}" >/dev/null
fi
