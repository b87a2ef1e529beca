#!/usr/bin/env bash
# packaging/deb.sh - the Debian package, from the release build already made
# (`cargo build --locked --release`): the man pages and shell completions are written by that
# binary from its own command-line definition, then `dpkg-deb` packs them with the stripped
# binary, the README and /etc/lanyard/config.toml (packaging/config.toml, every line commented).
# Needs only Debian's own tools: dpkg-deb (in dpkg), dpkg-shlibdeps (in dpkg-dev) for the
# Depends line, strip (in binutils). Building the package needs no cargo plugin, so a fresh
# machine (and CI) does not compile one first. Prints the .deb's path on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN=$TARGET_DIR/release/lanyard
[ -x "$BIN" ] || {
    echo "deb.sh: no release build at $BIN (cargo build --locked --release)" >&2
    exit 1
}
for tool in dpkg-deb dpkg-shlibdeps strip; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "deb.sh: $tool not found (apt-get install dpkg-dev binutils)" >&2
        exit 1
    }
done

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
ARCH=$(dpkg --print-architecture)
[ -n "$VERSION" ] || {
    echo "deb.sh: no version in Cargo.toml" >&2
    exit 1
}

STAGE=$TARGET_DIR/debian/stage
rm -rf "$STAGE"
install -d "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/usr/share/man/man1" \
    "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions" \
    "$STAGE/usr/share/fish/vendor_completions.d" "$STAGE/usr/share/doc/lanyard" "$STAGE/etc/lanyard"

# The release profile keeps line tables (backtraces in development); a lab machine gets a small
# binary without them.
install -m 755 "$BIN" "$STAGE/usr/bin/lanyard"
strip --strip-unneeded "$STAGE/usr/bin/lanyard"
"$BIN" man-pages "$STAGE/usr/share/man/man1"
gzip -9n "$STAGE"/usr/share/man/man1/*.1 # Debian's man pages are compressed
"$BIN" completions bash >"$STAGE/usr/share/bash-completion/completions/lanyard"
"$BIN" completions zsh >"$STAGE/usr/share/zsh/vendor-completions/_lanyard"
"$BIN" completions fish >"$STAGE/usr/share/fish/vendor_completions.d/lanyard.fish"
install -m 644 README.md "$STAGE/usr/share/doc/lanyard/README.md"
install -m 644 packaging/config.toml "$STAGE/etc/lanyard/config.toml"
find "$STAGE/usr" -type f ! -path '*/usr/bin/*' -exec chmod 644 {} +

# dpkg-shlibdeps reads the source package's debian/control; a minimal one in a scratch dir.
SHLIB=$TARGET_DIR/debian/shlibdeps
rm -rf "$SHLIB"
mkdir -p "$SHLIB/debian"
printf 'Source: lanyard\n\nPackage: lanyard\nArchitecture: any\n' >"$SHLIB/debian/control"
DEPENDS=$(cd "$SHLIB" && dpkg-shlibdeps -O "$STAGE/usr/bin/lanyard" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$DEPENDS" ] || {
    echo "deb.sh: dpkg-shlibdeps found no dependencies for the binary" >&2
    exit 1
}

INSTALLED_KB=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat >"$STAGE/DEBIAN/control" <<EOF
Package: lanyard
Version: $VERSION
Architecture: $ARCH
Maintainer: lanyard developers <lanyard@localhost>
Installed-Size: $INSTALLED_KB
Depends: $DEPENDS
Section: net
Priority: optional
Description: Find the other machines in a computer lab, chat with them and move files - in a terminal
 lanyard is one program that everyone in a computer lab starts in a terminal: it finds the
 other machines on the LAN by itself (mDNS), chats with them and moves files and folders
 between them, encrypted (Noise XX) and verified (BLAKE3). Machine-wide settings go in
 /etc/lanyard/config.toml; \`lanyard doctor\` checks the network when no peer shows up.
EOF
# A conffile: an upgrade keeps the administrator's edits.
echo /etc/lanyard/config.toml >"$STAGE/DEBIAN/conffiles"
(cd "$STAGE" && find usr -type f -exec md5sum {} + | sort -k 2 >DEBIAN/md5sums)

DEB=$TARGET_DIR/debian/lanyard_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zgzip --build "$STAGE" "$DEB" >&2
echo "$DEB"
