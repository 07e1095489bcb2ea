#!/usr/bin/env bash
# sim tier: live migration between two xensim hosts on one machine. Each
# host has its own netbusd; the disks are files both can open (shared
# storage), so data continuity needs no netbus channel yet. Two guests run
# `xenfront blk verify` (every byte checked) while `xensim migrate` moves
# them A -> B -> A ... several times: one frontend resumes the Linux way
# (fresh ring, re-issue what had no response), the other keeps its queued
# requests on the ring for the new backend, which must serve them when it
# connects. A migration to a host that cannot take the disk must roll back
# with the guest running on where it was. Afterwards dom0 checks the files
# against the models the guests saved.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
xensim=$build/xensim netbusd=$build/netbusd xenfront=$build/xenfront
# the verifies run until the migrations are over (their stop file), at most SECS
SECS=${MIGRATE_SECONDS:-300}
ROUNDS=${MIGRATE_ROUNDS:-3}
for b in "$xensim" "$netbusd" "$xenfront"; do
    [ -x "$b" ] || { echo "migrate-local: $b is not built"; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-mig-XXXXXX")
trap stop_all EXIT

status_is() { # name expected-status command...
    local name=$1 want=$2; shift 2
    local got=0
    "$@" >"$dir/last.out" 2>"$dir/last.err" || got=$?
    if [ "$got" == "$want" ]; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name: exit $got, expected $want"; sed 's/^/     /' "$dir/last.out" "$dir/last.err"; fi
}

A=$dir/A B=$dir/B C=$dir/C
for h in A B C; do
    "$xensim" host --dir "$dir/$h" --log-level info 2>"$dir/host-$h.log" &
    pids+=($!)
done
for h in A B C; do "$xensim" wait --dir "$dir/$h" --timeout 10; done
for h in A B; do   # C has no backend: migrations there must roll back
    "$netbusd" --xensim-dir "$dir/$h" --log-level info 2>"$dir/netbusd-$h.log" &
    pids+=($!)
done

truncate -s 64M "$dir/re.img" "$dir/ke.img"
"$xensim" create --dir "$A" --name re --memory 128 >/dev/null
"$xensim" create --dir "$A" --name ke --memory 128 >/dev/null
status_is "attach re's disk on A" 0 "$xensim" block-attach --dir "$A" re "$dir/re.img" xvda
status_is "attach ke's disk on A" 0 "$xensim" block-attach --dir "$A" ke "$dir/ke.img" xvda

declare -A vpid
verify() { # guest mode extra...
    local g=$1 mode=$2; shift 2
    "$xensim" run --dir "$A" --domid "$g" -- "$xenfront" blk verify --vdev xvda \
        --seconds "$SECS" --stop-file "$dir/verify.stop" --qd 16 --initial zero \
        --resume "$mode" --timeout 30 \
        --model-out "$dir/$g.model" "$@" >"$dir/$g.out" 2>"$dir/$g.err" &
    vpid[$g]=$!
}
ke_uuid=$("$xensim" list --dir "$A" | awk '$2=="ke" {print $6}')
verify re reissue
verify ke keep --queues 2
for g in re ke; do
    for _ in $(seq 100); do
        [ "$(XENSTORED_PATH=$A/socket xenstore-read /local/domain/$("$xensim" list --dir "$A" | awk -v n=$g '$2==n {print $1}')/device/vbd/51712/state 2>/dev/null)" == 4 ] && break
        sleep 0.1
    done
done
sleep 1

# --- errors that change nothing ------------------------------------------------
status_is "migrate: no --to" 2 "$xensim" migrate --dir "$A" re
status_is "migrate: unknown domain" 1 "$xensim" migrate --dir "$A" nobody --to "$B"
status_is "migrate: to the same host" 1 "$xensim" migrate --dir "$A" re --to "$A"
status_is "migrate: dom0" 1 "$xensim" migrate --dir "$A" 0 --to "$B"
# C has no netbusd: the disk cannot be recreated there; the guest is
# resumed on A ("cancelled") and its verify carries on.
status_is "migrate to a host without a backend fails" 1 \
    "$xensim" migrate --dir "$A" re --to "$C" --timeout 2
check "it said why and that the guest stays" "yes" \
    "$(grep -q 'no backend took vbd.*keeps running on the source' "$dir/last.err" && echo yes || echo no)"
check "re still runs on A" "running" "$("$xensim" list --dir "$A" | awk '$2=="re" {print $3}')"
check "nothing left on C" "" "$("$xensim" list --dir "$C" | awk 'NR>2 {print $2}')"

# --- back and forth under I/O ------------------------------------------------
declare -A moved=([re]=0 [ke]=0)
migrate() { # guest from to
    local t
    if t=$("$xensim" migrate --dir "$2" "$1" --to "$3" 2>&1 >/dev/null); then
        pass=$((pass + 1)); echo "ok   migrate $1 ${2##*/} -> ${3##*/}: ${t#*: }"
        # the migration carried the guest's verify with it
        case $t in *" 1 process(es)"*) moved[$1]=$((moved[$1] + 1)) ;; esac
    else
        fail=$((fail + 1)); echo "FAIL migrate $1 ${2##*/} -> ${3##*/}: $t"
    fi
}
for r in $(seq "$ROUNDS"); do
    migrate re "$A" "$B"; migrate ke "$A" "$B"
    sleep 0.7
    migrate re "$B" "$A"; migrate ke "$B" "$A"
    sleep 0.7
done
migrate ke "$A" "$B"   # end on B: the old domain on A must be gone
touch "$dir/verify.stop"

for g in re ke; do
    verify_done "verify $g across the migrations" "${vpid[$g]}" "$dir/$g.out" "$dir/$g.err"
done
n() { grep -o "$1: [0-9]*" "$dir/$2.err" | grep -o '[0-9]*$' || echo 0; }
check "verify ran across every migration" "$((2 * ROUNDS)) $((2 * ROUNDS + 1))" \
    "${moved[re]} ${moved[ke]}"
check "re followed every migration" "${moved[re]} migration(s), 1 cancelled" \
    "$(grep -o '[0-9]* migration(s), [0-9]* cancelled' "$dir/re.err")"
check "ke followed every migration" "${moved[ke]} migration(s), 0 cancelled" \
    "$(grep -o '[0-9]* migration(s), [0-9]* cancelled' "$dir/ke.err")"
check "reissue: requests were re-issued on fresh rings" "yes" \
    "$([ "$(n 'requests re-issued after resume' re)" -gt 0 ] && echo yes || echo no)"
check "reissue: none kept" "0" "$(n 'requests kept across suspend' re)"
check "keep: requests stayed on the ring across suspend" "yes" \
    "$([ "$(n 'requests kept across suspend' ke)" -gt 0 ] && echo yes || echo no)"
check "keep: none re-issued" "0" "$(n 'requests re-issued after resume' ke)"
check "the new backends served requests already on the ring" "yes" \
    "$(grep -q 'request(s) already on the ring' "$dir"/netbusd-*.log && echo yes || echo no)"
for g in re ke; do
    status_is "dom0 sees what $g wrote" 0 \
        "$xenfront" blk check-file --model "$dir/$g.model" --file "$dir/$g.img"
done

# --- where everything is now -------------------------------------------------
check "re on A, ke on B" "re ke" \
    "$("$xensim" list --dir "$A" | awk '$2=="re" {print $2}') $("$xensim" list --dir "$B" | awk '$2=="ke" {print $2}')"
check "no other domains left behind" "1 1" \
    "$("$xensim" list --dir "$A" | awk 'NR>2' | wc -l) $("$xensim" list --dir "$B" | awk 'NR>2' | wc -l)"
check "ke's old devices are gone from A" "" \
    "$(XENSTORED_PATH=$A/socket xenstore-list /local/domain/0/backend/vbd 2>/dev/null | while read -r d; do [ "$d" == "$("$xensim" list --dir "$A" | awk '$2=="re" {print $1}')" ] || echo "$d"; done)"
check "ke kept its UUID" "$ke_uuid" "$("$xensim" list --dir "$B" | awk '$2=="ke" {print $6}')"
status_is "a migrated guest can migrate again when idle" 0 \
    "$xensim" migrate --dir "$B" ke --to "$A"

if grep -q 'AddressSanitizer\|runtime error' "$dir"/*.log "$dir"/*.err 2>/dev/null; then
    fail=$((fail + 1)); echo "FAIL sanitizer reports"; grep -h 'AddressSanitizer\|runtime error' "$dir"/*.log "$dir"/*.err | head
fi
if [ "$fail" -ne 0 ]; then
    for f in netbusd-A netbusd-B host-A host-B; do echo "--- $f (last 15 lines)"; tail -15 "$dir/$f.log"; done
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
