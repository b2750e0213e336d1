#!/usr/bin/env bash
# Runs every test of the project: installs what the tests need (eng/install-deps.sh test), builds and runs the native
# emulator tests (CTest) when native/ exists, then the .NET tests. The last line is the total: "N passed, N failed, N skipped".
# Extra arguments go to the .NET test run (e.g. ./test.sh --filter-class 'BlockDance.Tests.Model.*').
set -uo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
cd "$root"
work="$root/artifacts/test-results"
rm -rf "$work" && mkdir -p "$work"
passed=0; failed=0; skipped=0; status=0

"$root/eng/install-deps.sh" test || { echo "0 passed, 1 failed (dependency installation)"; exit 1; }

if [ -f native/CMakeLists.txt ]; then
  echo "== native: build" >&2
  if cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release >"$work/native-configure.log" 2>&1 \
     && cmake --build native/build -j"$(nproc)" >"$work/native-build.log" 2>&1; then
    echo "== native: ctest" >&2
    ctest --test-dir native/build --output-on-failure --output-junit "$work/native.xml" >"$work/native-test.log" 2>&1 || status=1
    tail -n 3 "$work/native-test.log" >&2
    if [ -f "$work/native.xml" ]; then
      line=$(tr '\n' ' ' < "$work/native.xml" | grep -o '<testsuite [^>]*>' | head -n 1)
      attr() { echo "$line" | grep -o "[[:space:]]$1=\"[0-9]*\"" | grep -o '[0-9][0-9]*' || echo 0; }
      t=$(attr tests); f=$(attr failures); s=$(attr skipped); d=$(attr disabled)
      passed=$((passed + t - f - s - d)); failed=$((failed + f)); skipped=$((skipped + s + d))
    else
      failed=$((failed + 1))
    fi
  else
    echo "native build failed; see $work/native-build.log" >&2
    tail -n 30 "$work"/native-*.log >&2
    failed=$((failed + 1)); status=1
  fi
fi

echo "== .NET: build and test" >&2
dotnet test tests/BlockDance.Tests -c Release "$@" 2>&1 | tee "$work/dotnet-test.log" | grep -v -E '^\s*$' | grep -E -v '^(  from |passed )' >&2
[ "${PIPESTATUS[0]}" = 0 ] || status=1
summary() { grep -E "^\s+$1: [0-9]+" "$work/dotnet-test.log" | tail -n 1 | grep -o '[0-9]*' || echo 0; }
total=$(summary total)
if [ "$total" = 0 ]; then
  failed=$((failed + 1)); status=1; echo "no .NET test result (build failure?)" >&2
else
  passed=$((passed + $(summary succeeded))); failed=$((failed + $(summary failed))); skipped=$((skipped + $(summary skipped)))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] && [ "$status" = 0 ]
