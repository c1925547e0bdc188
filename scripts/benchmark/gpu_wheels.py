#!/usr/bin/env python
"""Wheels for a GPU machine without registry access, fetched here, on a machine with one.

A bare GPU machine typically has torch and torchvision (with numpy, pillow, sympy, jinja2, filelock,
fsspec, networkx, typing_extensions, triton and the nvidia libraries) but none of what the suite
imports besides. This lists the distributions that `scripts/benchmark/gpu_suite.py` needs, with
everything they require, at the versions installed in this environment (the versions the dry run
was checked with), and downloads their wheels for the GPU machine's Python and platform:

    python scripts/benchmark/gpu_wheels.py --dest gpu_wheels          # here (needs the package index)
    scripts/benchmark/gpu_suite.sh --wheels gpu_wheels                # there (installs them offline)

`--list` only prints the pinned requirements.
"""
import argparse
import importlib.metadata as md
import re
import subprocess
import sys

# What the suite imports directly (sgm's inference path, the diffusers peer, compile).
ROOTS = ("diffusers", "transformers", "accelerate", "omegaconf", "open_clip_torch", "kornia", "pytorch-lightning",
         "einops", "safetensors")
# What a GPU machine with torch + torchvision already has (and must not be replaced).
PRESENT = {"torch", "torchvision", "triton", "numpy", "pillow", "sympy", "mpmath", "jinja2", "markupsafe", "filelock",
           "fsspec", "networkx", "typing-extensions", "setuptools"}

# Imported here only because they happen to be installed (optional imports of diffusers, transformers,
# lightning, the project's curation tools); the suite runs without them.
OPTIONAL = {"matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "six",
            "peft", "protobuf", "attrs", "brotli", "pygments"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_closure(roots=ROOTS, present=PRESENT):
    """{distribution: version} of `roots` and all they require (no extras), minus `present` and anything
    torch brings (nvidia-*, cuda-*)."""
    present = {normalize(p) for p in present}
    seen, todo = {}, [normalize(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in present or name.startswith(("nvidia-", "cuda-")):
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed here; install the project's [benchmark] extra first") from None
        seen[name] = dist.version
        for req in dist.requires or []:
            if ";" in req and "extra" in req.split(";", 1)[1]:
                continue  # an optional extra
            marker = req.split(";", 1)[1] if ";" in req else None
            if marker and not _marker_holds(marker):
                continue
            todo.append(normalize(re.split(r"[\s<>=!~\[(;]", req.strip(), maxsplit=1)[0]))
    return dict(sorted(seen.items()))


def _marker_holds(marker: str) -> bool:
    """Environment marker for a Linux x86_64 CPython 3.12 machine."""
    from packaging.markers import Marker

    env = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux", "platform_system": "Linux",
           "platform_machine": "x86_64", "implementation_name": "cpython", "platform_python_implementation": "CPython",
           "os_name": "posix", "extra": ""}
    return Marker(marker).evaluate(env)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", default="gpu_wheels", help="folder for the wheels")
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    p.add_argument("--list", action="store_true", help="print the pinned requirements and stop")
    a = p.parse_args(argv)
    pins = [f"{name}=={version}" for name, version in requirements_closure().items()]
    if a.list:
        print("\n".join(pins))
        return 0
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--python-version", a.python_version,
           "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64", "--implementation", "cp",
           "-d", a.dest, *pins]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
