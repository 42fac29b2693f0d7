#!/usr/bin/env bash
# Installs pagedllm's build and test dependencies from Debian 12's packages.
# Idempotent; needs root (or sudo). The CUDA toolkit is optional and not installed here.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev
  openmpi-bin libopenmpi-dev
  libopenblas-dev
  libgtest-dev libgmock-dev
  nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev patchelf
  python3
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
