"""Loss and validation curves of a radsam-trainer run, as one PNG.

Usage: python scripts/plot_training.py RUN/log.jsonl OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

steps, losses, dice = [], [], []
val = []
stage2 = None  # first step of a second stage, when the log holds one
with open(sys.argv[1]) as f:
    for line in f:
        row = json.loads(line)
        if "validation" in row:
            val.append((row["step"], row["validation"]["mean"]))
        else:
            if row.get("stage") == 2 and stage2 is None:
                stage2 = row["step"]
            steps.append(row["step"])
            losses.append(row["loss"])
            dice.append(row["train_dice"])


def smooth(v, k=25):
    out, acc = [], []
    for x in v:
        acc.append(x)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
a.plot(steps, losses, color="#bbbbbb", lw=0.7, label="loss per step")
a.plot(steps, smooth(losses), color="#1f77b4", lw=2, label="loss, mean of 25 steps")
a.set_xlabel("step")
a.set_ylabel("Dice + BCE (primary + best secondary) + IoU MSE")
a.set_title("Training loss")
a.grid(alpha=0.3)
a.legend()
if val:
    keys = [("volume box/mask carry", "-o"), ("volume box/box carry", "--s"), ("slice box", ":^"), ("slice point", ":v")]
    # Editing, in the logs of runs that measured it.
    keys.append(("volume box/mask carry + 5 clicks", "-D"))
    for key, style in keys:
        points = [(s, m[key]) for s, m in val if key in m]
        if points:
            b.plot([s for s, _ in points], [v for _, v in points], style, label=key)
    b.set_xlabel("step (validation after each epoch; step 0 = base model)")
    b.set_ylabel("mean Dice (%)")
    b.set_title("Validation Dice (validation CT, whole volumes)")
    b.grid(alpha=0.3)
    b.legend()
if stage2 is not None:
    for ax in (a, b):
        ax.axvline(stage2, color="#888888", ls="--", lw=1)
        ax.text(stage2, ax.get_ylim()[1], " stage 2", va="top", ha="left", color="#555555")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"{len(steps)} steps, {len(val)} validations -> {sys.argv[2]}")
