#!/usr/bin/env bash
# Makes a relocatable bundle of pagedllm binaries that runs on a GPU node lacking gRPC, Abseil,
# Protobuf, OpenBLAS, yaml-cpp (e.g. Ubuntu 24.04 with only the CUDA driver, CUDA libraries,
# NCCL and Open MPI):
#   launch/make-bundle.sh OUT_DIR [BINARY ...]     (default: every program in build/bin)
#   launch/make-bundle.sh OUT.tar.xz [BINARY ...]  the same, packed (about 6x smaller: OpenBLAS
#                                                  alone is 37 MB unpacked); unpack with tar -xJf
# OUT_DIR/bin holds the programs with RPATH $ORIGIN/../lib; OUT_DIR/lib the shared libraries they
# need that such a node lacks, with RPATH $ORIGIN. Never bundled: glibc, libstdc++, libgcc_s, the
# CUDA driver and libraries (cudart is linked statically), NCCL, Open MPI: the node's own are
# newer, ABI-compatible builds.
set -euo pipefail
out="${1:?usage: make-bundle.sh OUT_DIR|OUT.tar.xz [BINARY ...]}"
shift
archive=""
if [[ "$out" == *.tar.xz ]]; then
  archive="$(realpath -m "$out")"
  out="$(mktemp -d)/pagedllm"
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -eq 0 ]; then
  set -- $(find "$here/build/bin" -maxdepth 1 -type f -executable | sort)
fi
command -v patchelf >/dev/null || { echo "make-bundle: needs patchelf (apt-get install patchelf)" >&2; exit 1; }
mkdir -p "$out/bin" "$out/lib"

# Libraries the node provides (or must provide itself): matched against the soname.
system_libs='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl|libnvidia|libmpi|libopen-pal|libopen-rte|libhwloc|libevent|libevent_core|libevent_pthreads|libz|libssl|libcrypto|libudev|libpmix|libfabric|libucp|libucs|libuct|libibverbs|librdmacm|libpsm2|libnl|libltdl|libnuma|libmunge|libefa)\.so'

for binary in "$@"; do
  cp -f "$binary" "$out/bin/"
  patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$out/bin/$(basename "$binary")"
  ldd "$binary" | awk '/=> \// {print $1, $3}' | while read -r soname path; do
    if [[ "$soname" =~ $system_libs ]]; then continue; fi
    if [ ! -f "$out/lib/$soname" ]; then
      cp -fL "$path" "$out/lib/$soname"
      chmod u+w "$out/lib/$soname"
      patchelf --force-rpath --set-rpath '$ORIGIN' "$out/lib/$soname"
    fi
  done
done
echo "make-bundle: $(ls "$out/bin" | wc -l) programs, $(ls "$out/lib" | wc -l) libraries, $(du -sh "$out" | cut -f1) in $out"
if [ -n "$archive" ]; then
  mkdir -p "$(dirname "$archive")"
  # A 64 MiB window (xz -9) lets the CUDA programs, which share most of their bytes, pack as one.
  XZ_OPT="${XZ_OPT:--9 -T2}" tar -C "$(dirname "$out")" -cJf "$archive" pagedllm
  rm -rf "$(dirname "$out")"
  echo "make-bundle: packed into $archive ($(du -sh "$archive" | cut -f1)); tar -xJf it to get pagedllm/{bin,lib}"
fi
