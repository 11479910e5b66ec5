#!/usr/bin/env bash
# Makes DEST a bare git repository of the Mastodon TEST DOUBLE with three tagged versions, for the
# roles to clone and check out as they would upstream Mastodon:
#   v4.5.0  the files of src/
#   v4.5.1  the same plus versions/4.5.1/ (VERSION, app/models/status.rb, one pre-deployment and
#           one post-deployment migration)
#   v4.5.2  the same plus versions/4.5.2/ (VERSION, .ruby-version 3.3.9: an upgrade that needs
#           another Ruby, no migration; a changed streaming/ tree); branch main points at it.
# Commits have a fixed author, committer and date, so the same tree always gives the same commit
# ids; running it again leaves an up-to-date DEST untouched.
#   usage: tests/mastodon-double/make-repo.sh [--debian 12] DEST   (then: git clone DEST or file://DEST)
# --debian 12 commits debian12/Gemfile.lock (bookworm's gem versions) instead of src/Gemfile.lock
# (trixie's), and debian12/package.json (engines.node >=18: bookworm's nodejs is 18, upstream's
# >=20 stops yarn 1): other commit ids, same tags.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
debian12=
if [ "${1:-}" = --debian ]; then
  case "${2:-}" in 12) debian12="$here/debian12" ;; 13) ;; *) echo "unknown Debian release ${2:-}" >&2; exit 2 ;; esac
  shift 2
fi
dest=${1:?usage: make-repo.sh [--debian 12] DEST}
dest=${dest%/}
work=$(mktemp -d)
tmp="$dest.tmp.$$"
trap 'rm -rf "$work" "$tmp"' EXIT

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null TZ=UTC
export GIT_AUTHOR_NAME='Mastodon test double' GIT_AUTHOR_EMAIL='double@mastodon.invalid'
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
g() { git --git-dir="$tmp" --work-tree="$work" -c core.fileMode=true -c core.autocrlf=false -c core.symlinks=true "$@"; }
commit() { # MESSAGE DATE TAG
  # A fresh index, so every file is hashed: `cp -a` keeps mtimes, and a changed file with the
  # same size and mtime as its indexed copy (VERSION 4.5.0 -> 4.5.1) would be missed otherwise.
  rm -f "$tmp/index"
  g add -A
  GIT_AUTHOR_DATE="$2" GIT_COMMITTER_DATE="$2" g commit -q -m "$1"
  g tag "$3"
}

git init -q --bare "$tmp"
git --git-dir="$tmp" symbolic-ref HEAD refs/heads/main
cp -a "$here/src/." "$work/"
[ -z "$debian12" ] || cp "$debian12/Gemfile.lock" "$debian12/package.json" "$work/"
commit 'Mastodon test double v4.5.0' '2025-06-01T12:00:00Z' v4.5.0
cp -a "$here/versions/4.5.1/." "$work/"
commit 'Mastodon test double v4.5.1: statuses get a language' '2025-07-01T12:00:00Z' v4.5.1
cp -a "$here/versions/4.5.2/." "$work/"
commit 'Mastodon test double v4.5.2: asks for Ruby 3.3.9' '2025-08-01T12:00:00Z' v4.5.2

if [ -d "$dest" ] && [ "$(git --git-dir="$dest" show-ref 2>/dev/null)" = "$(git --git-dir="$tmp" show-ref)" ]; then
  echo "$dest is up to date"
else
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "$dest written"
fi
git --git-dir="$dest" show-ref
