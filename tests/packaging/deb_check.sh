#!/bin/bash
# Builds the .deb (make package), lints it, installs it with dpkg -i, checks
# what it installed, runs the installed binaries, purges it and checks what
# the purge removed and kept.
#
# Needs root: it installs the package on this machine and creates and
# removes the gossync user. Meant for a throwaway CI machine; it refuses to
# run where gossync is already installed.
#
# usage: tests/packaging/deb_check.sh [BUILD_DIR]   (default: build-pkg)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build-pkg}
case $build in /*) ;; *) build=$root/$build ;; esac

fail=0
failed() { echo "FAIL: $*" >&2; fail=1; }
ok() { echo "ok: $*"; }
section() { echo "== $*"; }

if [ "$(id -u)" != 0 ]; then
  echo "FAIL: deb_check.sh installs and purges a package: run it as root" >&2
  exit 1
fi
if dpkg-query -W -f='${Status}' gossync 2>/dev/null | grep -q 'installed'; then
  echo "FAIL: gossync is already installed here; this check would purge it (and /etc/gossync)" >&2
  exit 1
fi
for tool in lintian dpkg-deb; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is not installed (make deps)" >&2; exit 1; }
done

# --- build -----------------------------------------------------------------
section "make package PKG_BUILD=$build"
make -C "$root" --no-print-directory package PKG_BUILD="$build"
deb=$(ls -t "$build"/gossync_*.deb | head -1)
echo "package: $deb"

# --- lint ------------------------------------------------------------------
section "lintian $deb"
set +e
lint=$(lintian --fail-on error --display-info --tag-display-limit 0 "$deb" 2>&1)
lint_rc=$?
set -e
[ -n "$lint" ] && echo "$lint"
errors=$(grep -c '^E: ' <<<"$lint" || true)
warnings=$(grep -c '^W: ' <<<"$lint" || true)
infos=$(grep -c '^I: ' <<<"$lint" || true)
if [ $lint_rc -ne 0 ] || [ "$errors" != 0 ]; then
  failed "lintian: $errors errors (exit $lint_rc)"
else
  ok "lintian: 0 errors, $warnings warnings, $infos info"
fi

# --- the archive -------------------------------------------------------------
section "contents and control"
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/gossyncd ./usr/bin/gossync ./lib/systemd/system/gossync.service \
         ./etc/gossync/gossync.toml ./usr/share/man/man8/gossyncd.8.gz \
         ./usr/share/man/man1/gossync.1.gz ./usr/share/doc/gossync/copyright \
         ./usr/share/doc/gossync/changelog.Debian.gz; do
  grep -q " $f\$" <<<"$contents" && ok "package has $f" || failed "package lacks $f"
done
if grep -E ' \./srv/| \./var/lib/gossync' <<<"$contents"; then
  failed "the package must not ship /srv or /var/lib/gossync (postinst makes them)"
fi
bad_owner=$(awk '$2 != "root/root"' <<<"$contents")
[ -z "$bad_owner" ] && ok "every file is root/root" || failed "files not owned by root: $bad_owner"
ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT
dpkg-deb --control "$deb" "$ctl"
[ "$(cat "$ctl/conffiles" 2>/dev/null)" = /etc/gossync/gossync.toml ] \
  && ok "DEBIAN/conffiles lists /etc/gossync/gossync.toml" \
  || failed "DEBIAN/conffiles: '$(cat "$ctl/conffiles" 2>/dev/null)'"
depends=$(dpkg-deb --field "$deb" Depends)
echo "Depends: $depends"
for d in libc6 libssl3 libuv1 libsqlite3-0 adduser; do
  grep -qw "$d" <<<"$depends" && ok "depends on $d" || failed "Depends lacks $d (shlibdeps?)"
done
for s in postinst prerm postrm; do
  [ -x "$ctl/$s" ] && sh -n "$ctl/$s" && ok "$s is executable and parses" || failed "$s missing or broken"
done

# --- install -----------------------------------------------------------------
srv_existed=no
[ -e /srv/gossync ] && srv_existed=yes
section "dpkg -i"
dpkg -i "$deb"

section "installed files"
for f in /usr/bin/gossyncd /usr/bin/gossync; do
  [ -x $f ] && ok "$f" || failed "$f is not installed or not executable"
done
for f in /lib/systemd/system/gossync.service /etc/gossync/gossync.toml \
         /usr/share/man/man8/gossyncd.8.gz /usr/share/man/man1/gossync.1.gz \
         /usr/share/doc/gossync/copyright /usr/share/doc/gossync/changelog.Debian.gz; do
  [ -f $f ] && ok "$f" || failed "$f is not installed"
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' gossync)
grep -q '^ /etc/gossync/gossync.toml [0-9a-f]\{32\}' <<<"$conffiles" \
  && ok "dpkg tracks /etc/gossync/gossync.toml as a conffile" \
  || failed "not a conffile: '$conffiles'"
for page in gossyncd.8 gossync.1; do
  warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings "${page%.*}" 2>&1 >/dev/null || true)
  path=$(man -w "${page%.*}" 2>/dev/null || true)
  if [ "$path" = "/usr/share/man/man${page##*.}/$page.gz" ] && [ -z "$warn" ]; then
    ok "man ${page%.*} renders without warnings"
  else
    failed "man ${page%.*}: path '$path', warnings: $warn"
  fi
done

section "user, group and directories"
pw=$(getent passwd gossync || true)
uid=""
if [ -z "$pw" ]; then
  failed "no user gossync"
else
  IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
  [ "$uid" -lt 1000 ] && ok "gossync is a system user (uid $uid)" || failed "gossync uid $uid is not a system uid"
  [ "$home" = /var/lib/gossync ] && ok "home /var/lib/gossync" || failed "home is $home"
  [ "$shell" = /usr/sbin/nologin ] && ok "shell $shell" || failed "shell is $shell"
  [ "$(getent group gossync | cut -d: -f3)" = "$gid" ] && ok "primary group gossync (gid $gid)" \
    || failed "primary group of gossync is gid $gid, not group gossync"
fi
for d in "/var/lib/gossync gossync:gossync 700" "/srv/gossync gossync:gossync 750"; do
  set -- $d
  got=$(stat -c '%U:%G %a' "$1" 2>/dev/null || echo missing)
  [ "$got" = "$2 $3" ] && ok "$1 is $got" || failed "$1 is $got, want $2 $3"
done

section "dpkg -i again (an upgrade in place: postinst must be idempotent)"
if dpkg -i "$deb" >/dev/null; then
  [ "$(getent passwd gossync | cut -d: -f3)" = "$uid" ] && ok "reinstalled, same uid" || failed "uid changed"
  [ "$(stat -c '%U:%G %a' /var/lib/gossync)" = "gossync:gossync 700" ] && ok "/var/lib/gossync unchanged" \
    || failed "/var/lib/gossync changed"
else
  failed "reinstalling failed"
fi

if command -v systemd-analyze >/dev/null; then
  section "systemd-analyze verify on the installed unit"
  out=$(systemd-analyze verify /lib/systemd/system/gossync.service 2>&1) && [ -z "$out" ] \
    && ok "verify is clean with the real /usr/bin paths and man pages" \
    || failed "systemd-analyze verify: $out"
fi

# --- run the installed binaries ------------------------------------------------
section "gossyncd --version / gossync --version"
v=$(gossyncd --version)
pkgv=$(dpkg-query -W -f='${Version}' gossync)
[ "$v" = "${pkgv%-*}" ] && ok "gossyncd --version: $v" || failed "gossyncd --version says '$v', package is $pkgv"
v=$(gossync --version)
[ "$v" = "${pkgv%-*}" ] && ok "gossync --version: $v" || failed "gossync --version says '$v'"

section "gossyncd --check-config on the shipped config (as user gossync, like ExecStartPre)"
set +e
out=$(runuser -u gossync -- gossyncd --check-config 2>&1)
rc=$?
set -e
echo "$out"
if [ $rc -ne 2 ]; then
  failed "check-config exited $rc, want 2 (keyring and certificates are not there yet)"
fi
for key in gossip.keyring repair.cert repair.key repair.ca; do
  grep -q "^/etc/gossync/gossync.toml: $key: \"/etc/gossync/[a-z.]*\": No such file or directory\$" <<<"$out" \
    && ok "names $key" || failed "no line naming $key"
done
others=$(grep -v -E ': (gossip.keyring|repair.cert|repair.key|repair.ca): ' <<<"$out" || true)
[ -z "$others" ] && ok "no other problem" || failed "unexpected problems: $others"

section "the set-up of gossync(1) EXAMPLES, then --check-config passes"
work=$(mktemp -d)
(
  cd "$work"
  gossync keygen --out gossip.keys >/dev/null
  gossync ca init --dir ca >/dev/null
  gossync ca issue alpha --dir ca >/dev/null
  install -m 0600 -o gossync -g gossync gossip.keys /etc/gossync/gossip.keys
  install -m 0644 ca/ca.crt /etc/gossync/ca.crt
  install -m 0644 ca/alpha.crt /etc/gossync/node.crt
  install -m 0600 -o gossync -g gossync ca/alpha.key /etc/gossync/node.key
)
rm -rf "$work"
sed 's/^node = "change-me"$/node = "alpha"/' /etc/gossync/gossync.toml >/etc/gossync/alpha.toml
set +e
out=$(runuser -u gossync -- gossyncd --check-config --config /etc/gossync/alpha.toml 2>&1)
rc=$?
set -e
[ $rc -eq 0 ] && ok "check-config with keys and certificates: $out" || failed "check-config exited $rc: $out"

# --- purge -------------------------------------------------------------------
section "dpkg --purge gossync"
dpkg --purge gossync
for p in /usr/bin/gossyncd /usr/bin/gossync /lib/systemd/system/gossync.service /etc/gossync \
         /var/lib/gossync /usr/share/doc/gossync; do
  [ ! -e $p ] && ok "$p is gone" || failed "$p is still there after purge"
done
getent passwd gossync >/dev/null && failed "user gossync is still there" || ok "user gossync is gone"
getent group gossync >/dev/null && failed "group gossync is still there" || ok "group gossync is gone"
[ -d /srv/gossync ] && ok "/srv/gossync (user data) was kept" || failed "purge removed /srv/gossync"
[ $srv_existed = no ] && rmdir /srv/gossync 2>/dev/null || true

if [ $fail -ne 0 ]; then
  echo "deb_check: FAILED" >&2
  exit 1
fi
echo "deb_check: passed"
