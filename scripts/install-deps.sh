#!/bin/sh
# Installs the Debian packages libkne builds, tests and benchmarks with (run as root,
# or with sudo available). Idempotent.
set -e
PKGS="build-essential pkg-config libtorch-dev libjson-c-dev libpcre2-dev libutf8proc-dev \
python3 python3-numpy python3-pytest python3-torch python3-sentencepiece"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
