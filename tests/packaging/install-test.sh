#!/usr/bin/env bash
# Install test in a clean Debian 12 root made with debootstrap in the test's own directory (of
# the package's architecture: a foreign one runs under qemu-user through binfmt_misc):
# apt-get install ./coap-edge-agent_*.deb pulls the dependencies; user, directories, modes;
# --check-config as the service user; systemd-analyze verify/security on the installed unit;
# the agent started as coap-edge (chroot + setpriv, no systemd) answers a DTLS-PSK GET from
# Debian's coap-client; an upgrade to a newer build keeps a locally edited agent.toml; purge
# leaves nothing behind. Sourced by run.sh.
#
# The debootstrap root is cached as a tarball in ~/.cache/coap-edge/debootstrap/ (made once,
# then unpacked fresh for every run); COAP_EDGE_PKG_FRESH_ROOT=1 makes a new one.

PKG_SUITE=bookworm
PKG_ROOT_INCLUDE=systemd,man-db,procps

in_root() { chroot "$root" "$@"; }
as_service() { chroot "$root" setpriv --reuid=coap-edge --regid=coap-edge --init-groups --no-new-privs -- "$@"; }
check_config_as_service() {
  as_service /usr/bin/coap-edge-agent --config /etc/coap-edge/agent.toml --check-config >"$work/check-config.log" 2>&1 ||
    { sed 's/^/    /' "$work/check-config.log"; return 1; }
}
# --no-install-recommends: Recommends (avahi-daemon, and with it dbus) would stay installed
# after the purge, as systemd recommends dbus, and blur the "nothing left behind" check.
apt_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends "$@"; }
# apt_logged LOG ARGS...: apt_root with its output in LOG (shown when it fails).
apt_logged() {
  local log=$1; shift
  apt_root "$@" >>"$log" 2>&1 || { tail -n 30 "$log" | sed 's/^/    /'; return 1; }
}

make_root_tarball() { # tarball arch
  local tarball=$1 arch=$2 mirror tmp
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || { echo "no Debian mirror in /etc/apt/sources.list{,.d}" >&2; return 1; }
  tmp=$work/debootstrap.tmp
  safe_rm_root "$tmp" || return 1
  note "debootstrap --variant=minbase --include=$PKG_ROOT_INCLUDE $PKG_SUITE ($arch) from the machine's mirror"
  debootstrap --arch="$arch" --variant=minbase --include="$PKG_ROOT_INCLUDE" "$PKG_SUITE" "$tmp" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; return 1; }
  chroot "$tmp" apt-get clean
  mkdir -p "$(dirname "$tarball")"
  tar --numeric-owner -C "$tmp" -czf "$tarball.part" . && mv "$tarball.part" "$tarball"
  safe_rm_root "$tmp"
}

# File listing of the root (one file system: not /proc, /dev, /run), for the purge check.
root_listing() { (cd "$root" && find . -xdev | sort); }

# Differences after purge that are not the package's: apt/dpkg bookkeeping and logs, the
# system user (kept on purge, as Debian recommends), caches, the timer stamps of the boot.
purge_noise='^\./(var/lib/dpkg/|var/lib/apt/|var/cache/|var/log/|tmp/|var/lib/systemd/timers(/|$)|etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$|etc/ld\.so\.cache$|etc/resolv\.conf$)'

start_agent() { # log -> sets agent_pid
  chroot "$root" setpriv --reuid=coap-edge --regid=coap-edge --init-groups --no-new-privs -- \
    /usr/bin/coap-edge-agent --config /etc/coap-edge/agent.toml >"$1" 2>&1 &
  agent_pid=$!
}

# A newer build of the same binaries for the upgrade: version +test1, and a changed shipped
# agent.toml, so that dpkg meets a conffile changed both locally and in the package.
make_upgrade_deb() { # deb out-deb
  local d=$work/repack
  rm -rf "$d"; mkdir -p "$d"
  dpkg-deb -R "$1" "$d"
  sed -i -E 's/^Version: (.*)$/Version: \1+test1/' "$d/DEBIAN/control"
  printf '\n# (changed in the +test1 package)\n' >>"$d/etc/coap-edge/agent.toml"
  (cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
  dpkg-deb --root-owner-group -b "$d" "$2" >/dev/null
}

# ---- the installed unit under a real systemd: the root booted with systemd-nspawn ----
# The container shares the host's network, so the agent's 127.0.0.1:$port is reachable from
# the host's coap-client. A test drop-in shortens WatchdogSec to 4 s, so that an agent that did
# not send WATCHDOG=1 would be killed within the few seconds the test waits.
in_ns() { nsenter -t "$ns_leader" -a "$@"; }
unit_prop() { in_ns systemctl show -P "$1" coap-edge-agent.service 2>/dev/null; }

boot_root() { # -> sets nspawn_pid, ns_leader; 0 once the container's systemd is up
  systemd-nspawn --register=no --keep-unit -q -D "$root" --boot >"$work/boot.log" 2>&1 &
  nspawn_pid=$!
  local state
  for _ in $(seq 1 120); do
    ns_leader=$(pgrep -P "$nspawn_pid" | head -n1)
    if [ -n "$ns_leader" ]; then
      state=$(in_ns systemctl is-system-running 2>/dev/null)
      case "$state" in running|degraded) return 0 ;; esac
    fi
    kill -0 "$nspawn_pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

shutdown_root() {
  [ -n "${nspawn_pid:-}" ] || return 0
  kill -TERM "$nspawn_pid" 2>/dev/null # nspawn asks the container's systemd to power off
  for _ in $(seq 1 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$nspawn_pid" 2>/dev/null
  wait "$nspawn_pid" 2>/dev/null
  nspawn_pid=""
}

test_under_systemd() {
  ensure_packages systemd-container || { fail "systemd-container installed"; return 1; }
  chroot_umount # systemd-nspawn sets up /proc, /dev and /run itself
  local dropin=$root/etc/systemd/system/coap-edge-agent.service.d
  mkdir -p "$dropin"
  printf '[Service]\nWatchdogSec=4s\n' >"$dropin/zz-package-test.conf"
  if ! timed "boot with systemd-nspawn" boot_root; then
    fail "the root boots with systemd-nspawn"; tail -n 20 "$work/boot.log" | sed 's/^/    /'
    shutdown_root; rm -rf "$dropin"; chroot_mount "$root"; return 1
  fi
  pass "the root boots with systemd-nspawn (systemd $(in_ns systemctl --version | head -n1 | awk '{print $2}'))"
  local i
  for i in $(seq 1 40); do
    case "$(unit_prop ActiveState)" in active|failed) break ;; esac
    sleep 0.25
  done
  check "coap-edge-agent.service is active (Type=notify: READY=1 received)" test "$(unit_prop ActiveState)" = active ||
    in_ns journalctl -u coap-edge-agent --no-pager | tail -n 20 | sed 's/^/    /'
  echo "    status: $(unit_prop StatusText)"
  local pid
  pid=$(unit_prop MainPID)
  check "the main process runs as coap-edge" test "$(in_ns ps -o user= -p "$pid" | tr -d ' ')" = coap-edge
  local out
  out=$(psk_get coap-client-gnutls)
  check "the sandboxed service answers a DTLS-PSK GET" grep -q '</status>' <<<"$out"
  sleep 5 # > WatchdogSec=4s of the drop-in
  check "watchdog: still active, same process, no restart after 5 s with WatchdogSec=4s" \
    test "$(unit_prop ActiveState)/$(unit_prop MainPID)/$(unit_prop NRestarts)" = "active/$pid/0"
  in_ns systemctl reload coap-edge-agent.service
  sleep 1
  check "systemctl reload (SIGHUP): still active, same process" \
    test "$(unit_prop ActiveState)/$(unit_prop MainPID)" = "active/$pid"
  local sec score
  sec=$(in_ns systemd-analyze security --no-pager coap-edge-agent.service 2>&1)
  score=$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p' <<<"$sec")
  echo "    systemd-analyze security (running service): exposure ${score:-?}"
  check "running service: exposure ${score:-?} <= $PKG_MAX_EXPOSURE" awk -v s="${score:-99}" -v m="$PKG_MAX_EXPOSURE" 'BEGIN { exit !(s + 0 <= m + 0) }'
  in_ns systemctl stop coap-edge-agent.service
  check "systemctl stop: the agent exits 0 (Result=success)" \
    test "$(unit_prop Result)/$(unit_prop ExecMainStatus)" = "success/0"
  in_ns journalctl -u coap-edge-agent --no-pager -o cat >"$work/journal.log" 2>&1
  shutdown_root
  rm -rf "$dropin"
  chroot_mount "$root"
}

test_install() { # deb
  local deb=$1 arch tarball
  arch=$(dpkg-deb -f "$deb" Architecture)
  ensure_packages debootstrap libcoap3-bin || return 1
  tarball=$PKG_CACHE/debootstrap/$PKG_SUITE-$arch-minbase-${PKG_ROOT_INCLUDE//,/-}.tar.gz
  if [ "${COAP_EDGE_PKG_FRESH_ROOT:-0}" = 1 ] || [ ! -f "$tarball" ]; then
    timed debootstrap make_root_tarball "$tarball" "$arch" || { fail "debootstrap a $PKG_SUITE root"; return 1; }
  else
    note "reusing the cached $PKG_SUITE root $tarball"
  fi
  root=$work/root
  safe_rm_root "$root" || return 1
  mkdir -p "$root"
  timed "unpack root" tar --numeric-owner -xpzf "$tarball" -C "$root"
  chroot_mount "$root"  # run.sh unmounts on any exit

  note "apt-get update in the root"
  timed "apt-get update" apt_root update >"$work/apt-update.log" 2>&1 || { fail "apt-get update in the root"; return 1; }
  root_listing >"$work/before.txt"

  note "apt-get install ./$(basename "$deb")"
  cp "$deb" "$root/tmp/"
  rm -f "$work"/apt-*.log
  check "apt-get install ./$(basename "$deb") pulls its dependencies" \
    timed "apt-get install" apt_logged "$work/apt-install.log" install "./tmp/$(basename "$deb")" || return 1
  for p in libfmt9 libtomlplusplus3 adduser; do
    check "dependency $p installed" bash -c "chroot '$root' dpkg-query -W -f='\${Status}' $p | grep -q 'install ok installed'"
  done

  note "user, directories, modes"
  local pw
  pw=$(in_root getent passwd coap-edge)
  echo "    $pw"
  check "system user coap-edge (uid < 1000)" awk -F: '{ exit !($3 > 0 && $3 < 1000) }' <<<"$pw"
  check "home /var/lib/coap-edge, shell /usr/sbin/nologin" awk -F: '{ exit !($6 == "/var/lib/coap-edge" && $7 == "/usr/sbin/nologin") }' <<<"$pw"
  check "group coap-edge" bash -c "chroot '$root' getent group coap-edge >/dev/null"
  check "/var/lib/coap-edge is 700 coap-edge:coap-edge" test "$(in_root stat -c '%a %U:%G' /var/lib/coap-edge)" = "700 coap-edge:coap-edge"
  check "/etc/coap-edge/certs is 750 root:coap-edge" test "$(in_root stat -c '%a %U:%G' /etc/coap-edge/certs)" = "750 root:coap-edge"
  check "/etc/coap-edge/agent.toml is 644 root:root" test "$(in_root stat -c '%a %U:%G' /etc/coap-edge/agent.toml)" = "644 root:root"
  check "agent.toml is a registered conffile" bash -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' coap-edge-agent | grep -q ' /etc/coap-edge/agent.toml '"
  check "unit enabled for multi-user.target" test -L "$root/etc/systemd/system/multi-user.target.wants/coap-edge-agent.service"
  check "the service user cannot write /etc/coap-edge/certs" bash -c "! chroot '$root' setpriv --reuid=coap-edge --regid=coap-edge --init-groups -- touch /etc/coap-edge/certs/x 2>/dev/null"
  check "other users cannot list /etc/coap-edge/certs" bash -c "! chroot '$root' setpriv --reuid=nobody --regid=nogroup --clear-groups -- ls /etc/coap-edge/certs >/dev/null 2>&1"

  note "configuration as installed"
  check "coap-edge-agent --config /etc/coap-edge/agent.toml --check-config as coap-edge" \
    check_config_as_service
  check "man coap-edge-agent / coap-edge-ctl / coap-edge-agent.toml found by man" \
    bash -c "{ chroot '$root' man -w coap-edge-agent && chroot '$root' man -w coap-edge-ctl && chroot '$root' man -w 5 coap-edge-agent.toml; } >/dev/null"

  # The README's Raspberry Pi step that opens the agent to the LAN, verbatim, on a copy.
  local readme_sed
  readme_sed=$(grep -m1 -E "^sudo sed -i .*/etc/coap-edge/agent.toml$" "$COAP_EDGE_ROOT/README.md" |
    sed -E 's|^sudo ||; s|/etc/coap-edge/agent.toml$|/etc/coap-edge/agent-readme.toml|')
  cp -p "$root/etc/coap-edge/agent.toml" "$root/etc/coap-edge/agent-readme.toml"
  check "README's Pi edit of agent.toml listens on the LAN and passes --check-config" \
    bash -c "[ -n \"\$1\" ] && chroot '$root' sh -c \"\$1\" && grep -q '^listen = \[\"0.0.0.0:5684\"' '$root/etc/coap-edge/agent-readme.toml' &&
      chroot '$root' setpriv --reuid=coap-edge --regid=coap-edge --init-groups -- coap-edge-agent --config /etc/coap-edge/agent-readme.toml --check-config >/dev/null" _ "$readme_sed"
  rm -f "$root/etc/coap-edge/agent-readme.toml"

  note "systemd-analyze on the installed unit"
  local verify
  verify=$(in_root systemd-analyze verify /lib/systemd/system/coap-edge-agent.service 2>&1)
  [ -n "$verify" ] && sed 's/^/    /' <<<"$verify"
  check "systemd-analyze verify coap-edge-agent.service: clean" test -z "$verify"
  local sec score
  sec=$(in_root systemd-analyze security --offline=true --no-pager /lib/systemd/system/coap-edge-agent.service 2>&1)
  score=$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p' <<<"$sec")
  check "installed unit: exposure ${score:-?} <= $PKG_MAX_EXPOSURE" awk -v s="${score:-99}" -v m="$PKG_MAX_EXPOSURE" 'BEGIN { exit !(s + 0 <= m + 0) }'

  note "provision a key and query the agent running as coap-edge"
  port=$(free_udp_port)
  # A local edit of the conffile (kept by the upgrade below): a coaps endpoint on a free port.
  sed -i -E "s|^#listen = .*|listen = [\"127.0.0.1:$port\"]|" "$root/etc/coap-edge/agent.toml"
  check "edited agent.toml passes --check-config" check_config_as_service
  psk_id=pkg-node-1
  psk_key=pkg-test-secret-0001 # printable: Debian 12's coap-client takes -k as a string
  check "coap-edge-ctl keys import as coap-edge" \
    bash -c "printf '%s,%s\n' '$psk_id' '$(hex_of "$psk_key")' | chroot '$root' setpriv --reuid=coap-edge --regid=coap-edge --init-groups -- coap-edge-ctl --config /etc/coap-edge/agent.toml keys import - >/dev/null"
  check "keystore.db is 600 coap-edge:coap-edge" test "$(in_root stat -c '%a %U:%G' /var/lib/coap-edge/keystore.db)" = "600 coap-edge:coap-edge"
  start_agent "$work/agent.log"
  local out
  out=$(psk_get coap-client-gnutls)
  check "DTLS-PSK GET /.well-known/core (coap-client-gnutls) answered" grep -q '</status>' <<<"$out" ||
    { echo "$out"; cat "$work/agent.log"; }
  out=$(psk_get coap-client-openssl)
  check "DTLS-PSK GET /.well-known/core (coap-client-openssl) answered" grep -q '</status>' <<<"$out"
  check "the agent runs as coap-edge" test "$(ps -o uid= -p "$agent_pid" 2>/dev/null | tr -d ' ')" = "$(in_root id -u coap-edge)"
  check "SIGTERM: the agent exits 0" stop_agent

  if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    note "the installed unit under systemd (systemd-nspawn --boot)"
    timed "systemd test" test_under_systemd
  else
    # systemd boots a foreign root under qemu-user, but the unit's sandbox cannot run there:
    # SystemCallArchitectures=native filters out the host syscalls qemu makes,
    # MemoryDenyWriteExecute forbids qemu's JIT buffer, and PrivateUsers= fails (217/USER).
    note "the hardened unit under systemd: amd64 only (its sandbox and qemu-user exclude each other)"
  fi

  note "upgrade to a newer build"
  local new_deb=$work/coap-edge-agent_upgrade.deb
  make_upgrade_deb "$deb" "$new_deb"
  cp "$new_deb" "$root/tmp/"
  check "apt-get install of the +test1 build (unattended: --force-confdef --force-confold)" \
    timed "upgrade" apt_logged "$work/apt-upgrade.log" -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold install "./tmp/$(basename "$new_deb")"
  check "version is now +test1" bash -c "chroot '$root' dpkg-query -W -f='\${Version}' coap-edge-agent | grep -q '+test1\$'"
  check "the local edit of agent.toml survived" grep -q "^listen = \[\"127.0.0.1:$port\"\]" "$root/etc/coap-edge/agent.toml"
  check "the package's new agent.toml is beside it as agent.toml.dpkg-dist" grep -q '+test1' "$root/etc/coap-edge/agent.toml.dpkg-dist"
  check "the keystore survived the upgrade" bash -c "chroot '$root' setpriv --reuid=coap-edge --regid=coap-edge --init-groups -- coap-edge-ctl --config /etc/coap-edge/agent.toml keys list | grep -q '$psk_id'"
  check "/etc/coap-edge/certs still 750 root:coap-edge" test "$(in_root stat -c '%a %U:%G' /etc/coap-edge/certs)" = "750 root:coap-edge"
  start_agent "$work/agent2.log"
  out=$(psk_get coap-client-gnutls)
  check "after the upgrade the agent answers again" grep -q '</status>' <<<"$out"
  stop_agent

  note "purge"
  check "apt-get purge coap-edge-agent" apt_logged "$work/apt-purge.log" purge coap-edge-agent
  check "apt-get autoremove --purge (the dependencies it pulled)" apt_logged "$work/apt-purge.log" autoremove --purge
  rm -f "$root"/tmp/coap-edge-agent_*.deb
  check "dpkg no longer knows coap-edge-agent" bash -c "! chroot '$root' dpkg-query -W -f='\${Status}' coap-edge-agent 2>/dev/null | grep -q installed"
  check "no statoverride left" bash -c "! chroot '$root' dpkg-statoverride --list | grep -q coap-edge"
  local uid
  uid=$(in_root id -u coap-edge)
  check "no file owned by coap-edge left" test -z "$(cd "$root" && find . -xdev -uid "$uid" -print -quit)"
  root_listing >"$work/after.txt"
  local leftovers
  leftovers=$(comm -13 "$work/before.txt" "$work/after.txt" | grep -Ev "$purge_noise")
  [ -n "$leftovers" ] && sed 's/^/    left: /' <<<"$leftovers"
  check "purge leaves nothing behind (file listing as before the install)" test -z "$leftovers"
  echo "    (the coap-edge system user stays, as Debian recommends: $(in_root getent passwd coap-edge | cut -d: -f1,3))"

  chroot_umount
  safe_rm_root "$root"
}

# Optional (COAP_EDGE_PKG_CLEAN_BUILD=1): the package built inside a clean Debian 12 root from
# nothing but its Build-Depends (apt-get build-dep), as a buildd would, to prove that they are
# complete. Slower (installs a toolchain in the root), so not part of every run.
test_clean_build() { # staged-source-dir arch
  local src=$1 arch=$2 tarball
  tarball=$PKG_CACHE/debootstrap/$PKG_SUITE-$arch-minbase-${PKG_ROOT_INCLUDE//,/-}.tar.gz
  [ -f "$tarball" ] || timed debootstrap make_root_tarball "$tarball" "$arch" || return 1
  root=$work/build-root
  safe_rm_root "$root" || return 1
  mkdir -p "$root"
  tar --numeric-owner -xpzf "$tarball" -C "$root"
  chroot_mount "$root"
  local name
  name=$(basename "$src")
  mkdir -p "$root/build"
  (cd "$(dirname "$src")" && tar --exclude="$name/obj-*" --exclude="$name/debian/coap-edge-agent" \
    --exclude="$name/debian/coap-edge-agent-dbgsym" --exclude="$name/debian/.debhelper" \
    --exclude="$name/debian/files" --exclude="$name/debian/*.substvars" \
    --exclude="$name/debian/debhelper-build-stamp" -cf - "$name") | tar -xf - -C "$root/build"
  apt_logged "$work/clean-build.log" update || { fail "apt-get update in the build root"; return 1; }
  check "apt-get build-dep in a clean $PKG_SUITE root" \
    timed "build-dep" apt_logged "$work/clean-build.log" build-dep "./build/$name"
  check "dpkg-buildpackage -b in the clean root (unit tests included)" \
    timed "clean-root build" bash -c "chroot '$root' sh -c 'cd /build/$name && DEB_BUILD_OPTIONS=parallel=$(nproc) dpkg-buildpackage -b -us -uc' >>'$work/clean-build.log' 2>&1" ||
    tail -n 40 "$work/clean-build.log" | sed 's/^/    /'
  chroot_umount
  safe_rm_root "$root"
}
