"""A/B table of two `radsam bench` runs with the same prompts.

Usage: compare_runs.py [--prompt point] TITLE COMMAND OUT.md NAME_A=DIR_A NAME_B=DIR_B [NAME_C=DIR_C ...]

A run given as NAME=DIR#MODEL is that run's rows of one model (`radsam bench` labels, e.g.
radsam:radsam-v7): two models of one run compared as two runs.

Reads DIR/cases.csv of the runs (non-oracle rows) and writes OUT.md: mean Dice per volume-level
prompt and carry without clicks, then per object for the volume box with mask carry, per model,
each run beside the first and its change against it (`--prompt point`: per object for the volume
point with mask carry, and a table of slice-level prompts without clicks); when two runs made
clicks, also Dice before and after the last click of every protocol. Used by bench/run_guard_choice.sh,
bench/run_mask_choice.sh, bench/run_click_check.sh and bench/run_carry_cue.sh (three runs).
"""
import csv
import sys
from collections import defaultdict

args = sys.argv[1:]
per_object_prompt = "box"
if args[:1] == ["--prompt"]:
    per_object_prompt, args = args[1], args[2:]
if len(args) < 5:
    sys.exit(__doc__)
title, command, out, *runs = args
names, dirs = zip(*(r.split("=", 1) for r in runs))


def read_run(spec):
    """A run's non-oracle rows; DIR#MODEL keeps one model's, under one label for every run."""
    folder, _, model = spec.partition("#")
    rows = [r for r in csv.DictReader(open(f"{folder}/cases.csv")) if r["oracle"] == "false"]
    if model:
        rows = [dict(r, model="one model per run") for r in rows if r["model"] == model]
        if not rows:
            sys.exit(f"{folder}: no rows of model {model}")
    return rows


every = {n: read_run(d) for n, d in zip(names, dirs)}
rows = {n: [r for r in rs if r["clicks"] == "0"] for n, rs in every.items()}
models = sorted({r["model"] for rs in rows.values() for r in rs})
# An object is a class in one case: runs over several volumes (phantoms) hold each class per case.
several_cases = len({r["case"] for rs in every.values() for r in rs}) > 1


def key(r):
    """The object a row measures, as the tables name it."""
    return f'{r["case"]} {r["class"]}' if several_cases else r["class"]


def dice(name, model, level, prompt, carry):
    """object -> Dice (%) of one run's rows."""
    return {key(r): 100 * float(r["dice"]) for r in rows[name]
            if (r["model"], r["level"], r["prompt"], r["carry"]) == (model, level, prompt, carry)}


def mean(d):
    return sum(d.values()) / len(d) if d else float("nan")


a, b = names[:2]
others = names[1:]
# Two runs: one "change" column (the tables as they always were); more: one per run after the first.
changes = ["change"] if len(names) == 2 else [f"{n} change" for n in others]


def row(cells, first, rest):
    """Table cells, then each run's value, then each later run's change against the first."""
    return ("| " + " | ".join(cells + [f"{first:.1f}"] + [f"{v:.1f}" for v in rest]
                              + [f"{v - first:+.1f}" for v in rest]))


lines = [f"# {title}", "", f"Command: `{command}`. Volume-level prompts on the largest slice plus the true "
         f"boundaries, no clicks, same prompts in {'both' if len(names) == 2 else 'all'} runs; mean Dice (%) "
         "over the objects.", "",
         f"| model | prompt | carry | {' | '.join(names)} | {' | '.join(changes)} | objects |",
         "|---|---|---|" + "---|" * (len(names) + len(changes)) + "---|"]
for model in models:
    for prompt in ("box", "point"):
        # reference_box: LiteMedSAM's own 3D inference (the reference pipeline), when the run has it.
        for carry in ("mask", "box", "reference_box"):
            runs_dice = [dice(n, model, "volume", prompt, carry) for n in names]
            if runs_dice[0]:
                lines.append(row([model, prompt, carry], mean(runs_dice[0]), [mean(d) for d in runs_dice[1:]])
                             + f" | {len(runs_dice[0])} |")
if per_object_prompt != "box":
    lines += ["", "Slice-level prompts (one on each slice of the object), no clicks:", "",
              f"| model | prompt | carry | {' | '.join(names)} | {' | '.join(changes)} | objects |",
              "|---|---|---|" + "---|" * (len(names) + len(changes)) + "---|"]
    for model in models:
        for prompt in ("box", "point"):
            runs_dice = [dice(n, model, "slice", prompt, "mask") for n in names]
            if runs_dice[0]:
                lines.append(row([model, prompt, "mask"], mean(runs_dice[0]), [mean(d) for d in runs_dice[1:]])
                             + f" | {len(runs_dice[0])} |")
for model in models:
    runs_dice = [dice(n, model, "volume", per_object_prompt, "mask") for n in names]
    lines += ["", f"Per object, {model}, volume {per_object_prompt}, mask carry:", "",
              f"| object | {' | '.join(names)} | {' | '.join(changes)} |", "|---|" + "---|" * (len(names) + len(changes))]
    for c in sorted(runs_dice[0]):
        lines.append(row([c], runs_dice[0][c], [d[c] for d in runs_dice[1:]]) + " |")
max_clicks = max(int(r["clicks"]) for rs in every.values() for r in rs)
if max_clicks > 0 and len(names) == 2:
    # Each run's change is against its own Dice before the clicks (runs whose settings act
    # without clicks start apart).
    lines += ["", "Dice after clicks (each protocol's last click; change: after the clicks minus the same run "
              "before them):", "",
              f"| model | level | prompt | carry | clicks | {a} before | {b} before | {a} | {b} | {a} change | "
              f"{b} change | objects |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        for level in ("volume", "slice", "cvpr25"):
            for prompt in ("box", "point"):
                for carry in ("mask", "box"):
                    def at(name, clicks):
                        return {key(r): 100 * float(r["dice"]) for r in every[name]
                                if (r["model"], r["level"], r["prompt"], r["carry"], int(r["clicks"]))
                                == (model, level, prompt, carry, clicks)}
                    last = max((int(r["clicks"]) for r in every[a] if (r["model"], r["level"], r["prompt"], r["carry"])
                                == (model, level, prompt, carry)), default=0)
                    if last == 0:
                        continue
                    ba, bb, da, db = at(a, 0), at(b, 0), at(a, last), at(b, last)
                    lines.append(f"| {model} | {level} | {prompt} | {carry} | {last} | {mean(ba):.1f} | "
                                 f"{mean(bb):.1f} | {mean(da):.1f} | {mean(db):.1f} | {mean(da) - mean(ba):+.1f} | "
                                 f"{mean(db) - mean(bb):+.1f} | {len(da)} |")
    # Per object after the paper's clicks, volume box with mask carry: where the runs part.
    for model in models:
        def clicked(name, clicks):
            return {key(r): 100 * float(r["dice"]) for r in every[name]
                    if (r["model"], r["level"], r["prompt"], r["carry"], r["click_mode"], int(r["clicks"]))
                    == (model, "volume", "box", "mask", "uniform", clicks)}
        last = max((int(r["clicks"]) for r in every[a] if r["model"] == model and r["level"] == "volume"
                    and r["click_mode"] == "uniform"), default=0)
        ba, bb, da, db = clicked(a, 0), clicked(b, 0), clicked(a, last), clicked(b, last)
        if not da or not db:
            continue
        lines += ["", f"Per object, {model}, volume box, mask carry, after {last} clicks:", "",
                  f"| object | {a} before | {b} before | {a} | {b} | {b} - {a} |", "|---|---|---|---|---|---|"]
        for c in sorted(da):
            if c in db and c in ba and c in bb:
                lines.append(f"| {c} | {ba[c]:.1f} | {bb[c]:.1f} | {da[c]:.1f} | {db[c]:.1f} | {db[c] - da[c]:+.1f} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
