"""Data parallelism with a 1-D device mesh and ``NamedSharding`` (no pmap).

The batch is split along axis 0 over the mesh axis "data"; parameters and optimizer state are
replicated. The same code runs on one CPU, fake CPU devices (``--xla_force_host_platform_device_count``),
a GPU or a TPU slice; on several hosts call ``jax.distributed.initialize()`` first and every
process feeds its own slice of the global batch.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (all of them by default)."""
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(f"num_devices must be in [1, {len(devices)}] (devices available), got {num_devices}")
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


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Place every array of a batch (a pytree with leading axis B) on the mesh, split over B."""
    leaves = jax.tree_util.tree_leaves(batch)
    if leaves:
        check_divisible(leaves[0].shape[0], mesh)
    sharding = batch_sharding(mesh)
    if jax.process_count() > 1:
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
    return jax.device_put(batch, sharding)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Replicate a pytree (parameters, optimizer state) on every device of the mesh."""
    return jax.device_put(tree, replicated_sharding(mesh))
