"""Stage ``codegen`` (and the memory-fit gate): generated projects, without a compiler."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.boards import Region, get_board
from mcudeploy.cli import run as cli_run
from mcudeploy.errors import ConfigError, MemoryFitError, UnsupportedError
from mcudeploy.firmware import codegen
from mcudeploy.firmware.memfit import Demand, check_fit, plan
from mcudeploy.ml.tflm_host import run_tflm
from tests.hyp import examples

QEMU = "qemu-an547"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def shrink(board, region: str, length: int):
    """The board with one region cut to ``length`` bytes."""
    mem = dict(board.memory)
    mem[region] = dataclasses.replace(mem[region], length=length)
    return dataclasses.replace(board, memory=mem)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


# -- determinism and atomicity ------------------------------------------------------------
@pytest.mark.parametrize("runtime", ["c", "tflm"], ids=["rt-c", "rt-tflm"])
def test_generate_twice_is_byte_identical(digits_int8, tmp_path: Path, runtime: str) -> None:
    board = get_board(QEMU)
    a = codegen.generate(digits_int8, board, tmp_path / "a", runtime=runtime)
    b = codegen.generate(digits_int8, board, tmp_path / "b" / "nested", runtime=runtime)
    ta, tb = tree(a.path), tree(b.path)
    assert ta == tb
    assert set(ta) == set(a.files)
    # no absolute paths or temp names leak into the project
    blob = b"".join(ta.values())
    assert str(tmp_path).encode() not in blob
    manifest = json.loads(ta["mcudeploy.json"])
    assert manifest["runtime"] == runtime and manifest["model"]["sha256"] == digits_int8.sha256
    assert manifest["files"] == {k: manifest["files"][k] for k in sorted(manifest["files"])}


def test_failed_generation_leaves_nothing(digits_int8, tmp_path: Path) -> None:
    board = shrink(get_board(QEMU), "sram", 1024)  # the arena region is far too small
    with pytest.raises(MemoryFitError):
        codegen.generate(digits_int8, board, tmp_path / "proj", runtime="c")
    assert leftovers(tmp_path) == []  # no project folder, no staging folder


def test_failed_regeneration_keeps_the_old_project(digits_int8, tmp_path: Path) -> None:
    good = codegen.generate(digits_int8, get_board(QEMU), tmp_path / "proj", runtime="c")
    before = tree(good.path)
    with pytest.raises(MemoryFitError):
        codegen.generate(digits_int8, shrink(get_board(QEMU), "bram", 2048), good.path, runtime="c")
    assert tree(good.path) == before
    assert leftovers(tmp_path) == ["proj"]


# -- memory fit -----------------------------------------------------------------------------
def test_memory_fit_refusal_names_the_region(digits_int8, tmp_path: Path) -> None:
    board = shrink(get_board(QEMU), "sram", 1024)
    with pytest.raises(MemoryFitError) as exc:
        codegen.generate(digits_int8, board, tmp_path / "p", runtime="tflm")
    msg = str(exc.value)
    assert "region 'sram'" in msg and "arena" in msg
    assert "does not fit" in msg  # the region table marks the failing row
    table_rows = [ln for ln in msg.splitlines() if ln.startswith(("itcm", "bram", "dtcm", "sram", "ddr"))]
    assert [r.split()[0] for r in table_rows] == ["itcm", "bram", "dtcm", "sram", "ddr"]
    assert sum("<--" in r for r in table_rows) == 1 and "<--" in table_rows[3]


def test_memory_fit_model_too_big_for_its_region(digits_int8, tmp_path: Path) -> None:
    board = shrink(get_board(QEMU), "ddr", digits_int8.size - 1)  # the tflm runtime keeps the model in ddr
    with pytest.raises(MemoryFitError, match=r"region 'ddr' needs 11,?\d+ B"):
        codegen.generate(digits_int8, board, tmp_path / "p", runtime="tflm")


def test_memfit_read_only_region_refuses_writable_roles() -> None:
    board = get_board("nrf52840dk")  # flash is kind="rom"
    flash = next(r for r in board.memory.values() if r.kind == "rom")
    ram_role = next(role for role, name in board.placement.items() if name != flash.name)
    moved = dataclasses.replace(board, placement={**board.placement, "arena": flash.name})
    with pytest.raises(MemoryFitError, match=f"region '{flash.name}' is read-only but holds arena"):
        check_fit(moved, [Demand("arena", 16, "arena")])
    assert check_fit(board, [Demand(ram_role, 16, "x")]).ok


@examples(40)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["code", "model", "arena", "data", "stack", "vectors"]),
            st.integers(0, 3 * 1024 * 1024),
        ),
        max_size=8,
    )
)
def test_memfit_plan_adds_up(demands: list[tuple[str, int]]) -> None:
    board = get_board(QEMU)
    report = plan(board, [Demand(role, n, role) for role, n in demands])
    assert sum(r.used for r in report.regions) == sum(n for _, n in demands)
    for r in report.regions:
        expected = sum(n for role, n in demands if board.region_for(role).name == r.region.name)
        assert r.used == expected
        assert r.fits == (expected <= r.region.length)
    assert report.ok == all(r.fits for r in report.regions)


# -- contents -------------------------------------------------------------------------------
# TFLM's MicroMutableOpResolver registration methods for the digits CNN's operators.
TFLM_METHODS = {
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "FULLY_CONNECTED": "AddFullyConnected",
    "MAX_POOL_2D": "AddMaxPool2D",
    "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "ethos-u": "AddEthosU",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "L2_NORMALIZATION": "AddL2Normalization",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
}


@pytest.mark.parametrize(("op", "method"), sorted(TFLM_METHODS.items()))
def test_resolver_method_names(op: str, method: str) -> None:
    assert codegen.resolver_method(op) == method


def test_resolver_refuses_unknown_custom_op() -> None:
    with pytest.raises(UnsupportedError, match="my-op"):
        codegen.resolver_method("my-op")


def test_op_resolver_lists_exactly_the_models_ops(digits_int8, tmp_path: Path) -> None:
    p = codegen.generate(digits_int8, get_board(QEMU), tmp_path / "p", runtime="tflm")
    src = (p.path / "src" / "mcd_runtime_tflm.cc").read_text()
    calls = re.findall(r"resolver->(Add\w+)\(\)", src)
    ops = {op.opcode for op in digits_int8.operators}
    assert sorted(calls) == sorted(TFLM_METHODS[op] for op in ops)  # each op once, nothing else
    assert int(re.search(r"kNumOps = (\d+);", src).group(1)) == len(ops)
    assert "mcd_npu" not in src  # no NPU code for a CPU-only model


def test_test_vectors_are_host_tflm_outputs(digits_int8, digits_split, tmp_path: Path) -> None:
    t = digits_int8.inputs[0]
    x = codegen.load_inputs(digits_int8, _save(tmp_path, digits_split.x_test[:5]), 5)
    assert x.dtype == np.int8 and x.shape == (5, *t.shape[1:])
    p = codegen.generate(digits_int8, get_board(QEMU), tmp_path / "p", runtime="c", inputs=x)
    text = (p.path / "src" / "mcd_test_vectors.h").read_text()
    ins, outs = (_c_rows(text, name) for name in ("mcd_tv_inputs", "mcd_tv_outputs"))
    assert ins == [row.tobytes() for row in x]
    expect = run_tflm(digits_int8, x)
    assert outs == [row.astype(np.int8).tobytes() for row in expect]


def _save(tmp_path: Path, x: np.ndarray) -> Path:
    path = tmp_path / "x.npz"
    np.savez(path, x=x)
    return path


def _c_rows(text: str, name: str) -> list[bytes]:
    body = text.split(name, 1)[1].split("};", 1)[0]
    return [
        bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", row))
        for row in re.findall(r"\{([^{}]*)\}", body)
    ]


def test_linker_script_follows_the_board(digits_int8, tmp_path: Path) -> None:
    board = get_board(QEMU)
    p = codegen.generate(digits_int8, board, tmp_path / "p", runtime="c")
    ld = (p.path / "linker.ld").read_text()
    for r in board.memory.values():
        assert re.search(
            rf"{r.name.upper()} \(rwx\) : ORIGIN = 0x{r.origin:08X}, LENGTH = 0x{r.length:X}", ld
        )
    assert re.search(rf"\.mcd_arena \(NOLOAD\).*> {board.placement['arena'].upper()}", ld)
    assert re.search(rf"\.vectors .*> {board.placement['vectors'].upper()}", ld)


def test_timer_follows_the_target() -> None:
    qemu = codegen.timer_config(get_board(QEMU), "qemu")
    assert qemu["name"] == "icount-instructions" and qemu["icount"]
    fvp = codegen.timer_config(get_board("corstone-300"), "fvp")
    assert fvp == {"kind": "dwt", "name": "dwt-cycles", "icount": False, "icount_shift": 0}
    assert codegen.default_target(get_board(QEMU)) == "qemu"
    assert codegen.default_target(get_board("nucleo-h743zi2")) == "hardware"


def test_unknown_uart_is_refused_before_writing(digits_int8, tmp_path: Path) -> None:
    import dataclasses

    nrf = get_board("nrf52840dk")
    board = dataclasses.replace(nrf, uart=dataclasses.replace(nrf.uart, kind="acme-uart"))
    with pytest.raises(UnsupportedError, match=f"board '{board.name}'.*'acme-uart'.*have: .*nrf-uart"):
        codegen.generate(digits_int8, board, tmp_path / "p", runtime="c")
    assert leftovers(tmp_path) == []


def test_bad_options(digits_int8, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'nope'"):
        codegen.generate(digits_int8, get_board(QEMU), tmp_path / "p", runtime="nope")
    with pytest.raises(ConfigError, match="unknown mode"):
        codegen.generate(digits_int8, get_board(QEMU), tmp_path / "p", mode="bogus")
    assert leftovers(tmp_path) == []


def test_vela_model_gets_the_ethos_u_op_and_driver(digits_int8, tmp_path: Path) -> None:
    from mcudeploy.ml.vela import compile_for_npu

    board = get_board("corstone-300")
    npu_model = compile_for_npu(digits_int8, board=board, out_dir=tmp_path / "vela").model
    with pytest.raises(UnsupportedError, match="no NPU"):
        codegen.generate(npu_model, get_board(QEMU), tmp_path / "cpu", runtime="tflm", reference=digits_int8)
    with pytest.raises(UnsupportedError, match="--reference"):
        codegen.generate(npu_model, board, tmp_path / "noref", runtime="tflm")
    p = codegen.generate(npu_model, board, tmp_path / "npu", runtime="tflm", reference=digits_int8)
    src = (p.path / "src" / "mcd_runtime_tflm.cc").read_text()
    assert "resolver->AddEthosU()" in src and "mcd_npu_init()" in src
    npu = (p.path / "src" / "mcd_npu.c").read_text()
    assert f"0x{board.npu.base:08X}" in npu and "ethosu_init" in npu
    scratch = sum(t.nbytes for t in npu_model.tensors if not t.is_constant)
    assert p.arena_bytes >= scratch
    cmake = (p.path / "CMakeLists.txt").read_text()
    assert "ethos_u_core_driver" in cmake


# -- CLI ----------------------------------------------------------------------------------
def test_cli_generate(digits_int8_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "proj"
    assert cli_run("generate", digits_int8_path, "--board", QEMU, "--runtime", "c", "-o", out) == 0
    assert (out / "CMakeLists.txt").is_file() and (out / "mcudeploy.json").is_file()
    assert "mcudeploy build" in capsys.readouterr().out
    assert cli_run("generate", digits_int8_path, "--board", "no-such-board", "-o", tmp_path / "x") == 2


def test_cli_generate_memory_refusal_exit_code(digits_int8_path: Path, tmp_path: Path) -> None:
    board_file = tmp_path / "tiny.toml"
    src = Path(get_board(QEMU).source)
    text = (Path(__file__).resolve().parents[1] / "boards" / src.name).read_text()
    board_file.write_text(
        text.replace(
            'sram = { origin = 0x31000000, length = "2M" }', 'sram = { origin = 0x31000000, length = "1K" }'
        )
    )
    assert 'length = "1K"' in board_file.read_text()
    assert cli_run("generate", digits_int8_path, "--board", board_file, "-o", tmp_path / "p") == 1
    assert not (tmp_path / "p").exists()


def test_regions_sorted_in_fit_report() -> None:
    report = plan(get_board(QEMU), [])
    origins = [r.region.origin for r in report.regions]
    assert origins == sorted(origins) and all(isinstance(r.region, Region) for r in report.regions)


def test_regeneration_keeps_the_build_folder(digits_int8, tmp_path: Path) -> None:
    p = codegen.generate(digits_int8, get_board(QEMU), tmp_path / "p", runtime="c")
    marker = p.path / "build" / "CMakeCache.txt"
    marker.parent.mkdir()
    marker.write_text("cached")
    (p.path / "src" / "stale.c").write_text("left over")
    codegen.generate(digits_int8, get_board(QEMU), p.path, runtime="c")
    assert marker.read_text() == "cached"  # an incremental rebuild stays possible
    assert not (p.path / "src" / "stale.c").exists()  # everything else is replaced whole


def test_meta_header_says_where_the_arena_size_comes_from(digits_int8, tmp_path: Path) -> None:
    board = get_board(QEMU)

    def meta(p: codegen.Project) -> str:
        return (p.path / "src" / "mcd_model_meta.h").read_text()

    c = codegen.generate(digits_int8, board, tmp_path / "c", runtime="c")
    assert "static memory plan" in meta(c) and f"#define MCD_ARENA_BYTES {c.arena_bytes}u" in meta(c)
    tflm = codegen.generate(digits_int8, board, tmp_path / "tflm", runtime="tflm")
    assert "measured on the host" in meta(tflm) and f"MCD_ARENA_BYTES {tflm.arena_bytes}u" in meta(tflm)
    given = codegen.generate(digits_int8, board, tmp_path / "given", runtime="tflm", arena_bytes=40_000)
    assert "given by the user" in meta(given) and "#define MCD_ARENA_BYTES 40000u" in meta(given)
    assert "given by the user" not in meta(c) + meta(tflm)


def test_cli_runtime_choices_are_the_registry():
    """--runtime's choices are a literal (fast --help); they must name exactly the registry's runtimes."""
    from mcudeploy.cli.generate import _RUNTIMES
    from mcudeploy.firmware.runtimes import RUNTIMES

    assert sorted(_RUNTIMES) == sorted(RUNTIMES)


def _import_edges() -> dict[str, set[str]]:
    """mcudeploy's module graph: each module -> the mcudeploy modules it imports (lazily too)."""
    root = Path(__file__).resolve().parents[1] / "mcudeploy"
    mods = {
        ".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in root.rglob("*.py")
    }
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] if node.level else [])
                base = (
                    ".".join(x for x in (base, node.module or "") if x) if node.level else (node.module or "")
                )
                for a in node.names:
                    cand = f"{base}.{a.name}"
                    edges[m].add(cand if cand in mods else base)
            elif isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names)
    return {m: {t for t in ts if t in mods and t != m} for m, ts in edges.items()}


def test_import_graph_has_no_cycles():
    """Stages depend one way (DESIGN.md): no module imports one that imports it back, even lazily."""
    edges = _import_edges()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            v = todo.pop()
            if v == goal:
                return True
            if v not in seen:
                seen.add(v)
                todo.extend(edges[v])
        return False

    cycles = sorted({" <-> ".join(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not cycles, cycles


def test_wheel_ships_every_package():
    """pyproject lists packages by hand (the data folders are mapped in): a subpackage missing from the
    list would be absent from the wheel while every test here, run from the checkout, still passes."""
    import tomllib

    repo = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(repo).parts) for init in (repo / "mcudeploy").rglob("__init__.py")
    }
    assert on_disk <= listed, sorted(on_disk - listed)
    assert listed - on_disk == {"mcudeploy.boards_data", "mcudeploy.templates"}


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (also inside top-level if/try/with blocks)."""
    names: set[str] = set()

    def walk(stmts: list[ast.stmt]) -> None:
        for s in stmts:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(s.name)
            elif isinstance(s, (ast.Assign, ast.AnnAssign)):
                targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(s, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in s.names)
            elif isinstance(s, (ast.If, ast.Try, ast.With)):
                walk([*s.body, *getattr(s, "orelse", []), *getattr(s, "finalbody", [])])
                for h in getattr(s, "handlers", []):
                    walk(h.body)

    walk(tree.body)
    return names


def test_every_mcudeploy_reference_resolves():
    """Every import of an mcudeploy module, lazy ones in function bodies included, and every
    "mcudeploy.module[.name|:name]" string (mock targets, the runtime registry, ``python -m``) names a
    module and a name that exist: collection alone misses a stale path in a function body or a string."""
    repo = Path(__file__).resolve().parents[1]
    files = {
        p: p.relative_to(repo) for d in ("mcudeploy", "tests", "benchmarks") for p in (repo / d).rglob("*.py")
    }
    mods = {".".join(r.with_suffix("").parts).removesuffix(".__init__"): p for p, r in files.items()}
    mods = {m: p for m, p in mods.items() if m.split(".")[0] == "mcudeploy"}
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in files}
    defs = {m: _bound_names(trees[p]) for m, p in mods.items()}
    firsts = {m.split(".")[1] for m in mods if "." in m}
    # a module's name, wherever it lives ("mcudeploy.arena_probe" is stale); cli's are also junit suites
    firsts |= {m.rsplit(".", 1)[1] for m in mods if "." in m and not m.startswith("mcudeploy.cli.")}

    def check(where: str, module: str, names: list[str]) -> str | None:
        if module not in mods:
            return f"{where}: no module {module}"
        missing = [n for n in names if f"{module}.{n}" not in mods and n not in defs[module]]
        return f"{where}: {module} has no {', '.join(missing)}" if missing else None

    bad = []
    for p, r in files.items():
        mod = ".".join(r.with_suffix("").parts).removesuffix(".__init__")
        pkg = mod if p.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(trees[p]):
            where = f"{r}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom):
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
                base = ".".join([*parts, *([node.module] if node.module else [])])
                if base.split(".")[0] == "mcudeploy":
                    bad.append(check(where, base, [a.name for a in node.names if a.name != "*"]))
            elif isinstance(node, ast.Import):
                bad += [check(where, a.name, []) for a in node.names if a.name.split(".")[0] == "mcudeploy"]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                ref = re.fullmatch(r"(mcudeploy(?:\.\w+)+)(?::(\w+))?", node.value)
                if ref is None:
                    continue
                dotted = ref[1].split(".")
                if dotted[1] not in firsts and not ref[2] and len(dotted) < 3:  # "mcudeploy.json": a file
                    continue
                known = [i for i in range(len(dotted), 0, -1) if ".".join(dotted[:i]) in mods]
                base_len = known[0] if known else len(dotted)
                rest = dotted[base_len:] + ([ref[2]] if ref[2] else [])
                bad.append(check(where, ".".join(dotted[:base_len]), rest[:1]))
    bad = [b for b in bad if b]
    assert not bad, bad


def test_sides_import_downwards_only():
    """The package is grouped by side, in pipeline order: ml/ knows nothing of firmware/ or device/,
    firmware/ nothing of device/ (device/ reads the firmware's layout, e.g. the C runtime's fused steps
    for its profile rows), and no side reaches up into the orchestration (pipeline, deploy, CLI...)."""
    side = {"ml": 0, "firmware": 1, "device": 2}
    top = ("cli", "pipeline", "deploy", "deploy_config", "deploy_report", "demo", "report", "browser", "ci")
    up = {f"mcudeploy.{m}" for m in (*top, "pytest_plugin")}

    def side_of(mod: str) -> str | None:
        parts = mod.split(".")
        return parts[1] if len(parts) > 2 and parts[1] in side else None

    bad = []
    for m, targets in _import_edges().items():
        if (s := side_of(m)) is None:
            continue
        for t in sorted(targets):
            ts = side_of(t)
            wrong_side = ts is not None and ts != s and side[ts] >= side[s]
            if wrong_side or t in up or t.startswith("mcudeploy.cli."):
                bad.append(f"{m} -> {t}")
    assert not bad, bad
