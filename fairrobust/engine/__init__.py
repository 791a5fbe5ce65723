"""The batched / sharded engine: grid training in one jitted step, sharded sweeps.

``grid``: K grid members of one architecture trained together (members vmapped on
accelerators, ``lax.map``-ped on CPU), each following ``train.train`` step for step.
``parallel``: ``shard_map`` data parallelism over the devices of a 1-D mesh for
``smoothing.sample_counts`` (inputs or draws), ``attacks.robust_correct`` (batches)
and ``metrics.rejection_curves`` (rows), with results identical to one device; it
detects the XLA:CPU host-device convolution issue and warns.

Every public name of both modules is re-exported here.
"""

from fairrobust.engine.grid import MEMBER_STRATEGIES as MEMBER_STRATEGIES
from fairrobust.engine.grid import Hyper as Hyper
from fairrobust.engine.grid import group_configs as group_configs
from fairrobust.engine.grid import init_states as init_states
from fairrobust.engine.grid import make_grid_step as make_grid_step
from fairrobust.engine.grid import stack as stack
from fairrobust.engine.grid import structure_key as structure_key
from fairrobust.engine.grid import train_grid as train_grid
from fairrobust.engine.grid import unstack as unstack
from fairrobust.engine.parallel import AXIS as AXIS
from fairrobust.engine.parallel import HOST_DEVICES_WARNING as HOST_DEVICES_WARNING
from fairrobust.engine.parallel import HOST_DOT_BAD_VERSIONS as HOST_DOT_BAD_VERSIONS
from fairrobust.engine.parallel import SPLITS as SPLITS
from fairrobust.engine.parallel import device_mesh as device_mesh
from fairrobust.engine.parallel import host_conv_hazard as host_conv_hazard
from fairrobust.engine.parallel import pad_leading as pad_leading
from fairrobust.engine.parallel import rejection_curves as rejection_curves
from fairrobust.engine.parallel import replicate as replicate
from fairrobust.engine.parallel import robust_correct as robust_correct
from fairrobust.engine.parallel import sample_counts as sample_counts
from fairrobust.engine.parallel import shard_leading as shard_leading
from fairrobust.engine.parallel import warn_host_conv as warn_host_conv

__all__ = [
    "AXIS",
    "HOST_DEVICES_WARNING",
    "HOST_DOT_BAD_VERSIONS",
    "MEMBER_STRATEGIES",
    "SPLITS",
    "Hyper",
    "device_mesh",
    "group_configs",
    "host_conv_hazard",
    "init_states",
    "make_grid_step",
    "pad_leading",
    "rejection_curves",
    "replicate",
    "robust_correct",
    "sample_counts",
    "shard_leading",
    "stack",
    "structure_key",
    "train_grid",
    "unstack",
    "warn_host_conv",
]
