"""``mcudeploy setup``: provision TFLite Micro (with CMSIS-NN / the Ethos-U driver) and Corstone FVPs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._output import emit_json, json_option

_KERNELS = ("cmsis-nn", "reference")  # mirrors mcudeploy.setup.tflm (keeps --help fast)
_NPUS = ("ethos-u55", "ethos-u65", "ethos-u85", "ethos-u")
_FVPS = ("corstone-300", "corstone-310", "corstone-320")
_FROM_HELP = (
    "Where the sources come from instead of the network: a folder of git mirrors or tarballs, "
    "or an archive made by `mcudeploy setup pack` (a path or an http(s) URL)."
)

EPILOG = """\b
Examples:
  mcudeploy setup tflm                            # TFLM + CMSIS-NN for Cortex-M55 (network)
  mcudeploy setup tflm --from ~/mirrors           # offline, from `git clone --mirror` copies
  mcudeploy setup tflm --kernels reference        # TFLM's reference kernels (becomes the default)
  mcudeploy setup tflm --npu ethos-u55            # with the Ethos-U kernel and driver (corstone-300)
  mcudeploy setup pack tflm.tar --from ~/mirrors  # one archive to carry to an offline machine
  mcudeploy setup fvp corstone-300 --accept-eula  # Arm's FVP, after you read Arm's EULA
  mcudeploy setup status                          # what is installed and what it unlocks
The cache is $MCUDEPLOY_CACHE_DIR, else $XDG_CACHE_HOME/mcudeploy, else ~/.cache/mcudeploy."""


@click.group("setup", epilog=EPILOG)
def command() -> None:
    """Install what the tflm runtime and the FVP need into mcudeploy's cache.

    Builds then find them with no environment variable (--tflm-root, MCUDEPLOY_TFLM_ROOT and
    MCUDEPLOY_FVP still win). Everything is pinned, verified and built aside, then renamed into
    place: an interrupted setup leaves nothing half-installed, and running it again resumes.
    """


def _tflm_options(kernels: str, npu: str | None, cpu: str, commit: str | None) -> Any:
    from ..setup.tflm import TFLM_COMMIT, TflmOptions

    return TflmOptions(
        kernels=kernels,
        npu="ethos-u55" if npu == "ethos-u" else npu,
        cpu=cpu,
        commit=commit or TFLM_COMMIT,
    )


@command.command("tflm", epilog=EPILOG)
@click.option(
    "--kernels", type=click.Choice(_KERNELS), default="cmsis-nn", show_default=True, help="Kernel set."
)
@click.option(
    "--npu", type=click.Choice(_NPUS), help="Add the Ethos-U kernel and core driver (ethos-u = u55)."
)
@click.option("--cpu", default="cortex-m55", show_default=True, help="TFLM's TARGET_ARCH for the export.")
@click.option("--from", "source", help=_FROM_HELP)
@click.option("--commit", help="tflite-micro commit (default: the one this mcudeploy is tested with).")
@click.option("--sha256", help="Expected sha256 of a --from URL (default: URL.sha256 beside it).")
@click.option("--force", is_flag=True, help="Install again even if the cache has it.")
@json_option("Write the result as JSON ('-' = stdout).")
def tflm_command(
    kernels: str,
    npu: str | None,
    cpu: str,
    source: str | None,
    commit: str | None,
    sha256: str | None,
    force: bool,
    json_out: Path | None,
) -> None:
    """Export a TFLite Micro tree with TFLM's own create_tflm_tree.py and make it the default.

    Fetches tflite-micro at a pinned commit and every third-party source it pins (flatbuffers,
    gemmlowp, ruy, kissfft, CMSIS_6, Cortex_DFP, CMSIS-NN, ethos-u-core-driver), exports the tree,
    adds what the export omits, and keeps it in the cache keyed by commit and options. Running it
    again with other options switches the default tree; a tree already in the cache is not rebuilt.
    """
    from ..console import console
    from ..setup.cache import cache_root
    from ..setup.sources import open_provider
    from ..setup.tflm import CPUS, setup_tflm

    if cpu not in CPUS:
        raise click.BadParameter(f"{cpu!r} is not one of {', '.join(CPUS)}", param_hint="--cpu")
    options = _tflm_options(kernels, npu, cpu, commit)
    log: list[str] = []
    item = setup_tflm(
        lambda: open_provider(source, cache_root() / "downloads", sha256=sha256),
        options,
        force=force,
        log=log,
    )
    tree = item.path / str(item.manifest.get("tree", "tree"))
    result = {"tree": str(tree), "cached": item.cached, **item.manifest}
    if emit_json(json_out, result):
        return
    state = "already installed" if item.cached else "installed"
    console.print(f"TFLite Micro {options.commit[:12]} ({options.describe()}) {state}: {tree}", markup=False)
    for line in log:
        if " -> " in line:  # the sources placed (the export's own output is in the log only on failure)
            console.print(f"  {line}", markup=False)
    console.print("generate/build/run/deploy --runtime tflm now use it with no --tflm-root", markup=False)


@command.command("pack", epilog=EPILOG)
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--from", "source", help=_FROM_HELP)
@click.option("--commit", help="tflite-micro commit (default: the one this mcudeploy is tested with).")
@click.option("--npu/--no-npu", default=True, show_default=True, help="Include the Ethos-U core driver.")
def pack_command(out: Path, source: str | None, commit: str | None, npu: bool) -> None:
    """Write OUT: one archive with tflite-micro and every source it pins, for `setup tflm --from OUT`.

    Make it on a connected machine (or from mirrors), carry it to the offline one. OUT.sha256 is
    written beside it so `--from http://.../OUT` can be checked.
    """
    import tempfile

    from .._io import file_digest, write_text_atomic
    from ..console import console
    from ..setup.cache import cache_root
    from ..setup.sources import Pin, fetch_pins, open_provider, write_pack
    from ..setup.tflm import TFLM_REPO, third_party_pins

    options = _tflm_options("cmsis-nn", "ethos-u55" if npu else None, "cortex-m55", commit)
    provider = open_provider(source, cache_root() / "downloads")
    log: list[str] = []
    top = Pin(TFLM_REPO, options.commit, "tflite-micro")
    with tempfile.TemporaryDirectory() as tmp:
        fetch_pins(provider, [top], Path(tmp))
        pins = third_party_pins(Path(tmp) / "tflite-micro", options)
    write_pack(provider, [top, *pins], out, log=log)
    digest = file_digest(out)
    write_text_atomic(out.with_name(out.name + ".sha256"), f"{digest}  {out.name}\n")
    for line in log:
        console.print(f"  {line}", markup=False)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, sha256 {digest[:16]}...)", markup=False)


@command.command("fvp", epilog=EPILOG)
@click.argument("name", type=click.Choice(_FVPS))
@click.option("--accept-eula", is_flag=True, help="You have read and accept Arm's EULA for this FVP.")
@click.option("--from", "source", help="Arm's archive (FVP_Corstone_SSE-*_Linux64.tgz) already downloaded.")
@click.option("--force", is_flag=True, help="Install again even if the cache has it.")
def fvp_command(name: str, accept_eula: bool, source: str | None, force: bool) -> None:
    """Install Arm's Corstone FVP NAME at its pinned version and sha256.

    The fvp simulator then finds it with no MCUDEPLOY_FVP. Arm's licence must be accepted
    explicitly: without --accept-eula nothing is downloaded and the command says where to read it.
    """
    from ..console import console
    from ..setup.fvp import get_fvp, setup_fvp

    spec = get_fvp(name)
    item = setup_fvp(spec, accept_eula=accept_eula, source=source, force=force)
    state = "already installed" if item.cached else "installed"
    console.print(f"{name} FVP {spec.version} {state}: {item.path}", markup=False)
    for exe, rel in sorted(item.manifest.get("executables", {}).items()):
        console.print(f"  {exe}: {item.path / rel}", markup=False)


@command.command("status", epilog=EPILOG)
@json_option("Write the result as JSON ('-' = stdout).")
def status_command(json_out: Path | None) -> None:
    """What is installed in the cache, its version and path, and what each item unlocks."""
    from ..setup.status import status

    report = status()
    if emit_json(json_out, report):
        return
    from ..console import console

    console.print(f"cache: {report['cache']}", markup=False)
    if not report["items"]:
        console.print(
            "nothing installed yet: try `mcudeploy setup tflm` and `mcudeploy setup fvp corstone-300`"
        )
    for it in report["items"]:
        mark = " (default)" if it.get("default") else ""
        console.print(f"{it['kind']:<9} {it['name']} {it['version']}{mark}", markup=False)
        console.print(f"          {it['path']}", markup=False)
        if it.get("unlocks"):
            console.print(f"          unlocks: {it['unlocks']}", markup=False)
    for line in report["environment"]:
        console.print(line, markup=False)
