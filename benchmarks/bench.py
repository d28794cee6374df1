"""Side-by-side optimizer-step benchmark: gradtx, gradtx.foreach, Optax and torch.optim.

Every implementation is measured in the same run, on the same machine state, so the ratios are
meaningful even on a shared, noisy machine. For each parameter tree and optimizer it reports the
median step time (with min-max), the compile time, XLA's temporary memory and peak memory of the
donated step, and the fraction of the memory-bandwidth floor reached. The floor is the bytes an
optimizer must stream per parameter divided by the best donated in-place triad bandwidth
(`a = a + s * b`) measured in this run.

    python benchmarks/bench.py            # full run, writes benchmarks/RESULTS.md (~10-20 min)
    python benchmarks/bench.py --quick    # small trees, < 1 minute; what CI runs

Optax and PyTorch are optional: install the `bench` extra for Optax and `pip install
torch==2.13.0` for PyTorch; a missing peer is reported as such and skipped.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

try:
    import optax
except ImportError:  # optional peer
    optax = None
try:
    import torch
except ImportError:  # optional peer
    torch = None

LR, WD, MAX_NORM = 1e-3, 0.01, 1.0
WARMUP, TOTAL = 100, 10_000


# ---- parameter trees -------------------------------------------------------------------------


def gpt2_small_shapes() -> list[tuple[int, ...]]:
    """The parameter shapes of GPT-2 small (124M parameters)."""
    d, shapes = 768, [(50257, 768), (1024, 768)]
    for _ in range(12):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,)]  # ln_1, attention
        shapes += [(d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # ln_2, MLP
    return [*shapes, (d,), (d,)]


def trees(quick: bool) -> dict[str, tuple[list[tuple[int, ...]], str]]:
    if quick:
        return {
            "4 x 256K": ([(1 << 18,)] * 4, "float32"),
            "200 x 1,024": ([(1024,)] * 200, "float32"),
            "4 x 256K bf16": ([(1 << 18,)] * 4, "bfloat16"),
        }
    return {
        "4 x 4M": ([(1 << 22,)] * 4, "float32"),
        "2,000 x 1,024": ([(1024,)] * 2000, "float32"),
        "GPT-2 small (124M)": (gpt2_small_shapes(), "float32"),
        "4 x 4M bf16": ([(1 << 22,)] * 4, "bfloat16"),
    }


def make_tree(shapes, dtype, seed):
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {
        f"p{i:05d}": (0.02 * jax.random.normal(k, s, jnp.float32)).astype(dtype)
        for i, (k, s) in enumerate(zip(keys, shapes, strict=True))
    }


# ---- optimizers ------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    bytes_per_element: int  # arrays streamed per parameter (in units of the parameter's size)
    gradtx: Callable[[], object]
    optax: Callable[[], object] | None
    torch: Callable[[list], Callable[[], None]] | None


def _gx_schedule():
    return gradtx.warmup_cosine_decay_schedule(0.0, LR, WARMUP, TOTAL, 0.0)


def _ox_schedule():
    return optax.warmup_cosine_decay_schedule(0.0, LR, WARMUP, TOTAL, 0.0)


def _torch_lambda(step):
    import math

    if step < WARMUP:
        return step / WARMUP
    return 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (TOTAL - WARMUP)))


def _torch_clip_adamw(params):
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WD, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _torch_lambda)

    def step():
        torch.nn.utils.clip_grad_norm_(params, MAX_NORM, foreach=True)
        opt.step()
        sched.step()

    return step


def _torch_adamw(params):
    return torch.optim.AdamW(params, lr=LR, weight_decay=WD, fused=True).step


def _torch_sgd(params):
    return torch.optim.SGD(params, lr=LR, momentum=0.9, fused=True).step


def cases() -> list[Case]:
    ox = optax is not None
    th = torch is not None
    return [
        Case(
            "clip + AdamW + warmup-cosine",
            8,  # grads read twice, params, mu, nu read and written
            lambda: gradtx.chain(
                gradtx.clip_by_global_norm(MAX_NORM), gradtx.adamw(_gx_schedule(), weight_decay=WD)
            ),
            (
                lambda: optax.chain(
                    optax.clip_by_global_norm(MAX_NORM),
                    optax.adamw(_ox_schedule(), weight_decay=WD),
                )
            )
            if ox
            else None,
            _torch_clip_adamw if th else None,
        ),
        Case(
            "AdamW",
            7,
            lambda: gradtx.adamw(LR, weight_decay=WD),
            (lambda: optax.adamw(LR, weight_decay=WD)) if ox else None,
            _torch_adamw if th else None,
        ),
        Case(
            "Lion",
            5,
            lambda: gradtx.lion(LR / 10, weight_decay=WD),
            (lambda: optax.lion(LR / 10, weight_decay=WD)) if ox else None,
            None,  # torch.optim has no Lion
        ),
        Case(
            "SGD momentum 0.9",
            5,
            lambda: gradtx.sgd(LR, momentum=0.9),
            (lambda: optax.sgd(LR, momentum=0.9)) if ox else None,
            _torch_sgd if th else None,
        ),
    ]


# ---- measurement -----------------------------------------------------------------------------


@dataclass
class Result:
    times: list[float] = field(default_factory=list)
    compile_s: float | None = None
    temp_bytes: int | None = None
    peak_bytes: int | None = None
    error: str | None = None

    @property
    def median(self) -> float:
        return float(np.median(self.times))


def measure_jax(tx, apply, shapes, dtype, repeats) -> Result:
    params = make_tree(shapes, dtype, 0)
    grads = make_tree(shapes, dtype, 1)
    state = tx.init(params)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    result = Result(compile_s=time.perf_counter() - t0)
    mem = compiled.memory_analysis()
    if mem is not None:
        result.temp_bytes = mem.temp_size_in_bytes
        result.peak_bytes = (
            mem.argument_size_in_bytes
            + mem.output_size_in_bytes
            - mem.alias_size_in_bytes
            + mem.temp_size_in_bytes
        )
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        params, state = compiled(params, state, grads)
        jax.block_until_ready((params, state))
        if i >= 3:
            result.times.append(time.perf_counter() - t0)
    return result


def measure_torch(make_step, shapes, dtype, repeats) -> Result:
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    params = [torch.nn.Parameter(torch.randn(s, dtype=tdtype) * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, dtype=tdtype) * 0.02
    try:
        step = make_step(params)
        step()
    except (RuntimeError, NotImplementedError) as e:
        return Result(error=f"{type(e).__name__}: {str(e).splitlines()[0][:60]}")
    result = Result()
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        step()
        if i >= 2:
            result.times.append(time.perf_counter() - t0)
    return result


def triad_bandwidth(n: int, repeats: int) -> float:
    """Best bandwidth (bytes/s) of a donated, jitted `a = a + 0.5 * b` over float32 arrays."""
    f = jax.jit(lambda a, b: a + 0.5 * b, donate_argnums=0)
    a, b = jnp.ones((n,), jnp.float32), jnp.ones((n,), jnp.float32)
    times = []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        a = f(a, b)
        a.block_until_ready()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return 12 * n / min(times)


# ---- reporting -------------------------------------------------------------------------------


def fmt_ms(r: Result | None) -> str:
    if r is None:
        return "—"
    if r.error:
        return f"n/a ({r.error})"
    lo, hi = min(r.times) * 1e3, max(r.times) * 1e3
    return f"{r.median * 1e3:.2f} ({lo:.1f}-{hi:.1f})"


def fmt_ratio(a: Result | None, b: Result | None) -> str:
    if a is None or b is None or a.error or b.error:
        return "—"
    return f"{a.median / b.median:.2f}x"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"jax {jax.__version__}", f"gradtx {gradtx.__version__}"]
    versions.append(f"optax {optax.__version__}" if optax else "optax not installed")
    versions.append(f"torch {torch.__version__}" if torch else "torch not installed")
    return f"{cpu}, {os.cpu_count()} cores, {jax.default_backend()} backend; " + ", ".join(versions)


def run(quick: bool) -> str:
    repeats = 7 if quick else 15
    lines = []
    bw = triad_bandwidth((1 << 22) if quick else (1 << 26), repeats)
    lines.append(f"Machine: {machine()}")
    lines.append(f"Best donated triad bandwidth in this run: {bw / 1e9:.1f} GB/s\n")
    impls = ["gradtx", "gradtx.foreach", "optax", "torch"]
    for tree_name, (shapes, dtype) in trees(quick).items():
        n_params = sum(int(np.prod(s)) for s in shapes)
        itemsize = jnp.dtype(dtype).itemsize
        largest = max(int(np.prod(s)) for s in shapes) * itemsize
        lines.append(
            f"### {tree_name}: {len(shapes)} leaves, {n_params / 1e6:.1f}M {dtype} parameters\n"
        )
        lines.append(
            "| optimizer | impl | step ms, median (min-max) | compile s | temp MiB | "
            "peak / (p+g+state+largest) | % of floor |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        ratio_rows = []
        for case in cases():
            floor = case.bytes_per_element * itemsize * n_params / bw
            state_elems = {"AdamW": 2, "Lion": 1, "SGD momentum 0.9": 1}.get(case.name, 2)
            budget = (2 + state_elems) * n_params * itemsize + largest
            results: dict[str, Result | None] = {}
            first_line = len(lines)
            for impl in impls:
                gc.collect()
                try:
                    if impl == "gradtx":
                        results[impl] = measure_jax(
                            case.gradtx(), gradtx.apply_updates, shapes, dtype, repeats
                        )
                    elif impl == "gradtx.foreach":
                        results[impl] = measure_jax(
                            gradtx.foreach(case.gradtx()),
                            gradtx.apply_updates,
                            shapes,
                            dtype,
                            repeats,
                        )
                    elif impl == "optax":
                        results[impl] = (
                            None
                            if case.optax is None
                            else measure_jax(
                                case.optax(), optax.apply_updates, shapes, dtype, repeats
                            )
                        )
                    else:
                        results[impl] = (
                            None
                            if case.torch is None
                            else measure_torch(case.torch, shapes, dtype, repeats)
                        )
                except Exception as e:  # a failing peer is reported, not fatal
                    results[impl] = Result(error=f"{type(e).__name__}")
                r = results[impl]
                if r is None:
                    continue
                comp = f"{r.compile_s:.2f}" if r.compile_s is not None else "—"
                temp = f"{r.temp_bytes / 2**20:.1f}" if r.temp_bytes is not None else "—"
                peak = f"{r.peak_bytes / budget:.2f}" if r.peak_bytes is not None else "—"
                pct = f"{100 * floor / r.median:.0f}%" if r.times else "—"
                lines.append(
                    f"| {case.name} | {impl} | {fmt_ms(r)} | {comp} | {temp} | {peak} | {pct} |"
                )
            best = min(
                (
                    results[k]
                    for k in ("gradtx", "gradtx.foreach")
                    if results[k] and results[k].times
                ),
                key=lambda r: r.median,
            )
            ratio_rows.append(
                f"| {case.name} | {fmt_ratio(results['gradtx'], results['optax'])} | "
                f"{fmt_ratio(results['gradtx.foreach'], results['optax'])} | "
                f"{fmt_ratio(best, results['torch'])} | {floor * 1e3:.2f} |"
            )
            print("\n".join(lines[first_line:]), flush=True)
        lines.append("\nStep-time ratios (lower is better for gradtx):\n")
        lines.append(
            "| optimizer | gradtx / optax | gradtx.foreach / optax | best gradtx / torch "
            "| floor ms |"
        )
        lines.append("|---|---|---|---|---|")
        lines += ratio_rows
        lines.append("")
    lines += compile_scaling(quick)
    return "\n".join(lines)


def compile_scaling(quick: bool) -> list[str]:
    """Compile time of the clip + AdamW chain as the number of 1,024-element leaves grows."""
    counts = [50, 200] if quick else [500, 2000, 8000]
    lines = [
        "### Compile time of clip + AdamW + schedule vs number of leaves (1,024 each)\n",
        "| leaves | gradtx s | gradtx.foreach s | optax s |",
        "|---|---|---|---|",
    ]
    case = cases()[0]
    for n in counts:
        shapes = [(1024,)] * n
        row = []
        for impl in ("gradtx", "gradtx.foreach", "optax"):
            if (impl == "optax" and (case.optax is None or n > 2000)) or (
                impl == "gradtx" and n > 2000
            ):
                row.append("not run (minutes)")
                continue
            tx = {
                "gradtx": case.gradtx,
                "gradtx.foreach": lambda: gradtx.foreach(case.gradtx()),
                "optax": case.optax,
            }[impl]()
            apply = optax.apply_updates if impl == "optax" else gradtx.apply_updates
            r = measure_jax(tx, apply, shapes, "float32", 1)
            row.append(f"{r.compile_s:.1f}")
        lines.append(f"| {n} | " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small trees, under a minute")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    report = run(args.quick)
    command = "python benchmarks/bench.py" + (" --quick" if args.quick else "")
    text = f"# Benchmark results\n\nCommand: `{command}`\n\n{report}\n"
    print(text)
    if not args.no_write:
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
