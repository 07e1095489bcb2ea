#!/usr/bin/env bash
# make bench [ONLY=group]: runs tests/bench/GROUP.sh for each benchmark group
# that exists. Each prints lines of the form
#   BENCH <group>.<name> <value> <unit> baseline=<value> ratio=<value>
set -euo pipefail
build=${1:-build}
only=${2:-}
here=$(dirname "$0")
known="vbd channel migration usb vif"

if [ -n "$only" ]; then
    case " $known " in *" $only "*) ;; *)
        echo "bench: unknown group '$only' (groups: $known)" >&2; exit 2;; esac
    if [ ! -x "$here/$only.sh" ]; then
        echo "bench: the $only benchmark is not built yet" >&2; exit 1
    fi
    exec "$here/$only.sh" "$build"
fi

ran=0
for g in $known; do
    if [ -x "$here/$g.sh" ]; then
        "$here/$g.sh" "$build"
        ran=$((ran + 1))
    fi
done
[ "$ran" -gt 0 ] || echo "bench: no benchmark group is built yet (groups: $known)"
