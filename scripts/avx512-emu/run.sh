#!/bin/bash
# Run a statically linked x86-64 Linux binary inside Bochs 2.7 (cpu model
# "tigerlake": AVX-512 F/CD/BW/DQ/VL + VNNI) under a Debian kernel, booted
# from an isolinux ISO with an initramfs (busybox + the binary).
#
#
# The kernel needs clearcpuid=pku,xsaves,xsavec,fsrm against Bochs 2.7 CPUID bugs (inconsistent XSAVE sizes turn
# off all AVX; FSRM makes the kernel patch memmove wrongly and hang at "LSM: Security Framework initializing").
# Bochs 2.7 computes vpconflictd/q (AVX-512CD) wrongly: do not trust CD results here.
# usage: scripts/avx512-emu/run.sh /path/to/static-binary [args...]
# env:   BX_TIMEOUT  seconds to wait for BX_EXIT (default 1200 = 20 min)
#        BX_IPS      bochs "ips" (instructions per emulated second, default 100000000)
#        BX_MEGS     guest memory in MiB (default 1024)
#        BX_BASE     where setup.sh put the kernels (default /tmp/quanteval-bx)
#        BX_KERNEL   bzImage to boot (default $BX_BASE/kern-cloud/boot/vmlinuz-*, else
#                    $BX_BASE/kern/boot/vmlinuz-*)
#        BX_CPU      bochs cpu model (default tigerlake)
#        BX_CMDLINE  extra kernel cmdline options
#        BX_KEEP=1   keep the work directory (printed on stderr)
#        BX_VERBOSE=1 print the whole serial log, not just the binary's output
# exit status: the binary's exit code; 124 on timeout; 125 on setup error.
set -u
BASE=${BX_BASE:-/tmp/quanteval-bx}  # kernels and per-run work dirs (setup.sh fills it)
[ $# -ge 1 ] || { echo "usage: $0 /path/to/static-binary [args...]" >&2; exit 125; }
BIN=$(readlink -f "$1"); shift
[ -f "$BIN" ] || { echo "no such file: $BIN" >&2; exit 125; }

TIMEOUT=${BX_TIMEOUT:-1200}
IPS=${BX_IPS:-100000000}
MEGS=${BX_MEGS:-1024}
BX_CPU=${BX_CPU:-tigerlake}
# default: Debian "cloud" flavour (LZ4-compressed: ~4 s to decompress in bochs instead of
# ~70 s for the XZ-compressed generic linux-image-*-amd64); falls back to the generic one.
KERNEL=${BX_KERNEL:-$(ls "$BASE"/kern-cloud/boot/vmlinuz-* "$BASE"/kern/boot/vmlinuz-* 2>/dev/null | head -n1)}
BUSYBOX=/bin/busybox
ISOLINUX_BIN=/usr/lib/ISOLINUX/isolinux.bin
LDLINUX=/usr/lib/syslinux/modules/bios/ldlinux.c32
BIOS=/usr/share/bochs/BIOS-bochs-latest
VGABIOS=/usr/share/vgabios/vgabios.bin
for f in "$KERNEL" "$BUSYBOX" "$ISOLINUX_BIN" "$LDLINUX" "$BIOS" "$VGABIOS"; do
  [ -f "$f" ] || { echo "missing $f (apt-get install bochs bochsbios vgabios isolinux syslinux-common xorriso busybox-static cpio; kernel: scripts/avx512-emu/setup.sh)" >&2; exit 125; }
done
for c in bochs-bin xorriso cpio gzip; do
  command -v $c >/dev/null || { echo "missing command $c" >&2; exit 125; }
done

mkdir -p "$BASE/work"
W=$(mktemp -d "$BASE/work/run.XXXXXX")
BXPID=; TAILPID=
cleanup() {
  [ -n "$TAILPID" ] && kill "$TAILPID" 2>/dev/null
  [ -n "$BXPID" ] && kill "$BXPID" 2>/dev/null && sleep 0.2 && kill -9 "$BXPID" 2>/dev/null
  if [ "${BX_KEEP:-0}" = 1 ]; then echo "[bx] work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------- 1. initramfs ----------
R=$W/rootfs
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,run,etc,usr/bin,usr/sbin}
cp "$BUSYBOX" "$R/bin/busybox"
for a in sh mount umount cat grep head poweroff sync echo sleep mkdir ls; do ln -s busybox "$R/bin/$a"; done
mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$R/dev/null" c 1 3 2>/dev/null || true
cp "$BIN" "$R/bin/testbin"; chmod 755 "$R/bin/testbin"

# args, shell-quoted, in a file sourced by /init
{
  printf 'set --'
  for a in "$@"; do printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"; done
  printf '\n'
} > "$R/args"

cat > "$R/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
echo "BX_UPTIME_AT_INIT=$(cat /proc/uptime)"
echo "BX_CPUFLAGS: $(grep -m1 '^flags' /proc/cpuinfo)"
. /args
cd /tmp
echo "BX_BEGIN"
/bin/testbin "$@"
rc=$?
echo ""
echo "BX_EXIT=$rc"
sync
# let the serial tty drain before the hard power-off (otherwise output is lost)
sleep 2
poweroff -f
while :; do sleep 1000; done
EOF
chmod 755 "$R/init"

ISO=$W/iso
mkdir -p "$ISO/isolinux"
( cd "$R" && find . -print0 | cpio --null -o -H newc --quiet ) | gzip -1 > "$ISO/isolinux/initrd.gz" \
  || { echo "cpio failed" >&2; exit 125; }
cp "$KERNEL" "$ISO/isolinux/vmlinuz"
cp "$ISOLINUX_BIN" "$LDLINUX" "$ISO/isolinux/"

# ---------- 2. bootable ISO (xorriso, no loop mount needed) ----------
# Kernel cmdline workarounds for Bochs 2.7 "tigerlake" bugs (all needed, else no boot or no AVX-512):
#  clearcpuid=pku    : CPUID.0xD sub-leaf 9 (PKRU) reports size/offset 0 although XCR0 mask has bit 9
#                      -> "XSAVE consistency problem" and the kernel turns off XSAVE/AVX entirely
#  clearcpuid=xsaves,xsavec : CPUID.(0xD,1).EBX reports the standard, not the compacted, size
#                      -> same consistency failure; forces the standard XSAVE(OPT) format
#  clearcpuid=fsrm   : bochs has FSRM but no IA32_MISC_ENABLE MSR, so the kernel sees "fast strings
#                      disabled" and drops ERMS; FSRM-without-ERMS mis-patches memmove -> hang at
#                      "LSM: Security Framework initializing"
#  cryptomgr.notests=1 : skips ~10 s of crypto self-tests; the rest only trims boot time.
CMDLINE="console=ttyS0,115200 quiet loglevel=3 clearcpuid=pku,xsaves,xsavec,fsrm mitigations=off nokaslr tsc=reliable no_timer_check noreplace-smp i8042.noaux i8042.nokbd nomodeset cryptomgr.notests=1 ${BX_CMDLINE:-}"
cat > "$ISO/isolinux/isolinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND $CMDLINE initrd=initrd.gz
EOF
xorriso -as mkisofs -quiet -o "$W/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table -R -J "$ISO" >"$W/xorriso.log" 2>&1 \
  || { cat "$W/xorriso.log" >&2; exit 125; }

# ---------- 3. bochs ----------
SER=$W/serial.out
: > "$SER"
cat > "$W/bochsrc" <<EOF
config_interface: textconfig
display_library: rfb, options="timeout=0"
romimage: file=$BIOS
vgaromimage: file=$VGABIOS
cpu: model=$BX_CPU, count=1, ips=$IPS, reset_on_triple_fault=0, ignore_bad_msrs=1
memory: guest=$MEGS, host=$MEGS
clock: sync=none, time0=local
ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14
ata0-master: type=cdrom, path="$W/boot.iso", status=inserted
boot: cdrom
floppy_bootsig_check: disabled=1
com1: enabled=1, mode=file, dev=$SER
mouse: enabled=0
speaker: enabled=0
sound: driver=dummy
private_colormap: enabled=0
log: $W/bochs.log
panic: action=report
error: action=report
info: action=ignore
debug: action=ignore
EOF

# Debian's bochs is built with the internal debugger: "c" = continue at start;
# on a stop the debugger reads EOF from /dev/null and bochs exits.
echo c > "$W/dbg.rc"
T0=$(date +%s.%N)
bochs-bin -q -f "$W/bochsrc" -rc "$W/dbg.rc" </dev/null >"$W/bochs.stdout" 2>&1 &
BXPID=$!
# host-side timestamps of serial lines (kept in $W/serial.ts with BX_KEEP=1)
tail -n +1 -F "$SER" 2>/dev/null > >(while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "${l%$'\r'}"; done > "$W/serial.ts") &
TAILPID=$!

status=timeout; TB=; TE=
while :; do
  if [ -z "$TB" ] && grep -q '^BX_BEGIN' "$SER" 2>/dev/null; then TB=$(date +%s.%N); fi
  if grep -q 'BX_EXIT=[0-9]' "$SER" 2>/dev/null; then TE=$(date +%s.%N); sleep 0.5; status=done; break; fi
  if grep -q -E 'reboot: (System halted|Power down)|Kernel panic|end Kernel panic' "$SER" 2>/dev/null; then
    sleep 1; grep -q 'BX_EXIT=' "$SER" && status=done || status=guest-halted-or-panicked; break
  fi
  if ! kill -0 "$BXPID" 2>/dev/null; then
    grep -q 'BX_EXIT=' "$SER" 2>/dev/null && status=done || status=died
    break
  fi
  now=$(date +%s.%N)
  if awk -v a="$now" -v b="$T0" -v t="$TIMEOUT" 'BEGIN{exit !(a-b>t)}'; then break; fi
  sleep 0.2
done
T1=$(date +%s.%N)
kill "$BXPID" 2>/dev/null; sleep 0.3; kill -9 "$BXPID" 2>/dev/null; wait "$BXPID" 2>/dev/null; BXPID=
kill "$TAILPID" 2>/dev/null; TAILPID=

CLEAN=$(tr -d '\r' < "$SER")
if [ "${BX_VERBOSE:-0}" = 1 ]; then
  echo "===== full serial log =====" >&2; printf '%s\n' "$CLEAN" >&2; echo "===========================" >&2
fi
printf '%s\n' "$CLEAN" | grep -m1 '^BX_CPUFLAGS:' >&2
printf '%s\n' "$CLEAN" | grep -m1 '^BX_UPTIME_AT_INIT=' >&2
awk -v a="$T1" -v b="$T0" -v tb="${TB:-0}" -v te="${TE:-0}" 'BEGIN{
  printf "[bx] bochs wall time: %.1f s", a-b
  if (tb>0) printf "; boot until binary start: %.1f s", tb-b
  if (tb>0 && te>0) printf "; binary run: %.1f s (+-0.3)", te-tb
  printf "\n"}' >&2

if [ "$status" != done ]; then
  echo "[bx] ERROR: no BX_EXIT ($status) after timeout=${TIMEOUT}s; serial log tail:" >&2
  printf '%s\n' "$CLEAN" | tail -n 40 >&2
  echo "[bx] bochs log tail:" >&2; grep -v '^\s*$' "$W/bochs.log" 2>/dev/null | tail -n 20 >&2
  tail -n 5 "$W/bochs.stdout" >&2
  exit 124
fi
# the binary's output: between BX_BEGIN and BX_EXIT
printf '%s\n' "$CLEAN" | awk '/^BX_BEGIN$/{p=1;next} /^BX_EXIT=/{p=0} p' | sed '${/^$/d}'
RC=$(printf '%s\n' "$CLEAN" | sed -n 's/^BX_EXIT=\([0-9]*\).*/\1/p' | head -n1)
echo "BX_EXIT=$RC" >&2
exit "${RC:-125}"
