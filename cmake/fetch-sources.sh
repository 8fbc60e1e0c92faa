#!/usr/bin/env bash
# Fetch the pinned dependency tarballs (cmake/pins.txt) from Debian's source packages, verify
# them, and cache them so that later builds are offline.
#
# The mirror is the one this machine's apt already uses: we read it from the apt configuration at
# run time and write deb-src entries for it into a private apt configuration (own sources, own
# lists), so the system's apt state is never touched and no host name lives in the repository.
#
# usage: cmake/fetch-sources.sh [CACHE_DIR]   (default: ${XDG_CACHE_HOME:-~/.cache}/coap-edge/sources)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pins="$here/pins.txt"
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/coap-edge/sources}
mkdir -p "$cache"

have_all=1
verify() { # file sha -> 0 if present and matching
  [ -f "$cache/$1" ] && [ "$(sha256sum "$cache/$1" | cut -d' ' -f1)" = "$2" ]
}
while read -r file sha _sel _kind; do
  verify "$file" "$sha" || have_all=0
done < <(grep -vE '^\s*(#|$)' "$pins")
if [ "$have_all" = 1 ]; then
  echo "fetch-sources: all pinned tarballs present and verified in $cache"
  exit 0
fi

# The Debian mirror the machine uses: first URI of a Debian archive (not -security) in the apt
# sources, deb822 or one-line format.
mirror=$( { grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
            grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
              sed -E 's/^\s*deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}'; } |
          grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true)
if [ -z "$mirror" ]; then
  echo "fetch-sources: no Debian mirror found in /etc/apt/sources.list{,.d}; pass a directory" >&2
  echo "  holding the tarballs listed in $pins with -DCOAP_EDGE_SOURCES_DIR=... instead" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources.list.d" "$work/lists/partial" "$work/cache/archives/partial" "$work/dl"
: > "$work/sources.list"
cat > "$work/sources.list.d/coap-edge-src.sources" <<SRC
Types: deb-src
URIs: $mirror
Suites: sid trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/sources.list.d"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root"
          -o "Debug::NoLocking=1" -q)
echo "fetch-sources: reading source indexes (sid, trixie) into a private apt state"
apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }

fail=0
while read -r file sha sel kind; do
  verify "$file" "$sha" && continue
  case "$kind" in
    orig) only=--tar-only ;;
    debian) only=--diff-only ;;
    *) echo "fetch-sources: bad kind '$kind' in $pins" >&2; exit 1 ;;
  esac
  echo "fetch-sources: apt-get source --download-only $only $sel"
  (cd "$work/dl" && apt-get "${apt_opts[@]}" source --download-only "$only" "$sel" >"$work/src.log" 2>&1) ||
    { cat "$work/src.log" >&2; exit 1; }
  if [ ! -f "$work/dl/$file" ]; then
    echo "fetch-sources: $sel no longer provides $file; it now provides:" >&2
    ls "$work/dl" >&2
    echo "  The archive moved to another version. Review its changelog, then update cmake/pins.txt." >&2
    fail=1; continue
  fi
  got=$(sha256sum "$work/dl/$file" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "fetch-sources: SHA-256 mismatch for $file" >&2
    echo "  pinned:   $sha" >&2
    echo "  received: $got" >&2
    echo "  The same file name now carries different bytes. Do not build with it: compare it with" >&2
    echo "  the upstream release and the Debian changelog, and update cmake/pins.txt only if legitimate." >&2
    fail=1; continue
  fi
  mv "$work/dl/$file" "$cache/$file"
  echo "fetch-sources: verified $file"
  rm -f "$work/dl"/*
done < <(grep -vE '^\s*(#|$)' "$pins")
exit $fail
