#!/usr/bin/env bash
# sim tier: one xensim host driven the way an operator would, through its
# CLI and Debian's xenstore tools: guests live in their own xenstore homes,
# cannot read each other's, are paused and resumed for real, and their
# destruction is announced with @releaseDomain.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
xensim=$build/xensim
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-sim-XXXXXX")
trap stop_all EXIT

"$xensim" host --dir "$dir" --log-level warn 2>"$dir/host.log" &
pids+=($!)
"$xensim" wait --dir "$dir" --timeout 10
export XENSTORED_RUNDIR=$dir

xenstore-watch -n 2 @releaseDomain > "$dir/release.out" &
pids+=($!)

a=$("$xensim" create --dir "$dir" --name alice --memory 32)
b=$("$xensim" create --dir "$dir" --name bob --memory 32)
check "distinct domids" "yes" "$([ "$a" != "$b" ] && echo yes || echo no)"
check "name in xenstore" "alice" "$(xenstore-read /local/domain/$a/name)"
fails "duplicate name refused" "$xensim" create --dir "$dir" --name alice

# A guest writes in its home with a relative path, as frontends do.
"$xensim" run --dir "$dir" --domid "$a" -- xenstore-write data/secret 42
check "guest wrote its home" "42" "$(xenstore-read /local/domain/$a/data/secret)"
check "guest reads own node" "42" \
    "$("$xensim" run --dir "$dir" --domid "$a" -- xenstore-read data/secret)"
fails "other guest cannot read it" \
    "$xensim" run --dir "$dir" --domid "$b" -- xenstore-read /local/domain/$a/data/secret
fails "guest cannot write dom0's home" \
    "$xensim" run --dir "$dir" --domid "$b" -- xenstore-write /local/domain/0/name evil
check "dom0's name unchanged" "Domain-0" "$(xenstore-read /local/domain/0/name)"

# Pause stops the guest's processes; unpause continues them.
# (stderr of the runner is dropped: bash reports its SIGKILL at destroy)
( "$xensim" run --dir "$dir" --domid "$b" -- sleep 37.5 || true ) 2>/dev/null &
pids+=($!)
runner=$!
for _ in $(seq 50); do
    guest=$(pgrep -f '^sleep 37.5$' | head -n1 || true)
    [ -n "$guest" ] && break; sleep 0.1
done
proc_state() { awk '{print $3}' "/proc/$1/stat"; }
"$xensim" pause --dir "$dir" "$b"
sleep 0.2
check "paused guest is stopped" "T" "$(proc_state "$guest")"
"$xensim" unpause --dir "$dir" "$b"
sleep 0.2
check "unpaused guest runs" "S" "$(proc_state "$guest")"
check "list shows both" "2" "$("$xensim" list --dir "$dir" | grep -cE ' (alice|bob) ')"

# Destroy: the guest's processes go, xenstore forgets it, watchers hear it.
"$xensim" destroy --dir "$dir" "$b"
wait "$runner" 2>/dev/null || true
check "destroyed guest's process is gone" "no" "$([ -e "/proc/$guest" ] && echo yes || echo no)"
fails "home removed" xenstore-read /local/domain/$b/name
for _ in $(seq 50); do [ "$(wc -l < "$dir/release.out")" -ge 2 ] && break; sleep 0.1; done
check "@releaseDomain fired" "@releaseDomain @releaseDomain" "$(tr '\n' ' ' < "$dir/release.out" | sed 's/ $//')"
check "list shows one guest" "1" "$("$xensim" list --dir "$dir" | grep -cE ' (alice|bob) ')"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
