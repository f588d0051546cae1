#!/bin/sh
# Runs every test binary in $B/test (or those named as arguments), the examples and the
# Python tests, and prints one closing line "N passed, N failed" over all of them.
B=${B:-build}
SHARED=${SHARED:-../shared}
PYTHON=${PYTHON:-/usr/bin/python3}
export KNE_SHARED="${KNE_SHARED:-$SHARED}"
export KNE_LIBRARY="$(pwd)/$B/libkne.so"
passed=0; failed=0
log=$(mktemp)
run() { # name, command...
    name=$1; shift
    echo "== $name"
    "$@" >"$log" 2>&1
    rc=$?
    cat "$log"
    # the closing "N passed, N failed" of our tests, or pytest's "N passed[, N failed] in ..."
    line=$(grep -E '(^|[^0-9])[0-9]+ (passed|failed)' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -nE 's/^(.*[^0-9])?([0-9]+) passed.*$/\2/p')
        f=$(echo "$line" | sed -nE 's/^(.*[^0-9])?([0-9]+) failed.*$/\2/p')
        e=$(echo "$line" | sed -nE 's/^(.*[^0-9])?([0-9]+) errors?.*$/\2/p')
        p=${p:-0}; f=$(( ${f:-0} + ${e:-0} ))
        passed=$((passed + p)); failed=$((failed + f))
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { failed=$((failed + 1)); echo "FAIL $name exited $rc"; }
    elif [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name exited $rc"; fi
}
if [ $# -gt 0 ]; then tests="$*"; else tests=$(ls "$B"/test/ 2>/dev/null); fi
for t in $tests; do run "$t" "$B/test/$t"; done
if [ $# -eq 0 ]; then
    for e in "$B"/examples/*; do [ -x "$e" ] && run "example $(basename "$e")" "$e" "$KNE_SHARED/models/kne-llama-tiny"; done
    if [ -z "$SKIP_PYTHON" ] && [ -d python/tests ] && "$PYTHON" -c 'import pytest' 2>/dev/null; then
        run "python" env PYTHONPATH="$(pwd)/python" "$PYTHON" -m pytest -q python/tests
    fi
fi
rm -f "$log"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
