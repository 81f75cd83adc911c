#!/usr/bin/env bash
# Installs every system package the build and the tests need, on Debian 12, as root.
# Idempotent and quick when everything is already there (nothing is fetched then).
# The CUDA toolkit (nvcc, cuDNN, cuBLAS, NCCL) is not a Debian package: where nvcc is
# present the CUDA backend is built, otherwise scripts/build.sh configures without it.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake pkg-config git
  libopenblas-dev libhdf5-dev hdf5-tools libyaml-dev libcjson-dev libssl-dev libzip-dev
  libopenmpi-dev openmpi-bin
  libnifti-dev libtiff-dev libpng-dev libjpeg-dev zlib1g-dev
  python3 python3-torch python3-numpy python3-scipy python3-h5py python3-nibabel
  python3-yaml python3-pip python3-pil
  python3-skimage python3-pandas python3-matplotlib
  slurmctld slurmd slurm-client munge
  iproute2 util-linux
  clang-14 libclang-rt-14-dev # the fuzzing harness (tests/fuzz, scripts/fuzz.sh): libFuzzer, ASan, UBSan
)
# PyPI oracles, installed into Debian's python3 without dependencies (PyPI's torch is a
# multi-gigabyte CUDA build: never let pip pull it in).
# batchgenerators (the augmentation oracle) is pinned: 0.25.5 resamples labels by argmax with the
# nearest-neighbour tie-break, which data/augment_spatial.c reproduces; it needs threadpoolctl,
# scikit-image and pandas (Debian's, above).
# medpy and MONAI are the metric oracles (tests/reference/test_metrics_vs_medpy.py); pinned: MONAI 1.3
# still imports with Debian's torch 1.13.
PIP_PACKAGES=(safetensors threadpoolctl batchgenerators==0.25.5 medpy==0.5.2 monai==1.3.2)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for p in "${PIP_PACKAGES[@]}"; do
  if ! /usr/bin/python3 -c "import ${p%%==*}" 2>/dev/null; then
    echo "install-deps: pip installing $p (no dependencies)"
    /usr/bin/python3 -m pip install --quiet --break-system-packages --no-deps "$p"
  fi
done
echo "install-deps: ok"
