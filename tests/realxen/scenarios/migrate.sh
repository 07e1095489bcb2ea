# migrate: a PVH guest (PV guests cannot live-migrate on Debian's Xen) whose
# disk is a netbus:// URL naming an export of this host, live-migrated to
# localhost RX_MIGRATIONS times in a row (NETBUS_REALXEN_MIGRATIONS, default
# 3) while a writer runs in it, next to a memory check (rx memcheck-*).
# After each migration: no program in dom0 crashed, the backend of the new
# domain is Connected, the one of the old domain is gone, the writer made
# progress, and no pass of the writer or of the memory check failed. At the
# end the digest is checked in the guest and in dom0. A failed migration
# shows netbusd's (debug) log of it, the guest's blkfront messages, dom0's
# crashed programs and xl's logs. Uses disk.sh's helpers; starts netbusd if
# the disk scenario did not run before it in this boot.
. "$(dirname "${BASH_SOURCE[0]}")/disk.sh"

check_netbusd_running() {
    [ -s /run/netbusd.pid ] && kill -0 "$(cat /run/netbusd.pid)" 2>/dev/null && return 0
    netbusd_start
}

# mig_log FROM: netbusd's log lines from line FROM on (one migration's worth)
mig_log() {
    echo "  --- netbusd log during the migration ---"
    tail -n +"$1" "$NBLOG" | tail -n "${2:-200}" | sed 's/^/  | /'
}

# mig_diag FROM: what a failed migration leaves to read: netbusd's log since
# the migration began, the guest's kernel messages about its disk (with
# xen-blkfront's debug messages on), its console, and xl's logs
mig_diag() {
    mig_log "$1" 300
    echo "  --- dom0 programs that crashed ---"
    dom0_crashes | tail -n 10 | sed 's/^/  | /'
    echo "  --- guest kernel messages (blkfront, xenbus, I/O errors) ---"
    gx rx-pvh 30 'rx klog "blkfront|blkback|xvda|I/O error|xenbus|vbd|Freezing|suspend|resume" | tail -n 60' >/dev/null
    printf '%s\n' "$GX_OUT" | sed 's/^/  | /'
    guest_console rx-pvh 30
    local f
    for f in /var/log/xen/xl-rx-pvh*.log; do
        [ -f "$f" ] || continue
        echo "  --- $f ---"; tail -n 30 "$f" | sed 's/^/  | /'
    done
}

# The disk is a netbus:// URL naming an export of this host: the LBEs of
# the source and of the destination domain are in the same netbusd and both
# reach the export in-process.
check_pvh_migrate() {
    local cfg p n d0 d1 t0 url i from be0 c0
    c0=$(dom0_crashes | wc -l)
    mkdir -p "$D"
    truncate -s 64M "$D/disk3.img"
    netbusctl export rx-mig "$D/disk3.img" >"$RUN/export.out" 2>&1 \
        || { sed 's/^/  /' "$RUN/export.out"; netbusd_log; why "netbusctl export failed"; return 1; }
    netbusctl list 2>&1 | sed 's/^/  netbusctl list: /'
    url="netbus://$(hostname)/rx-mig"
    cfg=$(guest_cfg rx-pvh pvh "$DISKSPEC, vdev=xvda, target=$url")
    cp "$cfg" "$RUN/pvh-disk.cfg"
    note "config:"; sed 's/^/    /' "$cfg"
    xl_logged create "$cfg" || { netbusd_log; why "xl create (PVH, $url) failed"; return 1; }
    guest_up rx-pvh 120 || return 1
    gx rx-pvh 60 'rx wait-dev /dev/xvda 40 && rx pattern 32' || { netbusd_log; why "PVH guest has no disk"; return 1; }
    p=$(printf '%s' "$GX_OUT" | tail -1)
    gx rx-pvh 30 'rx blkfront-debug' || note "(no xen-blkfront debug messages in the guest)"
    gx rx-pvh 30 'rx writer-start /dev/xvda 0 && rx memcheck-start' || { why "writer did not start"; return 1; }
    n=$(wait_writer rx-pvh 0 60) || { netbusd_log; why "writer made no pass"; return 1; }
    note "writer passes before the first migration: $n"
    for i in $(seq 1 "$RX_MIGRATIONS"); do
        d0=$(domid_of rx-pvh) || { why "no domain rx-pvh before migration $i"; return 1; }
        be0="$BE/$d0"
        from=$(( $(wc -l <"$NBLOG") + 1 ))
        mark "migration $i of $RX_MIGRATIONS (domain $d0, writer passes $n)"
        t0=$(date +%s)
        xl_logged migrate -s "" rx-pvh "xl migrate-receive" || { mig_diag "$from"; why "xl migrate $i failed"; return 1; }
        d1=$(domid_of rx-pvh) || { mig_diag "$from"; why "no domain rx-pvh after migration $i"; return 1; }
        note "migration $i: $(( $(date +%s) - t0 )) s, domain $d0 -> $d1"
        [ "$d0" != "$d1" ] || { why "same domid after migration $i"; return 1; }
        [ "$(dom0_crashes | wc -l)" = "$c0" ] \
            || { mig_diag "$from"; why "dom0 programs crashed during migration $i: $(dom0_crashes | tail -n 1 | cut -c1-120)"; return 1; }
        wait_for 60 be_state_all "$d1" 4 || { mig_diag "$from"; why "backend not Connected after migration $i"; return 1; }
        n=$(wait_writer rx-pvh "$(( ${n:-0} + 1 ))" 90) || { mig_diag "$from"; why "writer stuck after migration $i (passes $n)"; return 1; }
        note "writer passes after migration $i: $n"
        wait_for 30 bash -c "[ -z \"\$(xenstore-list $be0 2>/dev/null)\" ]" \
            || { mig_diag "$from"; why "backend of the old domain $d0 left after migration $i"; return 1; }
        gx rx-pvh 30 'rx memcheck-errors' || { mig_diag "$from"; why "guest memory check failed across migration $i"; return 1; }
        gx rx-pvh 30 'rx writer-errors' || { mig_diag "$from"; why "writer saw errors across migration $i"; return 1; }
        mig_log "$from" 60
    done
    gx rx-pvh 60 'rx memcheck-stop' || { why "guest memory check failed"; return 1; }
    gx rx-pvh 120 'rx writer-stop' || { mig_diag 1; why "writer reported errors"; return 1; }
    same_sum "PVH disk after $RX_MIGRATIONS migrations" "$(gsum rx-pvh "/dev/xvda 0 32 direct")" "$p" || return 1
    same_sum "dom0 image after $RX_MIGRATIONS migrations" "$(host_sum "$D/disk3.img" 0 32)" "$p" || return 1
    xl_logged destroy rx-pvh || { why "xl destroy failed"; return 1; }
    netbusctl unexport rx-mig 2>&1 | sed 's/^/  /'
}

CHECKS=(
    netbusd-running:60:check_netbusd_running
    "pvh-live-migrate-url:$(( 180 + 100 * RX_MIGRATIONS )):check_pvh_migrate"
)
