"""Shared helpers of the benchmark scripts (not a test, not part of the library).

* :func:`set_threads` fixes the number of compute threads of XLA:CPU and PyTorch; it must run
  before ``jax`` is imported (XLA reads its flags once).
* :func:`interleaved` times several callables in turns (a, b, c, a, b, c, ...), so a change in
  the machine's load hits every contender alike; the medians are reported.
* :func:`header` is the "command, machine, versions, load average" block every table carries.
* :func:`maxrss_mb`, :func:`jax_memory_mb`: peak memory figures.
* :func:`append_report` appends a finished report to BENCHMARKS.md (``--append``).
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable


def threads_from_argv(argv=None, default: int = 1) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return default


def arg_value(flag: str, default=None, argv=None):
    """The value of ``flag`` (``--flag V`` or ``--flag=V``) on the command line, before argparse runs."""
    argv = sys.argv[1:] if argv is None else argv
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def set_threads(threads: int | None = None) -> int:
    """One compute thread each (default) for XLA:CPU and, once imported, PyTorch.

    On a shared, loaded 2-core machine a multi-threaded pool mostly measures contention (PyTorch
    ran 25-50x slower with 2 threads there), so both frameworks get the same single thread.
    Call before ``import jax``; ``threads=None`` reads ``--threads`` from the command line.
    """
    threads = threads_from_argv() if threads is None else threads
    if threads == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            # (not the bare token "intra_op_parallelism_threads=1" of the older scripts: XLA stops
            # reading XLA_FLAGS at a token without "--", dropping every flag after it)
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return threads


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:   # already set (it can only be set once per process)
        pass


def machine() -> str:
    """CPU model name from ``lscpu`` (or platform), plus the core count."""
    name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                name = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{name}, {os.cpu_count()} cores"


def load1() -> float:
    return os.getloadavg()[0]


def versions() -> str:
    import jax
    import jaxlib

    parts = [f"jax {jax.__version__}", f"jaxlib {jaxlib.__version__}"]
    try:
        import flax

        parts.append(f"flax {flax.__version__}")
    except ImportError:
        pass
    if "torch" in sys.modules:
        parts.append(f"torch {sys.modules['torch'].__version__}")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def devices() -> str:
    import jax

    d = jax.devices()
    desc = f"jax backend {jax.default_backend()} ({len(d)} device(s): {d[0].device_kind})"
    if "torch" in sys.modules:
        import torch

        desc += f"; torch {'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}"
    return desc


def header(threads: int, load_start: float, extra: str = "") -> str:
    """Command, machine, versions and load averages (at the start and now) as markdown lines."""
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    lines = [f"command: `{cmd}`",
             f"machine: {machine()}; {devices()}; {threads} compute thread(s) per framework",
             f"versions: {versions()}",
             f"load average (1 min): {load_start:.1f} at the start, {load1():.1f} at the end"]
    if extra:
        lines.append(extra)
    return "\n".join(f"- {l}" for l in lines)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, *, warmup: bool = True,
                log: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Wall-clock seconds of each callable, ``repeats`` times, in turns.

    Each callable must block until its work is done (``block_until_ready``). With ``warmup`` every
    callable runs once before timing (compilation, caches). Returns ``{name: [seconds, ...]}``.
    """
    if warmup:
        for name, fn in fns.items():
            fn()
            if log:
                log(f"  warmed up {name}")
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
        if log:
            log(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.3g}s" for k, v in times.items()))
    return times


def med(ts) -> float:
    return statistics.median(ts)


def spread(ts) -> str:
    """``min-max`` of a list of seconds, for the tables (how noisy the machine was)."""
    return f"{min(ts):.3g}-{max(ts):.3g}"


def maxrss_mb() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_during(fn: Callable[[], object]) -> float | None:
    """Growth of the resident set over a call, MiB: the peak RSS while ``fn`` runs minus the RSS
    before it. Linux only: the peak (VmHWM) is reset through ``/proc/self/clear_refs`` first, so
    earlier peaks of the process (imports, other frameworks, compilation) do not hide it. None when
    that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        fn()
        return None
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return (peak - before) / 1024.0


def jax_memory_mb(compiled) -> float | None:
    """XLA's static memory estimate of a compiled program (arguments + outputs + temporaries -
    aliased), MiB; None when the backend does not report it."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if m is None:
        return None
    total = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)
    return total / 2 ** 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def append_report(path: str, text: str) -> None:
    """Append ``text`` (a finished markdown section) to ``path``."""
    with open(path, "a") as f:
        f.write("\n" + text.rstrip() + "\n")
    log(f"appended to {path}")


def canonical_mode(mode: str):
    """Context: jadv's loop-body convolution rewrite (``jadv._cpu_loops``) forced "on" or "off"
    while tracing; restored afterwards (``jadv._cpu_loops.canonical_convs_mode``). Trace a new
    function object inside it (jit caches traces)."""
    from jadv._cpu_loops import canonical_convs_mode

    return canonical_convs_mode(mode)
