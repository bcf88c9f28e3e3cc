"""Stage ``harness``: a running target + a dataset -> per-sample results (JSON Lines) and a summary.

:class:`DeviceLink` speaks the frame protocol (mcudeploy.protocol) over a :class:`Transport`: every
request gets a fresh sequence number, replies are matched by it (a late reply to an abandoned request
is discarded, never taken for the current one), CRC or sequence errors and timeouts are retried after
a resync, and a fresh HELLO means the device was reset: it is re-checked, then the request is retried.
When the retries run out the sample is recorded as failed with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .. import protocol as P
from ..errors import DeviceMismatchError, InputError, LinkError, TargetError
from .targets.transport import Transport

SHA_PREFIX_MIN = 16  # hex digits of the model hash that must match
LOG_TAIL = 400  # bytes of device log text kept to explain a missing HELLO
_T = TypeVar("_T")


@dataclass(frozen=True)
class LinkPolicy:
    request_timeout: float = 10.0  # cap per request attempt (and the first wait, before any RTT is known)
    min_timeout: float = 0.1  # floor of the adaptive wait: 6x the smoothed round trip, growing per retry
    retries: int = 10  # attempts after the first
    frame_gap: float = 0.03  # a frame stalled this long (or 4x the RTT) mid-way lost bytes: retry
    hello_timeout: float = 20.0
    corrupt_grace: float = 0.25  # after unattributable garbage, wait 4x the RTT (this before one is known)
    max_resets_per_request: int = 3
    resync_pad: int = 32  # zero bytes sent before a retry: completes a request the device is stuck in


class DeviceReset(Exception):
    """The device was reset: a BOOT HELLO arrived (``hello``), or a reply carried FRESH (``hello`` None)."""

    def __init__(self, hello: P.Hello | None) -> None:
        super().__init__("device reset")
        self.hello = hello


class RequestFailed(TargetError):
    """One request could not be completed after every retry."""


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    corrupt: int = 0
    device_crc_errors: int = 0
    stale: int = 0
    resets: int = 0
    reopens: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


class DeviceLink:
    """Request/response over frames, with retries, resync and reset detection."""

    def __init__(
        self,
        transport: Transport,
        policy: LinkPolicy | None = None,
        *,
        log: Callable[[bytes], None] | None = None,
    ) -> None:
        self.transport = transport
        self.policy = policy or LinkPolicy()
        self.decoder = P.FrameDecoder()
        self.hello: P.Hello | None = None
        self.stats = LinkStats()
        self._log = log
        self._log_tail = b""  # the decoder's log is taken on every poll: keep its end for error hints
        self._events: deque[P.Frame | P.Corrupt] = deque()
        self._seq = 0
        self._rtt = 0.0
        self._last_rx = time.monotonic()

    # -- low level ------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1  # 0 is reserved for unsolicited boot HELLOs
        return self._seq

    def _poll(self) -> None:
        gap = max(self.policy.frame_gap, 4 * self._rtt)
        if self.decoder.pending >= P.HEADER_SIZE and time.monotonic() - self._last_rx > gap:
            seq, type_ = self.decoder.pending_header()
            if seq is not None:  # a checked header whose payload stalled: bytes were dropped, report it now
                self._events.append(P.Corrupt("frame cut short", seq, type_))
                self._events.extend(self.decoder.skip())
        try:
            data = self.transport.read_some()
        except LinkError:
            # A cut socket (proxy, network serial server) can come back: reopen once, else give up.
            self.stats.reopens += 1
            self.transport.reopen()
            return
        if data:
            self._last_rx = time.monotonic()
            self._events.extend(self.decoder.feed(data))
            text = self.decoder.take_log()
            if text:
                self._log_tail = (self._log_tail + text)[-LOG_TAIL:]
                if self._log is not None:
                    self._log(text)

    def _next_event(self, deadline: float) -> P.Frame | P.Corrupt | None:
        while not self._events:
            if time.monotonic() >= deadline:
                return None
            self._poll()
        return self._events.popleft()

    def _accept_hello(self, frame: P.Frame) -> P.Hello:
        try:
            hello = P.Hello.decode(frame.payload, frame.flags)
        except ValueError as e:
            raise DeviceMismatchError(
                f"{self.transport.url}: the device sent a malformed HELLO ({e})"
            ) from None
        self.hello = hello
        return hello

    # -- API ------------------------------------------------------------------------------------
    def wait_hello(self, timeout: float | None = None) -> P.Hello:
        """The device's HELLO: its boot announcement, or the reply to GET_HELLO (asked every 0.25 s
        after the first 0.5 s, for boards that booted before we connected or a HELLO lost to noise)."""
        limit = timeout or self.policy.hello_timeout
        deadline = time.monotonic() + limit
        next_ask = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            ev = self._next_event(min(deadline, next_ask))
            if isinstance(ev, P.Frame) and ev.type == P.MsgType.HELLO:
                return self._accept_hello(ev)
            if time.monotonic() >= next_ask:
                self.transport.write(
                    b"\0" * self.policy.resync_pad + P.encode_frame(P.MsgType.GET_HELLO, self._next_seq())
                )
                next_ask = time.monotonic() + 0.25
        log = (self._log_tail + bytes(self.decoder.log))[-LOG_TAIL:]
        raise LinkError(
            f"{self.transport.url}: no HELLO from the device within {limit:.0f} s",
            hint=f"is the firmware built in protocol mode? last bytes received: {log!r}"
            if log
            else "nothing at all was received: check the port, baud rate and that the device is running",
        )

    def request(self, type_: int, payload: bytes, reply_type: int) -> P.Frame:
        """Send a request and return its reply; raises DeviceReset on a fresh HELLO, RequestFailed
        when the retries run out, TargetError when the device rejects the request itself."""
        pol = self.policy
        self.stats.requests += 1
        reason = "no attempt made"
        for attempt in range(pol.retries + 1):
            if attempt:
                self.stats.retries += 1
            seq = self._next_seq()
            pad = b"\0" * pol.resync_pad if attempt else b""
            sent = time.monotonic()
            self.transport.write(pad + P.encode_frame(type_, seq, payload))
            wait = pol.request_timeout
            if self._rtt:  # a silent device (request header hit by noise) costs a few RTTs, not the cap
                wait = min(wait, max(pol.min_timeout, 6 * self._rtt) * (1 + attempt))
            deadline = sent + wait
            while True:
                ev = self._next_event(deadline)
                if ev is None:
                    self.stats.timeouts += 1
                    reason = f"no reply within {wait:.3g} s"
                    break
                if isinstance(ev, P.Corrupt):
                    self.stats.corrupt += 1
                    reason = f"corrupt reply ({ev.reason})"
                    if ev.seq == seq:
                        break  # our reply, damaged: ask again now
                    grace = max(0.005, 4 * self._rtt) if self._rtt else pol.corrupt_grace
                    deadline = min(deadline, time.monotonic() + grace)
                    continue
                if ev.type == P.MsgType.HELLO and ev.flags & P.FLAG_BOOT:
                    self.stats.resets += 1
                    raise DeviceReset(self._accept_hello(ev))
                if ev.flags & P.FLAG_FRESH and type_ != P.MsgType.GET_HELLO:
                    # reset since our last handshake (its BOOT HELLO was lost): re-check before trusting it
                    self.stats.resets += 1
                    raise DeviceReset(None)
                if ev.seq != seq:
                    self.stats.stale += 1  # a late reply to an earlier attempt
                    continue
                if ev.type == P.MsgType.ERROR:
                    try:
                        err = P.DeviceError.decode(ev.payload)
                    except ValueError:
                        reason = "malformed ERROR frame"
                        break
                    if err.code == P.ErrorCode.BAD_CRC:
                        self.stats.device_crc_errors += 1
                        reason = "the device received a corrupt request"
                        break
                    raise TargetError(f"{self.transport.url}: {err}")
                if ev.type == reply_type:
                    rtt = time.monotonic() - sent
                    self._rtt = rtt if not self._rtt else 0.8 * self._rtt + 0.2 * rtt
                    return ev
                self.stats.stale += 1
        raise RequestFailed(f"{reason} (after {pol.retries + 1} attempts)")

    def handshake(self) -> P.Hello:
        """GET_HELLO: the device's current HELLO (and it stops flagging replies FRESH). HELLO is the
        longest reply, so on a noisy link it is asked for until ``hello_timeout``, not ``retries`` times."""
        deadline = time.monotonic() + self.policy.hello_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                return self._accept_hello(self.request(P.MsgType.GET_HELLO, b"", P.MsgType.HELLO))
            except (DeviceReset, RequestFailed) as e:  # reset while we asked, or noise: ask again
                last = e
        raise RequestFailed(f"{self.transport.url}: no HELLO within {self.policy.hello_timeout:g} s ({last})")

    def infer(self, input_bytes: bytes) -> P.InferResult:
        f = self.request(P.MsgType.INFER, input_bytes, P.MsgType.INFER_RESULT)
        return _decode_reply(P.InferResult.decode, f)

    def bench(self, runs: int, input_bytes: bytes = b"") -> P.BenchResult:
        f = self.request(P.MsgType.BENCH, P.bench_request(runs, input_bytes), P.MsgType.BENCH_RESULT)
        return _decode_reply(P.BenchResult.decode, f)

    def profile(self, input_bytes: bytes) -> P.ProfileResult:
        f = self.request(P.MsgType.PROFILE, input_bytes, P.MsgType.PROFILE_RESULT)
        return _decode_reply(P.ProfileResult.decode, f)


def _decode_reply(decode: Callable[[bytes], _T], frame: P.Frame) -> _T:
    """A reply's payload parsed; a malformed one fails the request like any other bad reply."""
    try:
        return decode(frame.payload)
    except ValueError as e:
        raise RequestFailed(str(e)) from None


# -- checking the device ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Expectation:
    """What the host expects the device to be running."""

    sha256: str
    input_bytes: int
    output_bytes: int
    io: str = ""
    runtime: str | None = None

    @classmethod
    def from_model(cls, model: Any, runtime: str | None = None) -> Expectation:
        return cls(
            model.sha256,
            sum(t.nbytes for t in model.inputs),
            sum(t.nbytes for t in model.outputs),
            P.io_info(model),
            runtime,
        )


def check_hello(hello: P.Hello, exp: Expectation, where: str = "device") -> None:
    """Refuse a device running another model, protocol or I/O layout (DeviceMismatchError)."""
    if hello.proto != P.PROTOCOL_VERSION:
        raise DeviceMismatchError(
            f"{where} speaks protocol v{hello.proto}, this mcudeploy speaks v{P.PROTOCOL_VERSION}",
            hint="regenerate and rebuild the firmware with this mcudeploy",
        )
    n = min(len(hello.sha256), len(exp.sha256))
    if n < SHA_PREFIX_MIN or hello.sha256[:n] != exp.sha256[:n].lower():
        raise DeviceMismatchError(
            f"{where} runs model {hello.sha256[:16] or '?'}…, expected {exp.sha256[:16]}…",
            hint="flash the firmware built from this model, or pass the model the firmware was built from",
        )
    if (hello.input_bytes, hello.output_bytes) != (exp.input_bytes, exp.output_bytes):
        raise DeviceMismatchError(
            f"{where} has {hello.input_bytes} input / {hello.output_bytes} output bytes, "
            f"the model {exp.input_bytes} / {exp.output_bytes}"
        )
    if hello.io and exp.io and hello.io != exp.io:
        raise DeviceMismatchError(f"{where} reports I/O {hello.io!r}, the model {exp.io!r}")
    if exp.runtime and hello.runtime != exp.runtime:
        raise DeviceMismatchError(f"{where} runs the {hello.runtime!r} runtime, expected {exp.runtime!r}")


# -- results file (JSON Lines) ---------------------------------------------------------------------
def _jsonl(rec: dict[str, Any]) -> bytes:
    return (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def fingerprint_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between two run fingerprints, one phrase per key."""
    if not isinstance(old, dict):
        return ["the results record no fingerprint (written by an older mcudeploy, or not a results file)"]

    def short(v: Any) -> str:
        return "none" if v is None else (f"{v[:12]}…" if isinstance(v, str) and len(v) > 16 else repr(v))

    return [
        f"{k}: {short(old.get(k))} -> {short(new.get(k))}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


class ResultsMismatch(InputError):
    """A results file to resume was measured with another model, firmware, data or options."""

    def __init__(self, path: Path, changes: list[str]) -> None:
        super().__init__(
            f"{path} holds results of another run ({'; '.join(changes)})",
            hint="pass --fresh or another --out folder",
        )
        self.path = path
        self.changes = changes


@dataclass
class ResultsLog:
    """Append-only JSON Lines: one ``hello`` line per (re)connection, one ``sample`` line per result."""

    path: Path
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    hellos: list[dict[str, Any]] = field(default_factory=list)

    fingerprint: dict[str, Any] | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        resume: bool,
        sha256: str,
        fingerprint: dict[str, Any] | None = None,
    ) -> ResultsLog:
        """Start a new log, or resume one. With ``fingerprint`` (everything the results depend on),
        the log's first line records it and a resume with another fingerprint raises
        :class:`ResultsMismatch` naming what changed: old records are never mixed with new ones."""
        log = cls(Path(path), fingerprint=fingerprint)
        log.path.parent.mkdir(parents=True, exist_ok=True)
        if not resume or not log.path.exists() or log.path.stat().st_size == 0:
            start = {"kind": "start", "fingerprint": fingerprint} if fingerprint is not None else None
            log.path.write_bytes(_jsonl(start) if start else b"")
            return log
        data = log.path.read_bytes()
        if fingerprint is not None:
            try:
                head = json.loads(data.split(b"\n", 1)[0])
            except ValueError:
                head = None
            old = head.get("fingerprint") if isinstance(head, dict) and head.get("kind") == "start" else None
            if old != fingerprint:
                raise ResultsMismatch(log.path, fingerprint_changes(old, fingerprint))
        if data and not data.endswith(b"\n"):  # interrupted mid-line: drop the partial record
            data = data[: data.rfind(b"\n") + 1]
            with open(log.path, "r+b") as f:
                f.truncate(len(data))
        for n, line in enumerate(data.splitlines(), 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{log.path}:{n}: not a JSON line; pass --fresh to start over") from None
            if rec.get("kind") == "hello":
                if rec.get("sha256", "")[:SHA_PREFIX_MIN] != sha256[:SHA_PREFIX_MIN]:
                    raise InputError(
                        f"{log.path} holds results for model {rec.get('sha256', '?')[:16]}…, "
                        f"not {sha256[:16]}…",
                        hint="pass --fresh or another --out folder",
                    )
                log.hellos.append(rec)
            elif rec.get("kind") == "sample":
                log.records[int(rec["index"])] = rec  # the last record of an index wins
        return log

    def append(self, rec: dict[str, Any]) -> None:
        with open(self.path, "ab") as f:
            f.write(_jsonl(rec))
            f.flush()
        if rec.get("kind") == "sample":
            self.records[int(rec["index"])] = rec
        elif rec.get("kind") == "hello":
            self.hellos.append(rec)

    def done(self) -> set[int]:
        return {i for i, r in self.records.items() if r.get("status") == "ok"}


RUN_FILES = (
    "results.jsonl",
    "device.log",
    "summary.json",
    "samples.csv",
    "junit.xml",
    "profile.json",
    "profile.csv",
)


def move_aside(out: Path, names: Iterable[str]) -> Path:
    """Move the run's files in ``out`` into a new ``out/superseded-N`` folder (never overwritten)."""
    n = 1
    while (out / f"superseded-{n}").exists():
        n += 1
    dest = out / f"superseded-{n}"
    dest.mkdir()
    for name in names:
        if (out / name).exists():
            os.replace(out / name, dest / name)
    return dest


def arrays_sha256(*arrays: np.ndarray | None) -> str:
    """Hash of arrays' dtypes, shapes and bytes (what a run's data fingerprint is made of)."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# -- running a dataset ------------------------------------------------------------------------------
def quantize_inputs(model: Any, x: np.ndarray) -> np.ndarray:
    """Float samples -> the model input's raw dtype (already-quantized arrays pass through)."""
    from ..ml.quantio import quantize_input

    t = model.inputs[0]
    return quantize_input(x, t).reshape(len(x), *t.shape[1:])


def predict(output: bytes, dtype: str) -> int:
    """Top-1 class of a raw output (dequantization with a positive scale keeps the argmax)."""
    return int(np.argmax(np.frombuffer(output, dtype=np.dtype(dtype))))


def run_samples(
    link: DeviceLink,
    inputs: np.ndarray,
    *,
    exp: Expectation,
    results: ResultsLog,
    labels: np.ndarray | None = None,
    golden: np.ndarray | None = None,
    output_dtype: str = "int8",
    progress: Callable[[Iterable[int], int], Iterable[int]] | None = None,
) -> ResultsLog:
    """Send every not-yet-measured sample; append one JSON line per sample as its result arrives."""
    if link.hello is None:
        link.wait_hello()
    hello = link.handshake()
    check_hello(hello, exp, link.transport.url)
    results.append({"kind": "hello", **hello.to_dict()})
    done = results.done()
    todo = [i for i in range(len(inputs)) if i not in done]
    it: Iterable[int] = progress(todo, len(todo)) if progress else todo
    for i in it:
        raw = np.ascontiguousarray(inputs[i]).tobytes()
        rec: dict[str, Any] = {"kind": "sample", "index": i}
        if labels is not None:
            rec["label"] = int(labels[i])
        resets = 0
        retries_before = link.stats.retries
        while True:
            try:
                r = link.infer(raw)
            except DeviceReset:
                resets += 1
                hello = link.handshake()  # a reset may mean new firmware: check it again
                check_hello(hello, exp, f"{link.transport.url} (after a reset)")
                results.append({"kind": "hello", "reset": True, **hello.to_dict()})
                if resets <= link.policy.max_resets_per_request:
                    continue
                rec.update(status="failed", reason=f"device reset {resets} times during this sample")
            except RequestFailed as e:
                rec.update(status="failed", reason=e.message)
            else:
                if r.status != 0:
                    rec.update(status="failed", reason=f"runtime invoke returned {r.status}")
                elif len(r.output) != exp.output_bytes:
                    rec.update(
                        status="failed", reason=f"{len(r.output)} output bytes, expected {exp.output_bytes}"
                    )
                else:
                    rec.update(
                        status="ok",
                        output=r.output.hex(),
                        cycles=r.cycles,
                        npu_cycles=r.npu_cycles,
                        timer=hello.timer,
                        pred=predict(r.output, output_dtype),
                    )
                    if golden is not None:
                        rec["bit_exact"] = np.ascontiguousarray(golden[i]).tobytes() == r.output
            break
        rec["attempts"] = 1 + link.stats.retries - retries_before
        if resets:
            rec["resets"] = resets
        results.append(rec)
    return results


def measure(
    model: Any,
    transport: Transport,
    x: np.ndarray,
    y: np.ndarray | None,
    out_dir: str | os.PathLike[str],
    *,
    reference: Any | None = None,
    runtime: str | None = None,
    gates: Any | None = None,
    policy: LinkPolicy | None = None,
    resume: bool = True,
    bench_runs: int = 0,
    profile: bool = False,
    vela_per_layer: list[dict[str, Any]] | None = None,
    progress: Callable[[Iterable[int], int], Iterable[int]] | None = None,
    fingerprint: dict[str, Any] | None = None,
    notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The whole run on an open transport: HELLO check, dataset, optional BENCH, optional per-layer
    PROFILE of the first sample (profile.json / profile.csv, joined with ``vela_per_layer`` when
    given), summary files.

    Golden outputs come from host TFLM running ``reference`` (default: ``model``; pass the int8 model
    when ``model`` was compiled by Vela, which host TFLM cannot run). Returns the summary dict, whose
    ``files`` names what was written to ``out_dir``.

    A resume reuses earlier records only when the run's fingerprint is the same: the model, reference
    and runtime, plus ``fingerprint`` (the caller's firmware hash, board, target, and ``data``: the
    whole dataset's hash, so that ``--limit`` does not count as a change; default: the hash of the
    samples given). Otherwise the old results are moved to ``superseded-N/``, ``notice`` says why,
    and the run starts over.
    """
    from ..ml.tflm_host import run_tflm
    from . import results as R

    out = Path(out_dir)
    xq = quantize_inputs(model, x)
    ref = reference if reference is not None else model
    golden = None
    golden_acc = None
    if "ethos-u" not in ref.op_names():
        golden = run_tflm(ref, xq)
        if y is not None:
            preds = golden.reshape(len(golden), -1).argmax(axis=1)
            golden_acc = float((preds == y).mean())
    exp = Expectation.from_model(model, runtime)
    fp: dict[str, Any] = {
        "model": model.sha256,
        "reference": reference.sha256 if reference is not None else None,
        "runtime": runtime,
        **(fingerprint or {}),
    }
    fp.setdefault("data", arrays_sha256(xq, y))
    try:
        results = ResultsLog.open(out / "results.jsonl", resume=resume, sha256=model.sha256, fingerprint=fp)
    except ResultsMismatch as e:
        moved = move_aside(out, RUN_FILES)
        if notice is not None:
            notice(
                f"{e.path} was measured with something else ({'; '.join(e.changes)}): "
                f"moved the old results to {moved}, starting over"
            )
        resume = False
        results = ResultsLog.open(out / "results.jsonl", resume=False, sha256=model.sha256, fingerprint=fp)
    reused = len(results.records)
    logf = open(out / "device.log", "ab" if resume else "wb")  # noqa: SIM115 - closed in finally; appended as it arrives
    try:
        link = DeviceLink(transport, policy, log=lambda b: (logf.write(b), logf.flush()))
        run_samples(
            link,
            xq,
            exp=exp,
            results=results,
            labels=y,
            golden=golden,
            output_dtype=model.outputs[0].dtype,
            progress=progress,
        )
        bench = None
        if bench_runs:
            try:
                b = link.bench(bench_runs, np.ascontiguousarray(xq[0]).tobytes())
                bench = {
                    "runs": b.runs,
                    "status": b.status,
                    "min": b.min,
                    "max": b.max,
                    "mean": b.mean,
                    "npu_mean": b.npu_total / b.runs if b.runs else 0.0,
                }
            except (RequestFailed, DeviceReset) as e:
                bench = {"error": str(e)}
        prof = _profile(link, model, xq, out, vela_per_layer) if profile else None
    finally:
        logf.close()
    hello = results.hellos[-1]
    summary = R.summarize(
        results.records,
        n_samples=len(xq),
        hello=hello,
        golden_accuracy=golden_acc,
        bench=bench,
        gates=gates,
        link=link.stats.to_dict(),
    )
    summary["fingerprint"] = fp
    summary["resumed"] = reused  # records taken over from an interrupted run with the same fingerprint
    if prof is not None:
        summary["profile"] = prof.pop("summary")
        files = prof
    else:
        files = {}
    files |= R.write_results(out, summary, results.records)
    summary["files"] = {k: p.name for k, p in sorted(files.items())} | {
        "jsonl": "results.jsonl",
        "log": "device.log",
    }
    return summary


def profile_sample(
    link: DeviceLink, model: Any, raw: bytes, vela_per_layer: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """PROFILE one sample: the profile document (mcudeploy.device.profile), or ``{"error": why}``."""
    from .profile import build_profile

    hello = link.hello
    if hello is None or hello.layers == 0:
        return {"error": "the device's runtime cannot time layers (HELLO layers=0)"}
    try:
        r = link.profile(raw)
    except (RequestFailed, DeviceReset) as e:
        return {"error": str(e)}
    return build_profile(model, hello, r, vela_per_layer)


def _profile(
    link: DeviceLink, model: Any, xq: np.ndarray, out: Path, vela_per_layer: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """PROFILE the first sample; its files and a short summary (or the reason there is none)."""
    from .profile import write_profile

    doc = profile_sample(link, model, np.ascontiguousarray(xq[0]).tobytes(), vela_per_layer)
    if "error" in doc:
        return {"summary": doc}
    files: dict[str, Any] = dict(write_profile(out, doc))
    keys = ("unit", "status", "elapsed", "layers_sum", "coverage", "stack_used", "stack_size")
    files["summary"] = {k: doc[k] for k in keys} | {"layers": len(doc["layers"])}
    return files
