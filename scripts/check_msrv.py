"""The stated rust-version against the dependency tree and this rustc.

Reads `cargo metadata --format-version 1` on stdin. Fails when the
workspace crates state different versions, when a dependency declares a
higher one than ours, or when this machine's rustc is older than ours.
"""

import json
import re
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def show(v):
    return ".".join(map(str, v))


meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
stated = {p["name"]: p.get("rust_version") for p in meta["packages"] if p["id"] in members}
if None in stated.values() or len(set(stated.values())) != 1:
    sys.exit(f"every workspace crate must state the same rust-version: {stated}")
msrv = version(next(iter(stated.values())))
needs = [
    (version(p["rust_version"]), p["name"], p["version"])
    for p in meta["packages"]
    if p["id"] not in members and p.get("rust_version")
]
above = sorted(n for n in needs if n[0] > msrv)
if above:
    listed = ", ".join(f"{name} {v} needs {show(r)}" for r, name, v in above)
    sys.exit(f"the stated rust-version {show(msrv)} is below what dependencies declare: {listed}")
out = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True).stdout
rustc = version(re.search(r"rustc (\d+\.\d+\.\d+)", out).group(1))
if rustc < msrv:
    sys.exit(f"this rustc {show(rustc)} is older than the stated rust-version {show(msrv)}")
top = max(needs)
print(
    f"rust-version {show(msrv)}: the highest any dependency declares is {show(top[0])} "
    f"({top[1]} {top[2]}); rustc {show(rustc)}"
)
