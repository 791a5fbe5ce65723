"""The batched / sharded engine: grid training in one jitted step, sharded sweeps.

``grid``: K grid members of one architecture trained together (members vmapped on
accelerators, ``lax.map``-ped on CPU), each following ``train.train`` step for step.
``parallel``: ``shard_map`` data parallelism over the devices of a 1-D mesh for
``smoothing.sample_counts`` (inputs or draws), ``attacks.robust_correct`` (batches)
and ``metrics.rejection_curves`` (rows), with results identical to one device; it
detects the XLA:CPU host-device convolution issue and warns; ``put`` / ``fetch`` place
inputs on a mesh and bring results back, also across ``jax.distributed`` processes.
``runtime``: the devices and processes a study runs on (``Runtime``), JAX's
persistent compilation cache and ``jax.distributed`` start-up.

Every public name of the three modules is re-exported here.
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
from fairrobust.engine.parallel import fetch as fetch
from fairrobust.engine.parallel import host_conv_hazard as host_conv_hazard
from fairrobust.engine.parallel import pad_leading as pad_leading
from fairrobust.engine.parallel import put as put
from fairrobust.engine.parallel import rejection_curves as rejection_curves
from fairrobust.engine.parallel import replicate as replicate
from fairrobust.engine.parallel import resolve_members as resolve_members
from fairrobust.engine.parallel import robust_correct as robust_correct
from fairrobust.engine.parallel import robust_correct_members as robust_correct_members
from fairrobust.engine.parallel import robust_predict_members as robust_predict_members
from fairrobust.engine.parallel import sample_counts as sample_counts
from fairrobust.engine.parallel import shard_leading as shard_leading
from fairrobust.engine.parallel import warn_host_conv as warn_host_conv
from fairrobust.engine.runtime import COMPILATION_CACHE_MAX_BYTES as COMPILATION_CACHE_MAX_BYTES
from fairrobust.engine.runtime import Runtime as Runtime
from fairrobust.engine.runtime import compilation_cache_dir as compilation_cache_dir
from fairrobust.engine.runtime import enable_compilation_cache as enable_compilation_cache
from fairrobust.engine.runtime import initialize_distributed as initialize_distributed

__all__ = [
    "AXIS",
    "COMPILATION_CACHE_MAX_BYTES",
    "HOST_DEVICES_WARNING",
    "HOST_DOT_BAD_VERSIONS",
    "MEMBER_STRATEGIES",
    "SPLITS",
    "Hyper",
    "Runtime",
    "compilation_cache_dir",
    "device_mesh",
    "enable_compilation_cache",
    "fetch",
    "group_configs",
    "host_conv_hazard",
    "init_states",
    "initialize_distributed",
    "make_grid_step",
    "pad_leading",
    "put",
    "rejection_curves",
    "replicate",
    "resolve_members",
    "robust_correct",
    "robust_correct_members",
    "robust_predict_members",
    "sample_counts",
    "shard_leading",
    "stack",
    "structure_key",
    "train_grid",
    "unstack",
    "warn_host_conv",
]
