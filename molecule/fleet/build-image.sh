#!/bin/sh
# Build the fleet's cached Debian 12 guest: CACHE/bookworm.ext4 plus CACHE/vmlinuz and CACHE/initrd.img.
# Usage: build-image.sh CACHE [MIRROR]. Everything the runtime role needs is installed, so converging
# needs no network in the guest. Root login by key only: the key comes from the kernel command line
# (fleet.key=BASE64 of an authorized_keys line), read by fleet-key.service before sshd starts.
set -eu
cache=$1
mirror=${2:-http://deb.debian.org/debian}
tmp=$cache/build.$$
rm -rf "$cache"/build.*
mkdir -p "$tmp/root"
trap 'rm -rf "$tmp"' EXIT
mmdebstrap --variant=apt --components=main \
  --include=linux-image-amd64,systemd-sysv,openssh-server,python3,iproute2,udev,gnupg,nftables,python3-pyroute2,containernetworking-plugins,busybox-static,ca-certificates \
  bookworm "$tmp/root" "$mirror"
r=$tmp/root
mkdir -p "$r/etc/systemd/network"
printf '[Match]\nName=e*\n\n[Network]\nDHCP=yes\n' > "$r/etc/systemd/network/20-dhcp.network"
cat > "$r/usr/local/sbin/fleet-key" <<'EOS'
#!/bin/sh
for word in $(cat /proc/cmdline); do
  case $word in
    fleet.key=*)
      mkdir -p -m 0700 /root/.ssh
      printf '%s' "${word#fleet.key=}" | base64 -d > /root/.ssh/authorized_keys
      chmod 0600 /root/.ssh/authorized_keys;;
  esac
done
EOS
chmod 0755 "$r/usr/local/sbin/fleet-key"
cat > "$r/etc/systemd/system/fleet-key.service" <<'EOS'
[Unit]
Description=Root's SSH key from the kernel command line (molecule fleet)
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleet-key

[Install]
WantedBy=multi-user.target
EOS
echo rocket-fleet > "$r/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$r/etc/fstab"
chroot "$r" systemctl enable ssh.service systemd-networkd.service fleet-key.service
chroot "$r" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service
rm -f "$r/etc/resolv.conf"; echo 'nameserver 10.0.2.3' > "$r/etc/resolv.conf"
cp -L "$r/vmlinuz" "$tmp/vmlinuz" 2>/dev/null || cp "$r"/boot/vmlinuz-* "$tmp/vmlinuz"
cp -L "$r/initrd.img" "$tmp/initrd.img" 2>/dev/null || cp "$r"/boot/initrd.img-* "$tmp/initrd.img"
rm -rf "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"*_Packages
mkfs.ext4 -q -F -L fleetroot -d "$r" "$tmp/bookworm.ext4" 3G
mv "$tmp/vmlinuz" "$tmp/initrd.img" "$cache/"
mv "$tmp/bookworm.ext4" "$cache/bookworm.ext4"
echo built
