"""The wheels a lent GPU machine lacks, fetched here, and the one command that takes the GPU figures there.

    ./dev.sh bench device_wheels [--dir .whl] [--dry-run]

The device image has JAX (with its CUDA plugin), NumPyro, optax, SciPy and xarray, but not BlackJAX or ArviZ
(and ArviZ's parts), and it cannot reach a package index. This downloads those pure-Python wheels, at the
versions installed here, into ``.whl/`` (git-ignored; well under the 64 MiB a device call carries), and prints
the command for the device tool's ``run`` (with ``carry=[".whl"]``): it installs them into /tmp/site, then runs
``./dev.sh bench gpu`` on the image's own Python (``PARMCMC_NO_VENV=1``: no virtual environment, nothing
fetched), writing the tables to the returned folder. ``--dry-run`` prints the pip command without running it.
"""

import argparse
import importlib.metadata
import subprocess
import sys

# Missing on the device image (docs: the device README's package list); the image has the rest of their needs.
PACKAGES = ("blackjax", "arviz", "arviz-base", "arviz-stats", "arviz-plots", "xarray-einstats")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")

DEVICE_COMMAND = (
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
    ".whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 || exit; "
    "PARMCMC_NO_VENV=1 ./dev.sh bench gpu --out $OUT 2>&1 | tee $OUT/log"
)


def pip_download(directory: str) -> list[str]:
    """The pip command that fetches every package of PACKAGES, pinned to the version installed here."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in PACKAGES]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        *platforms,
        "-d",
        directory,
        *pins,
    ]


def main(argv=None) -> None:
    """Fetch the wheels (unless --dry-run) and print the device command."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=".whl")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    command = pip_download(args.dir)
    print(" ".join(command))
    if not args.dry_run:
        subprocess.run(command, check=True)
    print(f'\nOn the device (run tool, carry=["{args.dir}"], timeout_s=600):\n{DEVICE_COMMAND}')


if __name__ == "__main__":
    main()
