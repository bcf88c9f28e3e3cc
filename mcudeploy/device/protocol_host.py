"""A host-built device: the real C protocol (firmware_templates/protocol/) compiled with the host's gcc.

The UART is a TCP socket served by the device process (like QEMU's ``-serial tcp:...,server=on``), so
the harness, the proxy and the protocol are exercised end to end over a real socket without a
simulator. The runtime is either the toy int8 layer in ``protocol/host/mcd_host_runtime.c`` (reference:
:func:`toy_layer`) or any C sources implementing mcd_runtime.h (e.g. the generated C runtime).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import selectors
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from .._children import die_with_parent
from .._io import write_text_atomic
from .._resources import package_data
from ..errors import BuildError, SimulatorError, ToolMissingError

_PORT_RE = re.compile(rb"MCD_HOST_PORT=(\d+)\r?\n")  # whole line: it may arrive in pieces


def templates_dir() -> Path:
    return Path(str(package_data("mcudeploy.templates")))


def toy_layer(x: np.ndarray, output_bytes: int) -> np.ndarray:
    """Python reference of the host toy runtime: int8 in -> int8 out, same arithmetic as the C."""
    x = np.asarray(x, dtype=np.int8).reshape(len(x), -1).astype(np.int32)
    i = np.arange(output_bytes)[:, None]
    j = np.arange(x.shape[1])[None, :]
    w = ((i * 7 + j * 3) % 11 - 5).astype(np.int32)
    acc = (x @ w.T + 8) >> 4
    return np.clip(acc, -128, 127).astype(np.int8)


def toy_meta(input_bytes: int, output_bytes: int) -> dict[str, str]:
    """Meta macros for the toy runtime; the 'model hash' is derived from its shape."""
    sha = hashlib.sha256(f"toy {input_bytes} {output_bytes}".encode()).hexdigest()
    return {
        "MCD_MODEL_SHA256": f'"{sha}"',
        "MCD_INPUT_BYTES": f"{input_bytes}u",
        "MCD_OUTPUT_BYTES": f"{output_bytes}u",
        "MCD_ARENA_BYTES": "0u",
        "MCD_IO_INFO": f'"in=int8[1,{input_bytes}];out=int8[1,{output_bytes}]"',
    }


def build_host_device(
    out_dir: str | os.PathLike[str],
    meta: dict[str, str] | None = None,
    *,
    runtime_sources: Sequence[Path] = (),
    include_dirs: Sequence[Path] = (),
    board: str = "host",
    cc: str = "gcc",
) -> Path:
    """Compile the host device; ``meta`` macros go into a generated mcd_model_meta.h unless the
    runtime brings its own (then pass ``meta=None`` and its folder in ``include_dirs``)."""
    if shutil.which(cc) is None:
        raise ToolMissingError(
            f"{cc} not found: the host device needs a host C compiler", hint="apt-get install gcc"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = templates_dir() / "protocol"
    write_text_atomic(
        out / "mcd_board.h",
        "/* generated for the host device */\n#ifndef MCD_BOARD_H\n"
        f'#define MCD_BOARD_H\n#define MCD_BOARD_NAME "{board}"\n#define MCD_HAS_NPU 0\n#endif\n',
    )
    if meta is not None:
        lines = [
            "/* generated for the host device */",
            "#ifndef MCD_MODEL_META_H",
            "#define MCD_MODEL_META_H",
        ]
        lines += [f"#define {k} {v}" for k, v in sorted(meta.items())]
        write_text_atomic(out / "mcd_model_meta.h", "\n".join([*lines, "#endif", ""]))
    harness = templates_dir() / "harness"
    sources = [harness / "mcd_harness.c", t / "mcd_protocol.c", t / "host" / "mcd_host_platform.c"]
    sources.append(t / "host" / "mcd_host_main.c")
    sources += list(runtime_sources) or [t / "host" / "mcd_host_runtime.c"]
    # The firmware's own interface headers (platform/, app/) come last so a runtime's take precedence.
    incs = [out, *include_dirs, t, harness, templates_dir() / "platform", templates_dir() / "app"]
    exe = out / "mcd_host_device"
    cmd = [
        cc,
        "-std=c99",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        *[f"-I{p}" for p in incs],
        *map(str, sources),
        "-o",
        str(exe),
        "-lm",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"building the host device failed:\n{proc.stderr.strip()}")
    return exe


class HostDevice:
    """Runs the host device; ``url`` is its pyserial URL; ``reset()`` restarts it like a board reset."""

    def __init__(self, exe: Path, *, port: int = 0, start_timeout: float = 10.0) -> None:
        self.exe = exe
        self.start_timeout = start_timeout
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.resets = 0

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> HostDevice:
        env = dict(os.environ)
        if self.port:
            env["MCD_HOST_PORT"] = str(self.port)  # a reset keeps the same address
        self.proc = subprocess.Popen(
            [str(self.exe)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=die_with_parent(),  # never outlives mcudeploy, even after a kill -9
        )
        assert self.proc.stdout is not None
        # Read with a deadline, not readline(): a device that prints nothing and lives on must not hang us.
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout
        seen = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0 and sel.select(left):
                chunk = os.read(fd, 4096)
                seen = (seen + chunk)[-400:]
                m = _PORT_RE.search(seen)
                if m:
                    self.port = int(m.group(1))
                    return self
                if not chunk:  # EOF: the device exited
                    break
        self.stop()
        raise SimulatorError(
            f"host device {self.exe.name} did not start within {self.start_timeout:g} s "
            f"(last output {seen!r})"
        )

    def reset(self) -> None:
        """Power-cycle: kill the process and start it again on the same port."""
        self.stop()
        self.resets += 1
        for _ in range(50):  # the old listener may linger a moment
            try:
                self.start()
                return
            except SimulatorError:
                time.sleep(0.05)
        raise SimulatorError("host device did not come back after reset")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(timeout=10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        self.proc = None

    def __enter__(self) -> HostDevice:
        return self.start() if self.proc is None else self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
