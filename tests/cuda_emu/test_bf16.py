"""The emulator's bf16 (tests/cuda_emu/include/cuda_bf16.h, cublasGemmEx on CUDA_R_16BF in
emu_libs.cpp) against torch, bit for bit: the ctest emu_bf16_rounding.

- __float2bfloat16 / __float2bfloat16_rn of tricky floats (ties to even both ways, just above and
  below ties, subnormals, the largest floats, infinities, NaNs whose payload lies only in the low
  half, signed zeros) and of random bit patterns equals torch's `.to(torch.bfloat16)`, and a
  second oracle that picks the nearer of the two neighbouring bf16 values by exact float64
  distance (ties to the even one; past the largest bf16 by half an ulp, infinity). A NaN becomes
  0x7fff, the canonical NaN of the real intrinsic (torch gives 0x7fc0: both NaN).
- __bfloat162float is exact (torch's bf16 -> float32).
- fresh emulated device memory is 0xff bytes: 0xffff is a bf16 NaN.
- cublasGemmEx with A and B bf16 and C bf16 or fp32: the exact float64 product lies within the
  fp32 accumulation error of the result (bf16 C: the result is the nearest-even bf16 of a value
  in that interval) and agrees with torch's fp32 matmul of the widened operands rounded by torch;
  sums exact in fp32 (ties on purpose) agree bit for bit; beta = 0 does not read a NaN C; the
  padding of A, B and C is neither read nor written; mixed types stay NOT_SUPPORTED.
Usage: test_bf16.py PATH/TO/bf16_check (built by tests/cuda_emu/emulator.cmake)."""
import subprocess
import sys

import numpy as np
import torch

CHECK = sys.argv[1] if len(sys.argv) > 1 else "build-emu/cuda_emu/bf16_check"
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(mode, text=""):
    r = subprocess.run([CHECK, mode], input=text, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit(f"bf16_check {mode} exited {r.returncode}: {r.stderr}")
    return r.stdout.split("\n")


# ---- conversions --------------------------------------------------------------------------------
TRICKY = [
    0x00000000, 0x80000000,  # signed zeros
    0x3F800000, 0xBF800000,  # 1, -1
    0x3F808000, 0x3F818000, 0xBF808000, 0xBF818000,  # ties: down to even, up to even
    0x3F807FFF, 0x3F808001, 0x3F817FFF, 0x3F818001,  # just below / above ties
    0xBF807FFF, 0xBF808001, 0xBF817FFF, 0xBF818001,
    0x3FFFFFFF, 0x3FFF8000, 0x3FFF7FFF, 0xBFFFFFFF,  # carry into the exponent
    0x00000001, 0x80000001, 0x00008000, 0x00018000, 0x00008001, 0x00007FFF,  # subnormals
    0x007FFFFF, 0x807FFFFF, 0x007F8000, 0x007F7FFF, 0x00800000, 0x80800000,  # to / at the smallest normal
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0xFF7F8000, 0x7F7F7FFF, 0x7F7F0000, 0x7F7E8000,  # largest floats
    0x7F800000, 0xFF800000,  # infinities
    0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7F807FFF, 0x7F808000,  # NaNs (payload low only too)
    0x7FBFFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x7FFF0000, 0x7FA00000,
]


def f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def torch_bf16_bits(bits):
    t = torch.from_numpy(f32(bits).copy()).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16).astype(np.uint32)


def nearest_bf16_bits(bits):
    """Round to nearest even by exact distance (float64), independent of the bias trick."""
    bits = np.asarray(bits, dtype=np.uint32)
    with np.errstate(invalid="ignore"):  # NaN inputs: answered apart
        return _nearest_bf16_bits(bits)


def _nearest_bf16_bits(bits):
    x = f32(bits).astype(np.float64)
    lo = bits & np.uint32(0xFFFF0000)  # toward zero
    hi = lo + np.uint32(0x10000)  # away from zero (past the largest finite: the infinity's bits)
    flo = np.abs(f32(lo).astype(np.float64))
    fhi = np.where((hi & 0x7F800000) == 0x7F800000, 2.0**128, np.abs(f32(hi).astype(np.float64)))
    ax = np.abs(x)
    dlo, dhi = ax - flo, fhi - ax
    up = (dhi < dlo) | ((dhi == dlo) & (((lo >> 16) & 1) == 1))
    return np.where(up, hi >> 16, lo >> 16).astype(np.uint32)


rng = np.random.default_rng(20220601)
rand = rng.integers(0, 2**32, size=4000, dtype=np.uint64).astype(np.uint32)
# near ties: random high halves, low halves at or next to 0x8000
near = (rng.integers(0, 2**16, size=2000, dtype=np.uint64).astype(np.uint32) << 16) | rng.choice(
    np.array([0x7FFF, 0x8000, 0x8001, 0x0000, 0xFFFF, 0x0001], dtype=np.uint32), size=2000)
inputs = np.concatenate([np.array(TRICKY, dtype=np.uint32), rand, near.astype(np.uint32)])
out = [line.split() for line in run("convert", "".join(f"{u:08x}\n" for u in inputs)) if line]
if len(out) != len(inputs):
    sys.exit(f"bf16_check convert: {len(out)} answers to {len(inputs)} inputs")
shim = np.array([int(a, 16) for a, _ in out], dtype=np.uint32)
back = np.array([int(b, 16) for _, b in out], dtype=np.uint32)
ref_torch = torch_bf16_bits(inputs)
ref_exact = nearest_bf16_bits(inputs)
is_nan = np.isnan(f32(inputs))
n_nan = int(is_nan.sum())
for i, u in enumerate(inputs):
    s = int(shim[i])
    if is_nan[i]:
        if s != 0x7FFF:
            fail(f"__float2bfloat16({u:08x}) (NaN) = {s:04x}, want the canonical NaN 7fff")
        if not np.isnan(f32([int(ref_torch[i]) << 16])[0]):
            fail(f"torch gives a non-NaN {int(ref_torch[i]):04x} for NaN {u:08x}")
        continue
    if s != ref_torch[i]:
        fail(f"__float2bfloat16({u:08x} = {f32([u])[0]!r}) = {s:04x}, torch {int(ref_torch[i]):04x}")
    if s != ref_exact[i]:
        fail(f"__float2bfloat16({u:08x}) = {s:04x}, nearest-even by distance {int(ref_exact[i]):04x}")
# __bfloat162float: exact, as torch widens
torch_back = torch.from_numpy(shim.astype(np.uint16).view(np.int16).copy()).view(torch.bfloat16).float()
torch_back = torch_back.numpy().view(np.uint32)
for i in np.nonzero((back != (shim << 16)) | (torch_back != back))[0][:20]:
    fail(f"__bfloat162float({int(shim[i]):04x}) = {int(back[i]):08x}, torch {int(torch_back[i]):08x}")
# fresh device memory (0xff bytes) reads as a bf16 NaN
poison = torch.tensor([-1], dtype=torch.int16).view(torch.bfloat16).float()
if not torch.isnan(poison).all():
    fail("0xffff is not a bf16 NaN")
print(f"convert: {len(inputs)} floats ({len(TRICKY)} tricky, {n_nan} NaN) vs torch and exact distance; "
      f"0xffff is bf16 NaN: {bool(torch.isnan(poison).all())}")

# ---- cublasGemmEx on bf16 -------------------------------------------------------------------------
BF16_NAN, F32_NAN = 0xFFFF, 0xFFFFFFFF  # the emulator's fresh device memory
F32_EPS = 2.0**-24


def bf16_bits_of(t):
    return t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).astype(np.uint32)


def widen(bits):
    return f32(np.asarray(bits, dtype=np.uint32) << 16)


def rne_bf16(x64):
    """float64 -> bf16 bits, nearest even (through float32: exact for the values used here)."""
    return torch_bf16_bits(np.asarray(x64, dtype=np.float32).view(np.uint32))


def gemm_case(name, ta, tb, m, n, k, alpha, beta, ctype, pad=(0, 0, 0), A=None, B=None, C=None, exact=False):
    a_rows, a_cols = (k, m) if ta else (m, k)
    b_rows, b_cols = (n, k) if tb else (k, n)
    lda, ldb, ldc = max(1, a_rows) + pad[0], max(1, b_rows) + pad[1], max(1, m) + pad[2]
    if A is None:
        A = torch.randn(a_rows, a_cols, generator=gen)
    if B is None:
        B = torch.randn(b_rows, b_cols, generator=gen)
    if C is None:
        C = torch.randn(m, n, generator=gen) if beta != 0 else None
    # stored column-major with poisoned padding (never read)
    Abits = np.full((a_cols, lda), BF16_NAN, dtype=np.uint32)
    Abits[:, :a_rows] = bf16_bits_of(A).T
    Bbits = np.full((b_cols, ldb), BF16_NAN, dtype=np.uint32)
    Bbits[:, :b_rows] = bf16_bits_of(B).T
    cnan = BF16_NAN if ctype == 16 else F32_NAN
    Cbits = np.full((n, ldc), cnan, dtype=np.uint32)  # beta == 0: C is NaN and must not be read
    if C is not None:
        Cbits[:, :m] = (bf16_bits_of(C) if ctype == 16 else C.float().numpy().view(np.uint32)).T
    Cin = (widen(Cbits[:, :m]) if ctype == 16 else f32(Cbits[:, :m])).T.astype(np.float64)
    if C is None:
        Cin = np.zeros((m, n))  # the NaN there is never read
    head = [int(ta), int(tb), m, n, k, lda, ldb, ldc, int(np.float32(alpha).view(np.uint32)),
            int(np.float32(beta).view(np.uint32)), ctype]
    text = "\n".join(f"{v:x}" for v in head) + "\n"
    text += "".join(f"{v:x}\n" for v in np.concatenate([Abits.ravel(), Bbits.ravel(), Cbits.ravel()]))
    lines = [line for line in run("gemm", text) if line]
    status = int(lines[0])
    if status != 0:
        fail(f"gemm {name}: status {status}")
        return
    outb = np.array([int(v, 16) for v in lines[1:]], dtype=np.uint32).reshape(n, ldc)
    if (outb[:, m:] != Cbits[:, m:]).any():
        fail(f"gemm {name}: wrote C's padding")
    out = (widen(outb[:, :m]) if ctype == 16 else f32(outb[:, :m])).T.astype(np.float64)
    # oracles: exact float64; torch's fp32 matmul of the widened operands (rounded by torch)
    Aw = widen(Abits[:, :a_rows]).T.astype(np.float64)
    Bw = widen(Bbits[:, :b_rows]).T.astype(np.float64)
    opA, opB = (Aw.T if ta else Aw), (Bw.T if tb else Bw)
    exact64 = alpha * (opA @ opB) + (beta * Cin if beta != 0 else 0.0)
    tA, tB = torch.from_numpy(opA.astype(np.float32)), torch.from_numpy(opB.astype(np.float32))
    t32 = alpha * (tA @ tB)
    if beta != 0:
        t32 = t32 + beta * torch.from_numpy(Cin.astype(np.float32))
    if ctype == 16:
        want_torch = bf16_bits_of(t32)
        got = outb[:, :m].T
    else:
        want_torch = t32.numpy().view(np.uint32)
        got = outb[:, :m].T
    if np.isnan(out).any():
        fail(f"gemm {name}: NaN in C (a poisoned element read?)")
        return
    if exact:  # every sum exact in fp32: bit for bit
        if (got != want_torch).any():
            i, j = np.argwhere(got != want_torch)[0]
            fail(f"gemm {name}: C[{i},{j}] = {int(got[i, j]):x}, torch {int(want_torch[i, j]):x}")
        print(f"gemm {name}: {m}x{n}x{k} bit-exact with torch")
        return
    # fp32 accumulation bound (alpha, beta and C terms included), generous
    tol = (k + 4) * F32_EPS * (abs(alpha) * (np.abs(opA) @ np.abs(opB)) + abs(beta) * np.abs(Cin)) * 2
    if ctype == 16:
        lo = widen(rne_bf16(exact64 - tol)).astype(np.float64)
        hi = widen(rne_bf16(exact64 + tol)).astype(np.float64)
        bad = (out < lo) | (out > hi)
    else:
        bad = np.abs(out - exact64) > tol
    if bad.any():
        i, j = np.argwhere(bad)[0]
        fail(f"gemm {name}: C[{i},{j}] = {out[i, j]!r}, exact {exact64[i, j]!r} +- {tol[i, j]!r}")
    # by value: torch's 0 * x keeps the sign of x, cuBLAS's alpha = 0 writes +0
    vals = (lambda b: widen(b)) if ctype == 16 else f32
    same = float((vals(got) == vals(want_torch)).mean())
    if ctype == 16 and same < 0.98:
        fail(f"gemm {name}: only {same:.1%} of C equal torch's bf16 rounding of its fp32 product")
    print(f"gemm {name}: {m}x{n}x{k} C={'bf16' if ctype == 16 else 'fp32'} alpha={alpha} beta={beta} "
          f"within the fp32 bound of exact; {same:.1%} equal to torch")


gen = torch.Generator().manual_seed(7)
gemm_case("NN bf16", 0, 0, 37, 23, 64, 1.0, 0.0, 16)
gemm_case("NN bf16 padded", 0, 0, 37, 23, 64, 1.0, 0.0, 16, pad=(3, 5, 2))
gemm_case("TN bf16 beta", 1, 0, 16, 33, 48, 0.5, 1.0, 16, pad=(1, 0, 3))
gemm_case("NT bf16 beta", 0, 1, 29, 17, 31, -1.25, 0.75, 16, pad=(0, 2, 1))
gemm_case("TT bf16", 1, 1, 20, 21, 22, 2.0, 0.0, 16, pad=(2, 2, 2))
gemm_case("NN fp32 C", 0, 0, 37, 23, 64, 1.0, 0.0, 32, pad=(1, 1, 1))
gemm_case("TN fp32 C beta", 1, 0, 19, 26, 40, 1.0, 1.0, 32, pad=(0, 3, 2))
gemm_case("k=0 beta", 0, 0, 5, 4, 0, 1.0, 0.5, 16, pad=(0, 0, 1))
gemm_case("alpha=0 beta=0", 0, 0, 5, 4, 3, 0.0, 0.0, 16, pad=(0, 0, 1))
# ties in the output: row sums exactly 1 + 2^-8 (down to even), 1 + 3 * 2^-8 (up to even), 1 +
# 2^-8 + 2^-16 (just above: up), 1 + 2^-8 - 2^-16 (below: down), and their negatives
ta_rows = [[1.0, 2.0**-8, 0.0], [1.0 + 2.0**-7, 2.0**-8, 0.0], [1.0, 2.0**-8, 2.0**-16], [1.0, 2.0**-8, -(2.0**-16)]]
ta_rows += [[-v for v in r] for r in ta_rows]
gemm_case("ties", 0, 0, 8, 2, 3, 1.0, 0.0, 16, A=torch.tensor(ta_rows), B=torch.ones(3, 2), exact=True)
gemm_case("ties beta", 0, 0, 8, 2, 3, 1.0, 1.0, 16, A=torch.tensor(ta_rows), B=torch.ones(3, 2),
          C=torch.full((8, 2), 2.0**-9), exact=True)

# ---- unsupported combinations ---------------------------------------------------------------------
SUCCESS, NOT_SUPPORTED = 0, 15
want = [NOT_SUPPORTED] * 6 + [SUCCESS] * 4  # bf16_check.cpp's list, in order
got = [int(line.split()[-1]) for line in run("status") if line]
if got != want:
    fail(f"GemmEx statuses {got}, want {want}")
print(f"status: {len(got)} type/compute combinations as expected" if got == want else "status: wrong")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("emu_bf16_rounding: ok")
