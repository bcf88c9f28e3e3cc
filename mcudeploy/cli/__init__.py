"""The ``mcudeploy`` command: a thin layer over the Python API.

Each sub-command lives in its own module in this package and exposes ``command`` (a click command);
they are discovered in sorted order, so adding a command is adding a module. Errors from the
exception tree become exit codes (see :class:`mcudeploy.errors.ExitCode`); tracebacks only with --debug.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import click

from .. import __version__
from ..errors import ExitCode, MCUDeployError
from ._guard import guard

EPILOG = """\b
Exit codes: 0 ok · 1 a gate failed · 2 bad input · 3 missing tool · 4 target/link failure.
Start with `mcudeploy demo` (train → int8 → ladder) or `mcudeploy deploy -c examples/mcudeploy.toml`
(the whole flow, as `make demo` runs it); see `mcudeploy COMMAND --help`."""


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(super().list_commands(ctx))


@click.group(cls=_Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcudeploy")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """From a trained model to measured int8 firmware on Cortex-M and Ethos-U.

    \b
    Pipeline: quantize → inspect → evaluate → compile (Vela) → header/generate → build → run.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cmd = getattr(mod, "command", None)
        if isinstance(cmd, click.Command):
            guard(cmd)  # output paths checked before the work, --force, all outputs or none
            cli.add_command(cmd)


_discover()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn mcudeploy errors into exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="mcudeploy", standalone_mode=False)
    except MCUDeployError as e:
        if debug:
            raise
        _print_error(e)
        return int(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as e:
        e.show()
        return int(ExitCode.BAD_INPUT)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    return 0


def _print_error(e: MCUDeployError) -> None:
    from rich.markup import escape

    from ..console import err_console

    label = {1: "gate failed", 2: "error", 3: "missing", 4: "target error"}.get(int(e.exit_code), "error")
    # messages name files and sections like "[run]": escape them, or rich would take them for markup
    msg = escape(e.message)
    err_console.print(f"[bold red]{label}:[/] {msg}", highlight=False, markup=True, soft_wrap=True)
    if e.hint:
        err_console.print(f"  [yellow]hint:[/] {escape(e.hint)}", highlight=False, soft_wrap=True)


def run(*args: Any) -> int:
    """Call the CLI in-process (used by tests)."""
    return main([str(a) for a in args])
