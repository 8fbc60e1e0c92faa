#!/usr/bin/env bash
# Apply Debian's libcoap security patches (cmake/libcoap-patches.txt) to an extracted libcoap tree.
# usage: apply-libcoap-patches.sh SOURCE_TREE DEBIAN_PATCH_DIR MANIFEST OWN_PATCH_DIR
# Manifest entries named "coap-edge/<file>" are the project's own patches from OWN_PATCH_DIR,
# applied after Debian's.
# Prints one line per patch (what was applied, what was already there, what was skipped and why)
# so that the build log records exactly which fixes the binary carries.
set -euo pipefail
tree=$1 patches=$(cd "$2" && pwd) manifest=$(cd "$(dirname "$3")" && pwd)/$(basename "$3") own=$(cd "$4" && pwd)
cd "$tree"


while read -r name action files; do
  [ -n "$name" ] || continue
  case "$name" in
    coap-edge/*) p="$own/${name#coap-edge/}" ;;
    *) p="$patches/$name" ;;
  esac
  [ -f "$p" ] || { echo "libcoap-patches: $name listed in manifest but missing ($p)" >&2; exit 1; }
  case "$action" in
    apply)
      if ! out=$(patch -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch < "$p" 2>&1); then
        echo "$out" >&2; echo "libcoap-patches: $name no longer applies cleanly" >&2; exit 1
      fi
      echo "libcoap-patches: applied $name" ;;
    already-applied)
      if patch -p1 --forward --batch --dry-run --fuzz=0 < "$p" >/dev/null 2>&1; then
        echo "libcoap-patches: $name is expected to be in 4.3.5 already but applies: review" >&2; exit 1
      fi
      if ! patch -p1 --reverse --batch --dry-run --fuzz=0 < "$p" >/dev/null 2>&1; then
        echo "libcoap-patches: $name neither applies nor is present: review" >&2; exit 1
      fi
      echo "libcoap-patches: $name already present in upstream 4.3.5, nothing to do" ;;
    files)
      for f in $files; do
        part=$(mktemp)
        # Keep only the sections whose target file is $f.
        awk -v want="$f" '
          /^(Index: |diff )/ { keep = (index($0, "/" want) > 0) }
          keep { print }
        ' "$p" > "$part"
        if [ ! -s "$part" ]; then rm -f "$part"; echo "libcoap-patches: $name has no hunks for $f" >&2; exit 1; fi
        if ! out=$(patch -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch < "$part" 2>&1); then
          rm -f "$part"; echo "$out" >&2; echo "libcoap-patches: $name ($f) no longer applies cleanly" >&2; exit 1
        fi
        rm -f "$part"
      done
      skipped=$(grep -E '^\+\+\+ ' "$p" | awk '{print $2}' | sed -E 's#^[^/]*/##' | sort -u |
                grep -vxF -f <(printf '%s\n' $files) | tr '\n' ' ')
      echo "libcoap-patches: applied $name to: $files; skipped (not compiled with the mbedTLS backend): $skipped" ;;
    *) echo "libcoap-patches: unknown action '$action' for $name" >&2; exit 1 ;;
  esac
done < <(grep -vE '^\s*(#|$)' "$manifest")
