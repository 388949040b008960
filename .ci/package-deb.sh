#!/usr/bin/env bash
# Builds the Debian package of scannode (npm run package): dist/package/scannode_<version>_<arch>.deb, or into the
# folder given by --out DIR. What goes where on the host:
#   /usr/lib/scannode/        package.json, dist/src (compiled here, clean), the production node_modules
#   /usr/bin/scannode         config/debian/scannode (runs Debian's /usr/bin/node on the code above)
#   /etc/scannode/config.json config/debian/config.json, a conffile (dpkg keeps an admin's edits on upgrade)
#   /usr/lib/systemd/system/  config/systemd/scannode.service
#   /usr/share/doc/scannode/  README, docs/*.md, examples/port-below-1024.conf (the drop-in for port 104)
#   DEBIAN/                   config/debian/control (filled in here), postinst, prerm, postrm, conffiles
# The one native addon, better-sqlite3, is carried as built by `npm ci` for this machine's Node: its ABI is that of the
# Node major version, hence Depends: nodejs (>= engines minimum), nodejs (<< next major). Its shared-library needs
# (libc6, libstdc++6) come from dpkg-shlibdeps. The version is package.json's ("1.2.0-rc.1" becomes "1.2.0~rc.1").
# Needs: node, npm, dpkg-deb, dpkg-shlibdeps (dpkg-dev), and node_modules installed (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

out=dist/package
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done

for tool in node npm dpkg-deb dpkg-shlibdeps dpkg-statoverride; do
  command -v "$tool" >/dev/null || { echo "package: $tool is missing (apt-get install dpkg-dev)" >&2; exit 1; }
done
[ -d node_modules/better-sqlite3 ] || { echo "package: run npm ci first" >&2; exit 1; }

version=$(node -p "require('./package.json').version")
debversion=${version/-/\~}
arch=$(dpkg --print-architecture)
node_major=$(node -p "process.versions.node.split('.')[0]")
engines_min=$(node -p "(/^>=\s*([0-9.]+)$/.exec(require('./package.json').engines.node) || [])[1] || ''")
if [ -z "$engines_min" ] || [ "${engines_min%%.*}" != "$node_major" ]; then
  echo "package: build with the Node major version of engines.node (>= $engines_min), not $(node -v):" \
    "the better-sqlite3 addon is carried for the builder's Node ABI" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/debian/scannode
app=$pkg/usr/lib/scannode
mkdir -p "$app/dist" "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc/scannode" "$pkg/usr/lib/systemd/system" \
  "$pkg/usr/share/doc/scannode/examples"

# The code: compiled from src/ alone into the package (never a stale dist/), with the status page's files.
cat >"$work/tsconfig.json" <<JSON
{ "extends": "$repo/tsconfig.json",
  "compilerOptions": { "rootDir": "$repo/src", "outDir": "$app/dist/src", "sourceMap": false },
  "include": ["$repo/src/**/*.ts"] }
JSON
node_modules/.bin/tsc -p "$work/tsconfig.json"
cp -r src/http/ui "$app/dist/src/http/ui"
chmod 755 "$app/dist/src/cli.js"

# Production dependencies: the installed tree, pruned of the dev dependencies (no download, no install script).
cp package.json package-lock.json "$app/"
cp -a node_modules "$app/"
(cd "$app" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error)
# Of better-sqlite3's build tree only the addon is needed at run time (not the SQLite sources, objects, test addon).
sqlite=$app/node_modules/better-sqlite3
mv "$sqlite/build/Release/better_sqlite3.node" "$work/"
rm -rf "$sqlite/build" "$sqlite/deps" "$sqlite/src"
mkdir -p "$sqlite/build/Release"
mv "$work/better_sqlite3.node" "$sqlite/build/Release/"
node -e "new (require(process.argv[1]))(':memory:').close()" "$sqlite"

# Host files.
install -m 755 config/debian/scannode "$pkg/usr/bin/scannode"
install -m 644 config/debian/config.json "$pkg/etc/scannode/config.json"
install -m 644 config/systemd/scannode.service "$pkg/usr/lib/systemd/system/scannode.service"
install -m 644 README.md docs/*.md "$pkg/usr/share/doc/scannode/"
install -m 644 config/systemd/port-below-1024.conf "$pkg/usr/share/doc/scannode/examples/"
cat >"$pkg/usr/share/doc/scannode/copyright" <<'TEXT'
scannode is licensed under the MIT license (package.json).

The Node.js modules bundled under /usr/lib/scannode/node_modules/ keep their own
licenses: each carries its license file in its folder there.
TEXT

# Maintainer scripts and control.
install -m 755 config/debian/postinst config/debian/prerm config/debian/postrm "$pkg/DEBIAN/"
echo /etc/scannode/config.json >"$pkg/DEBIAN/conffiles"
mapfile -t addons < <(find "$app/node_modules" -name '*.node' -type f)
printf 'Source: scannode\n\nPackage: scannode\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O --warnings=0 "${addons[@]}" | sed -n 's/^shlibs:Depends=//p')
depends="nodejs (>= $engines_min), nodejs (<< $((node_major + 1))), adduser${shlibs:+, $shlibs}"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
  config/debian/control >"$pkg/DEBIAN/control"

mkdir -p "$out"
deb=$out/scannode_${debversion}_${arch}.deb
# xz's fastest level: 13 MB instead of 9.7 MB, and seconds instead of minutes on a busy machine.
dpkg-deb --root-owner-group -Zxz -z1 --build "$pkg" "$deb" >/dev/null
echo "package: $deb ($(du -h "$deb" | cut -f1), installed $((size / 1024)) MiB; Depends: $depends)"
