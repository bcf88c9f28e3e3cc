"""``mcudeploy boards``: the board registry as a table, as JSON, or one board in detail."""

from __future__ import annotations

import json
from typing import Any

import click


def _size(n: int) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
        if n >= factor:
            return f"{n / factor:.1f}{unit}"
    return str(n)


def board_detail(board: Any) -> dict[str, Any]:
    """Everything ``mcudeploy boards NAME`` shows, as plain data (also the --json shape)."""
    d = board.to_dict()
    d["gcc_flags"] = board.gcc_flags
    d["uart"] = {
        "kind": board.uart.kind,
        "base": f"0x{board.uart.base:08x}",
        "baud": board.uart.baud,
        "irq": board.uart.irq,
    }
    d["npu"] = (
        {
            "type": board.npu.type,
            "macs": board.npu.macs,
            "accelerator": board.npu.accelerator,
            "base": f"0x{board.npu.base:08x}",
            "irq": board.npu.irq,
            "system_config": board.npu.system_config,
            "memory_mode": board.npu.memory_mode,
        }
        if board.npu
        else None
    )
    d["flasher"] = dict(sorted(board.flasher.items())) or None
    d["simulator"] = {k: dict(sorted(v.items())) for k, v in sorted(board.simulator.items())}
    return d


@click.command("boards")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(name: str | None, as_json: bool) -> None:
    """List the known boards, or show one board's memory, placement, NPU, flasher and simulators.

    \b
    NAME may also be a path to a board .toml file; MCUDEPLOY_BOARDS_PATH adds folders of them.
    """
    from rich.table import Table

    from ..boards import get_board, list_boards
    from ..console import console

    if name is not None:
        board = get_board(name)
        detail = board_detail(board)
        if as_json:
            click.echo(json.dumps(detail, indent=2))
            return
        _show_board(console, board, detail)
        return

    boards = list_boards()
    if as_json:
        click.echo(json.dumps([board_detail(b) for b in boards], indent=2))
        return
    table = Table(title="mcudeploy boards", title_justify="left")
    table.add_column("name", no_wrap=True)
    for col in ("cpu", "clock", "npu", "memory", "flasher", "simulators"):
        table.add_column(col)
    for b in boards:
        ram = sum(r.length for r in b.memory.values() if r.kind == "ram")
        rom = sum(r.length for r in b.memory.values() if r.kind == "rom")
        mem = f"{_size(ram)} RAM" + (f" + {_size(rom)} ROM" if rom else "")
        table.add_row(
            b.name,
            b.cpu,
            f"{b.cpu_clock_hz / 1e6:g} MHz",
            b.npu.accelerator if b.npu else "-",
            mem,
            b.flasher.get("kind", "-"),
            ", ".join(sorted(b.simulator)) or "-",
        )
    console.print(table)


def _show_board(console: Any, board: Any, detail: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(board.name)}[/] - {escape(board.title)}")
    console.print(
        f"cpu {board.cpu} @ {board.cpu_clock_hz / 1e6:g} MHz, timer {board.timer}, "
        f"gcc: {' '.join(board.gcc_flags)}",
        markup=False,
    )
    regions = Table(title="memory", title_justify="left")
    for col in ("region", "origin", "end", "size", "kind", "placement"):
        regions.add_column(col)
    roles: dict[str, list[str]] = {}
    for role, region in sorted(board.placement.items()):
        roles.setdefault(region, []).append(role)
    for r in sorted(board.memory.values(), key=lambda r: r.origin):
        regions.add_row(
            r.name,
            f"0x{r.origin:08x}",
            f"0x{r.end - 1:08x}",
            _size(r.length),
            r.kind,
            ", ".join(roles.get(r.name, [])),
        )
    console.print(regions)
    u = detail["uart"]
    console.print(
        f"uart: {u['kind']} @ {u['base']}, {u['baud']} baud"
        + (f", irq {u['irq']}" if u["irq"] is not None else ""),
        markup=False,
    )
    if detail["npu"]:
        n = detail["npu"]
        console.print(
            f"npu: {n['accelerator']} @ {n['base']}, irq {n['irq']}; vela {n['system_config']} / "
            f"{n['memory_mode']}",
            markup=False,
        )
    else:
        console.print("npu: none", markup=False)
    console.print(f"flasher: {json.dumps(detail['flasher'])}", markup=False)
    for kind, sim in detail["simulator"].items():
        console.print(f"simulator {kind}: {json.dumps(sim)}", markup=False)
    for doc in board.docs:
        console.print(f"doc: {doc}", markup=False)
