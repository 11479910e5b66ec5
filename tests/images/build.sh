#!/usr/bin/env bash
# Builds the systemd test-host images (Debian 13 and 12) with debootstrap and imports them into
# podman (or docker: CONTAINER_ENGINE=docker). No registry is needed. An image is rebuilt only when
# this recipe changes: its label holds the recipe's hash.
#   tests/images/build.sh            # every release
#   tests/images/build.sh 13         # one release
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${CONTAINER_ENGINE:-podman}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a test host needs to behave like a fresh server: systemd as PID 1, sshd for Ansible,
# python3 with its apt bindings (python3-apt: Ansible's apt module under mitogen cannot install them
# itself), and sudo + acl so become_user to unprivileged users (postgres) works.
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,acl,iproute2,ca-certificates,openssh-server,gnupg
recipe_hash=$( (cat "$0"; echo "$packages") | sha256sum | cut -c1-16)

codename() { case $1 in 13) echo trixie ;; 12) echo bookworm ;; *) echo "unknown release $1" >&2; exit 2 ;; esac; }

build() {
  local release=$1 name=localhost/mat-debian:$1
  if [ "$("$engine" image inspect --format '{{ index .Labels "recipe" }}' "$name" 2>/dev/null)" = "$recipe_hash" ]; then
    echo "image $name is current ($recipe_hash)"; return
  fi
  local root; root=$(mktemp -d /var/tmp/mat-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  echo "building $name with debootstrap (about 80 s)"
  debootstrap --variant=minbase --include="$packages" "$(codename "$release")" "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -20 "$root.log"; exit 1; }
  rm -f "$root.log"
  # A fresh identity per container: systemd writes machine-id at boot, sshd keys come from the
  # create step. No getty on a console that does not exist.
  : > "$root/etc/machine-id"
  rm -f "$root"/etc/ssh/ssh_host_*
  chroot "$root" systemctl mask getty@tty1.service console-getty.service systemd-logind.service >/dev/null 2>&1 || true
  cat > "$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate this host's SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=ssh.service
UNIT
  chroot "$root" systemctl enable ssh.service ssh-hostkeys.service >/dev/null 2>&1 || true
  printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' > "$root/etc/ssh/sshd_config.d/test-host.conf"
  mkdir -p "$root/root/.ssh" && chmod 700 "$root/root/.ssh"
  # Throwaway hosts: dpkg skips fsync and writes no manuals, docs or translations. Most of a first
  # converge is apt installing packages (tests only; real servers keep Debian's defaults).
  printf 'force-unsafe-io\n' > "$root/etc/dpkg/dpkg.cfg.d/test-host-unsafe-io"
  printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/info/*\npath-exclude=/usr/share/locale/*\n' \
    > "$root/etc/dpkg/dpkg.cfg.d/test-host-no-docs"
  # Downloaded packages stay in the cache dir that the hosts share with the machine.
  rm -f "$root/etc/apt/apt.conf.d/docker-clean"
  apt-get clean -o Dir="$root" >/dev/null 2>&1 || true
  tar -C "$root" -c . | "$engine" import --change "LABEL recipe=$recipe_hash" --change 'CMD ["/lib/systemd/systemd"]' - "$name" >/dev/null
  echo "built $name"
}

releases=("$@"); [ ${#releases[@]} -gt 0 ] || releases=(13 12)
for r in "${releases[@]}"; do build "$r"; done
