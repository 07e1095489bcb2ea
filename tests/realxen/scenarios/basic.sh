# basic: what works on real Xen before netbusd serves disks.
#  - dom0 boots, xenstored/xenconsoled are up, no kernel vbd/vif backends;
#  - netbusd --probe finds the real Xen interfaces;
#  - PV and PVH guests without disks boot and run commands;
#  - the xl disk spec for netbus disks: what libxl writes, what it waits
#    for, and how the hotplug script's checks fail xl create cleanly.
DISKSPEC="format=raw, access=rw, backendtype=phy, script=netbus-block"
BE=/local/domain/0/backend/vbd

check_control_plane() {
    xl info >"$RUN/xlinfo" 2>&1 || { cat "$RUN/xlinfo"; why "xl info failed"; return 1; }
    grep -E '^(xen_version|xen_caps|total_memory|free_memory)' "$RUN/xlinfo" | sed 's/^/  /'
    grep -q '^xen_version *: 4\.17' "$RUN/xlinfo" || { why "not Xen 4.17"; return 1; }
    xs_is /local/domain/0/name Domain-0 || { why "xenstore has no Domain-0"; return 1; }
    if grep -E '^(xen_blkback|xen_netback) ' /proc/modules; then
        why "a kernel backend is loaded"; return 1
    fi
    pidof xenconsoled >/dev/null || { why "xenconsoled not running"; return 1; }
}

check_netbusd_probe() {
    local out rc
    command -v netbusd >/dev/null || { why "netbusd not installed in dom0"; return 1; }
    out=$(netbusd --probe 2>&1); rc=$?
    printf '%s\n' "$out" | sed 's/^/  netbusd: /'
    [ $rc = 0 ] || { why "netbusd --probe exit $rc"; return 1; }
    grep -q 'hypervisor interface: xen' <<<"$out" || { why "probe did not report xen"; return 1; }
}

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

# Without any vbd backend, xl create must fail (libxl waits 10 s for
# InitWait) and leave nothing behind.
check_xl_disk_no_backend() {
    local cfg t0 dt
    pidof netbusd >/dev/null && { why "netbusd is running"; return 1; }
    truncate -s 64M "$RUN/disk0.img"
    cfg=$(guest_cfg rx-nobe pv "$DISKSPEC, vdev=xvda, target=$RUN/disk0.img")
    t0=$(date +%s)
    ( wait_for 60 xenstore-exists "$BE"; sleep 1
      note "backend while libxl waits:"; xenstore-ls -fp "$BE" | sed 's/^/    /' ) &
    if xl_logged create "$cfg"; then why "xl create succeeded without a backend"; return 1; fi
    wait
    dt=$(( $(date +%s) - t0 ))
    note "xl create failed after $dt s, as it must"
    domid_of rx-nobe && { why "domain left behind"; return 1; }
    [ -z "$(xenstore-list "$BE" 2>/dev/null)" ] || { why "backend nodes left behind"; return 1; }
}

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

# The hotplug script refuses a target netbusd could not serve, and xl
# create fails with its message.
check_xl_disk_bad_target() {
    local cfg sb rc=0
    "$RX/standin-vbd-backend" 0 & sb=$!
    cfg=$(guest_cfg rx-bad pv "$DISKSPEC, vdev=xvda, target=$RUN/no-such.img")
    if xl_logged create "$cfg"; then why "xl create succeeded with a missing image"; rc=1; fi
    grep -q 'netbus-block: .*no-such.img does not exist' "$RUN/xl.out" || { why "no hotplug-error message from xl"; rc=1; }
    domid_of rx-bad && { why "domain left behind"; rc=1; }
    kill $sb
    return $rc
}

CHECKS=(
    control-plane:60:check_control_plane
    netbusd-probe:30:check_netbusd_probe
    pv-guest-nodisk:180:check_pv_nodisk
    pvh-guest-nodisk:180:check_pvh_nodisk
    xl-disk-no-backend:90:check_xl_disk_no_backend
    xl-disk-contract:240:check_xl_disk_contract
    xl-disk-bad-target:90:check_xl_disk_bad_target
)
