#!/bin/bash
# The Flatcar stand-in's own dracut module: what Flatcar's initramfs (its bootengine) does around Ignition for a
# PXE boot, which Debian's 30ignition module leaves to the distribution. The root is a tmpfs holding the image's
# /etc, /var, ... with /usr mounted read-only from /usr.squashfs, as Flatcar's PXE image does; first boot is
# decided by flatcar.first_boot=; Ignition runs with the metal platform (ignition.config.url=), after
# systemd-networkd has configured the network with DHCP.

check() {
    return 0
}

depends() {
    echo ignition systemd-networkd systemd-modules-load
}

installkernel() {
    hostonly='' instmods squashfs loop
}

install() {
    inst_multiple cp rm
    mkdir -p "$initdir/etc/modules-load.d"
    printf '%s\n' loop squashfs > "$initdir/etc/modules-load.d/standin.conf"
    # Replaces 30ignition's generator (which knows only ignition.firstboot=), whichever module dracut runs first.
    mkdir -p "$initdir$systemdutildir/system-generators"
    cp -f "$moddir/standin-generator" "$initdir$systemdutildir/system-generators/ignition-generator"
    inst_simple "$moddir/standin-root.service" "$systemdsystemunitdir/standin-root.service"
    # The root's own (harness/standins/flatcar/root).
    inst_simple "$systemdnetwork/zz-default.network"
    inst_simple /etc/systemd/journald.conf.d/50-standin-console.conf
    inst_simple "$moddir/ignition-fetch-network.conf" "$systemdsystemunitdir/ignition-fetch.service.d/10-network.conf"
}
