"""`unet2022 prepare` / `synth` / `check-store` end to end, against third-party writers and readers.

Fixtures are written by nibabel, numpy (savez, savez_compressed), h5py and PIL, never by our code;
the store is read back with h5py (and h5dump), and every imported array is compared with what the
fixture writer was given, transformed by numpy (the normalisations are re-derived here from their
definitions). Each bad input must fail with a message naming the file and the problem, a non-zero
exit, and no store (nor a leftover temporary directory).
"""
import glob
import gzip
import hashlib
import json
import os
import resource
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import h5py
import nibabel as nib
import numpy as np
from PIL import Image

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
TRAIN = [5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40]
TEST = [1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38]
MAP8 = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 0, 6: 5, 7: 6, 8: 7, 9: 0, 10: 0, 11: 8, 12: 0, 13: 0}


def run(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)


def case(h5dir, name):
    """(image, label, attrs) of a case, read with h5py from whichever shard holds it."""
    m = manifest(h5dir)
    c = next(c for c in m["cases"] if c["name"] == name)
    f = h5py.File(os.path.join(h5dir, m["shards"][c["shard"]]["file"]), "r")
    g = f["cases"][name]
    out = (g["image"][...], g["label"][...], dict(g.attrs))
    f.close()
    return out


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest(store):
    with open(os.path.join(store, "manifest.json")) as f:
        return json.load(f)


def affine_for(i):
    a = np.diag([-0.8, -0.8, 2.5, 1.0])
    a[:3, 3] = [100.0 + i, -50.0, 30.0]
    return a


def write_btcv(root, ids, shape=(20, 16, 5), float_img=False, seed=0):
    """BTCV layout with nibabel: HU images (int16) and labels 0..13 (uint8)."""
    os.makedirs(os.path.join(root, "img"), exist_ok=True)
    os.makedirs(os.path.join(root, "label"), exist_ok=True)
    rng = np.random.default_rng(seed)
    data = {}
    for i in ids:
        img = rng.integers(-1000, 1200, size=shape).astype(np.float32 if float_img else np.int16)
        lab = rng.integers(0, 14, size=shape).astype(np.uint8)
        nib.save(nib.Nifti1Image(img, affine_for(i)), os.path.join(root, "img", "img%04d.nii.gz" % i))
        nib.save(nib.Nifti1Image(lab, affine_for(i)), os.path.join(root, "label", "label%04d.nii.gz" % i))
        data[i] = (img.astype(np.float64), lab)
    return data


def write_split(path, train, test, val=()):
    with open(path, "w") as f:
        for k, ids in (("train", train), ("val", val), ("test", test)):
            for i in ids:
                f.write("%s %d\n" % (k, i))


def zyx(a):
    """NIfTI (x, y, z) array -> the store's (D, H, W)."""
    return np.transpose(a, (2, 1, 0))


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test_prepare_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, *a):
        return os.path.join(self.tmp, *a)

    def assert_fails(self, r, out, *words):
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        self.assertFalse(os.path.exists(out), "a store was left at " + out)
        self.assertEqual(glob.glob(out + ".tmp.*"), [], "temporary directory left behind")


class Synapse(Base):
    def test_clip_13_labels_geometry_hashes(self):
        data = write_btcv(self.p("src"), [5, 6, 1])
        write_split(self.p("split.txt"), [5, 6], [1])
        r = run("prepare", "synapse", "--src", self.p("src"), "--split", self.p("split.txt"), "--out", self.p("st"),
                "--shard-mb", "0.001", "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = manifest(self.p("st"))
        self.assertEqual(m["format"], "unet2022-slice-store")
        self.assertEqual(m["version"], 1)
        self.assertEqual(len(m["classes"]), 14)
        self.assertEqual(m["splits"], {"train": ["img0005", "img0006"], "val": [], "test": ["img0001"]})
        self.assertEqual(len(m["shards"]), 3)  # the tiny shard limit puts each case in its own file
        for i in (5, 6, 1):
            img, lab, attrs = case(self.p("st"), "img%04d" % i)
            hu, lb = data[i]
            want = (np.clip(hu, -125, 275) + 125) / 400
            self.assertEqual(img.shape, (5, 1, 16, 20))
            np.testing.assert_allclose(img[:, 0], zyx(want), rtol=0, atol=1e-6)
            np.testing.assert_array_equal(lab, zyx(lb))
            np.testing.assert_allclose(attrs["affine"], affine_for(i))
            np.testing.assert_allclose(attrs["spacing"], [0.8, 0.8, 2.5], rtol=1e-6)
            np.testing.assert_array_equal(attrs["original_shape"], [20, 16, 5])
            srcs = [s.decode() if isinstance(s, bytes) else s for s in attrs["source_files"]]
            hashes = [s.decode() if isinstance(s, bytes) else s for s in attrs["source_sha256"]]
            self.assertEqual(hashes, [sha(s) for s in srcs])
        # the store is also readable by check-store (our reader: checksums)
        r = run("check-store", self.p("st"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 cases, 15 slices", r.stdout)

    def test_labels_8_and_zscore(self):
        data = write_btcv(self.p("src"), [5, 6, 1])
        write_split(self.p("split.txt"), [5, 6], [1])
        r = run("prepare", "synapse", "--src", self.p("src"), "--split", self.p("split.txt"), "--out", self.p("st"),
                "--labels", "8", "--norm", "zscore", "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        # nnU-Net v1 CT scheme, from its definition: every 10th foreground voxel of the training cases
        fg = []
        for i in (5, 6):
            hu, lb = data[i]
            mapped = np.vectorize(MAP8.get)(lb)
            fg.append(zyx(hu)[zyx(mapped) > 0][::10])
        fg = np.concatenate(fg)
        lo, hi, mean, sd = np.percentile(fg, 0.5), np.percentile(fg, 99.5), fg.mean(), fg.std()
        for i in (5, 6, 1):
            img, lab, _ = case(self.p("st"), "img%04d" % i)
            hu, lb = data[i]
            np.testing.assert_allclose(img[:, 0], zyx((np.clip(hu, lo, hi) - mean) / sd), rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(lab, zyx(np.vectorize(MAP8.get)(lb)))
        m = manifest(self.p("st"))
        self.assertEqual(m["classes"][5], "liver")
        self.assertEqual(len(m["classes"]), 9)

    def test_official_split_missing_case(self):
        write_btcv(self.p("src"), TRAIN + TEST[:-1], shape=(4, 4, 2))
        r = run("prepare", "synapse", "--src", self.p("src"), "--out", self.p("st"))
        self.assert_fails(r, self.p("st"), "missing case 0038", "img0038.nii.gz")

    def test_official_split(self):
        write_btcv(self.p("src"), TRAIN + TEST, shape=(4, 4, 2))
        r = run("prepare", "synapse", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = manifest(self.p("st"))
        self.assertEqual(m["splits"]["train"], ["img%04d" % i for i in TRAIN])
        self.assertEqual(m["splits"]["test"], ["img%04d" % i for i in TEST])

    def _one(self, **kw):
        write_btcv(self.p("src"), [5, 1], **kw)
        write_split(self.p("split.txt"), [5], [1])
        return ("prepare", "synapse", "--src", self.p("src"), "--split", self.p("split.txt"), "--out", self.p("st"))

    def test_truncated_nii_gz(self):
        args = self._one(shape=(30, 30, 10))
        f = self.p("src", "img", "img0001.nii.gz")
        with open(f, "rb") as fp:
            b = fp.read()
        with open(f, "wb") as fp:
            fp.write(b[: len(b) // 2])
        self.assert_fails(run(*args), self.p("st"), "img0001.nii.gz", "truncated")

    def test_shape_mismatch(self):
        args = self._one()
        nib.save(nib.Nifti1Image(np.zeros((20, 16, 4), np.uint8), affine_for(1)),
                 self.p("src", "label", "label0001.nii.gz"))
        self.assert_fails(run(*args), self.p("st"), "label0001.nii.gz", "img0001.nii.gz", "20 x 16 x 5", "20 x 16 x 4")

    def test_label_outside_mapping(self):
        args = self._one()
        lab = np.zeros((20, 16, 5), np.uint8)
        lab[3, 2, 1] = 14
        nib.save(nib.Nifti1Image(lab, affine_for(1)), self.p("src", "label", "label0001.nii.gz"))
        self.assert_fails(run(*args), self.p("st"), "label0001.nii.gz", "label id 14", "x=3, y=2, z=1")

    def test_nan_intensity(self):
        args = self._one(float_img=True)
        img = np.zeros((20, 16, 5), np.float32)
        img[4, 5, 2] = np.nan
        nib.save(nib.Nifti1Image(img, affine_for(5)), self.p("src", "img", "img0005.nii.gz"))
        self.assert_fails(run(*args), self.p("st"), "img0005.nii.gz", "NaN", "x=4, y=5, z=2")

    def test_scaled_intensities(self):
        # int16 with scl_slope/scl_inter: the store holds the scaled values, as nibabel reads them
        args = self._one()
        f = self.p("src", "img", "img0005.nii.gz")
        with gzip.open(f) as fp:
            b = bytearray(fp.read())
        b[112:120] = struct.pack("<ff", 0.37, -12.3)  # scl_slope, scl_inter
        with gzip.open(f, "wb") as fp:
            fp.write(bytes(b))
        hu = nib.load(f).get_fdata()
        self.assertFalse(np.array_equal(hu, np.asanyarray(nib.load(f).dataobj.get_unscaled())))
        r = run(*args, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        img, _, _ = case(self.p("st"), "img0005")
        np.testing.assert_allclose(img[:, 0], zyx((np.clip(hu, -125, 275) + 125) / 400), rtol=0, atol=1e-6)

    def test_existing_store_not_clobbered(self):
        args = self._one()
        self.assertEqual(run(*args, "--quiet").returncode, 0)
        before = manifest(self.p("st"))
        r = run(*args, "--quiet")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already exists", r.stderr)
        self.assertEqual(manifest(self.p("st")), before)
        self.assertEqual(run(*args, "--quiet", "--force").returncode, 0)


class StoreOnDisk(Base):
    """A store read by h5py and h5dump, and a corrupted chunk caught on read."""

    def make(self):
        self.data = write_btcv(self.p("src"), [5, 1], shape=(32, 24, 6))
        write_split(self.p("split.txt"), [5], [1])
        r = run("prepare", "synapse", "--src", self.p("src"), "--split", self.p("split.txt"), "--out", self.p("st"),
                "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_h5dump(self):
        self.make()
        r = subprocess.run(["h5dump", "-p", "-H", self.p("st", "shard-00000.h5")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn('GROUP "img0005"', out)
        self.assertIn("DATASPACE  SIMPLE { ( 6, 1, 24, 32 ) / ( 6, 1, 24, 32 ) }", out)
        self.assertIn("DATASPACE  SIMPLE { ( 6, 24, 32 ) / ( 6, 24, 32 ) }", out)
        self.assertIn("CHUNKED ( 1, 1, 24, 32 )", out)
        self.assertIn("CHUNKED ( 1, 24, 32 )", out)
        for f in ("SHUFFLE", "COMPRESSION DEFLATE", "CHECKSUM FLETCHER32"):
            self.assertIn(f, out)
        # the label values through h5dump's own decoder
        r = subprocess.run(["h5dump", "-d", "/cases/img0001/label", "-y", "-w", "0", self.p("st", "shard-00000.h5")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        body = r.stdout.split("DATA {", 1)[1].split("}", 1)[0]
        vals = np.array([int(v) for v in body.replace(",", " ").split()])
        np.testing.assert_array_equal(vals, zyx(self.data[1][1]).ravel())

    def test_corrupted_chunk(self):
        self.make()
        shard = self.p("st", "shard-00000.h5")
        with h5py.File(shard, "r") as f:
            info = f["cases/img0001/image"].id.get_chunk_info_by_coord((3, 0, 0, 0))
        with open(shard, "r+b") as fp:
            fp.seek(info.byte_offset + info.size // 2)
            b = fp.read(1)
            fp.seek(info.byte_offset + info.size // 2)
            fp.write(bytes([b[0] ^ 0x40]))
        r = run("check-store", self.p("st"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        for w in ("img0001", "slice 3", "Fletcher-32", "shard-00000.h5"):
            self.assertIn(w, r.stderr)
        with h5py.File(shard, "r") as f:  # HDF5 itself agrees the chunk is bad
            with self.assertRaises(OSError):
                f["cases/img0001/image"][3]

    def test_shard_that_crashes_hdf5(self):
        # a shard that crashes libhdf5 itself (SIGSEGV in H5Dopen2, a fuzzer-found file): the store
        # is opened with the library in a child process, so every command that opens it (check-store,
        # train on every rank, predict) reports the shard instead of crashing
        self.make()
        src = os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
        known = glob.glob(os.path.join(src, "tests", "fuzz", "known", "transunet_h5", "*"))
        self.assertTrue(known, "tests/fuzz/known/transunet_h5/ is empty")
        for k in known:
            shutil.copy(k, self.p("st", "shard-00000.h5"))
            r = run("check-store", self.p("st"))
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            for w in ("shard-00000.h5", "HDF5 library crashed", "corrupt"):
                self.assertIn(w, r.stderr)

    def test_shard_whose_header_makes_hdf5_allocate_gigabytes(self):
        # fuzz_store input (tests/fuzz/known/store/: u32 manifest length, manifest, shard): a corrupt
        # object header size makes libhdf5 malloc 4 GiB inside H5Dopen2 for an 18 KB file. The
        # child that indexes the shard has a bounded address space, so this is a quick error naming
        # the shard, with no memory to speak of
        src = os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
        known = glob.glob(os.path.join(src, "tests", "fuzz", "known", "store", "*"))
        self.assertTrue(known, "tests/fuzz/known/store/ is empty")
        for k in known:
            with open(k, "rb") as f:
                data = f.read()
            n = struct.unpack_from("<I", data)[0]
            os.makedirs(self.p("bad"), exist_ok=True)
            with open(self.p("bad", "manifest.json"), "wb") as f:
                f.write(data[4:4 + n])
            with open(self.p("bad", "shard-00000.h5"), "wb") as f:
                f.write(data[4 + n:])
            t0 = time.monotonic()
            r = run("check-store", self.p("bad"))
            self.assertLess(time.monotonic() - t0, 10)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            # the last line is ours, naming the shard (in the ASan build the child's allocator
            # refuses the 4 GiB first and the child's own report comes before it: still contained)
            self.assertIn("shard-00000.h5", r.stderr.strip().splitlines()[-1])
            self.assertLess(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 1 << 20, "KB: over 1 GiB resident")


class TransUNet(Base):
    def test_npz_and_h5(self):
        rng = np.random.default_rng(1)
        os.makedirs(self.p("src", "train_npz"))
        os.makedirs(self.p("src", "test_vol_h5"))
        vols = {}
        for cs in (5, 6):
            img = rng.random((4, 12, 10)).astype(np.float32)
            lab = rng.integers(0, 9, size=(4, 12, 10)).astype(np.float32)
            vols[cs] = (img, lab)
            for s in range(4):
                save = np.savez_compressed if cs == 6 else np.savez
                save(self.p("src", "train_npz", "case%04d_slice%03d.npz" % (cs, s)), image=img[s], label=lab[s])
        timg = rng.random((3, 8, 8)).astype(np.float64)
        tlab = rng.integers(0, 9, size=(3, 8, 8)).astype(np.uint8)
        with h5py.File(self.p("src", "test_vol_h5", "case0001.npy.h5"), "w") as f:
            f["image"] = timg
            f["label"] = tlab
        r = run("prepare", "synapse-transunet", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        for cs in (5, 6):
            img, lab, _ = case(self.p("st"), "case%04d" % cs)
            np.testing.assert_array_equal(img[:, 0], vols[cs][0])
            np.testing.assert_array_equal(lab, vols[cs][1])
        img, lab, _ = case(self.p("st"), "case0001")
        np.testing.assert_array_equal(img[:, 0], timg.astype(np.float32))
        np.testing.assert_array_equal(lab, tlab)
        m = manifest(self.p("st"))
        self.assertEqual(m["splits"]["train"], ["case0005", "case0006"])
        self.assertEqual(m["splits"]["test"], ["case0001"])

    def test_missing_slice(self):
        os.makedirs(self.p("src", "train_npz"))
        os.makedirs(self.p("src", "test_vol_h5"))
        for s in (0, 2):
            np.savez(self.p("src", "train_npz", "case0005_slice%03d.npz" % s), image=np.zeros((4, 4)),
                     label=np.zeros((4, 4)))
        r = run("prepare", "synapse-transunet", "--src", self.p("src"), "--out", self.p("st"))
        self.assert_fails(r, self.p("st"), "case0005_slice002.npz", "expected slice 001")


class Hostile(Base):
    """Issue 16: hostile inputs fail fast with the file and the field named, leave no partial
    output and leave existing outputs alone; stale temporaries of dead runs are cleaned."""

    def transunet_src(self):
        os.makedirs(self.p("src", "train_npz"))
        os.makedirs(self.p("src", "test_vol_h5"))
        np.savez(self.p("src", "train_npz", "case0005_slice000.npz"), image=np.zeros((4, 4), np.float32),
                 label=np.zeros((4, 4), np.float32))
        return self.p("src", "test_vol_h5", "case0001.npy.h5")

    def run_prepare(self, *extra):
        return subprocess.run([BIN, "prepare", "synapse-transunet", "--src", self.p("src"), "--out", self.p("st"),
                               "--quiet", *extra], capture_output=True, text=True, timeout=60)

    def test_transunet_compound_image(self):
        # the failed read used to free the image buffer, and the caller freed it again
        h5 = self.transunet_src()
        ct = np.dtype([("a", np.float32), ("b", np.int32)])
        with h5py.File(h5, "w") as f:
            f["image"] = np.zeros((2, 4, 4), ct)
            f["label"] = np.zeros((2, 4, 4), np.uint8)
        r = self.run_prepare()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assert_fails(r, self.p("st"), "case0001.npy.h5", "'image'", "not an integer or float array")

    def test_transunet_hdf5_memory_bomb(self):
        # a 2 KB file declaring 65536 x 65536 slices used to make prepare allocate and fill them
        h5 = self.transunet_src()
        with h5py.File(h5, "w") as f:
            f.create_dataset("image", shape=(2, 65536, 65536), dtype=np.float32)
            f.create_dataset("label", shape=(2, 65536, 65536), dtype=np.uint8)
        self.assertLess(os.path.getsize(h5), 8192)
        r = self.run_prepare()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assert_fails(r, self.p("st"), "case0001.npy.h5", "'image'", "65536", "limits")
        # within the limits but never written: declared bytes are not in the file
        with h5py.File(h5, "w") as f:
            f.create_dataset("image", shape=(64, 1024, 1024), dtype=np.float32)
            f["label"] = np.zeros((64, 1024, 1024), np.uint8)[:1]
        r = self.run_prepare()
        self.assert_fails(r, self.p("st"), "case0001.npy.h5", "'image'", "truncated or corrupt")

    def test_transunet_chunked_h5(self):
        # chunks are checked before HDF5 reads them (libhdf5 reads freed memory on some corrupt
        # chunks: tests/fuzz/crashes/transunet_h5/): valid filtered files still import exactly
        h5 = self.transunet_src()
        rng = np.random.default_rng(3)
        img = rng.random((3, 8, 6)).astype(np.float32)
        lab = rng.integers(0, 9, (3, 8, 6)).astype(np.uint8)
        with h5py.File(h5, "w") as f:
            f.create_dataset("image", data=img, chunks=(1, 8, 6), compression="gzip", shuffle=True, fletcher32=True)
            f.create_dataset("label", data=lab, chunks=(2, 4, 6), compression="gzip")
        r = self.run_prepare()
        self.assertEqual(r.returncode, 0, r.stderr)
        got, glab, _ = case(self.p("st"), "case0001")
        np.testing.assert_array_equal(got[:, 0], img)
        np.testing.assert_array_equal(glab, lab)
        shutil.rmtree(self.p("st"))
        with h5py.File(h5, "r") as f:
            info = f["image"].id.get_chunk_info(1)
        with open(h5, "r+b") as fp:
            fp.seek(info.byte_offset + info.size // 2)
            b = fp.read(1)
            fp.seek(info.byte_offset + info.size // 2)
            fp.write(bytes([b[0] ^ 0x20]))
        r = self.run_prepare()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assert_fails(r, self.p("st"), "case0001.npy.h5", "'image'", "chunk 1")

    def test_transunet_hdf5_library_crash(self):
        # libhdf5 itself crashes (SIGSEGV in H5Dopen2) on this fuzzer-found file: prepare reads case
        # files in a child process, so it is an error naming the file, exit 2, no store
        src = os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
        known = glob.glob(os.path.join(src, "tests", "fuzz", "known", "transunet_h5", "*"))
        self.assertTrue(known, "tests/fuzz/known/transunet_h5/ is empty")
        h5 = self.transunet_src()
        for k in known:
            shutil.copy(k, h5)
            r = self.run_prepare()
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assert_fails(r, self.p("st"), "case0001.npy.h5", "HDF5")

    def test_fifo_inputs(self):
        h5 = self.transunet_src()
        os.mkfifo(h5)
        r = self.run_prepare()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assert_fails(r, self.p("st"), "case0001.npy.h5", "FIFO")
        os.unlink(h5)
        os.mkfifo(self.p("src", "train_npz", "case0005_slice001.npz"))
        r = self.run_prepare()
        self.assert_fails(r, self.p("st"), "case0005_slice001.npz", "FIFO")

    def test_failure_leaves_existing_store(self):
        self.transunet_src()
        r = self.run_prepare()
        self.assertEqual(r.returncode, 0, r.stderr)
        before = sha(self.p("st", "manifest.json"))
        with h5py.File(self.p("src", "test_vol_h5", "case0001.npy.h5"), "w") as f:
            f.create_dataset("image", shape=(2, 65536, 65536), dtype=np.float32)
            f.create_dataset("label", shape=(2, 65536, 65536), dtype=np.uint8)
        r = self.run_prepare("--force")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(sha(self.p("st", "manifest.json")), before)
        self.assertEqual(glob.glob(self.p("st") + ".tmp.*"), [])

    def test_stale_temporaries(self):
        self.transunet_src()
        # a pid that is surely dead: a child that has exited and been reaped
        child = subprocess.Popen(["true"])
        child.wait()
        host = "".join(c if c.isalnum() and c.isascii() or c == "-" else "_" for c in socket.gethostname())
        dead = self.p("st.tmp.%s.%d" % (host, child.pid))
        legacy = self.p("st.tmp.%d" % child.pid)  # the name before the host was in it
        live = self.p("st.tmp.%s.%d" % (host, os.getpid()))
        other_node = self.p("st.tmp.%s.%d" % (host + "-other", child.pid))  # its pid means nothing here
        for d in (dead, legacy, live, other_node):
            os.makedirs(d)
            with open(os.path.join(d, "shard-00000.h5"), "wb") as f:
                f.write(b"partial")
        r = self.run_prepare()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(dead), "stale temporary of a dead process left behind")
        self.assertFalse(os.path.exists(legacy), "stale temporary (old name) of a dead process left behind")
        self.assertTrue(os.path.exists(os.path.join(live, "shard-00000.h5")), "a live process's temporary was removed")
        self.assertTrue(os.path.exists(os.path.join(other_node, "shard-00000.h5")), "another node's temporary was removed")

    def test_check_store_geometry_mismatch(self):
        write_btcv(self.p("src"), [5, 1], shape=(16, 12, 3))
        write_split(self.p("split.txt"), [5], [1])
        r = run("prepare", "synapse", "--src", self.p("src"), "--split", self.p("split.txt"), "--out", self.p("st"),
                "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(run("check-store", self.p("st")).returncode, 0)
        shard = self.p("st", "shard-00000.h5")
        with h5py.File(shard, "r+") as f:
            a = f["cases/img0001"].attrs["affine"].copy()
            a[0, 3] += 0.5
            f["cases/img0001"].attrs["affine"] = a
        r = run("check-store", self.p("st"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        for w in ("shard-00000.h5", "img0001", "'affine'[3]", "manifest"):
            self.assertIn(w, r.stderr)
        with h5py.File(shard, "r+") as f:
            a[0, 3] -= 0.5  # restored: only the spacing differs now
            f["cases/img0001"].attrs["affine"] = a
            s = f["cases/img0005"].attrs["spacing"].copy()
            s[2] *= 2
            f["cases/img0005"].attrs["spacing"] = s
        r = run("check-store", self.p("st"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        for w in ("shard-00000.h5", "img0005", "'spacing'[2]"):
            self.assertIn(w, r.stderr)


class ACDC(Base):
    def test_frames_zscore(self):
        rng = np.random.default_rng(2)
        data = {}
        for pid in (1, 2):
            d = self.p("src", "patient%03d" % pid)
            os.makedirs(d)
            for fr in (1, 12):
                img = rng.normal(300, 50, size=(14, 12, 3)).astype(np.float32)
                gt = rng.integers(0, 4, size=(14, 12, 3)).astype(np.uint8)
                aff = np.diag([1.5, 1.5, 10.0, 1.0])
                nib.save(nib.Nifti1Image(img, aff), os.path.join(d, "patient%03d_frame%02d.nii.gz" % (pid, fr)))
                nib.save(nib.Nifti1Image(gt, aff), os.path.join(d, "patient%03d_frame%02d_gt.nii.gz" % (pid, fr)))
                data[(pid, fr)] = (img.astype(np.float64), gt)
            nib.save(nib.Nifti1Image(np.zeros((14, 12, 3, 5), np.float32), np.eye(4)), os.path.join(d, "patient%03d_4d.nii.gz" % pid))
        write_split(self.p("split.txt"), [1], [2])
        r = run("prepare", "acdc", "--src", self.p("src"), "--split", self.p("split.txt"), "--out", self.p("st"),
                "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = manifest(self.p("st"))
        self.assertEqual(m["classes"], ["background", "RV", "MYO", "LV"])
        self.assertEqual(m["splits"]["test"], ["patient002_frame01", "patient002_frame12"])
        for (pid, fr), (img0, gt) in data.items():
            img, lab, attrs = case(self.p("st"), "patient%03d_frame%02d" % (pid, fr))
            np.testing.assert_allclose(img[:, 0], zyx((img0 - img0.mean()) / img0.std()), rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(lab, zyx(gt))
            np.testing.assert_allclose(attrs["spacing"], [1.5, 1.5, 10.0])

    def test_missing_patient(self):
        os.makedirs(self.p("src", "patient001"))
        write_split(self.p("split.txt"), [1], [3])
        r = run("prepare", "acdc", "--src", self.p("src"), "--split", self.p("split.txt"), "--out", self.p("st"))
        self.assert_fails(r, self.p("st"), "missing case patient003")


class EM(Base):
    def test_tiff_stack(self):
        rng = np.random.default_rng(3)
        vol = rng.integers(0, 256, size=(30, 16, 20)).astype(np.uint8)
        lab = (rng.random((30, 16, 20)) > 0.3).astype(np.uint8) * 255
        os.makedirs(self.p("src"))
        for name, a in (("train-volume.tif", vol), ("train-labels.tif", lab)):
            pages = [Image.fromarray(p) for p in a]
            pages[0].save(self.p("src", name), save_all=True, append_images=pages[1:])
        r = run("prepare", "em", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The released configuration's slices (docs/datasets.md), each split's stacked in order.
        official = (("em_train", [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15, 16, 17, 19, 20, 23, 24, 25, 26, 27, 28,
                                  29]), ("em_val", [9, 11, 13]), ("em_test", [18, 21, 22]))
        for name, zs in official:
            img, lb, _ = case(self.p("st"), name)
            v = vol[zs].astype(np.float64)
            np.testing.assert_allclose(img[:, 0], (v - v.mean()) / v.std(), rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(lb, lab[zs] // 255)

    def test_page_larger_than_file(self):
        # a TIFF whose page declares 16384 x 16384 pixels (256 MiB) in a file of a few hundred bytes:
        # refused from the strips' stored bytes before anything is allocated, uncompressed or not
        os.makedirs(self.p("src"))
        lab = np.zeros((30, 8, 8), np.uint8)
        Image.fromarray(lab[0]).save(self.p("src", "train-labels.tif"), save_all=True,
                                     append_images=[Image.fromarray(p) for p in lab[1:]])
        for compression in ("raw", "tiff_adobe_deflate"):
            name = self.p("src", "train-volume.tif")
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(name, compression=compression)
            with open(name, "r+b") as f:  # little-endian (PIL's default): patch ImageWidth, ImageLength
                b = bytearray(f.read())
                self.assertEqual(b[:2], b"II")
                ifd = struct.unpack_from("<I", b, 4)[0]
                for i in range(struct.unpack_from("<H", b, ifd)[0]):
                    e = ifd + 2 + 12 * i
                    tag, typ = struct.unpack_from("<HH", b, e)
                    if tag in (256, 257):
                        struct.pack_into("<H" if typ == 3 else "<I", b, e + 8, 16384)
                f.seek(0)
                f.write(b)
            r = run("prepare", "em", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assert_fails(r, self.p("st"), "train-volume.tif", "page 0", "16384 x 16384", "truncated or corrupt")

    def test_bad_label_value(self):
        os.makedirs(self.p("src"))
        vol = np.zeros((30, 8, 8), np.uint8)
        lab = np.zeros((30, 8, 8), np.uint8)
        lab[7, 2, 3] = 128
        for name, a in (("train-volume.tif", vol), ("train-labels.tif", lab)):
            pages = [Image.fromarray(p) for p in a]
            pages[0].save(self.p("src", name), save_all=True, append_images=pages[1:])
        r = run("prepare", "em", "--src", self.p("src"), "--out", self.p("st"))
        self.assert_fails(r, self.p("st"), "train-labels.tif", "label id 128", "x=3, y=2, z=7")


class Skin(Base):
    def test_isic_jpeg_png(self):
        rng = np.random.default_rng(4)
        dd = self.p("src", "ISBI2016_ISIC_Part1_Training_Data")
        gd = self.p("src", "ISBI2016_ISIC_Part1_Training_GroundTruth")
        os.makedirs(dd)
        os.makedirs(gd)
        for k in range(2):
            rgb = rng.integers(0, 256, size=(10, 14, 3)).astype(np.uint8)
            Image.fromarray(rgb).save(os.path.join(dd, "ISIC_%07d.jpg" % k), quality=90)
            mask = (rng.random((10, 14)) > 0.5).astype(np.uint8) * 255
            Image.fromarray(mask).save(os.path.join(gd, "ISIC_%07d_Segmentation.png" % k))
        r = run("prepare", "isic", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        for k in range(2):
            img, lab, _ = case(self.p("st"), "ISIC_%07d" % k)
            dec = np.asarray(Image.open(os.path.join(dd, "ISIC_%07d.jpg" % k)).convert("RGB")).astype(np.float64)
            want = np.stack([(dec[..., c] - dec[..., c].mean()) / dec[..., c].std() for c in range(3)])
            self.assertEqual(img.shape, (1, 3, 10, 14))
            np.testing.assert_allclose(img[0], want, rtol=1e-5, atol=1e-5)
            mask = np.asarray(Image.open(os.path.join(gd, "ISIC_%07d_Segmentation.png" % k)))
            np.testing.assert_array_equal(lab[0], mask // 255)

    def test_ph2_bmp(self):
        rng = np.random.default_rng(5)
        root = self.p("src", "PH2 Dataset images")
        want = {}
        for k, mode in ((2, "L"), (4, "1")):
            c = "IMD%03d" % k
            os.makedirs(os.path.join(root, c, c + "_Dermoscopic_Image"))
            os.makedirs(os.path.join(root, c, c + "_lesion"))
            rgb = rng.integers(0, 256, size=(9, 13, 3)).astype(np.uint8)  # odd width: row padding
            Image.fromarray(rgb).save(os.path.join(root, c, c + "_Dermoscopic_Image", c + ".bmp"))
            mask = (rng.random((9, 13)) > 0.5).astype(np.uint8) * 255
            Image.fromarray(mask).convert(mode).save(os.path.join(root, c, c + "_lesion", c + "_lesion.bmp"))
            want[c] = (rgb.astype(np.float64), mask // 255)
        r = run("prepare", "ph2", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        for c, (rgb, m) in want.items():
            img, lab, _ = case(self.p("st"), c)
            w = np.stack([(rgb[..., k] - rgb[..., k].mean()) / rgb[..., k].std() for k in range(3)])
            np.testing.assert_allclose(img[0], w, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(lab[0], m)


class Synth(Base):
    def test_deterministic_and_importable(self):
        a, b, c = self.p("a"), self.p("b"), self.p("c")
        for d, seed in ((a, 7), (b, 7), (c, 8)):
            r = run("synth", "--out", d, "--seed", seed, "--cases", 3, "--size", "40..48", "--depth", "8..10")
            self.assertEqual(r.returncode, 0, r.stderr)
        for f in ("img/img0005.nii.gz", "label/label0005.nii.gz", "img/img0001.nii.gz"):
            x = nib.load(os.path.join(a, f)).get_fdata()
            np.testing.assert_array_equal(x, nib.load(os.path.join(b, f)).get_fdata())
        self.assertFalse(np.array_equal(nib.load(os.path.join(a, "img/img0005.nii.gz")).get_fdata(),
                                        nib.load(os.path.join(c, "img/img0005.nii.gz")).get_fdata()))
        lab = nib.load(os.path.join(a, "label/label0005.nii.gz")).get_fdata()
        self.assertTrue({1, 2, 3, 6, 7, 8} <= set(np.unique(lab).astype(int)), np.unique(lab))
        r = run("prepare", "synapse", "--src", a, "--split", os.path.join(a, "split.txt"), "--out", self.p("st"),
                "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = manifest(self.p("st"))
        self.assertEqual(m["splits"]["train"], ["img0005", "img0006"])
        self.assertEqual(m["splits"]["test"], ["img0001"])
        r = run("synth", "--out", a)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already exists", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
