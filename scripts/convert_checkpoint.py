#!/usr/bin/env python3
"""Convert an official SAM-family checkpoint (.pth/.pt pickle) to safetensors, once.

Usage: convert_checkpoint.py INPUT.pth OUTPUT.safetensors

Unwraps {"model": ...} / {"state_dict": ...} containers, keeps every tensor (the Rust loader
decides what is consumed and refuses what is not), writes atomically.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


def main(src, dst):
    state = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    tensors = {k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    skipped = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if skipped:
        sys.exit(f"{src}: non-tensor entries {skipped[:5]}: not a state dict")
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".partial")
    save_file(tensors, str(tmp), metadata={"source": Path(src).name})
    tmp.replace(dst)
    print(f"converted {src} -> {dst} ({len(tensors)} tensors)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
