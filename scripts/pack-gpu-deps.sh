#!/usr/bin/env bash
# Packs everything a bare GPU node needs to build unet2022 into DIR (default .devdeps, which must
# be git-ignored: `echo /.devdeps/ >> .git/info/exclude`) so that it travels with the checkout:
# the shared packer's libraries (HDF5, libyaml, nifticlib, OpenBLAS, Open MPI) plus what our
# CMakeLists.txt also requires and that packer leaves out (cJSON, TIFF, PNG, JPEG and OpenSSL
# headers, their runtime libraries, pkgconf and cmake). tests/gpu/check.sh sources DIR/setup.sh.
#
# Usage (on a Debian 12 machine with apt sources): bash scripts/pack-gpu-deps.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.devdeps}
# The base packer belongs to the site that lends the GPU node, not to this repository: name it.
packer=${UNET_PACK_DEPS:?set UNET_PACK_DEPS to the GPU site's pack-deps.sh (packs HDF5, libyaml, nifticlib, OpenBLAS, Open MPI)}
bash "$packer" "$dir" --mpi
extra="libcjson-dev libcjson1 libtiff-dev libtiff6 libtiffxx6 libwebp7 libsharpyuv0 libjbig0 liblerc4
       libdeflate0 libpng-dev libjpeg-dev libjpeg62-turbo-dev libssl-dev pkgconf pkgconf-bin libpkgconf3
       cmake cmake-data libjsoncpp25 librhash0 libuv1 libarchive13"
( cd "$dir" && apt-get download $extra >/dev/null ) || {
  echo "apt-get download failed: run 'apt-get update' once, then again" >&2; exit 1; }
du -sh "$dir"
