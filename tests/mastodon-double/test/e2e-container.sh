#!/usr/bin/env bash
# Runs e2e-host.sh in a throw-away Debian container (podman, systemd as PID 1), against a
# repository made by make-repo.sh, and removes the container afterwards (KEEP=1 keeps it).
#   usage: tests/mastodon-double/test/e2e-container.sh [IMAGE]     default image: localhost/mat-debian:13
# (an image tagged :12 gets the repository made with make-repo.sh --debian 12)
# Downloaded .deb files are shared with the test hosts (tests/hosts/hostctl): the container sees
# the machine's apt cache through an overlay, and the packages it fetched are added to it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${1:-localhost/mat-debian:13}
name=dbl-e2e-$$
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(cd "$here/../.." && pwd)/containers.conf}
apt_cache=${MAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mastodon-ansible-toolkit}/apt-${image##*:}
mkdir -p "$apt_cache/partial"
tmp=$(mktemp -d)
cleanup() {
  rm -rf "$tmp"
  podman exec "$name" sh -c 'cd /var/cache/apt/archives && ls | grep -q "\.deb$" && tar -cf - *.deb' 2>/dev/null \
    | tar -C "$apt_cache" -xf - --skip-old-files 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] || podman rm -f "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT
case "$image" in *:12) debian=(--debian 12) ;; *) debian=() ;; esac
"$here/../make-repo.sh" "${debian[@]}" "$tmp/mastodon-double.git" >/dev/null
podman run -d --name "$name" --systemd=always -v "$apt_cache:/var/cache/apt/archives:O" "$image" /lib/systemd/systemd >/dev/null
podman cp "$tmp/mastodon-double.git" "$name:/srv/mastodon-double.git"
podman cp "$here" "$name:/srv/double-test"
podman exec "$name" bash /srv/double-test/e2e-host.sh file:///srv/mastodon-double.git
