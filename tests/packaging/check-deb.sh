#!/usr/bin/env bash
# Checks on a built .deb that need no installation: lintian, contents, control fields, the
# systemd unit (hardening directives, systemd-analyze security score), and that the man pages
# document what the binaries' --help and config/agent.toml say. Sourced by run.sh.

# The score the unit must reach (systemd-analyze security, 0.0 best .. 10.0 worst).
PKG_MAX_EXPOSURE=${PKG_MAX_EXPOSURE:-2.0}

check_lintian() { # deb...
  local log=$work/lintian.log
  # --fail-on error,warning: errors and warnings fail unless overridden in
  # packaging/debian/coap-edge-agent.lintian-overrides, with a reason there.
  lintian --fail-on error,warning --display-info --pedantic "$@" >"$log" 2>&1
  local rc=$?
  grep -v 'running with root privileges' "$log" | sed 's/^/    /'
  # The overridden tags, for the record (--show-overrides would make them fail the run).
  lintian --show-overrides --display-info --pedantic "$@" 2>/dev/null | grep '^O:' | sed 's/^/    /' | tee "$log.overrides"
  echo "  lintian: $(grep -c '^E:' "$log") errors, $(grep -c '^W:' "$log") warnings," \
    "$(grep -c '^[IP]:' "$log") info/pedantic, $(grep -c '^    O:' "$log.overrides") overridden"
  return $rc
}

deb_has() { # deb path
  dpkg-deb -c "$1" | awk '{print $6}' | grep -qx "./$2"
}

deb_mode() { # deb path -> "perm owner/group"
  dpkg-deb -c "$1" | awk -v p="./$2" '$6 == p {print $1, $2}'
}

check_contents() { # deb
  local deb=$1 p
  for p in usr/bin/coap-edge-agent usr/bin/coap-edge-ctl etc/coap-edge/agent.toml etc/coap-edge/certs/README \
    lib/systemd/system/coap-edge-agent.service usr/share/man/man8/coap-edge-agent.8.gz \
    usr/share/man/man8/coap-edge-ctl.8.gz usr/share/man/man5/coap-edge-agent.toml.5.gz \
    usr/share/doc/coap-edge-agent/copyright; do
    check "ships /$p" deb_has "$deb" "$p"
  done
  check "no /var/lib/coap-edge in the package (postinst makes it, with its owner)" \
    bash -c "! dpkg-deb -c '$deb' | awk '{print \$6}' | grep -q '^./var/lib/coap-edge'"
  local conffiles
  conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
  check "agent.toml is a conffile" grep -qx /etc/coap-edge/agent.toml <<<"$conffiles"
  check "Depends has adduser" bash -c "dpkg-deb -f '$deb' Depends | grep -qw adduser"
  check "Recommends avahi-daemon" bash -c "dpkg-deb -f '$deb' Recommends | grep -qw avahi-daemon"
  check "Depends computed by dh_shlibdeps (libsqlite3-0)" bash -c "dpkg-deb -f '$deb' Depends | grep -q libsqlite3-0"
  local ctl
  ctl=$(mktemp -d)
  dpkg-deb --ctrl-tarfile "$deb" | tar -xf - -C "$ctl"
  check "postinst creates the system user with a nologin shell" \
    grep -q 'adduser .*--system' "$ctl/postinst"
  check "postinst enables the unit (dh_installsystemd)" grep -q 'deb-systemd-helper' "$ctl/postinst"
  check "postrm purge removes /var/lib/coap-edge" grep -q 'rm -rf /var/lib/coap-edge' "$ctl/postrm"
  rm -rf "$ctl"
}

unit_has() { grep -qxE "$2" "$1"; }

check_unit() { # unit-file
  local unit=$1 d
  # What the issue asks for, each line as it must appear.
  for d in 'Type=notify' 'NotifyAccess=main' 'WatchdogSec=30s' 'ExecStartPre=/usr/bin/coap-edge-agent --config /etc/coap-edge/agent.toml --check-config' \
    'ExecStart=/usr/bin/coap-edge-agent --config /etc/coap-edge/agent.toml' 'ExecReload=/bin/kill -HUP \$MAINPID' \
    'Restart=on-failure' 'StartLimitIntervalSec=.+' 'StartLimitBurst=[0-9]+' 'User=coap-edge' 'Group=coap-edge' \
    'StateDirectory=coap-edge' 'StateDirectoryMode=0700' 'RuntimeDirectory=coap-edge' 'ConfigurationDirectory=coap-edge' \
    'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'PrivateDevices=yes' \
    'ProtectKernelTunables=yes' 'ProtectKernelModules=yes' 'ProtectKernelLogs=yes' 'ProtectControlGroups=yes' \
    'ProtectProc=invisible' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK' 'RestrictNamespaces=yes' \
    'RestrictRealtime=yes' 'RestrictSUIDSGID=yes' 'MemoryDenyWriteExecute=yes' 'LockPersonality=yes' \
    'SystemCallArchitectures=native' 'SystemCallFilter=@system-service' 'CapabilityBoundingSet=' 'UMask=0077' \
    'LimitCORE=0'; do
    check "unit: $d" unit_has "$unit" "$d"
  done
  local out score
  out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)
  score=$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p' <<<"$out")
  echo "  systemd-analyze security --offline=true: exposure ${score:-?} (target <= $PKG_MAX_EXPOSURE)"
  grep -E '^✗' <<<"$out" | sed 's/^/    /'
  check "exposure ${score:-?} <= $PKG_MAX_EXPOSURE" awk -v s="${score:-99}" -v m="$PKG_MAX_EXPOSURE" 'BEGIN { exit !(s + 0 <= m + 0) }'
}

man_text() { # extracted-root page.section
  local f
  f=$(ls "$1"/usr/share/man/man*/"$2".gz)
  MANWIDTH=200 man -l "$f" 2>/dev/null | col -b
}

# Every option and command in --help, every key and section of config/agent.toml, appears in
# the man pages: the pages are written by hand and must follow the real CLI.
check_man_pages() { # extracted-root runner...
  local x=$1; shift
  local runner=("$@") page missing word
  for page in coap-edge-agent.8 coap-edge-ctl.8 coap-edge-agent.toml.5; do
    check "man page $page renders without warnings" \
      bash -c "f=\$(ls '$x'/usr/share/man/man*/$page.gz) && ! MANWIDTH=80 man --warnings -l \"\$f\" 2>&1 >/dev/null | grep -q ."
  done
  local agent_man ctl_man toml_man
  agent_man=$(man_text "$x" coap-edge-agent.8)
  ctl_man=$(man_text "$x" coap-edge-ctl.8)
  toml_man=$(man_text "$x" coap-edge-agent.toml.5)

  missing=""
  for word in $("${runner[@]}" "$x/usr/bin/coap-edge-agent" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    grep -qF -- "$word" <<<"$agent_man" || missing+=" $word"
  done
  check "coap-edge-agent(8) documents every option of --help${missing:+ (missing:$missing)}" test -z "$missing"

  missing=""
  local help
  help=$("${runner[@]}" "$x/usr/bin/coap-edge-ctl" --help)
  for word in $(grep -oE -- '--[a-z][a-z-]+' <<<"$help" | sort -u); do
    grep -qF -- "$word" <<<"$ctl_man" || missing+=" $word"
  done
  # Commands: the lines "  keys add ID ...", "  status ..." of the Commands: section.
  while read -r line; do
    grep -qF -- "$line" <<<"$ctl_man" || missing+=" '$line'"
  done < <(sed -n '/^Commands:/,/^$/p' <<<"$help" | grep -E '^  [a-z]' |
    awk '{ w = $1; for (i = 2; i <= NF && $i ~ /^[a-z]+$/; i++) w = w " " $i; print w }')
  check "coap-edge-ctl(8) documents every command and option of --help${missing:+ (missing:$missing)}" test -z "$missing"

  missing=""
  # Keys and sections, set or commented out ("#key = ...", "# [groups]", "# [[acl]]").
  for word in $(grep -oE '^# ?[a-z_]+ =|^[a-z_]+ =' "$x/etc/coap-edge/agent.toml" | tr -d '#= ' | sort -u); do
    grep -qF -- "$word =" <<<"$toml_man" || missing+=" $word"
  done
  for word in $(grep -oE '^(# ?)?\[\[?[a-z_.]+\]\]?' "$x/etc/coap-edge/agent.toml" | tr -d '# ' | sort -u); do
    grep -qF -- "$word" <<<"$toml_man" || missing+=" $word"
  done
  check "coap-edge-agent.toml(5) documents every key and section of agent.toml${missing:+ (missing:$missing)}" \
    test -z "$missing"
}

check_deb() { # deb [runner...]: runner runs a binary of the deb's architecture (qemu for arm64)
  local deb=$1; shift
  local x=$work/extracted
  rm -rf "$x"; mkdir -p "$x"
  dpkg-deb -x "$deb" "$x"
  note "lintian $(basename "$deb")"
  local debs=("$deb") dbgsym="${deb%/*}/coap-edge-agent-dbgsym_${deb##*/coap-edge-agent_}"
  [ -f "$dbgsym" ] && debs+=("$dbgsym")
  check "lintian: no errors or warnings (beyond overrides with reasons)" timed lintian check_lintian "${debs[@]}"
  note "contents and control fields"
  check_contents "$deb"
  note "systemd unit"
  check_unit "$x/lib/systemd/system/coap-edge-agent.service"
  note "man pages against --help and config/agent.toml"
  check_man_pages "$x" "$@"
}
