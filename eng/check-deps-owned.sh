#!/usr/bin/env bash
# Proves the fresh-machine claim: every system file that the builds and tests find is installed by a package that
# eng/install-deps.sh installs (or by one of its dependencies, or by Debian's essential base), so that nothing works
# here only because somebody once installed it by hand.
#
#   eng/check-deps-owned.sh BUILD_DIR                 checks; exit 0 when every file is owned, 1 naming each one that is not
#   eng/check-deps-owned.sh BUILD_DIR --without P,Q   the same with packages P and Q left out of the list, and inverted:
#                                                     exit 0 only when the check then FAILS naming a file of P or Q
#                                                     (proves the check can catch a package that is only there by hand)
#
# The files: what native/'s CMake configuration found (CMakeCache FILEPATH/PATH entries, GoogleTest's config), every
# system header the compiler read (the .o.d depfiles), every system library the linker was given (link.txt), the
# libraries the .NET code dlopen()s (OpenBLAS, NVRTC, found like the loader finds them), and the Python modules the
# reference tools import. A file's owner is the first path of its symlink chain that dpkg knows (alternatives such as
# /usr/include/x86_64-linux-gnu/cblas.h -> /etc/alternatives/... are followed).
set -euo pipefail
trap 'echo "check-deps-owned: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
command -v dpkg-query >/dev/null || { echo "check-deps-owned: not a Debian system (no dpkg-query): skipped"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: $0 BUILD_DIR [--without PKG[,PKG...]]}
without=""
[ "${2:-}" = --without ] && without=${3:?--without needs a package list}
[ -f "$build/CMakeCache.txt" ] || { echo "check-deps-owned: $build/CMakeCache.txt not found (configure native/ first)" >&2; exit 1; }

# ---- the packages install-deps.sh brings, with their installed dependencies, and Debian's essential base ------------
mapfile -t listed < <("$here/install-deps.sh" --list test)
if [ -n "$without" ]; then
  IFS=, read -r -a drop <<<"$without"
  for d in "${drop[@]}"; do
    printf '%s\n' "${listed[@]}" | grep -qx "$d" || { echo "check-deps-owned: --without $d: not in install-deps.sh's list" >&2; exit 1; }
  done
  mapfile -t listed < <(printf '%s\n' "${listed[@]}" | grep -vxF -f <(printf '%s\n' "${drop[@]}"))
fi
# The closure follows hard dependencies only: a package reached only through an alternative ("a | b") is not counted,
# since apt may pick the other one (python3-pythran's "libopenblas-dev | libblas-dev" must not vouch for cblas.h).
hard_deps() {
  apt-cache depends --installed --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "$@" \
    2>/dev/null | awk '/^ *\|/ { alt = 1; next } alt { alt = 0; next } /^  (Pre)?Depends: [^<]/ { sub(/.*: /, ""); sub(/:.*/, ""); print }'
}
allowed=$(mktemp); files=$(mktemp); trap 'rm -f "$allowed" "$files"' EXIT
{
  printf '%s\n' "${listed[@]}"
  dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' | awk '$2 == "yes" || $3 == "required" { print $1 }'
} | sort -u >"$allowed"
level=("${listed[@]}")
while [ ${#level[@]} -gt 0 ]; do
  mapfile -t level < <(hard_deps "${level[@]}" | sort -u | comm -23 - "$allowed")
  if [ ${#level[@]} -gt 0 ]; then printf '%s\n' "${level[@]}" | sort -u -m - "$allowed" -o "$allowed"; fi
done

# ---- the files the builds and tests find ------------------------------------------------------------------------------
{
  grep -E '^[A-Za-z0-9_]+:(FILEPATH|PATH)=/' "$build/CMakeCache.txt" | sed 's/^[^=]*=//' | grep -v '^/usr/local' |
    while read -r p; do if [ -d "$p" ]; then
      case "$p" in */cmake/*) find "$p" -maxdepth 1 -type f -o -maxdepth 1 -type l ;; esac   # a package's CMake config
    else echo "$p"; fi; done
  find "$build" -name '*.o.d' -exec cat {} + | tr ' \\' '\n\n' | grep -E '^/(usr|lib|etc)/' | grep -v '^/usr/local'
  find "$build" -name link.txt -exec cat {} + | tr ' ' '\n' | grep -E '^/(usr|lib)/.*\.(a|so)(\.[0-9.]+)?$'
  for lib in libopenblas.so.0 libnvrtc.so.11.2 libnvrtc-builtins.so.11.8; do
    # No early exit in awk: ldconfig would die of SIGPIPE and pipefail would fail the whole list (seen under load).
    ldconfig -p | awk -v l="$lib" '!found && $1 == l && /x86-64/ { print $NF; found = 1 } END { if (!found) print "not-found:library " l }'
  done
  f=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf   # the analysis plots' text (src/Analysis)
  [ -f "$f" ] && echo "$f" || echo "not-found:font $f"
  for module in torch numpy skimage; do
    /usr/bin/python3 -c "import $module; print($module.__file__)" 2>/dev/null || echo "not-found:Python module $module"
  done
} | sort -u >"$files"

chain() {   # the file, then each path of its symlink chain (the first that dpkg knows is the owner)
  local p=$1 n=0 t
  while :; do
    printf '%s\t%s\n%s\t%s\n' "$1" "$p" "$1" "${p#/usr}"   # usr-merge: dpkg may know /lib/x for /usr/lib/x
    [ -L "$p" ] && [ $n -lt 16 ] || return 0
    t=$(readlink "$p"); case "$t" in /*) p=$t ;; *) p=$(cd "$(dirname "$p")" && pwd -P)/$t ;; esac
    n=$((n + 1))
  done
}

checked=$(wc -l <"$files"); bad=0; report=$(mktemp); trap 'rm -f "$allowed" "$files" "$report"' EXIT
while read -r f; do

  case "$f" in not-found:*) echo "NOT FOUND: ${f#*:} (the tests load it)" >>"$report"; continue ;; esac
  [ -e "$f" ] || continue
  # Canonicalise the folders (usr-merge, multiarch links) but keep the file name, so that its own symlink chain is followed.
  chain "$(cd "$(dirname "$f")" && pwd -P)/$(basename "$f")"
done <"$files" | awk -F '\t' -v allowed="$allowed" '
  BEGIN { while ((getline line < allowed) > 0) ok[line] = 1 }
  FILENAME != "-" { pkg = FILENAME; sub(/.*\//, "", pkg); sub(/\.list$/, "", pkg); sub(/:.*/, "", pkg); own[$0] = pkg; next }
  { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } if (!($1 in owner) && ($2 in own)) owner[$1] = own[$2] }
  END {
    for (i = 1; i <= n; i++) { f = order[i]
      if (!(f in owner)) print "UNOWNED: " f " (no Debian package owns it: installed by hand?)"
      else if (!(owner[f] in ok)) print "NOT INSTALLED BY install-deps.sh: " f " (package " owner[f] ")" }
  }' /var/lib/dpkg/info/*.list - >>"$report"
bad=$(wc -l <"$report")
cat "$report"
echo "check-deps-owned: $checked files, $bad not owned by a package install-deps.sh installs${without:+ (without $without)}"
if [ -n "$without" ]; then
  [ $bad -gt 0 ] && { echo "as expected: leaving out $without is detected"; exit 0; }
  echo "leaving out $without went unnoticed: the check cannot catch a package installed by hand"; exit 1
fi
[ $bad = 0 ]
