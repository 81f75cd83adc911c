#!/usr/bin/python3
"""Convert UNet-2022 weights between PyTorch and the safetensors files `unet2022` loads.

  convert_checkpoint.py to-safetensors IN.{model,pth,pt} OUT.safetensors [--allow-pickle]
  convert_checkpoint.py to-pth IN.safetensors OUT.pth

to-safetensors accepts
  - an nnU-Net v1 training checkpoint (`.model`): a dict whose "state_dict" holds the network
    (v2's "network_weights" too); the optimizer state, the AMP grad scaler ("amp_grad_scaler")
    and the plotting/bookkeeping entries are ignored;
  - a plain state_dict (`.pth`, `.pt`), or a dict holding one under "model" / "state_dict";
  - keys with DataParallel's "module." prefix (removed).
Float tensors are written as F32 (fp16 / bf16 ones, which AMP-era files may hold, are widened
exactly; the C program computes in fp32), integer buffers (relative_position_index) as I64.
Metadata: format=pt, network=unet2022, converted_from=<file name>.

to-pth writes a plain state_dict (an OrderedDict in the file's tensor order) that
`UNet2022.load_state_dict` accepts; a training checkpoint's Adam moments ("adam.*") are left out.
Both directions copy the bits: fp32 -> safetensors -> .pth round-trips bit for bit.

Loading a pickle can run code: to-safetensors uses torch.load(weights_only=True) unless
--allow-pickle is given. nnU-Net `.model` files need it (they hold plain floats and numpy
objects, which torch 1.13's weights_only loader refuses); use it for files you trust.
Requires Debian's python3-torch and safetensors (scripts/install-deps.sh).
"""
import argparse
import collections
import os
import sys

import torch
from safetensors.torch import load_file, save_file

STATE_KEYS = ("state_dict", "network_weights", "model")


def find_state_dict(obj, path):
    """The network's tensors in a loaded checkpoint object."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for k in STATE_KEYS:
            if k in obj and isinstance(obj[k], dict):
                return find_state_dict(obj[k], path)
    keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
    sys.exit(f"convert_checkpoint: {path}: no state_dict found (expected tensors, or a dict with one of "
             f"{', '.join(STATE_KEYS)}; found: {keys})")


def clean(sd):
    """Removes "module." prefixes; floats to fp32, integers to int64; contiguous copies."""
    out = collections.OrderedDict()
    for k, v in sd.items():
        name = k[len("module."):] if k.startswith("module.") else k
        if name in out:
            sys.exit(f"convert_checkpoint: {k}: two tensors named {name} once 'module.' is removed")
        v = v.detach().cpu()
        v = v.to(torch.float32) if v.is_floating_point() else v.to(torch.int64)
        out[name] = v.contiguous().clone()
    return out


def to_safetensors(src, dst, allow_pickle):
    try:
        obj = torch.load(src, map_location="cpu", weights_only=not allow_pickle)
    except Exception as e:  # weights_only refuses arbitrary pickled objects
        hint = "" if allow_pickle else " (if you trust the file, retry with --allow-pickle)"
        sys.exit(f"convert_checkpoint: {src}: cannot load: {e}{hint}")
    sd = clean(find_state_dict(obj, src))
    save_file(sd, dst, metadata={"format": "pt", "network": "unet2022", "converted_from": os.path.basename(src)})
    print(f"convert_checkpoint: {len(sd)} tensors: {src} -> {dst}")


def to_pth(src, dst):
    sd = load_file(src)
    out = collections.OrderedDict((k, v) for k, v in sd.items() if not k.startswith("adam."))
    torch.save(out, dst)
    print(f"convert_checkpoint: {len(out)} tensors: {src} -> {dst}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-safetensors", help=".model / .pth -> .safetensors")
    a.add_argument("src")
    a.add_argument("dst")
    a.add_argument("--allow-pickle", action="store_true", help="load arbitrary pickles (trusted files only)")
    b = sub.add_parser("to-pth", help=".safetensors -> .pth state_dict")
    b.add_argument("src")
    b.add_argument("dst")
    args = ap.parse_args(argv)
    if args.cmd == "to-safetensors":
        to_safetensors(args.src, args.dst, args.allow_pickle)
    else:
        to_pth(args.src, args.dst)


if __name__ == "__main__":
    main()
