# basic: the Xen control plane and the failure paths of the xl disk spec
# for netbus disks (runs before netbusd is started):
#  - dom0 boots, xenstored/xenconsoled are up, no kernel vbd/vif backends;
#  - netbusd --probe finds the real Xen interfaces;
#  - with no vbd backend at all, xl create fails cleanly;
#  - the hotplug script's checks fail xl create with a clear message.
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
    note "dom0 cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -oE ' (avx|avx2|fma|f16c|sse4_2|smap|smep|rdtscp)( |$)' | tr -d '\n')"
}

check_netbusd_probe() {
    local out rc
    command -v netbusd >/dev/null || { why "netbusd not installed in dom0"; return 1; }
    out=$(netbusd --probe 2>&1); rc=$?
    printf '%s\n' "$out" | sed 's/^/  netbusd: /'
    [ $rc = 0 ] || { why "netbusd --probe exit $rc"; return 1; }
    grep -q 'hypervisor interface: xen' <<<"$out" || { why "probe did not report xen"; return 1; }
}

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
    xl-disk-no-backend:90:check_xl_disk_no_backend
    xl-disk-bad-target:90:check_xl_disk_bad_target
)
