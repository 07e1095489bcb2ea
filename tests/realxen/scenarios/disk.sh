# disk: Linux's real xen-blkfront against netbusd on real Xen, disks
# declared in unmodified xl configs (backendtype=phy, script=netbus-block).
# The checks share one PV guest, in order: boot, pattern I/O, ext4,
# save/restore under a writer, detach/attach at run time, netbusd restart,
# destroy. The live migration of a PVH guest is scenario `migrate`.
DISKSPEC="format=raw, access=rw, backendtype=phy, script=netbus-block"
BE=/local/domain/0/backend/vbd
D=/var/lib/netbus-rx/disks
pat() { cat "$RUN/pat.sha"; }
# host_sum FILE SKIP_MIB MIB: sha256 of a region of a disk image, in dom0
host_sum() { dd if="$1" bs=1M skip="$2" count="$3" 2>/dev/null | sha256sum | cut -d' ' -f1; }
# gsum NAME ARGS: the digest "rx sum ARGS" prints in the guest
gsum() { gx "$1" 120 "rx sum $2" >/dev/null || return 1; printf '%s' "$GX_OUT" | tail -1; }
vbd_connected() { be_state_all "$1" 4; }
be_state_all() {  # be_state_all DOMID STATE: every vbd backend of DOMID in STATE
    local dev ok=0
    for dev in $(xenstore-list "$BE/$1" 2>/dev/null); do
        ok=1; xs_is "$BE/$1/$dev/state" "$2" || return 1
    done
    [ $ok = 1 ]
}

check_netbusd_start() {
    grep -E '^xen_blkback ' /proc/modules && { why "xen-blkback is loaded"; return 1; }
    mkdir -p "$D"
    netbusd_start || return 1
    netbusd_log 5
}

check_pv_boot() {
    local cfg d
    truncate -s 128M "$D/disk0.img"; truncate -s 64M "$D/disk1.img"
    cfg=$(guest_cfg rx-pv pv "$DISKSPEC, vdev=xvda, target=$D/disk0.img" \
                             "$DISKSPEC, vdev=xvdb, target=$D/disk1.img")
    cp "$cfg" "$RUN/pv-disk.cfg"
    note "config:"; sed 's/^/    /' "$cfg"
    xl_logged create "$cfg" || { netbusd_log; why "xl create failed"; return 1; }
    guest_up rx-pv 120 || { netbusd_log; return 1; }
    gx rx-pv 60 'rx wait-dev /dev/xvda 40 && rx wait-dev /dev/xvdb 40 && cat /sys/block/xvda/size /sys/block/xvdb/size' \
        || { netbusd_log; why "disks did not appear in the guest"; return 1; }
    [ "$(printf '%s\n' "$GX_OUT" | tr '\n' ' ')" = "262144 131072 " ] || { why "wrong disk sizes"; return 1; }
    d=$(domid_of rx-pv)
    be_state_all "$d" 4 || { xenstore-ls -fp "$BE/$d"; why "backends not Connected"; return 1; }
    note "backend of xvda once connected:"
    xenstore-ls -fp "$BE/$d/51712" | sed 's/^/    /'
}

check_pv_pattern() {
    local p g
    gx rx-pv 60 'rx pattern 32' || { why "no pattern"; return 1; }
    p=$(printf '%s' "$GX_OUT" | tail -1); echo "$p" >"$RUN/pat.sha"
    note "pattern: 32 MiB, sha256 $p"
    gx rx-pv 120 'rx put /dev/xvda 0 direct' || { why "O_DIRECT write failed"; return 1; }
    g=$(gsum rx-pv "/dev/xvda 0 32 direct") || { why "O_DIRECT read failed"; return 1; }
    same_sum "guest O_DIRECT read-back" "$g" "$p" || return 1
    gx rx-pv 120 'rx put /dev/xvda 32 fsync' || { why "buffered write failed"; return 1; }
    g=$(gsum rx-pv "/dev/xvda 32 32") || { why "buffered read failed"; return 1; }
    same_sum "guest buffered read-back" "$g" "$p" || return 1
    same_sum "dom0 image, O_DIRECT region" "$(host_sum "$D/disk0.img" 0 32)" "$p" || return 1
    same_sum "dom0 image, buffered region" "$(host_sum "$D/disk0.img" 32 32)" "$p"
}

check_pv_ext4() {
    local p; p=$(pat)
    gx rx-pv 180 'mkfs.ext4 -q -F /dev/xvdb && mount -t ext4 /dev/xvdb /mnt && cp /tmp/pat /mnt/pat && sync &&
                 umount /mnt && fsck.ext4 -n -f /dev/xvdb && echo 3 >/proc/sys/vm/drop_caches &&
                 mount -t ext4 -o ro /dev/xvdb /mnt && sha256sum /mnt/pat | cut -d" " -f1; r=$?; umount /mnt; exit $r' \
        || { why "mkfs/mount/write/fsck in the guest failed"; return 1; }
    same_sum "file on ext4, remounted" "$(printf '%s' "$GX_OUT" | tail -1)" "$p" || return 1
    e2fsck -n -f "$D/disk1.img" >"$RUN/fsck.out" 2>&1 || { sed 's/^/  /' "$RUN/fsck.out"; why "dom0 e2fsck -n of the image is not clean"; return 1; }
    note "dom0 e2fsck -n: clean"
}

check_pv_save_restore() {
    local p n d0 d1; p=$(pat)
    d0=$(domid_of rx-pv)
    gx rx-pv 30 'rx writer-start /dev/xvda 64' || { why "writer did not start"; return 1; }
    n=$(wait_writer rx-pv 0 60) || { why "writer made no pass"; return 1; }
    note "writer passes before save: $n"
    xl_logged save rx-pv "$RUN/rx-pv.save" || { netbusd_log; why "xl save failed"; return 1; }
    domid_of rx-pv && { why "domain still there after save"; return 1; }
    wait_for 20 bash -c "[ -z \"\$(xenstore-list $BE/$d0 2>/dev/null)\" ]" || { why "backends of the saved domain left"; return 1; }
    note "save file: $(du -m "$RUN/rx-pv.save" | cut -f1) MiB"
    xl_logged restore "$RUN/rx-pv.save" || { netbusd_log; why "xl restore failed"; return 1; }
    rm -f "$RUN/rx-pv.save"
    d1=$(domid_of rx-pv)
    note "restored as domain $d1 (was $d0)"
    wait_for 60 be_state_all "$d1" 4 || { netbusd_log; xenstore-ls -fp "$BE/$d1"; why "backends not Connected after restore"; return 1; }
    n=$(wait_writer rx-pv "$(( ${n:-0} + 1 ))" 90) || { netbusd_log; guest_console rx-pv; why "writer stuck after restore (passes $n)"; return 1; }
    note "writer passes after restore: $n"
    gx rx-pv 120 'rx writer-stop' || { why "writer reported errors"; return 1; }
    same_sum "writer region after restore" "$(gsum rx-pv "/dev/xvda 64 32 direct")" "$p" || return 1
    same_sum "first region after restore" "$(gsum rx-pv "/dev/xvda 0 32 direct")" "$p" || return 1
    same_sum "dom0 image, writer region" "$(host_sum "$D/disk0.img" 64 32)" "$p"
}

check_pv_detach_attach() {
    local p d; p=$(pat)
    d=$(domid_of rx-pv)
    truncate -s 32M "$D/disk2.img"
    xl_logged block-attach rx-pv "$DISKSPEC, vdev=xvdc, target=$D/disk2.img" || { netbusd_log; why "block-attach failed"; return 1; }
    gx rx-pv 90 'rx wait-dev /dev/xvdc 60 && rx put /dev/xvdc 0 direct' || { netbusd_log; why "attached disk not usable"; return 1; }
    same_sum "attached disk read-back" "$(gsum rx-pv "/dev/xvdc 0 32 direct")" "$p" || return 1
    xl_logged block-detach rx-pv xvdc || { netbusd_log; why "block-detach failed"; return 1; }
    gx rx-pv 60 'rx wait-gone /dev/xvdc 30' || { why "xvdc still in the guest after detach"; return 1; }
    xenstore-exists "$BE/$d/51744" && { why "backend of xvdc left after detach"; return 1; }
    same_sum "dom0 image after detach" "$(host_sum "$D/disk2.img" 0 32)" "$p" || return 1
    xl_logged block-attach rx-pv "$DISKSPEC, vdev=xvdc, target=$D/disk2.img" || { netbusd_log; why "second block-attach failed"; return 1; }
    gx rx-pv 90 'rx wait-dev /dev/xvdc 60' || { why "re-attached disk did not appear"; return 1; }
    same_sum "re-attached disk keeps its data" "$(gsum rx-pv "/dev/xvdc 0 32 direct")" "$p"
}

check_netbusd_restart() {
    local p pid d; p=$(pat)
    d=$(domid_of rx-pv)
    pid=$(cat /run/netbusd.pid)
    kill -TERM "$pid"
    wait_for 20 bash -c "! kill -0 $pid 2>/dev/null" || { why "netbusd did not exit on SIGTERM"; return 1; }
    note "netbusd $pid stopped; backend states: $(for x in $(xenstore-list "$BE/$d"); do printf '%s=%s ' "$x" "$(xenstore-read "$BE/$d/$x/state")"; done)"
    rm -f /run/netbusd.pid
    netbusd_start || return 1
    wait_for 30 be_state_all "$d" 4 || { netbusd_log; why "backends not Connected after the restart"; return 1; }
    gx rx-pv 120 'rx put /dev/xvda 96 direct' || { netbusd_log; guest_console rx-pv; why "write after netbusd restart failed"; return 1; }
    same_sum "read-back after restart" "$(gsum rx-pv "/dev/xvda 96 32 direct")" "$p" || return 1
    same_sum "xvdc after restart" "$(gsum rx-pv "/dev/xvdc 0 32 direct")" "$p" || return 1
    same_sum "dom0 image after restart" "$(host_sum "$D/disk0.img" 96 32)" "$p"
}

check_pv_destroy() {
    local d; d=$(domid_of rx-pv)
    xl_logged destroy rx-pv || { why "xl destroy failed"; return 1; }
    wait_for 20 bash -c "! xenstore-exists $BE/$d" || { why "backends left after destroy"; return 1; }
    kill -0 "$(cat /run/netbusd.pid)" || { why "netbusd died"; return 1; }
}

CHECKS=(
    netbusd-start:60:check_netbusd_start
    pv-disk-boot:180:check_pv_boot
    pv-disk-pattern:240:check_pv_pattern
    pv-disk-ext4:240:check_pv_ext4
    pv-save-restore:360:check_pv_save_restore
    pv-block-detach-attach:240:check_pv_detach_attach
    netbusd-restart-idle:180:check_netbusd_restart
    pv-destroy:60:check_pv_destroy
)
