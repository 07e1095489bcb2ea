# usbfront: the patched xen-hcd (frontend-patches/linux) in a PV guest whose
# usbctrl is served by a stand-in backend that only walks the xenbus states
# (no USB device, no URB): what can be checked of the patch without a usbif
# backend. The checks share one guest, in order:
#  - the guest runs the patched module (build id of this run's build), it
#    registers a Xen USB 2.0 host controller and connects;
#  - a cancelled suspend (xl save -c) keeps the rings and lets I/O go on;
#  - save/restore connects it to the new backend with new rings, keeps the
#    USB bus (no new bus, no disconnect) and logs no protocol error;
#  - so does a live migration of a PVH guest (localhost).
# Not in the default scenarios (NETBUS_REALXEN_SCENARIOS=usbfront).
USBCTRL="usbctrl = ['type=pv,version=2,ports=4']"
FE_KEYS="urb-ring-ref conn-ring-ref event-channel"
GUEST=rx-usb    # the guest the helpers look at

fe_path() { echo "/local/domain/$(domid_of $GUEST)/device/vusb/0"; }
be_path() { xenstore-read "$(fe_path)/backend"; }
fe_keys() {
    local p k
    p=$(fe_path)
    for k in $FE_KEYS; do printf '%s=%s ' "$k" "$(xenstore-read "$p/$k" 2>/dev/null)"; done
}
connected() { xs_is "$(fe_path)/state" 4 && xs_is "$(be_path)/state" 4; }
# guest_log: the guest's kernel messages of xen-hcd and the USB core
guest_log() { gx $GUEST 60 'rx klog "xen.hcd|vusb|usb usb|USB bus|USB disconnect|protocol error"'; }
count() { printf '%s\n' "$GX_OUT" | grep -c -- "$1"; }
standin_log() { echo "  --- stand-in backend ---"; sed 's/^/  | /' "$RUN/standin-vusb.log"; }
need_module() { [ -n "${RX_XENHCD_BUILD_ID:-}" ] || skip "this run has no xen-hcd.ko (make frontend-modules)"; }

check_load() {
    local cfg got
    need_module
    setsid "$RX/standin-vusb-backend" </dev/null >>"$RUN/standin-vusb.log" 2>&1 &
    echo $! >"$RUN/standin-vusb.pid"
    cfg=$(guest_cfg rx-usb pv)
    echo "$USBCTRL" >>"$cfg"
    xl_logged create "$cfg" || { standin_log; why "xl create failed"; return 1; }
    guest_up rx-usb 120 || return 1
    # the build id is the last 20 bytes of the module's note
    gx rx-usb 60 'n=/sys/module/xen_hcd/notes/.note.gnu.build-id; i=0; until [ -e $n ]; do i=$((i+1)); [ $i -gt 150 ] && exit 1; usleep 200000; done; od -An -tx1 -v $n | tr -d " \n" | tail -c 40' \
        || { guest_console rx-usb; why "xen_hcd not loaded in the guest"; return 1; }
    got=$(printf '%s' "$GX_OUT" | tail -1)
    [ "$got" = "$RX_XENHCD_BUILD_ID" ] \
        || { why "guest runs xen_hcd with build id $got, this run built $RX_XENHCD_BUILD_ID"; return 1; }
    note "guest runs the patched xen_hcd (build id $got)"
    wait_for 60 connected || { xenstore-ls -fp "$(fe_path)"; why "frontend and backend not both Connected"; return 1; }
    note "connected: $(fe_keys)"
    gx rx-usb 30 'rx debug xen_hcd && cat /sys/bus/usb/devices/usb1/product' || { why "no usb1 in the guest"; return 1; }
    grep -q "Xen USB2.0 Virtual Host Controller" <<<"$GX_OUT" || { why "usb1 is not the Xen USB 2.0 host controller"; return 1; }
    guest_log
}

# xl save -c: the guest's suspend is cancelled, it carries on with the same
# backend; xen-hcd must keep its rings and resume I/O (its .complete).
check_checkpoint() {
    local d0 before after
    need_module
    d0=$(domid_of rx-usb) || { why "no guest"; return 1; }
    before=$(fe_keys)
    xl_logged save -c rx-usb "$RUN/usb.chk" || { why "xl save -c failed"; return 1; }
    rm -f "$RUN/usb.chk"
    [ "$(domid_of rx-usb)" = "$d0" ] || { why "domain id changed across a checkpoint"; return 1; }
    wait_for 30 connected || { why "not Connected after the checkpoint"; return 1; }
    after=$(fe_keys)
    [ "$after" = "$before" ] || { why "rings changed across a cancelled suspend: $before -> $after"; return 1; }
    guest_log || { why "guest agent not answering after the checkpoint"; return 1; }
    [ "$(count 'suspend: no URB in flight')" = 1 ] || { why "xen-hcd did not log its suspend"; return 1; }
    [ "$(count 'I/O resumed after a cancelled suspend')" = 1 ] || { why "xen-hcd did not resume I/O after the cancelled suspend"; return 1; }
}

# resumed_on_new_backend N: the guest's xen-hcd went through N restores,
# each logged, on its one USB bus, with no disconnect and no protocol error
resumed_on_new_backend() {
    guest_log || { guest_console $GUEST; why "guest agent not answering after resume"; return 1; }
    [ "$(count 'resume: 0 URBs failed')" = "$1" ] || { why "xen-hcd did not log its resume"; return 1; }
    [ "$(count 'I/O resumed with the new backend')" = "$1" ] || { why "xen-hcd did not resume I/O with the new backend"; return 1; }
    [ "$(count 'new USB bus registered')" = 1 ] || { why "a second USB bus was registered"; return 1; }
    [ "$(count 'USB disconnect')" = 0 ] || { why "the guest saw a USB disconnect"; return 1; }
    [ "$(count 'protocol error')" = 0 ] || { why "xen-hcd reported a protocol error"; return 1; }
    gx $GUEST 30 'cat /sys/bus/usb/devices/usb1/product' || { why "usb1 gone after resume"; return 1; }
}

check_save_restore() {
    local d0 d1 before
    need_module
    d0=$(domid_of rx-usb) || { why "no guest"; return 1; }
    before=$(fe_keys)
    xl_logged save rx-usb "$RUN/usb.save" || { why "xl save failed"; return 1; }
    domid_of rx-usb && { why "domain still there after save"; return 1; }
    xl_logged restore "$RUN/usb.save" || { why "xl restore failed"; return 1; }
    rm -f "$RUN/usb.save"
    d1=$(domid_of rx-usb) || { why "no guest after restore"; return 1; }
    note "restored as domain $d1 (was $d0)"
    wait_for 60 connected || { xenstore-ls -fp "$(fe_path)"; why "not Connected after restore"; return 1; }
    note "before: $before"
    note "after:  $(fe_keys)"
    resumed_on_new_backend 1 || return 1
}

check_pvh_migrate() {
    local cfg d0 d1 before
    need_module
    GUEST=rx-usbh
    xl destroy rx-usb >/dev/null 2>&1
    cfg=$(guest_cfg $GUEST pvh)
    echo "$USBCTRL" >>"$cfg"
    xl_logged create "$cfg" || { standin_log; why "xl create failed"; return 1; }
    guest_up $GUEST 120 || return 1
    wait_for 90 connected || { xenstore-ls -fp "$(fe_path)"; why "frontend and backend not both Connected"; return 1; }
    gx $GUEST 30 'rx debug xen_hcd' || { why "no dynamic debug in the guest"; return 1; }
    d0=$(domid_of $GUEST)
    before=$(fe_keys)
    xl_logged migrate -s "" $GUEST "xl migrate-receive" || { dom0_crashes | sed 's/^/  dom0: /'; why "xl migrate failed"; return 1; }
    d1=$(domid_of $GUEST) || { why "no guest after the migration"; return 1; }
    note "migrated to domain $d1 (was $d0)"
    wait_for 60 connected || { xenstore-ls -fp "$(fe_path)"; why "not Connected after the migration"; return 1; }
    note "before: $before"
    note "after:  $(fe_keys)"
    resumed_on_new_backend 1 || return 1
    kill "$(cat "$RUN/standin-vusb.pid")" 2>/dev/null || true
}

CHECKS=(
    xen-hcd-load:240:check_load
    xen-hcd-checkpoint:180:check_checkpoint
    xen-hcd-save-restore:300:check_save_restore
    xen-hcd-pvh-migrate:480:check_pvh_migrate
)
