#!/usr/bin/env bash
# A clean Debian root for the host-install test (test/install/host.test.ts), cached on this machine between
# runs: `debootstrap --variant=minbase` of trixie (its nodejs, 20.19, meets engines.node) with what the package needs
# from Debian (nodejs, adduser) and systemd (its systemd-notify and units, for the readiness and unit checks).
# Prints the root's path. Built once (about 5 minutes), then reused until it is 30 days old; concurrent runs wait for
# one build (flock). The test copies it and installs the .deb into the copy: this root itself stays clean.
# Needs root, debootstrap and unshare. The mirror is the host's own Debian apt source (or CI_DEBIAN_MIRROR).
set -euo pipefail
suite=${CI_DEBIAN_SUITE:-trixie}
cache=${CI_DEBIAN_CACHE:-/var/cache/scannode-ci}
packages=nodejs,adduser,systemd
max_age_days=30
name=debian-$suite-minbase-${packages//,/-}
root=$cache/$name
ready=$root/.scannode-ci-ready

mirror=${CI_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(
    {
      grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{ for (i = 2; i <= NF; i++) print $i }'
      grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
        awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
    } | grep -v -- '-security' | head -n1
  ) || true
fi
[ -n "$mirror" ] || { echo "debian-root: no Debian mirror in /etc/apt (set CI_DEBIAN_MIRROR)" >&2; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/$name.lock"
flock 9
if [ -f "$ready" ] && [ -z "$(find "$ready" -mtime +"$max_age_days")" ]; then
  echo "$root"
  exit 0
fi

echo "debian-root: building $root ($suite minbase + $packages); takes a few minutes" >&2
start=$(date +%s)
building=$cache/$name.building
rm -rf "$building"
# In a mount namespace of its own: whatever debootstrap mounts inside the target goes away with it, even on failure.
if ! unshare --mount --propagation private \
  debootstrap --variant=minbase --include="$packages" "$suite" "$building" "$mirror" >"$cache/$name.log" 2>&1; then
  tail -n 20 "$cache/$name.log" >&2
  echo "debian-root: debootstrap failed (whole log: $cache/$name.log)" >&2
  exit 1
fi
chroot "$building" apt-get clean
date -u +%FT%TZ >"$building/.scannode-ci-ready"
rm -rf "$root"
mv "$building" "$root"
echo "debian-root: built in $(($(date +%s) - start)) s" >&2
echo "$root"
