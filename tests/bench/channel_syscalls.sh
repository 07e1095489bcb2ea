#!/usr/bin/env bash
# System calls per request on the netbus channel path, for finding what a
# 4 KiB QD1 request costs in kernel entries (not part of `make bench`).
# Two simulated hosts as in channel.sh; a guest on b loads the remote disk
# with `xenfront blk load` while strace -c follows netbusd on a (export),
# netbusd on b (LBE) and the xenfront. strace slows every call down, so the
# IOPS it prints mean nothing; the counts per request are the result.
# Usage: tests/bench/channel_syscalls.sh BUILD [RW [SECONDS]] (needs root).
# Prints: SYSCALLS <process> <syscall> <calls per request>, then a total
# per process.
set -euo pipefail
build=$(realpath "${1:-build}") rw=${2:-randread} secs=${3:-3}
xensim=$build/xensim netbusd=$build/netbusd netbusctl=$build/netbusctl xenfront=$build/xenfront
command -v strace >/dev/null || { echo "channel_syscalls: strace is not installed" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/nbsys-XXXXXX") data=$(mktemp -d /dev/shm/nbsys-XXXXXX)
cleanup() {
    timeout 30 "$xensim" cluster down --dir "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir" "$data"
}
trap cleanup EXIT
cl() { "$xensim" cluster "$1" --dir "$dir" "${@:2}"; }
on() { local h=$1; shift; "$xensim" cluster exec --dir "$dir" "$h" -- "$@"; }
img=$data/disk.img size=$((256 << 20)) port=7797
truncate -s "$size" "$img"
cl up --hosts a,b >/dev/null
a_addr=$(cl addr a)
printf '* %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/keys"
chmod 600 "$dir/keys"
for h in a b; do
    on "$h" "$netbusd" --xensim-dir "$dir/$h" --name "$h" --listen "$(cl addr "$h"):$port" \
        --keys "$dir/keys" --log-level warn >"$dir/$h.log" 2>&1 &
done
for _ in $(seq 50); do
    on a "$netbusctl" export disk0 "$img" >/dev/null 2>&1 && break
    sleep 0.2
done
gb=$(on b "$xensim" create --name sys-b --memory 512)
on b "$xensim" block-attach sys-b "netbus://$a_addr:$port/disk0" xvda --timeout 20 >/dev/null
load() { on b timeout 120 "$@" "$xensim" run --domid "$gb" -- "$xenfront" blk load --vdev xvda \
             --rw "$rw" --bs 4k --qd 1 --seconds "$secs" --size "$size"; }
load >/dev/null # warm up: connection, persistent grants
pids=()
for h in a b; do
    pid=$(pgrep -f "netbusd --xensim-dir $dir/$h " | head -1)
    strace -c -f -p "$pid" -o "$dir/$h.strace" 2>/dev/null & pids+=($!)
done
sleep 0.5
out=$(load strace -c -f -o "$dir/fe.strace")
kill -INT "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
ops=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' <<<"$out")
[ -n "$ops" ] && [ "$ops" -gt 0 ] || { echo "channel_syscalls: no load result: $out" >&2; exit 1; }
# strace -c: "% time seconds usecs/call calls [errors] syscall". Calls made
# fewer than once per two requests (set-up, threads, keepalive) are left
# out.
for f in a:export b:lbe fe:xenfront; do
    awk -v ops="$ops" -v who="${f#*:}" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
            if ($4 * 2 >= ops) { printf "SYSCALLS %s %s %.2f\n", who, $NF, $4 / ops; t += $4 / ops } }
        END { printf "SYSCALLS %s total %.2f\n", who, t }' "$dir/${f%%:*}.strace"
done
