#!/usr/bin/env bash
# Runs every test of the project: installs what the tests need (eng/install-deps.sh test), builds and runs the native
# emulator tests (CTest) when native/ exists, packs the NuGet packages and runs the QuickStart sample against them,
# then the .NET tests. The last line is the total: "N passed, N failed, N skipped".
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

# The NuGet packages (`dotnet pack` at the root → artifacts/packages, which the packaging tests read) and the QuickStart
# sample built against them (samples/: private restore folder, so a re-packed package is never taken stale) and run:
# it must write a valid PNG of one row of 8 images of 32×32 with 2 px padding (274×36). It runs from a copy of its
# output folder outside the repository, so the model it finds is the one BlockDance.Models.Shapes put there. One test.
echo "== package: pack, build and run samples/QuickStart" >&2
sample_log="$work/package-sample.log"
sample_app=$(mktemp -d)
rm -rf artifacts/packages artifacts/sample-packages/blockdance.*
if { dotnet pack BlockDance.sln -c Release \
     && dotnet build samples/QuickStart -c Release \
     && cp -r artifacts/samples/bin/QuickStart/release/. "$sample_app" \
     && cmp models/dit-shapes-32.safetensors "$sample_app/models/dit-shapes-32.safetensors" \
     && (cd "$sample_app" && env -u BLOCKDANCE_MODEL timeout 300 dotnet QuickStart.dll "$work/quickstart.png") \
     && python3 eng/check-png.py "$work/quickstart.png" 274 36; } >"$sample_log" 2>&1; then
  passed=$((passed + 1)); echo "package and QuickStart sample: passed" >&2
else
  failed=$((failed + 1)); status=1
  tail -n 30 "$sample_log" >&2
  echo "package and QuickStart sample: FAILED; full log: $sample_log" >&2
fi
rm -rf "$sample_app"

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
