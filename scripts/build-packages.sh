#!/usr/bin/env bash
# Builds accountmap's packages from the workspace:
#   <target>/packages/accountmap_<version>-1_amd64.deb    (cargo deb)
#   <target>/packages/accountmap-<version>-1.x86_64.rpm   (cargo generate-rpm)
# <target> is $CARGO_TARGET_DIR, else ./target. Steps: `cargo build --release --workspace`,
# strip the four ELF files in place (cargo-generate-rpm packs files as they are), gzip the
# man pages for the rpm (cargo-deb compresses its own copies), then both packagers with
# --no-build, reading [package.metadata.deb] / [package.metadata.generate-rpm] of
# mapper_daemon/Cargo.toml.
#
#   scripts/build-packages.sh            both packages
#   scripts/build-packages.sh --deb      only the .deb (what the end-to-end test installs)
#
# Prints the path of each package built, one a line, on stdout (progress goes to stderr).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
export CARGO_TARGET_DIR=$TARGET
OUT=$TARGET/packages
REL=$TARGET/release

want_rpm=1
case "${1:-}" in
    "") ;;
    --deb) want_rpm= ;;
    *) echo "usage: $0 [--deb]" >&2; exit 64 ;;
esac

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "build-packages: $1 is missing: run scripts/install-deps.sh (make package does)" >&2
        exit 1
    }
}
need cargo-deb
need strip
need gzip
[ -z "$want_rpm" ] || need cargo-generate-rpm

echo "build-packages: cargo build --release --workspace" >&2
"$CARGO" build --release --workspace >&2

echo "build-packages: strip" >&2
for f in accountmapd accountmapctl accountmap-gate libpam_accountmap.so libnss_accountmap.so; do
    strip --strip-unneeded "$REL/$f"
done

mkdir -p "$REL/man" "$OUT"
for page in docs/man/*.[1-8]; do
    gzip -9 -n -c "$page" >"$REL/man/$(basename "$page").gz"
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
rm -f "$OUT"/accountmap_*.deb
[ -z "$want_rpm" ] || rm -f "$OUT"/accountmap-*.rpm

echo "build-packages: cargo deb" >&2
"$CARGO" deb -p accountmap-daemon --no-build -o "$OUT" >&2
deb=$(ls "$OUT"/accountmap_"${version}"-*_*.deb)
echo "$deb"

if [ -n "$want_rpm" ]; then
    echo "build-packages: cargo generate-rpm" >&2
    "$CARGO" generate-rpm -p mapper_daemon -o "$OUT" >&2
    rpm=$(ls "$OUT"/accountmap-"${version}"-*.rpm)
    echo "$rpm"
fi
