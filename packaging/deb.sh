#!/usr/bin/env bash
# packaging/deb.sh - the Debian package, from the release build already made
# (`cargo build --locked --release`): the man pages and shell completions are written by that
# binary from its own command-line definition, then `cargo deb --no-build` packs them with the
# binary, the README and /etc/lanyard/config.toml (packaging/config.toml, every line commented).
# Needs cargo-deb (`cargo install cargo-deb --locked`). Prints the .deb's path on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release/lanyard
[ -x "$BIN" ] || {
    echo "deb.sh: no release build at $BIN (cargo build --locked --release)" >&2
    exit 1
}
command -v cargo-deb >/dev/null 2>&1 || {
    echo "deb.sh: cargo-deb not found (cargo install cargo-deb --locked)" >&2
    exit 1
}

# Under target/release/: cargo-deb finds assets there whatever CARGO_TARGET_DIR is.
GEN=$TARGET_DIR/release/packaging
rm -rf "$GEN"
mkdir -p "$GEN/completions"
"$BIN" man-pages "$GEN/man"
gzip -9n "$GEN"/man/*.1 # Debian's man pages are compressed
"$BIN" completions bash >"$GEN/completions/lanyard"
"$BIN" completions zsh >"$GEN/completions/_lanyard"
"$BIN" completions fish >"$GEN/completions/lanyard.fish"

mkdir -p "$TARGET_DIR/debian"
# --strip: the release profile keeps line tables (backtraces in development); a lab machine
# needs a small binary (79 MB with them, a few without).
cargo deb --no-build --locked --strip --output "$TARGET_DIR/debian/" >&2
ls -t "$TARGET_DIR"/debian/lanyard_*.deb | head -n 1
