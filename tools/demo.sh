#!/usr/bin/env bash
# make demo: the main job on xensim. Starts a simulated host, creates a
# guest domain, lets netbusd and netbusctl find the simulated hypervisor,
# and shows the host's xenstore as Debian's xenstore-ls sees it.
set -euo pipefail
build=${1:-build}
dir=$(mktemp -d /tmp/netbus-demo.XXXXXX)
host_pid=
cleanup() {
    [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "start a simulated host (xensim host --dir $dir)"
"$build/xensim" host --dir "$dir" 2>"$dir/host.log" &
host_pid=$!
"$build/xensim" wait --dir "$dir" --timeout 10 || { cat "$dir/host.log"; echo "demo: host did not start"; exit 1; }

step "create a guest domain"
domid=$("$build/xensim" create --dir "$dir" --name demo-guest --memory 64)
echo "created domain $domid"
"$build/xensim" list --dir "$dir"

export XENSIM_DIR=$dir
step "netbusd --probe (dom0 backend side)"
"$build/netbusd" --probe
step "netbusctl info"
"$build/netbusctl" info

step "the host's xenstore, read with Debian's xenstore-ls"
XENSTORED_RUNDIR=$dir xenstore-ls -f /

step "destroy the guest"
"$build/xensim" destroy --dir "$dir" "$domid"
"$build/xensim" list --dir "$dir"
echo
echo "demo: done"
