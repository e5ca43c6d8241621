"""Writes the class names of TotalSegmentator's `total` task ({"1": "spleen", ...}) as JSON, from
the map_to_binary.py that ships with the sample data, for `radsam-trainer --label-names`.

Usage: python scripts/write_label_names.py OUT.json
"""
import importlib.util
import json
import os
import sys

data = os.path.join(os.environ.get("RADSAM_CACHE", os.path.expanduser("~/.cache/radsam")), "data", "totalsegmentator")
spec = importlib.util.spec_from_file_location("map_to_binary", os.path.join(data, "map_to_binary.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
names = {str(k): v for k, v in module.class_map["total"].items()}
with open(sys.argv[1], "w") as f:
    json.dump(names, f, indent=1)
print(f"{len(names)} class names -> {sys.argv[1]}")
