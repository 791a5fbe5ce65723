"""Bring your own model: an already trained classifier the studies evaluate instead of training.

An :class:`ExternalModel` is a name, ``apply_fn(variables, x [b, T] float32) ->
logits [b, C]``, its ``variables`` and, for neural rejection, ``features_fn(variables,
x) -> features [b, F]``, plus the training interventions as the user states them
(``at_eps``, ``noise_std``: the robustness study's correlations and its clean
baseline use them). Build one from a Flax module (:meth:`ExternalModel.from_flax`),
a fairrobust checkpoint (:meth:`ExternalModel.from_checkpoint`) or, on the command
line, a spec string (:meth:`ExternalModel.load`: a checkpoint path or
``package.module:callable``).

Every result computed from the model is keyed by :meth:`ExternalModel.fingerprint`
(name, functions, variables' structure, shapes, dtypes and bytes), so changed
weights never reuse a stale member file or cache.

Typical use::

    from fairrobust.studies import config, rejection, robustness
    from fairrobust.studies.external import ExternalModel

    mine = ExternalModel.from_flax(MyNet(), variables, name="mynet", feature_method="embed")
    robustness.run_study(dataset, config.preset("robustness", "quick"), "out/", models=[mine])
    rejection.run_study(dataset, config.preset("rejection", "quick"), "out/", nr_model=mine)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust import models
from fairrobust._checks import fail
from fairrobust.engine.runtime import Runtime
from fairrobust.studies._store import TrainedModel, slugify
from fairrobust.train import load_checkpoint, predict_logits

__all__ = ["ExternalModel", "check_models"]

ApplyFn = Callable[[Any, Any], Any]

#: ``package.module:callable`` (the callable may be a dotted attribute path).
_SPEC = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def _fn_id(fn: Any) -> str | None:
    """Stable text naming a function (module and qualified name), for the fingerprint."""
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _describe(out: Any) -> str:
    """``shape dtype`` of an ``eval_shape`` result, or its type when it is no array."""
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        return f"shape {tuple(out.shape)} {out.dtype}"
    return type(out).__name__


@functools.cache
def _flax_fns(
    module: Any, feature_method: Any, call_kwargs: tuple[tuple[str, Any], ...]
) -> tuple[ApplyFn, ApplyFn | None]:
    """``(logits, features)`` functions of a Flax module, one pair per (equal) module."""
    kwargs = dict(call_kwargs)

    def apply_fn(variables: Any, x: jax.Array) -> jax.Array:
        return module.apply(variables, x, **kwargs)

    apply_fn.__qualname__ = f"flax_logits({module!r}, {call_kwargs!r})"
    if feature_method is None:
        return apply_fn, None

    def features_fn(variables: Any, x: jax.Array) -> jax.Array:
        return module.apply(variables, x, method=feature_method, **kwargs)

    method = feature_method if isinstance(feature_method, str) else _fn_id(feature_method)
    features_fn.__qualname__ = f"flax_features({module!r}, {method!r}, {call_kwargs!r})"
    return apply_fn, features_fn


@functools.cache
def _m5_features(model: Any) -> ApplyFn:
    """``features_fn`` of a fairrobust M5: its penultimate features ``[b, 2 * width]``."""
    both = models.features_fn(model)

    def features_fn(variables: Any, x: jax.Array) -> jax.Array:
        return both(variables, x)[1]

    features_fn.__qualname__ = f"m5_features({model!r})"
    return features_fn


def _checkpoint_name(path: Path) -> str:
    """Default name of a checkpoint: its training folder's name (``best`` / ``last`` files)."""
    if path.stem == "best" and path.parent.name:
        return path.parent.name
    if path.stem == "last" and path.parent.name:
        return f"{path.parent.name}-last"
    return path.stem


@dataclasses.dataclass(frozen=True, eq=False)
class ExternalModel:
    """A trained classifier the studies evaluate as it is (no training).

    Attributes:
      name: label and member id in every table; non-empty, no path separators.
      apply_fn: ``apply_fn(variables, x [b, T] float32 in [-1, 1]) -> logits [b, C]``,
        jit-traceable, hashable and the same object across calls (a static ``jax.jit``
        argument: a new function object per call recompiles).
      variables: the model's variables (any pytree of arrays).
      features_fn: ``features_fn(variables, x [b, T]) -> features [b, F]`` (neural
        rejection's SVM input), or None.
      at_eps: the L-inf adversarial-training budget the model was trained with (0 = none).
      noise_std: the std of its Gaussian noise augmentation (0 = none).
      description: free text recorded with the results.
      module: the Flax module behind ``apply_fn`` when known (``from_flax``,
        ``from_checkpoint``); a fairrobust M5 is then evaluated in the runtime's form
        (``Runtime.eval_model``).
    """

    name: str
    apply_fn: ApplyFn
    variables: Any
    features_fn: ApplyFn | None = None
    at_eps: float = 0.0
    noise_std: float = 0.0
    description: str = ""
    module: Any = None

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip() or name in (".", ".."):
            fail("ExternalModel.name", "a non-empty name", repr(name))
        if any(sep in name for sep in ("/", "\\", os.sep)):
            fail("ExternalModel.name", "a name without path separators", repr(name))
        for field in ("apply_fn", "features_fn"):
            fn = getattr(self, field)
            if field == "features_fn" and fn is None:
                continue
            if not callable(fn):
                fail(f"ExternalModel.{field} of {name!r}", "a function", repr(fn))
            try:
                hash(fn)
            except TypeError:
                fail(
                    f"ExternalModel.{field} of {name!r}",
                    "a hashable function (it is a static jit argument)",
                    repr(fn),
                )
        for field in ("at_eps", "noise_std"):
            value = getattr(self, field)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                fail(f"ExternalModel.{field} of {name!r}", "a finite number >= 0", repr(value))
            object.__setattr__(self, field, float(value))
        if not isinstance(self.description, str):
            fail(f"ExternalModel.description of {name!r}", "a string", repr(self.description))

    # ------------------------------------------------------------------ identity

    @functools.cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        head = {
            "name": self.name,
            "apply_fn": _fn_id(self.apply_fn),
            "features_fn": _fn_id(self.features_fn),
            "structure": str(jax.tree_util.tree_structure(self.variables)),
        }
        h.update(repr(sorted(head.items())).encode())
        for leaf in jax.tree_util.tree_leaves(self.variables):
            arr = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{arr.shape}{arr.dtype}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()[:16]

    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the name, the functions' qualified names and the
        variables' structure, leaf shapes, dtypes and bytes: keys every cached result."""
        return self._fingerprint

    @property
    def train_id(self) -> str:
        """Folder and grid id of the model's results: ``external-<name>-<fingerprint[:8]>``."""
        return f"external-{slugify(self.name)}-{self.fingerprint()[:8]}"

    def record(self) -> dict[str, Any]:
        """JSON-able description for results files: name, fingerprint, interventions, text."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint(),
            "at_eps": self.at_eps,
            "noise_std": self.noise_std,
            "apply_fn": _fn_id(self.apply_fn),
            "features_fn": _fn_id(self.features_fn),
            "description": self.description,
        }

    # ------------------------------------------------------------------ checks

    def check(self, num_classes: int, input_len: int, *, features: bool = False) -> None:
        """Trace the model on a ``[1, input_len]`` float32 waveform (``jax.eval_shape``).

        Args:
          num_classes: classes of the dataset (logits must be ``[1, num_classes]``).
          input_len: samples per clip ``T``.
          features: also require ``features_fn`` returning float ``[1, F]``.

        Raises:
          ValueError: naming the model, when a function fails to trace or returns
            another shape or a non-float dtype, or ``features`` and no ``features_fn``.
        """
        x = jax.ShapeDtypeStruct((1, int(input_len)), jnp.float32)
        out = self._trace("apply_fn", self.apply_fn, x)
        if getattr(out, "shape", None) != (1, num_classes) or not _is_float(out):
            fail(
                f"model {self.name!r}",
                f"apply_fn to return float logits of shape (1, {num_classes}) for a "
                f"(1, {input_len}) float32 waveform",
                _describe(out),
            )
        if not features:
            return
        if self.features_fn is None:
            fail(
                f"model {self.name!r}",
                "a features_fn(variables, x) -> features [b, F] for neural rejection "
                "(from_flax: feature_method=...)",
                "none",
            )
        feats = self._trace("features_fn", self.features_fn, x)
        if len(getattr(feats, "shape", ())) != 2 or feats.shape[0] != 1 or not _is_float(feats):
            fail(
                f"model {self.name!r}",
                f"features_fn to return float features of shape (1, F) for a (1, {input_len}) "
                "float32 waveform",
                _describe(feats),
            )

    def _trace(self, what: str, fn: ApplyFn, x: jax.ShapeDtypeStruct) -> Any:
        try:
            return jax.eval_shape(fn, self.variables, x)
        except Exception as exc:  # any tracing failure of user code: name the model
            raise ValueError(
                f"model {self.name!r}: {what}(variables, x) failed on a {tuple(x.shape)} "
                f"float32 waveform: {type(exc).__name__}: {exc}"
            ) from exc

    # ------------------------------------------------------------------ evaluation

    def evaluation_fn(self, runtime: Runtime | None = None) -> ApplyFn:
        """``apply_fn`` in the runtime's evaluation form (a fairrobust M5 on CPU: its
        matmul convolution, ``Runtime.eval_model``); any other model as given."""
        module: Any = self.module  # linen modules hash by value; M5's stub says otherwise
        if isinstance(module, models.M5) and self.apply_fn is models.logits_fn(module):  # pyright: ignore[reportArgumentType]
            rt = runtime if runtime is not None else Runtime.create()
            return models.logits_fn(rt.eval_model(module))
        return self.apply_fn

    def trained(self, runtime: Runtime | None = None) -> TrainedModel:
        """The model as the studies' stages take it (``model=None``, ``info`` = :meth:`record`)."""
        return TrainedModel(None, self.variables, self.evaluation_fn(runtime), self.record())

    def logits(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Logits of waveforms ``x [n, T]`` in jitted batches, float ``[n, C]``."""
        return predict_logits(self.apply_fn, self.variables, x, batch_size=batch_size)

    def features(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Features of waveforms ``x [n, T]`` in jitted batches, ``[n, F]``.

        Raises:
          ValueError: the model has no ``features_fn``.
        """
        if self.features_fn is None:
            fail(f"model {self.name!r}", "a features_fn for features", "none")
        # predict_logits is the generic batched, jitted apply (any output pytree)
        return predict_logits(self.features_fn, self.variables, x, batch_size=batch_size)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_flax(
        cls,
        module: Any,
        variables: Any,
        *,
        name: str,
        feature_method: str | Callable[..., Any] | None = None,
        call_kwargs: Mapping[str, Any] | None = None,
        at_eps: float = 0.0,
        noise_std: float = 0.0,
        description: str = "",
    ) -> ExternalModel:
        """A Flax linen module and its variables.

        ``apply_fn`` is ``module.apply(variables, x, **call_kwargs)``: evaluation mode
        must be the default of the module's ``__call__`` or be set through
        ``call_kwargs`` (e.g. ``{"train": False}``). The functions are memoised per
        (module, feature_method, call_kwargs), so models of one module share their
        compiled programs.

        Args:
          module: a ``flax.linen.Module`` (hashable, as every linen module is).
          variables: its variables, e.g. ``module.init(key, x)`` after training.
          name: the model's name in the results.
          feature_method: method (name or function) giving the features ``[b, F]``
            for neural rejection, ``module.apply(variables, x, method=...)``.
          call_kwargs: keyword arguments of every call (hashable values).
          at_eps, noise_std, description: see :class:`ExternalModel`.

        Raises:
          ValueError: an unhashable module or ``call_kwargs`` value, or a bad field.
        """
        items = tuple(sorted(dict(call_kwargs or {}).items()))
        try:
            apply_fn, features_fn = _flax_fns(module, feature_method, items)
        except TypeError as exc:
            raise ValueError(
                f"from_flax({name!r}): expected a hashable module, feature_method and "
                f"call_kwargs values, got {exc}"
            ) from exc
        return cls(name, apply_fn, variables, features_fn, at_eps, noise_std, description, module)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], *, name: str | None = None, description: str = ""
    ) -> ExternalModel:
        """A fairrobust checkpoint (``fairrobust train``, a study's ``models/`` folder).

        A folder means its ``best.ckpt``. ``apply_fn`` is ``models.logits_fn(model)``,
        ``features_fn`` the penultimate features; ``at_eps`` and ``noise_std`` are the
        checkpoint's ``TrainConfig``'s.

        Args:
          path: a ``.ckpt`` file or a training folder.
          name: the model's name (default: the training folder's name).
          description: free text (default: the architecture and training config).

        Raises:
          FileNotFoundError: no such checkpoint.
          ValueError: not a fairrobust checkpoint.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "best.ckpt"
        ck = load_checkpoint(path)
        model: Any = ck.model
        cfg = ck.config
        return cls(
            name=name if name is not None else _checkpoint_name(path),
            apply_fn=models.logits_fn(model),
            variables=ck.variables,
            features_fn=_m5_features(model),
            at_eps=cfg.at_eps,
            noise_std=cfg.noise_std,
            description=description
            or f"fairrobust checkpoint {path.name}: {cfg.model} width {cfg.width}, epoch "
            f"{ck.best_epoch or ck.epoch}",
            module=model,
        )

    @classmethod
    def load(cls, spec: str) -> ExternalModel:
        """The model of a command-line spec: a checkpoint path or ``package.module:callable``.

        A path that exists is read with :meth:`from_checkpoint`; otherwise ``spec``
        names a module on ``sys.path`` and an attribute of it: an ``ExternalModel``,
        or a callable taking no arguments that returns one.

        Raises:
          ValueError: naming ``spec`` and what was expected (no such path, a malformed
            spec, an import error, a missing attribute, something other than an
            ``ExternalModel``, or an unreadable checkpoint).
        """
        text = str(spec).strip()
        where = f"model spec {text!r}"
        if not text:
            fail("model spec", "a checkpoint path or 'package.module:callable'", "''")
        path = Path(text).expanduser()
        if path.exists():
            try:
                return cls.from_checkpoint(path)
            except (ValueError, FileNotFoundError) as exc:
                raise ValueError(f"{where}: {exc}") from exc
        match = _SPEC.fullmatch(text)
        if match is None:
            fail(where, "an existing checkpoint file or folder, or 'package.module:callable'",
                 "neither (no such path)")  # fmt: skip
        module_name, attr = match.groups()
        try:
            obj: Any = importlib.import_module(module_name)
        except Exception as exc:  # the user's module: any import failure, one message
            raise ValueError(
                f"{where}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
            ) from exc
        for part in attr.split("."):
            if not hasattr(obj, part):
                fail(where, f"module {module_name!r} to have an attribute {attr!r}", "none")
            obj = getattr(obj, part)
        if not isinstance(obj, ExternalModel):
            if not callable(obj):
                fail(where, "an ExternalModel or a callable returning one", type(obj).__name__)
            try:
                obj = obj()
            except Exception as exc:  # the user's factory: any failure, one message
                raise ValueError(f"{where}: {attr}() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(obj, ExternalModel):
            fail(where, f"{attr}() to return a fairrobust ExternalModel", type(obj).__name__)
        return obj


def _is_float(out: Any) -> bool:
    dtype = getattr(out, "dtype", None)
    return dtype is not None and bool(jnp.issubdtype(dtype, jnp.floating))


def check_models(
    external: Sequence[ExternalModel],
    num_classes: int,
    input_len: int,
    *,
    name: str = "models",
    features: bool = False,
) -> None:
    """Validate models before a study computes anything: type, unique names, shapes.

    Args:
      external: the models.
      num_classes, input_len: the dataset's classes and samples per clip.
      name: the parameter name for messages.
      features: every model needs a ``features_fn`` (neural rejection).

    Raises:
      ValueError: not an :class:`ExternalModel`, none given, duplicate names, or
        :meth:`ExternalModel.check` fails.
    """
    if not external:
        fail(name, "at least one ExternalModel", "none")
    for m in external:
        if not isinstance(m, ExternalModel):
            fail(name, "ExternalModel instances", type(m).__name__)
    names = [m.name for m in external]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        fail(name, "models with distinct names", f"{dupes} more than once")
    for m in external:
        m.check(num_classes, input_len, features=features)
