# migrate: a PVH guest (PV guests cannot live-migrate on Debian's Xen) whose
# disk is a netbus:// URL naming an export of this host, live-migrated to
# localhost while a writer runs in it. Uses disk.sh's helpers; starts
# netbusd if the disk scenario did not run before it in this boot.
# Not in the default run yet (tests/realxen/run.sh says so): the guest's
# writer saw I/O errors across the migration in 1 of 3 runs.
. "$(dirname "${BASH_SOURCE[0]}")/disk.sh"

check_netbusd_running() {
    [ -s /run/netbusd.pid ] && kill -0 "$(cat /run/netbusd.pid)" 2>/dev/null && return 0
    netbusd_start
}

# A PVH guest (PV guests cannot live-migrate on Debian's Xen) whose disk is
# a netbus:// URL naming an export of this host, live-migrated to localhost
# while a writer runs in it.
check_pvh_migrate() {
    local cfg p n d0 d1 t0 url
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
    gx rx-pvh 30 'rx writer-start /dev/xvda 0' || { why "writer did not start"; return 1; }
    n=$(wait_writer rx-pvh 0 60) || { netbusd_log; why "writer made no pass"; return 1; }
    d0=$(domid_of rx-pvh)
    note "writer passes before migration: $n"
    t0=$(date +%s)
    xl_logged migrate -s "" rx-pvh "xl migrate-receive" || { netbusd_log; why "xl migrate failed"; return 1; }
    d1=$(domid_of rx-pvh)
    note "migrated in $(( $(date +%s) - t0 )) s: domain $d0 -> $d1"
    [ "$d0" != "$d1" ] || { why "same domid after migration"; return 1; }
    wait_for 60 be_state_all "$d1" 4 || { netbusd_log; why "backend not Connected after migration"; return 1; }
    n=$(wait_writer rx-pvh "$(( ${n:-0} + 1 ))" 90) || { netbusd_log; guest_console rx-pvh; why "writer stuck after migration"; return 1; }
    note "writer passes after migration: $n"
    gx rx-pvh 120 'rx writer-stop' || { netbusd_log; why "writer reported errors"; return 1; }
    same_sum "PVH disk after migration" "$(gsum rx-pvh "/dev/xvda 0 32 direct")" "$p" || return 1
    same_sum "dom0 image after migration" "$(host_sum "$D/disk3.img" 0 32)" "$p" || return 1
    xl_logged destroy rx-pvh || { why "xl destroy failed"; return 1; }
    netbusctl unexport rx-mig 2>&1 | sed 's/^/  /'
}

CHECKS=(
    netbusd-running:60:check_netbusd_running
    pvh-live-migrate-url:420:check_pvh_migrate
)
