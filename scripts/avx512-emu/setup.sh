#!/bin/bash
# One-time setup of the AVX-512 emulator (Debian packages only, as root): Bochs 2.7 and its BIOS, isolinux, xorriso,
# busybox, and a Debian cloud kernel (LZ4: boots in ~13 s under Bochs) unpacked into $BX_BASE.
set -euo pipefail
BASE=${BX_BASE:-/tmp/quanteval-bx}
apt-get install -y bochs bochsbios vgabios isolinux syslinux-common xorriso busybox-static cpio
mkdir -p "$BASE" && cd "$BASE"
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
apt-get download "$pkg"
dpkg-deb -x "$pkg"_*.deb kern-cloud
ls kern-cloud/boot/vmlinuz-*
