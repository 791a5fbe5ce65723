"""Neural rejection (Melis et al. 2017): an RBF-SVM on penultimate features that rejects.

The AISec'23 paper (section 4.3) follows Melis et al.: take a trained network whose last
layer is linear, train an SVM with an RBF kernel on the penultimate representation
``h_{N-1}`` of the training set, and reject an input when its top per-class score is
below a threshold t:

    f*(x, t) = argmax_c s_c(h(x))   if max_c s_c(h(x)) >= t,   else -1 (reject).

The RBF-SVM is a Compact Abating Probability (CAP) model: its scores decay far from the
training data, so out-of-distribution (e.g. adversarial) inputs get low scores. As the
paper says "we can use the probabilities", the per-class scores here are the SVM's
Platt-calibrated class probabilities, which lie in [0, 1] so thresholds t in
[0.001, 1] are meaningful. scikit-learn 1.9 deprecates ``SVC(probability=True)``; its
replacement ``CalibratedClassifierCV(SVC(), method="sigmoid", ensemble=False)`` is used:
one-vs-rest SVC decision values, a Platt sigmoid per class fitted on out-of-fold
values, normalised to sum to 1, with the SVC refit on all points (deterministic).
Features are standardised first (``StandardScaler`` in a ``Pipeline``).

Reference: M. Melis, A. Demontis, B. Biggio, G. Brown, G. Fumera, F. Roli. Is deep
learning safe for robot vision? Adversarial examples against the iCub humanoid.
ICCV Workshops 2017.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["NeuralRejection"]


def _as_features(features: Any, name: str = "features", d: int | None = None) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {f.shape}")
    if d is not None and f.shape[1] != d:
        raise ValueError(f"{name} must have d = {d} columns (as in fit), got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return f


class NeuralRejection:
    """RBF-SVM rejection on penultimate features (Melis et al. 2017; AISec'23 sec. 4.3).

    Example::

        feats_tr = ...  # [n, d] penultimate features of the training set
        nr = NeuralRejection().fit(feats_tr, y_tr, max_train=5000, seed=0)
        pred = nr.predict(feats_te, threshold=0.5)  # -1 = rejected
        top = nr.rejection_stat(feats_te)           # [n] top class probability

    Attributes:
      classes_: sorted class labels seen in ``fit`` (scores columns follow this order).
      num_features: d.
      num_train: number of training points actually used (after subsampling).
    """

    def __init__(self) -> None:
        self._pipe: Pipeline | None = None
        self.classes_: np.ndarray | None = None
        self.num_features: int | None = None
        self.num_train: int | None = None

    def fit(
        self,
        features: Any,
        labels: Any,
        *,
        max_train: int | None = None,
        seed: int = 0,
        C: float = 1.0,
        gamma: str | float = "scale",
    ) -> NeuralRejection:
        """Fits StandardScaler + RBF ``SVC`` + Platt calibration (one score per class).

        Calibration uses ``min(5, smallest class size)`` unshuffled stratified folds.

        Args:
          features: training-set penultimate features, shape ``(n, d)``.
          labels: integer labels, shape ``(n,)``; at least two classes.
          max_train: if set and ``n > max_train``, fit on a seeded uniform subsample of
            ``max_train`` points (SVM training is O(n^2) to O(n^3)).
          seed: seeds the subsample and the SVC's ``random_state``; same seed, same
            model.
          C: SVM regularisation (> 0).
          gamma: RBF width, "scale" (scikit-learn default ``1 / (d * X.var())``),
            "auto" or a positive float.

        Returns:
          self.

        Raises:
          ValueError: shape mismatch, NaN features, fewer than two classes, bad
            ``max_train``.
        """
        f = _as_features(features)
        y = np.asarray(labels)
        if y.shape != (f.shape[0],):
            raise ValueError(f"labels must have shape ({f.shape[0]},), got {y.shape}")
        if max_train is not None:
            if isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)):
                raise ValueError(f"max_train must be a positive integer, got {max_train!r}")
            if max_train < 2:
                raise ValueError(f"max_train must be >= 2, got {max_train}")
            if f.shape[0] > max_train:
                rng = np.random.default_rng(seed)
                idx = np.sort(rng.choice(f.shape[0], size=max_train, replace=False))
                f, y = f[idx], y[idx]
        _, class_sizes = np.unique(y, return_counts=True)
        if class_sizes.size < 2:
            raise ValueError("labels must contain at least two classes")
        # Calibration folds: 5 (as SVC(probability=True)), fewer for tiny classes.
        cv = int(min(5, class_sizes.min()))
        if cv < 2:
            raise ValueError("labels: every class needs at least two training points")
        pipe = Pipeline(
            [
                ("scale", StandardScaler()),
                (
                    "svm",
                    # Platt scaling on 5-fold out-of-fold decision values, then the SVC is
                    # refit on all points: what SVC(probability=True) did, which
                    # scikit-learn 1.9 deprecates in favour of this form. The folds are
                    # unshuffled StratifiedKFold, so the fit is deterministic.
                    CalibratedClassifierCV(
                        SVC(kernel="rbf", C=C, gamma=gamma, random_state=seed),  # pyright: ignore[reportArgumentType]
                        method="sigmoid",
                        cv=cv,
                        ensemble=False,  # pyright: ignore[reportArgumentType]
                    ),
                ),
            ]
        )
        pipe.fit(f, y)
        self._pipe = pipe
        self.classes_ = pipe.classes_
        self.num_features = f.shape[1]
        self.num_train = f.shape[0]
        return self

    def _fitted(self) -> Pipeline:
        if self._pipe is None:
            raise ValueError("NeuralRejection is not fitted; call fit(features, labels) first")
        return self._pipe

    def scores(self, features: Any) -> np.ndarray:
        """Per-class scores (SVM class probabilities), shape ``(n, C)``, rows sum to 1."""
        pipe = self._fitted()
        return pipe.predict_proba(_as_features(features, d=self.num_features))

    def rejection_stat(self, features: Any) -> np.ndarray:
        """Top score ``max_c s_c(h(x))``, shape ``(n,)``; reject iff it is below t."""
        return self.scores(features).max(axis=1)

    def predict(self, features: Any, threshold: float) -> np.ndarray:
        """Class label of the top score, or -1 (reject) iff the top score < ``threshold``.

        Args:
          features: ``(n, d)`` penultimate features.
          threshold: t; scores are probabilities, so t in [0, 1] (t = 0 never rejects).

        Returns:
          int64 ``(n,)`` labels from ``classes_`` or -1.
        """
        t = float(threshold)
        if not np.isfinite(t):
            raise ValueError(f"threshold must be finite, got {threshold!r}")
        s = self.scores(features)
        assert self.classes_ is not None
        top = self.classes_[np.argmax(s, axis=1)].astype(np.int64)
        return np.where(s.max(axis=1) < t, -1, top)

    def accuracy(self, features: Any, labels: Any) -> float:
        """Accuracy of the SVM's top-score class without rejection (reported by the study)."""
        s = self.scores(features)
        y = np.asarray(labels)
        if y.shape != (s.shape[0],):
            raise ValueError(f"labels must have shape ({s.shape[0]},), got {y.shape}")
        assert self.classes_ is not None
        return float(np.mean(self.classes_[np.argmax(s, axis=1)] == y))
