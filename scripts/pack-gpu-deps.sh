#!/usr/bin/env bash
# Packs everything a bare GPU node needs to build unet2022 into DIR (default .devdeps, which must
# be git-ignored: `echo /.devdeps/ >> .git/info/exclude`) so that it travels with the checkout:
# the Debian 12 packages of HDF5, libyaml, nifticlib, OpenBLAS, Open MPI, cJSON, TIFF, PNG, JPEG,
# OpenSSL, pkgconf and cmake (headers and runtime libraries), plus DIR/setup.sh, which unpacks
# them on the GPU node into a private prefix (never into /) and exports the build paths.
# tests/gpu/check.sh sources DIR/setup.sh when it exists.
#
# Usage (on a Debian 12 machine with apt sources): bash scripts/pack-gpu-deps.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.devdeps}
pkgs="libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0 libaec-dev libyaml-0-2 libyaml-dev
      libnifti2-dev libniftiio2 libnifti2-2 libznz3 libopenblas-dev libopenblas0-pthread
      libopenblas-pthread-dev libgfortran5 libcurl4 libssl3 zlib1g-dev libjpeg62-turbo libpng16-16
      libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libhwloc15 libpmix2
      libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1
      libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1
      libcjson-dev libcjson1 libtiff-dev libtiff6 libtiffxx6 libwebp7 libsharpyuv0 libjbig0 liblerc4
      libdeflate0 libpng-dev libjpeg-dev libjpeg62-turbo-dev libssl-dev pkgconf pkgconf-bin libpkgconf3
      cmake cmake-data libjsoncpp25 librhash0 libuv1 libarchive13"
mkdir -p "$dir"
( cd "$dir" && apt-get download $pkgs >/dev/null ) || {
  echo "apt-get download failed: run 'apt-get update' once, then again" >&2; exit 1; }
cat > "$dir/setup.sh" <<'SETUP'
# Unpacks the packed .debs into a private prefix (never into /) and exports the build paths.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=/opt/devdeps
mkdir -p "$prefix"
for f in "$here"/*.deb; do dpkg -x "$f" "$prefix"; done
lib=$prefix/usr/lib/x86_64-linux-gnu
export CMAKE_PREFIX_PATH="$prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export HDF5_ROOT="$lib/hdf5/serial"
export CPATH="$prefix/usr/include:$prefix/usr/include/hdf5/serial:$prefix/usr/include/nifti${CPATH:+:$CPATH}"
export LIBRARY_PATH="$lib:$lib/hdf5/serial:$lib/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$lib:$lib/hdf5/serial:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$lib/pkgconfig:$prefix/usr/share/pkgconfig"
if [ -d "$lib/openmpi" ]; then
  export OPAL_PREFIX="$lib/openmpi" PATH="$lib/openmpi/bin:$PATH"
fi
echo "devdeps: unpacked $(ls "$here"/*.deb | wc -l) packages into $prefix"
SETUP
du -sh "$dir"
