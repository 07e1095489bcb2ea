#!/usr/bin/env bash
# The sim tier: every tests/sim/*.sh with the binaries of BUILD, LANES at a
# time (default 2). Usage: tests/sim/run-all.sh BUILD [LANES]
# A sim script spends about two thirds of its time waiting (timeouts, link
# faults, a guest's drain), so two run side by side in about half the time.
# They do not meet: each has its own scratch directory, its cluster's own
# network namespaces (named after that directory), and any port it opens
# in the root namespace is a free one. The longest start first. Each
# script's output is printed whole when it ends, with its time; the tier
# fails if any script fails, after all have run.
set -uo pipefail
BUILD=${1:?usage: tests/sim/run-all.sh BUILD [LANES]}
LANES=${2:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
case "$LANES" in ''|*[!0-9]*|0) echo "run-all: LANES must be a number >= 1, not '$LANES'" >&2; exit 2 ;; esac

# longest first (seconds measured with the sanitized binaries); a script
# not listed runs last
ORDER="channel-two-hosts usb-remote usb-iso migrate-remote usb-local migrate-local
       channel-loopback vbd-verify cluster usbdev netbusd-restart netbusd-lifecycle host-domains"
scripts=()
for n in $ORDER; do [ -f "$HERE/$n.sh" ] && scripts+=("$HERE/$n.sh"); done
for f in "$HERE"/*.sh; do
    n=$(basename "$f" .sh)
    [ "$n" = run-all ] && continue
    case " $(echo $ORDER) " in *" $n "*) ;; *) scripts+=("$f") ;; esac
done

out=$(mktemp -d "${TMPDIR:-/tmp}/netbus-simtier-XXXXXX")
trap 'rm -rf "$out"' EXIT
# run_one SCRIPT: runs it into its log, then prints the log under a lock
run_one() {
    local s=$1 n t0 rc=0
    n=$(basename "$s" .sh)
    t0=$(date +%s)
    BUILD=$BUILD ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$s" >"$out/$n.log" 2>&1 || rc=$?
    {
        flock 9
        echo "-- $s ($(( $(date +%s) - t0 )) s, exit $rc)"
        cat "$out/$n.log"
        [ "$rc" = 0 ] || echo "$n" >>"$out/failed"
    } 9>"$out/print.lock"
}

t0=$(date +%s)
running=0
for s in "${scripts[@]}"; do
    if [ "$running" -ge "$LANES" ]; then wait -n; running=$((running - 1)); fi
    run_one "$s" &
    running=$((running + 1))
done
wait
echo "sim: ${#scripts[@]} scripts in $(( $(date +%s) - t0 )) s, $LANES at a time"
if [ -s "$out/failed" ]; then
    echo "sim: FAILED: $(tr '\n' ' ' <"$out/failed")"
    exit 1
fi
