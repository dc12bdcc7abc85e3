"""Data parallelism with a 1-D device mesh and ``NamedSharding`` (no pmap), on one process or
many (JAX's multi-controller runtime, ``jax.distributed``).

The batch is split along axis 0 over the mesh axis "data"; parameters and optimizer state are
replicated. The same code runs on one CPU, fake CPU devices (``--xla_force_host_platform_device_count``),
a GPU, a TPU slice, or several hosts:

* every process calls :func:`initialize` (``jax.distributed.initialize`` plus the CPU collectives
  setting) before anything else touches JAX;
* the mesh spans every device of every process (devices are ordered by process, so each
  process's devices hold one contiguous block of rows of a global batch);
* each process feeds only its rows of each global batch (:func:`process_rows`, then
  :func:`shard_batch` with ``global_size``), and reads replicated results (metrics, parameters)
  from its own devices;
* only the primary process (:func:`is_primary`, process 0) writes files.

On one multi-core CPU the same mechanism is what uses the cores: :func:`use_cpu_cores` exposes
one CPU device per core, and the batch-sharded programs then run one shard per core.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, local_devices: int | None = None, cpu_collectives: str = "gloo") -> None:
    """Join a multi-process run (call once per process, before any other JAX work).

    Args:
      coordinator: ``"HOST:PORT"`` of process 0's coordination service (every process passes the
        same). ``None``: JAX finds the cluster itself (Cloud TPU, SLURM, Open MPI, or the
        ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` variables).
      num_processes, process_id: the run's size and this process's rank (``0 <= process_id <
        num_processes``); ``None`` with ``coordinator=None`` as above.
      local_devices: CPU only: how many CPU devices this process exposes (``jax_num_cpu_devices``;
        e.g. 2 processes x 2 devices on one machine). Ignored on GPU/TPU.
      cpu_collectives: the CPU cross-process collectives (``"gloo"``; without one, CPU processes
        cannot all-reduce across each other). Set whether or not the run is on CPU: it only
        affects the CPU backend.

    Raises:
      ValueError: ``process_id`` outside ``[0, num_processes)``, or ``coordinator`` given without
        ``num_processes`` and ``process_id``.
    """
    if coordinator is not None:
        if num_processes is None or process_id is None:
            raise ValueError("a coordinator address needs num_processes and process_id too "
                             "(--num_processes N --process_id I)")
        if not isinstance(coordinator, str) or ":" not in coordinator:
            raise ValueError(f"coordinator must be 'HOST:PORT', got {coordinator!r}")
    if num_processes is not None and process_id is not None and not 0 <= int(process_id) < int(num_processes):
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    if local_devices is not None:
        jax.config.update("jax_num_cpu_devices", int(local_devices))
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def cpu_core_count() -> int:
    """The cores this process may run on (its CPU affinity set, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        return os.cpu_count() or 1


def use_cpu_cores(num_devices: int | None = None) -> int:
    """Expose ``num_devices`` CPU devices (default: one per core, :func:`cpu_core_count`) so that
    batch-sharded programs -- the train loop, ``robust_accuracy(..., shard=True)``, any jitted
    attack whose batch is placed with :func:`shard_batch` -- run one shard per core.

    Why: XLA:CPU runs the operations of one program almost entirely on one core; its intra-op
    thread pool only splits large convolutions and matrix products, so a small CNN's attack or
    train step gains nothing from a second core (BENCHMARKS.md, issue #19: a plain Flax CNN's
    PGD-10 at batch 256 on 2 idle cores, 561 img/s on one device vs 979 img/s batch-sharded over
    two). Sharded and unsharded programs compute the same per-example values up to float rounding.

    Call it right after ``import jax`` and before any JAX computation (the CPU device count is
    fixed when the backend starts); ``JADV_CPU_DEVICES=N`` (or ``auto``) in the environment makes
    ``import jadv`` call it. Only the CPU backend is affected; on a GPU/TPU host it is harmless.

    Returns:
      The number of CPU devices requested.

    Raises:
      ValueError: ``num_devices`` below 1.
      RuntimeError: JAX's backends were already initialized (with a different device count).
    """
    n = cpu_core_count() if num_devices is None else int(num_devices)
    if n < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError as e:
        from jax._src import xla_bridge
        if xla_bridge.backends_are_initialized() and len(jax.devices("cpu")) == n:
            return n
        raise RuntimeError(f"use_cpu_cores({n}) must run before the first JAX computation (JAX already "
                           f"started its CPU backend with {len(jax.devices('cpu'))} device(s)); call it right "
                           "after `import jax`, or set JADV_CPU_DEVICES before starting Python") from e
    return n


def _cpu_devices_from_env(value: str | None) -> int | None:
    """``JADV_CPU_DEVICES``: unset or empty -> None (leave JAX's default), ``auto`` -> one per
    core, else a positive integer."""
    if value is None or not value.strip():
        return None
    if value.strip().lower() == "auto":
        return cpu_core_count()
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"JADV_CPU_DEVICES must be a positive integer or 'auto', got {value!r}")
    return n


def is_primary() -> bool:
    """True in the process that writes files (process 0; always True without jax.distributed)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches this point (no-op on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (all of them by default). With several
    processes the mesh must span all of them (every process feeds its devices' rows)."""
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(f"num_devices must be in [1, {len(devices)}] (devices available), got {num_devices}")
    if jax.process_count() > 1 and num_devices != len(devices):
        raise ValueError(f"with {jax.process_count()} processes the mesh spans all {len(devices)} devices; "
                         f"num_devices={num_devices} would leave processes without devices (use None)")
    return Mesh(np.asarray(devices[:num_devices]), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that splits axis 0 (the batch) over the mesh's "data" axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device (parameters, optimizer state)."""
    return NamedSharding(mesh, P())


def check_divisible(batch_size: int, mesh: Mesh) -> None:
    """ValueError unless ``batch_size`` splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"batch size {batch_size} is not divisible by the number of devices {n}; "
                         f"use a multiple of {n} or fewer devices")


def process_rows(mesh: Mesh, batch_size: int) -> tuple[int, int]:
    """``(start, stop)``: the rows of a global batch of ``batch_size`` that this process feeds
    (those its devices hold under :func:`batch_sharding`); ``(0, batch_size)`` on one process.

    Raises:
      ValueError: ``batch_size`` does not divide over the mesh, or this process's devices do not
        hold one contiguous block of rows (a mesh whose devices are not ordered by process).
    """
    check_divisible(batch_size, mesh)
    if jax.process_count() == 1:
        return 0, batch_size
    return _process_rows(mesh, int(batch_size))


@functools.lru_cache(maxsize=64)
def _process_rows(mesh: Mesh, batch_size: int) -> tuple[int, int]:
    """:func:`process_rows` with several processes; cached: :func:`shard_batch` asks every step."""
    index = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
    spans = sorted((s[0].indices(batch_size)[:2] for s in index.values()))
    if not spans:
        raise ValueError(f"process {jax.process_index()} has no device in the mesh")
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        if start != stop:
            raise ValueError(f"the devices of process {jax.process_index()} hold rows {spans} of the batch, "
                             "not one contiguous block; order the mesh's devices by process")
    return spans[0][0], spans[-1][1]


def shard_batch(batch: Any, mesh: Mesh, *, global_size: int | None = None) -> Any:
    """Place every array of a batch (a pytree with leading axis B) on the mesh, split over B.

    ``global_size=None``: ``batch`` is the whole global batch (with several processes each takes
    its rows of it). ``global_size=G``: ``batch`` holds only this process's rows of a global batch
    of ``G`` rows (``process_rows(mesh, G)``), as each process of a multi-process run loads them.
    """
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves:
        return batch
    size = leaves[0].shape[0] if global_size is None else int(global_size)
    start, stop = process_rows(mesh, size)
    local = stop - start if global_size is not None else size
    for leaf in leaves:
        if leaf.shape[0] != local:
            raise ValueError(f"batch arrays have {leaf.shape[0]} rows, expected {local} "
                             f"(rows {start}:{stop} of a global batch of {size})")
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    if global_size is None:
        batch = jax.tree_util.tree_map(lambda x: x[start:stop], batch)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x), (size, *x.shape[1:])), batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Replicate a pytree (parameters, optimizer state) on every device of the mesh (with several
    processes every process passes the same values)."""
    if jax.process_count() > 1:
        tree = jax.device_get(tree)
    return jax.device_put(tree, replicated_sharding(mesh))


def to_host(x: Any) -> Any:
    """A pytree of (possibly multi-process) arrays as numpy, the whole array in every process:
    replicated or process-local arrays are read locally, batch-sharded ones gathered from all
    processes (a collective: every process must call it)."""
    def fetch(a):
        if not isinstance(a, jax.Array) or a.is_fully_addressable or a.is_fully_replicated:
            return np.asarray(a)
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return jax.tree_util.tree_map(fetch, x)

