#!/bin/sh
# Install what is missing (Debian packages), configure and build bringfs.
#
#   tests/setup.sh          build/ only (what the README's first command needs)
#   tests/setup.sh all      also build-asan/ (ASan+UBSan) and build-tsan/ (TSan)
#
# Idempotent: re-running only rebuilds what changed.
set -eu
cd "$(dirname "$0")/.."

pkgs="gcc libc6-dev pkg-config meson ninja-build libfuse3-dev fuse3 liburing-dev
      uthash-dev libcmocka-dev uuid-dev libblkid-dev libisal-dev"
if [ "${1:-}" = all ]; then
	# what the mount tests drive: ordinary tools on a real tree
	pkgs="$pkgs rsync git attr xxd util-linux e2fsprogs"
	# tests/fuzz: libFuzzer targets built with clang
	pkgs="$pkgs clang libclang-rt-14-dev"
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "setup: installing:$missing" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

configure() { # dir, meson options...
	dir=$1; shift
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
	meson compile -C "$dir" >/dev/null
}

configure build
if [ "${1:-}" = all ]; then
	configure build-asan -Db_sanitize=address,undefined -Db_lundef=false
	configure build-tsan -Db_sanitize=thread -Db_lundef=false
fi
