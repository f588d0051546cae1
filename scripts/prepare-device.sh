#!/bin/sh
# Run here (not on the GPU machine): downloads the Debian packages of the C libraries
# libkne links besides libtorch (json-c, PCRE2, utf8proc) into .device/, to carry to the
# GPU machine, which reaches no package registry. There:
#   mkdir -p /tmp/deps && for f in .device/*.deb; do dpkg -x $f /tmp/deps; done
#   make TORCH_DIR=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))') DEPS_DIR=/tmp/deps
set -e
cd "$(dirname "$0")/.."
mkdir -p .device
cd .device
[ -n "$(ls /var/lib/apt/lists 2>/dev/null | grep -v lock | head -1)" ] || apt-get update -qq
apt-get download libjson-c5 libjson-c-dev libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev
ls
