#!/usr/bin/env bash
# make demo: the main job on xensim. Starts a simulated host, creates a
# guest domain, lets netbusd and netbusctl find the simulated hypervisor,
# gives the guest a disk served by netbusd (the way `xl block-attach` does)
# and has the guest write and read it back with the reference blkfront,
# then shows the host's xenstore as Debian's xenstore-ls sees it.
# Then the whole netbus story on three simulated hosts in their own network
# namespaces (xensim cluster): a disk exported by one, used by a guest on
# another over the netbus channel, the guest live-migrated across the hosts
# under I/O and its disk hot-swapped to local, data checked at every step
# and the timeline printed.
set -euo pipefail
build=${1:-build}
dir=$(mktemp -d /tmp/netbus-demo.XXXXXX)
host_pid=
netbusd_pid=
cluster_up=
cleanup() {
    [ -n "$cluster_up" ] && "$build/xensim" cluster down --dir "$dir/cluster" >/dev/null 2>&1
    [ -n "$netbusd_pid" ] && kill "$netbusd_pid" 2>/dev/null && wait "$netbusd_pid" 2>/dev/null
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

step "start netbusd, serving disks (vbd, qdisk) to guests"
"$build/netbusd" --xensim-dir "$dir" --log-level info 2>"$dir/netbusd.log" &
netbusd_pid=$!

step "give the guest a disk: a 64 MiB file as xvda (xensim block-attach)"
truncate -s 64M "$dir/disk.img"
"$build/xensim" block-attach "$domid" "$dir/disk.img" xvda || { cat "$dir/netbusd.log"; exit 1; }
"$build/xensim" block-list "$domid"
echo "backend: /local/domain/0/backend/vbd/$domid/51712"
XENSTORED_RUNDIR=$dir xenstore-ls /local/domain/0/backend/vbd/$domid/51712 | sed 's/^/  /'

guest() { "$build/xensim" run --dir "$dir" --domid "$domid" -- "$build/xenfront" "$@"; }
step "inside the guest: connect the disk (xenfront blk info)"
guest blk info --vdev xvda

msg="Hello from guest $domid, written through netbusd at $(date +%T)"
step "inside the guest: write a message at sector 2048"
guest blk write --vdev xvda --sector 2048 --text "$msg"
step "inside the guest: read sector 2048 back"
back=$(guest blk read --vdev xvda --sector 2048 | tr -d '\0')
echo "  guest read: $back"
step "in dom0: the same bytes in the disk file (offset 1 MiB)"
ondisk=$(dd if="$dir/disk.img" bs=512 skip=2048 count=1 status=none | tr -d '\0')
echo "  file holds: $ondisk"
[ "$back" == "$msg" ] && [ "$ondisk" == "$msg" ] || { echo "demo: the disk did not hold the message"; exit 1; }

step "inside the guest: verify 1000 random I/Os (patterns, flush, discard, indirect), every byte read back"
guest blk verify --vdev xvda --region 16m --ops 1000 --qd 16 --model-out "$dir/model"
step "in dom0: check the file against what the guest says it wrote"
"$build/xenfront" blk check-file --model "$dir/model" --file "$dir/disk.img"

step "netbusd's log for the device"
grep -E 'vbd/'"$domid"'/51712: (new|connected|disconnected|/)' "$dir/netbusd.log" | sed 's/^/  /' | head -12

step "detach the disk (xensim block-detach)"
"$build/xensim" block-detach "$domid" xvda --timeout 5 || true
"$build/xensim" block-list "$domid"

step "the host's xenstore, read with Debian's xenstore-ls"
XENSTORED_RUNDIR=$dir xenstore-ls -f /

step "destroy the guest"
"$build/xensim" destroy --dir "$dir" "$domid"
"$build/xensim" list --dir "$dir"

# --- the remote case, live migration and hot-swap ---------------------------
# Three simulated hosts, each in its own network namespace. host-a exports
# a disk; a guest on host-b uses it over the netbus channel, writes, then
# keeps verifying random I/O while it is live-migrated to host-a (where the
# disk is served in-process), to host-c (remote again) and back to host-a,
# where its disk is hot-swapped from the export to the local file. The data
# is checked at every step and each host's timeline is printed.
remote_demo() {
    local cdir=$dir/cluster port=7797 xs nb ctl xf
    xs=$(realpath "$build/xensim") nb=$(realpath "$build/netbusd")
    ctl=$(realpath "$build/netbusctl") xf=$(realpath "$build/xenfront")
    cl() { "$xs" cluster "$1" --dir "$cdir" "${@:2}"; }
    on() { local h=$1; shift; "$xs" cluster exec --dir "$cdir" "$h" -- "$@"; }
    logs() { tail -n 15 "$cdir"/host-*/netbusd.log; }

    step "three simulated hosts, each in its own network namespace, joined by veth (xensim cluster up)"
    printf '* %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/keys"
    chmod 600 "$dir/keys"
    cl up --hosts host-a,host-b,host-c --netbusd "$nb" --netbusd-arg=--name=%h \
        --netbusd-arg=--aliases=%a --netbusd-arg=--listen=%a:$port \
        --netbusd-arg=--keys="$dir/keys"
    cluster_up=1
    cl list
    local a_addr
    a_addr=$(cl addr host-a)

    step "on host-a: export a 64 MiB file disk as 'shared0' (netbusctl export)"
    truncate -s 64M "$dir/shared0.img"
    on host-a "$ctl" export shared0 "$dir/shared0.img"

    local url="netbus://$a_addr:$port/shared0"
    step "on host-b: a guest gets $url as xvda (xensim block-attach)"
    local gb
    gb=$(on host-b "$xs" create --name roaming-guest --memory 64)
    on host-b "$xs" block-attach roaming-guest "$url" xvda --timeout 20 || { logs; return 1; }
    on host-b "$xs" block-list roaming-guest

    rguest() { on host-b "$xs" run --domid "$gb" -- "$xf" "$@"; }
    local rmsg="Hello from a guest on host-b, stored on host-a at $(date +%T)"
    step "inside the guest on host-b: write a message at sector 100000 and read it back"
    rguest blk write --vdev xvda --sector 100000 --text "$rmsg"
    local rback
    rback=$(rguest blk read --vdev xvda --sector 100000 | tr -d '\0')
    echo "  guest read: $rback"
    step "on host-a: the same bytes in the exported file (sector 100000)"
    local rdisk
    rdisk=$(dd if="$dir/shared0.img" bs=512 skip=100000 count=1 status=none | tr -d '\0')
    echo "  file on host-a holds: $rdisk"
    [ "$rback" == "$rmsg" ] && [ "$rdisk" == "$rmsg" ] ||
        { echo "demo: the remote disk did not hold the message"; return 1; }

    step "inside the guest: verify random I/O for 10 s (every byte read back) while it migrates"
    on host-b "$xs" run --domid "$gb" -- "$xf" blk verify --vdev xvda --region 16m \
        --seconds 10 --qd 16 --initial zero --resume reissue --timeout 30 \
        --model-out "$dir/rmodel" >"$dir/rverify.out" 2>"$dir/rverify.err" &
    local vpid=$! from=host-b
    sleep 1.5
    for to in host-a host-c host-a; do
        step "live-migrate the guest $from -> $to (xensim migrate), its disk stays on host-a"
        "$xs" migrate --dir "$cdir/$from" roaming-guest --to "$cdir/$to" ||
            { logs; return 1; }
        on "$to" "$xs" block-list roaming-guest
        from=$to
        sleep 1.5
    done

    step "on host-a: hot-swap the guest's disk from the export to the local file (netbusctl swap)"
    on host-a "$ctl" swap roaming-guest xvda "$dir/shared0.img" || { logs; return 1; }

    step "the guest's verify across three migrations and a hot-swap"
    if ! wait "$vpid"; then
        cat "$dir/rverify.out" "$dir/rverify.err"; logs
        echo "demo: verify failed across the migrations"; return 1
    fi
    grep -o 'result=[a-z]* writes=[0-9]*\|reads=[0-9]*\|mismatches=[0-9]*' "$dir/rverify.out" | paste -sd' ' | sed 's/^/  /'
    grep -h 'suspended' "$dir/rverify.err" | sed 's/^/  /' || true
    step "on host-a: check the file against what the guest wrote, wherever it ran"
    on host-a "$xf" blk check-file --model "$dir/rmodel" --file "$dir/shared0.img"

    for h in host-b host-a host-c; do
        step "$h: netbusctl status (the timeline of its part of the story)"
        on "$h" "$ctl" status | sed 's/^/  /'
    done

    step "detach, take the hosts down"
    on host-a "$xs" block-detach roaming-guest xvda --timeout 5 || true
    cl down
    cluster_up=
}
remote_demo
echo
echo "demo: done"
