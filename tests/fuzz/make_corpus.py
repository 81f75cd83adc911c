"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/): small VALID files made
by the third-party writers the importers are tested against (numpy, h5py, nibabel, PIL, and
safetensors' own format written by json + struct as the reference does), so that the fuzzers start
from inputs that reach deep into each parser. The store seeds come from the store writer itself
(fuzz_make_store_seed, run by scripts/fuzz.sh). Usage: make_corpus.py CORPUS_DIR."""
import io
import json
import os
import struct
import sys

import h5py
import nibabel as nib
import numpy as np
from PIL import Image

out = sys.argv[1]
rng = np.random.default_rng(16)


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy_bytes(a, fortran=False):
    b = io.BytesIO()
    np.save(b, np.asfortranarray(a) if fortran else a)
    return b.getvalue()


# .npy: the dtypes and orders the parser accepts
for name, a in {
    "f4.npy": rng.random((3, 4)).astype("<f4"),
    "f8be.npy": rng.random((2, 3)).astype(">f8"),
    "i2.npy": rng.integers(-5, 5, (4, 2)).astype("<i2"),
    "u1_3d.npy": rng.integers(0, 9, (2, 2, 3)).astype("u1"),
    "bool.npy": rng.random(5) > 0.5,
    "scalar.npy": np.float32(1.5),
}.items():
    put("npy", name, npy_bytes(a))
put("npy", "fortran.npy", npy_bytes(rng.random((3, 2)).astype("<f4"), fortran=True))

# .npz: the TransUNet train slices (stored and deflated)
for name, save in (("slice.npz", np.savez), ("slice_z.npz", np.savez_compressed)):
    b = io.BytesIO()
    save(b, image=rng.random((6, 5)).astype(np.float32), label=rng.integers(0, 9, (6, 5)).astype(np.float32))
    put("npz", name, b.getvalue())

# NIfTI: first byte 0 = .nii, 1 = .nii.gz (fuzz_nifti.c)
for i, (dtype, gz) in enumerate(((np.int16, 0), (np.float32, 0), (np.uint8, 1))):
    img = nib.Nifti1Image((rng.random((5, 4, 3)) * 10).astype(dtype), np.diag([0.8, 0.8, 2.5, 1.0]))
    if i == 1:
        img.header.set_slope_inter(2.0, -1.0)
    data = img.to_bytes()
    if gz:
        import gzip
        data = gzip.compress(data, mtime=0)
    put("nifti", "vol%d.bin" % i, bytes([gz]) + data)

# TransUNet test_vol_h5 case files
for i, (idt, compress) in enumerate(((np.float32, None), (np.float64, "gzip"))):
    b = io.BytesIO()
    with h5py.File(b, "w") as f:
        f.create_dataset("image", data=rng.random((2, 4, 3)).astype(idt), compression=compress)
        f.create_dataset("label", data=rng.integers(0, 9, (2, 4, 3)).astype(np.uint8), compression=compress)
    put("transunet_h5", "case%d.npy.h5" % i, b.getvalue())

# TIFF stacks (ISBI-2012 style: 8- and 16-bit grey pages)
for name, dt in (("u8.tif", np.uint8), ("u16.tif", np.uint16)):
    pages = [Image.fromarray((rng.random((6, 5)) * 200).astype(dt)) for _ in range(3)]
    b = io.BytesIO()
    pages[0].save(b, format="TIFF", save_all=True, append_images=pages[1:])
    put("tiff", name, b.getvalue())

# PNG / JPEG (grey, RGB, palette) and BMP (1, 8, 24, 32 bits)
rgb = Image.fromarray((rng.random((7, 6, 3)) * 255).astype(np.uint8))
grey = rgb.convert("L")
for name, im, fmt in (("rgb.png", rgb, "PNG"), ("grey.png", grey, "PNG"), ("pal.png", rgb.convert("P"), "PNG"),
                      ("rgba.png", rgb.convert("RGBA"), "PNG"), ("rgb.jpg", rgb, "JPEG"), ("grey.jpg", grey, "JPEG")):
    b = io.BytesIO()
    im.save(b, format=fmt)
    put("png_jpeg", name, b.getvalue())
for name, im in (("bw.bmp", grey.convert("1")), ("pal.bmp", rgb.convert("P")), ("grey.bmp", grey),
                 ("rgb.bmp", rgb), ("rgba.bmp", rgb.convert("RGBA"))):
    b = io.BytesIO()
    im.save(b, format="BMP")
    put("bmp", name, b.getvalue())


# safetensors, as the reference writer lays it out (header padded with spaces to 8 bytes)
def safetensors(tensors, meta=None):
    hdr, blobs, off = {}, [], 0
    if meta:
        hdr["__metadata__"] = meta
    for name, a in tensors.items():
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        hdr[name] = {"dtype": {"float32": "F32", "int32": "I32", "int64": "I64"}[a.dtype.name],
                     "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


put("safetensors", "weights.safetensors",
    safetensors({"conv.weight": rng.random((2, 1, 3, 3)).astype(np.float32),
                 "conv.bias": rng.random(2).astype(np.float32)}, {"format": "pt"}))
put("safetensors", "ckpt.safetensors",
    safetensors({"step": np.array([7], np.int64), "ids": np.arange(3, dtype=np.int32),
                 "empty": np.zeros((0, 4), np.float32)}, {"epoch": "1"}))
