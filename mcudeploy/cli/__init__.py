"""The ``mcudeploy`` command: a thin layer over the Python API.

Each sub-command lives in its own module in this package and exposes ``command`` (a click command);
they are discovered in sorted order, so adding a command is adding a module. Errors from the
exception tree become exit codes (see :class:`mcudeploy.errors.ExitCode`); tracebacks only with --debug.
"""

from __future__ import annotations

import copy
import functools
import importlib
import math
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


def _finite_floats(cmd: click.Command) -> None:
    """Every float option (plain or a FloatRange) also refuses NaN and infinity: no timeout, budget
    or gate threshold means anything as NaN, and inf passes every range check silently. A copy of
    the option's type gets the check, so click's shared FLOAT and the --help range text stay as
    they are."""
    for p in cmd.params:
        if isinstance(p.type, click.types.FloatParamType):
            p.type = copy.copy(p.type)
            p.type.convert = functools.partial(_finite_convert, p.type, type(p.type).convert)  # type: ignore[method-assign]


def _finite_convert(
    ptype: click.ParamType, convert: Any, value: Any, param: click.Parameter | None, ctx: click.Context | None
) -> Any:
    out = convert(ptype, value, param, ctx)
    if isinstance(out, float) and not math.isfinite(out):
        ptype.fail(f"{value!r} is not a finite number.", param, ctx)
    return out


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cmd = getattr(mod, "command", None)
        if isinstance(cmd, click.Command):
            _finite_floats(cmd)
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
    except click.exceptions.Abort as e:
        if isinstance(e.__cause__ or e.__context__, EOFError) and not debug:
            # click turns any EOFError into Abort: here a file that ended early, not the user's Ctrl-D
            click.echo(f"error: a file ended before its end ({e.__cause__ or e.__context__})", err=True)
            return int(ExitCode.BAD_INPUT)
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
    except OSError as e:
        # a path the user gave that cannot be read or written (a folder where a file is wanted, a
        # file where a folder is, no permission, a full disk): name it; code bugs are not OSErrors
        if debug or not e.filename:
            raise
        where = f"{e.filename} -> {e.filename2}" if e.filename2 else e.filename
        _print_error(MCUDeployError(f"{where}: {e.strerror or e}"))
        return int(ExitCode.BAD_INPUT)
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
