"""One exception tree for mcudeploy; the CLI maps each branch to an exit code.

Every message is written for the user: it names the file, op, tensor, board or region at
fault and, where one exists, what to do about it. Tracebacks are shown only with --debug.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1  # accuracy, bit mismatch, memory budget, CPU-op budget ...
    BAD_INPUT = 2  # the user gave us something we cannot use
    MISSING_TOOL = 3  # a required tool or environment is missing
    TARGET_FAILURE = 4  # the board, simulator or link misbehaved
    INTERRUPTED = 130


class MCUDeployError(Exception):
    """Base of every error mcudeploy raises on purpose."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


# -- bad input (exit 2) -------------------------------------------------------------------
class InputError(MCUDeployError):
    """The user gave a file, option or value we cannot use."""


class ModelFormatError(InputError):
    """A model file is malformed, truncated or not a model at all."""


class DatasetError(InputError):
    """A dataset (representative or labelled) cannot be read or does not fit the model."""


class BoardError(InputError):
    """A board file is missing, malformed, or the board is unknown."""


class ConfigError(InputError):
    """A configuration (ini, toml, option combination) is invalid."""


class UnsupportedError(InputError):
    """The model uses something this stage or runtime does not support."""


class CompileError(InputError):
    """Vela (or another compiler) rejected the input."""


class ChecksumError(InputError):
    """A downloaded or supplied file does not have the pinned checksum."""


class EulaError(InputError):
    """A licence must be accepted explicitly (e.g. --accept-eula) before installing."""


# -- gates (exit 1) -----------------------------------------------------------------------
class GateError(MCUDeployError):
    """A check the user asked for (or that a stage requires) failed."""

    exit_code = ExitCode.GATE_FAILED


class NotFullyInt8Error(GateError):
    """The model is not fully int8; the message lists every offending op and tensor."""


class MemoryFitError(GateError):
    """Something does not fit the board's memory regions."""


class BudgetError(GateError):
    """A user budget (CPU ops, SRAM, flash, latency, accuracy) was exceeded."""


# -- environment (exit 3) -----------------------------------------------------------------
class ToolMissingError(MCUDeployError):
    """A required external tool, package or tree is missing."""

    exit_code = ExitCode.MISSING_TOOL


class OfflineError(ToolMissingError):
    """A download was needed and the network (or the server) could not be reached."""


class BuildError(MCUDeployError):
    """Compiling or linking generated firmware failed."""

    exit_code = ExitCode.MISSING_TOOL


# -- target (exit 4) ----------------------------------------------------------------------
class TargetError(MCUDeployError):
    """The target, simulator, flasher or link failed."""

    exit_code = ExitCode.TARGET_FAILURE


class LinkError(TargetError):
    """The serial link failed: no data, stream stopped, or frames cut short."""


class DeviceMismatchError(TargetError):
    """The device reports a different model, runtime or protocol than expected."""


class SimulatorError(TargetError):
    """A simulator (QEMU, FVP) failed to start, crashed or timed out."""


class FlashError(TargetError):
    """Flashing the target failed or could not be verified."""
