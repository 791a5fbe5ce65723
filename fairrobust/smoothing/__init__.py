"""Randomized smoothing: Monte Carlo class counts, PREDICT, CERTIFY and noise families.

The smoothed classifier of Cohen et al. (2019) is

    g(x) = argmax_c  P_{eps ~ D_sigma}( f(x + eps) = c ),

where ``f`` is the base classifier (``apply_fn`` followed by argmax) and ``D_sigma``
an additive noise distribution with per-coordinate standard deviation ``sigma``
(the paper uses ``N(0, sigma^2 I)``, sigma = 0.1). The probabilities are estimated
from class counts over N noisy copies of each input; see ``sample_counts``.

PREDICT (Cohen et al., Alg. "PREDICT"; the rejection mechanism of the AISec'23
paper, section 4.3): take the top-two counts ``nA >= nB``; abstain (-1) iff the
two-sided binomial test of ``nA`` successes in ``nA + nB`` trials at p = 0.5 has
p-value > alpha. Sweeping alpha gives the false-rejection curves of section 3.2.

CERTIFY (Cohen et al., Alg. "CERTIFY"): pick the top class A from ``n0`` selection
draws, count A on ``n`` fresh estimation draws, take the one-sided
Clopper-Pearson lower bound ``pA_lower`` at level alpha, and return radius
``sigma * Phi^-1(pA_lower)`` (L2), or abstain when ``pA_lower < 0.5``.

Modules (every public name is re-exported here): ``noise`` (the noise-family
registry: :func:`register_noise`, :func:`resolve_noise`, :func:`available_noises`),
``sampling`` (:func:`sample_counts` and its kernel, the sampling design and its
options), ``certify`` (:func:`binom_test_pvalue`, :func:`predict_pvalues`,
:func:`smoothed_predict`, :func:`clopper_pearson_lower`, :func:`certify`,
:func:`certified_accuracy`; float64 statistics), ``adaptive`` (:func:`adaptive_predict`,
:func:`adaptive_certify`: draws in rounds at a look schedule, stopping each input once
its decision is settled, at level alpha / L per look; fixed N stays the default).

Reference: J. Cohen, E. Rosenfeld, Z. Kolter. Certified adversarial robustness via
randomized smoothing. ICML 2019.
"""

from fairrobust.smoothing.adaptive import DEFAULT_FIRST_LOOK as DEFAULT_FIRST_LOOK
from fairrobust.smoothing.adaptive import AdaptiveCertifyResult as AdaptiveCertifyResult
from fairrobust.smoothing.adaptive import AdaptivePredictResult as AdaptivePredictResult
from fairrobust.smoothing.adaptive import adaptive_certify as adaptive_certify
from fairrobust.smoothing.adaptive import adaptive_predict as adaptive_predict
from fairrobust.smoothing.adaptive import certify_decisions as certify_decisions
from fairrobust.smoothing.adaptive import check_looks as check_looks
from fairrobust.smoothing.adaptive import look_schedule as look_schedule
from fairrobust.smoothing.adaptive import predict_decisions as predict_decisions
from fairrobust.smoothing.adaptive import target_probability as target_probability
from fairrobust.smoothing.certification import PVALUE_RTOL as PVALUE_RTOL
from fairrobust.smoothing.certification import CertifyResult as CertifyResult
from fairrobust.smoothing.certification import binom_test_pvalue as binom_test_pvalue
from fairrobust.smoothing.certification import certified_accuracy as certified_accuracy
from fairrobust.smoothing.certification import certified_radius as certified_radius
from fairrobust.smoothing.certification import certify as certify
from fairrobust.smoothing.certification import clopper_pearson_lower as clopper_pearson_lower
from fairrobust.smoothing.certification import predict_pvalues as predict_pvalues
from fairrobust.smoothing.certification import (
    smallest_answerable_alpha as smallest_answerable_alpha,
)
from fairrobust.smoothing.certification import smoothed_predict as smoothed_predict
from fairrobust.smoothing.noise import NORMS as NORMS
from fairrobust.smoothing.noise import Certificate as Certificate
from fairrobust.smoothing.noise import NoiseFn as NoiseFn
from fairrobust.smoothing.noise import RadiusFn as RadiusFn
from fairrobust.smoothing.noise import available_noises as available_noises
from fairrobust.smoothing.noise import noise_certificate as noise_certificate
from fairrobust.smoothing.noise import noise_certificates as noise_certificates
from fairrobust.smoothing.noise import register_noise as register_noise
from fairrobust.smoothing.noise import resolve_noise as resolve_noise
from fairrobust.smoothing.sampling import COMPUTE_DTYPES as COMPUTE_DTYPES
from fairrobust.smoothing.sampling import DEFAULT_CHECKPOINTS as DEFAULT_CHECKPOINTS
from fairrobust.smoothing.sampling import FORWARD_ROWS as FORWARD_ROWS
from fairrobust.smoothing.sampling import MODES as MODES
from fairrobust.smoothing.sampling import PRNG_IMPLS as PRNG_IMPLS
from fairrobust.smoothing.sampling import counts_kernel as counts_kernel
from fairrobust.smoothing.sampling import default_input_block as default_input_block
from fairrobust.smoothing.sampling import prepare_counts as prepare_counts
from fairrobust.smoothing.sampling import sample_counts as sample_counts
from fairrobust.smoothing.sampling import unstack_sigmas as unstack_sigmas

__all__ = [
    "COMPUTE_DTYPES",
    "DEFAULT_CHECKPOINTS",
    "DEFAULT_FIRST_LOOK",
    "FORWARD_ROWS",
    "MODES",
    "NORMS",
    "PRNG_IMPLS",
    "PVALUE_RTOL",
    "AdaptiveCertifyResult",
    "AdaptivePredictResult",
    "Certificate",
    "CertifyResult",
    "NoiseFn",
    "RadiusFn",
    "adaptive_certify",
    "adaptive_predict",
    "available_noises",
    "binom_test_pvalue",
    "certified_accuracy",
    "certified_radius",
    "certify",
    "certify_decisions",
    "check_looks",
    "clopper_pearson_lower",
    "counts_kernel",
    "default_input_block",
    "look_schedule",
    "noise_certificate",
    "noise_certificates",
    "predict_decisions",
    "predict_pvalues",
    "prepare_counts",
    "register_noise",
    "resolve_noise",
    "sample_counts",
    "smallest_answerable_alpha",
    "smoothed_predict",
    "target_probability",
    "unstack_sigmas",
]
