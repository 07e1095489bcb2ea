# Sourced by the sim scripts: the pass/fail bookkeeping every script prints
# as "N passed, N failed", and the clean-up of the processes it started.
# The script sets $dir (its scratch directory) before using status_is, and
# appends background pids to the pids array.

pass=0 fail=0
pids=()

check() { # name expected actual
    if [ "$2" == "$3" ]; then pass=$((pass + 1)); echo "ok   $1"
    else fail=$((fail + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}

status_is() { # name expected-status command...
    local name=$1 want=$2; shift 2
    local got=0
    "$@" >"$dir/last.out" 2>&1 || got=$?
    if [ "$got" == "$want" ]; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name: exit $got, expected $want"; sed 's/^/     /' "$dir/last.out"; fi
}

fails() { # name command...: the command must fail
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then fail=$((fail + 1)); echo "FAIL $name: succeeded"
    else pass=$((pass + 1)); echo "ok   $name"; fi
}

# Stops what the script started (pids) and removes $dir.
stop_all() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
