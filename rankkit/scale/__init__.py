"""Scaling beyond one process: Ray for batch inference (``rankkit.scale.ray_backend``).

Training scales with ``accelerate launch`` (see :mod:`rankkit.train.loop`); nothing here
schedules work itself. Ray is an optional extra: ``pip install 'rankkit[ray]'``.
"""

from __future__ import annotations

from rankkit.scale.ray_backend import RayAddressError, RayBlockError, RayPipeline, RaySettings, check_address
from rankkit.scale.ray_encode import RayEncoder, build_dense_index_on_ray

__all__ = ["RayAddressError", "RayBlockError", "RayEncoder", "RayPipeline", "RaySettings", "build_dense_index_on_ray",
           "check_address"]
