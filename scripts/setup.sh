#!/bin/sh
# Sets up ppl on a fresh Debian machine: installs the build dependencies
# (as root, or through sudo), builds into build/, and runs the first example
# end to end.
set -eu
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS="build-essential cmake pkg-config flex bison libopenblas-dev liblapacke-dev check libedit-dev"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
echo "--- ppl run examples/temperature.ppl"
./build/ppl run examples/temperature.ppl
