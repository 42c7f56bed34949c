#!/usr/bin/env bash
# Installs the cargo subcommands that build accountmap's packages, only when missing:
#   cargo-deb           the .deb   (cargo deb)
#   cargo-generate-rpm  the .rpm   (cargo generate-rpm; needs no rpmbuild)
# They compile from source with `cargo install --locked`: a few minutes, once.
set -euo pipefail

CARGO=${CARGO:-cargo}
for tool in cargo-deb cargo-generate-rpm; do
    if command -v "$tool" >/dev/null 2>&1; then
        continue
    fi
    echo "install-tools: cargo install --locked $tool (compiles for a few minutes, once)"
    # Its own target directory: never mix the tools' build into the workspace's.
    CARGO_TARGET_DIR=$(mktemp -d /tmp/accountmap-install-tools.XXXXXX)
    export CARGO_TARGET_DIR
    "$CARGO" install --locked "$tool"
    rm -rf "$CARGO_TARGET_DIR"
    unset CARGO_TARGET_DIR
done
