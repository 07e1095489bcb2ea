# libxl: what xl/libxl 4.17 does with the netbus disk spec, with no netbusd
# (not in the default set; run it when libxl or the spec changes):
#  - PV and PVH guests without disks boot and run commands;
#  - with a stand-in backend that only walks the xenbus states, xl create
#    succeeds, the hotplug script runs, xen-blkfront publishes its rings,
#    block-attach/-detach and destroy complete; the xenstore nodes libxl
#    writes are printed.
DISKSPEC="format=raw, access=rw, backendtype=phy, script=netbus-block"
BE=/local/domain/0/backend/vbd

boot_nodisk() {
    local name=$1 type=$2 cfg d
    cfg=$(guest_cfg "$name" "$type")
    xl_logged create "$cfg" || { why "xl create $type failed"; return 1; }
    guest_up "$name" 120 || return 1
    d=$(domid_of "$name")
    gx "$name" 30 'uname -r; cat /sys/hypervisor/guest_type; ls /sys/bus/xen/drivers' || {
        why "command in guest failed"; return 1; }
    grep -qix "$type" <<<"$GX_OUT" || { why "guest_type is not $type"; return 1; }
    grep -q vbd <<<"$GX_OUT" || { why "xen-blkfront not loaded in the guest"; return 1; }
    note "xenstore of domain $d:"
    xenstore-ls -f "/local/domain/$d" | grep -E '/(device|control|data)/' | head -20 | sed 's/^/    /'
    xenstore-exists "/local/domain/$d/device" || { why "no device dir for domain $d"; return 1; }
    xl_logged destroy "$name" || { why "xl destroy failed"; return 1; }
    ! xenstore-exists "/local/domain/$d" || { why "domain $d left in xenstore"; return 1; }
}
check_pv_nodisk() { boot_nodisk rx-pv pv; }
check_pvh_nodisk() { boot_nodisk rx-pvh pvh; }

# With a stand-in backend that only walks the states, xl create succeeds,
# the hotplug script runs, and the guest's xen-blkfront connects its rings.
check_xl_disk_contract() {
    local cfg d fe be sb rc=0
    truncate -s 64M "$RUN/disk0.img"
    "$RX/standin-vbd-backend" 0 & sb=$!
    cfg=$(guest_cfg rx-spec pv "$DISKSPEC, vdev=xvda, target=$RUN/disk0.img" \
                               "$DISKSPEC, vdev=xvdb, target=netbus://localhost/rx-export")
    note "config:"; sed 's/^/    /' "$cfg"
    if ! xl_logged create "$cfg"; then kill $sb; why "xl create failed with the stand-in backend"; return 1; fi
    guest_up rx-spec 120 || { kill $sb; return 1; }
    d=$(domid_of rx-spec)
    for dev in 51712 51728; do
        be=$BE/$d/$dev; fe=/local/domain/$d/device/vbd/$dev
        wait_for 30 xs_is "$fe/state" 3 || { why "frontend $fe did not reach Initialised"; rc=1; }
        xs_is "$be/hotplug-status" connected || { why "hotplug script did not run for $be"; rc=1; }
        note "backend $be:"; xenstore-ls -fp "$be" | sed 's/^/    /'
        note "frontend $fe:"; xenstore-ls -fp "$fe" | sed 's/^/    /'
    done
    # run-time attach and detach of a third disk
    truncate -s 16M "$RUN/disk1.img"
    xl_logged block-attach rx-spec "$DISKSPEC, vdev=xvdc, target=$RUN/disk1.img" || { why "block-attach failed"; rc=1; }
    wait_for 30 xs_is "/local/domain/$d/device/vbd/51744/state" 3 || { why "attached frontend not Initialised"; rc=1; }
    xl block-list rx-spec | sed 's/^/  /'
    xl_logged block-detach rx-spec xvdc || { why "block-detach failed"; rc=1; }
    xenstore-exists "$BE/$d/51744" && { why "detached backend left behind"; rc=1; }
    xl_logged destroy rx-spec || { why "xl destroy failed"; rc=1; }
    [ -z "$(xenstore-list "$BE" 2>/dev/null)" ] || { why "backend nodes left after destroy"; rc=1; }
    kill $sb
    return $rc
}

CHECKS=(
    pv-guest-nodisk:180:check_pv_nodisk
    pvh-guest-nodisk:180:check_pvh_nodisk
    xl-disk-contract:240:check_xl_disk_contract
)
