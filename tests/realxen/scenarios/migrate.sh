# migrate: a PVH guest (PV guests cannot live-migrate on Debian's Xen) whose
# disk is a netbus:// URL naming an export of this host, live-migrated to
# localhost RX_MIGRATIONS times in a row (NETBUS_REALXEN_MIGRATIONS, default
# 3) while a writer runs in it, next to a memory check (rx memcheck-*).
# After each migration: no program in dom0 crashed, the backend of the new
# domain is Connected, the one of the old domain is gone, the writer made
# progress, and no pass of the writer or of the memory check failed. At the
# end the digest is checked in the guest and in dom0. A failed migration
# shows netbusd's (debug) log of it, the guest's blkfront messages, dom0's
# crashed programs and xl's logs. Uses disk.sh's helpers and
# dom0/guest-io.sh's migrate_under_writer; starts netbusd if
# the disk scenario did not run before it in this boot.
. "$(dirname "${BASH_SOURCE[0]}")/disk.sh"

check_netbusd_running() {
    [ -s /run/netbusd.pid ] && kill -0 "$(cat /run/netbusd.pid)" 2>/dev/null && return 0
    netbusd_start
}

# vbd_mig_diag FROM: a failed migration's netbusd log, dom0 crashes, xl's
# logs, the guest's console and kernel messages about its disk (with
# xen-blkfront's debug messages on)
vbd_mig_diag() { mig_diag "$1" rx-pvh "blkfront|blkback|xvda|I/O error|xenbus|vbd|Freezing|suspend|resume"; }

# The disk is a netbus:// URL naming an export of this host: the LBEs of
# the source and of the destination domain are in the same netbusd and both
# reach the export in-process.
check_pvh_migrate() {
    local cfg p n url i
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
    WRITER_PASSES=$n
    for i in $(seq 1 "$RX_MIGRATIONS"); do
        migrate_under_writer rx-pvh "$i" "$RX_MIGRATIONS" "$BE" vbd_connected vbd_mig_diag || return 1
    done
    gx rx-pvh 60 'rx memcheck-stop' || { why "guest memory check failed"; return 1; }
    gx rx-pvh 120 'rx writer-stop' || { vbd_mig_diag 1; why "writer reported errors"; return 1; }
    same_sum "PVH disk after $RX_MIGRATIONS migrations" "$(gsum rx-pvh "/dev/xvda 0 32 direct")" "$p" || return 1
    same_sum "dom0 image after $RX_MIGRATIONS migrations" "$(host_sum "$D/disk3.img" 0 32)" "$p" || return 1
    xl_logged destroy rx-pvh || { why "xl destroy failed"; return 1; }
    netbusctl unexport rx-mig 2>&1 | sed 's/^/  /'
}

CHECKS=(
    netbusd-running:60:check_netbusd_running
    "pvh-live-migrate-url:$(( 180 + 100 * RX_MIGRATIONS )):check_pvh_migrate"
)
