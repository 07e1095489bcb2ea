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

# Waits for a `xenfront blk verify` started in the background: it must end
# result=ok with no mismatch. Prints its counters and its suspend summary.
verify_done() { # name pid out err
    local rc=0
    wait "$2" || rc=$?
    if [ "$rc" == 0 ] && grep -q 'result=ok' "$3" && grep -q 'mismatches=0' "$3"; then
        pass=$((pass + 1)); echo "ok   $1: $(grep -o 'writes=[0-9]*\|reads=[0-9]*\|mismatches=[0-9]*' "$3" | tr '\n' ' ')"
    else
        fail=$((fail + 1)); echo "FAIL $1 (exit $rc)"; sed 's/^/     /' "$3" "$4" | tail -20
    fi
    grep -h 'suspended' "$4" | sed 's/^/     /' || true
}

# SIGTERM to a netbusd, which must exit 0 within `secs` (a sanitized build
# reports its leaks then).
netbusd_stops() { # name pid secs
    local nrc=0
    kill -TERM "$2" 2>/dev/null || true
    timeout "$3" tail --pid="$2" -f /dev/null || nrc=timeout
    wait "$2" 2>/dev/null || nrc=$?
    check "$1 exits 0 on SIGTERM" 0 "$nrc"
}

# No AddressSanitizer, LeakSanitizer or UBSan report in the files.
no_sanitizer_reports() { # where files...
    local where=$1; shift
    local re='AddressSanitizer\|LeakSanitizer\|runtime error'
    if grep -q "$re" "$@" 2>/dev/null; then
        fail=$((fail + 1)); echo "FAIL sanitizer reports $where"
        grep -h -A8 "$re" "$@" 2>/dev/null | head -30
    fi
}

# Stops what the script started (pids) and removes $dir.
stop_all() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
