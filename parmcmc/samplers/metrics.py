"""Euclidean metrics for HMC: a constant inverse mass matrix M^{-1}.

The momentum is ``p ~ N(0, M)`` and the kinetic energy ``K(p) = p^T M^{-1} p / 2``.
``M^{-1}`` acts on the *flattened* position (``jax.flatten_util.ravel_pytree``
order), as in BlackJAX. It is either diagonal (a 1-D array) or dense (a 2-D
symmetric positive definite array).

Momentum is drawn as BlackJAX draws it: ``p = M^{1/2} z`` with ``z ~ N(0, I)``,
where ``M^{1/2} = 1 / sqrt(diag)`` for a diagonal matrix (a multiplication by
the reciprocal, not a division) and ``M^{1/2} = L^{-T}`` with ``L`` the lower
Cholesky factor of a dense ``M^{-1}``.
"""

from typing import NamedTuple

import jax.numpy as jnp
import jax.scipy as jsp
import numpy as np
from jax import Array

__all__ = [
    "EuclideanMetric",
    "check_inverse_mass_matrix",
    "euclidean_metric",
    "kinetic_energy",
    "momentum_from_normal",
    "velocity",
]


class EuclideanMetric(NamedTuple):
    """A constant (diagonal or dense) Euclidean metric.

    inverse_mass_matrix
        ``(D,)`` diagonal or ``(D, D)`` dense ``M^{-1}``.
    mass_matrix_sqrt
        ``(D,)`` or ``(D, D)``: the factor ``M^{1/2}`` that maps standard
        normal noise to momentum; None in a metric built for the step alone (which needs ``M^{-1}`` only).
    """

    inverse_mass_matrix: Array
    mass_matrix_sqrt: Array | None


def _linear_map(a: Array, b: Array) -> Array:
    """``a * b`` for a diagonal ``a``, ``a @ b`` (full precision) for a dense one."""
    if a.ndim <= 1:
        return a * b
    return jnp.dot(a, b, precision="highest")


def check_inverse_mass_matrix(inverse_mass_matrix, size: int | None = None) -> Array:
    """Validate an inverse mass matrix; ``size`` is the flat position size if known.

    Raises
    ------
    TypeError
        If it is not a 1-D or 2-D real array.
    ValueError
        Non-finite or non-positive diagonal entries, a non-square or
        non-symmetric dense matrix, one that is not positive definite, or a
        size that does not match the flattened position.
    """
    arr = np.asarray(inverse_mass_matrix)
    if arr.ndim not in (1, 2) or arr.dtype.kind not in "fiu":
        raise TypeError(
            "inverse_mass_matrix must be a 1-D (diagonal) or 2-D (dense) real array, "
            f"got shape {arr.shape} and dtype {arr.dtype}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("inverse_mass_matrix has non-finite entries.")
    if arr.ndim == 1:
        if np.any(arr <= 0):
            bad = np.flatnonzero(arr <= 0)[:5].tolist()
            raise ValueError(
                f"inverse_mass_matrix (diagonal) must have positive entries; entries at flat indices {bad} are <= 0."
            )
    else:
        if arr.shape[0] != arr.shape[1]:
            raise ValueError(f"inverse_mass_matrix (dense) must be square, got shape {arr.shape}.")
        # Symmetric up to sqrt(eps) of its dtype, relative to its largest entry (jnp.linalg.inv(cov) in
        # float32 is asymmetric at ~1e-7), then symmetrised: the Cholesky factor reads one triangle, the
        # velocity the whole matrix.
        eps = np.finfo(arr.dtype).eps if arr.dtype.kind == "f" else np.finfo(np.float64).eps
        asym = float(np.max(np.abs(arr - arr.T))) if arr.size else 0.0
        scale = float(np.max(np.abs(arr))) if arr.size else 0.0
        if asym > np.sqrt(eps) * scale:  # relative: 3.5e-4 in float32, 1.5e-8 in float64
            raise ValueError(
                f"inverse_mass_matrix (dense) must be symmetric; max |M - M^T| is {asym:.3g}, {asym / scale:.3g} "
                f"relative to its largest entry, beyond the rounding of {arr.dtype}. Pass (M + M.T) / 2 if the "
                "asymmetry is rounding from how it was computed."
            )
        if asym > 0:
            inverse_mass_matrix = arr = (arr + arr.T) / 2
        if np.any(np.linalg.eigvalsh(arr) <= 0):
            raise ValueError("inverse_mass_matrix (dense) must be positive definite; it has eigenvalues <= 0.")
    if size is not None and arr.shape[0] != size:
        raise ValueError(
            f"inverse_mass_matrix has size {arr.shape[0]} but the flattened position "
            f"has size {size}: give one entry (or row) per element of "
            "jax.flatten_util.ravel_pytree(position)[0]."
        )
    return jnp.asarray(inverse_mass_matrix)


def euclidean_metric(inverse_mass_matrix: Array) -> EuclideanMetric:
    """Build the metric (and the momentum factor ``M^{1/2}``) from ``M^{-1}``."""
    imm = jnp.asarray(inverse_mass_matrix)
    if imm.ndim == 1:
        return EuclideanMetric(imm, 1 / jnp.sqrt(imm))
    chol = jsp.linalg.cholesky(imm, lower=True)
    identity = jnp.identity(imm.shape[0], dtype=imm.dtype)
    sqrt = jsp.linalg.solve_triangular(chol, identity, lower=True, trans=True)
    return EuclideanMetric(imm, sqrt)


def momentum_from_normal(metric: EuclideanMetric, z: Array) -> Array:
    """Map standard normal draws ``z`` (..., D) to momenta ``M^{1/2} z``."""
    sqrt = metric.mass_matrix_sqrt
    if sqrt is None:
        raise ValueError("momentum_from_normal: this metric has no M^{1/2}; build it with euclidean_metric(imm).")
    if sqrt.ndim <= 1:
        return sqrt * z
    return jnp.einsum("ij,...j->...i", sqrt, z, precision="highest")


def velocity(metric: EuclideanMetric, momentum: Array) -> Array:
    """``dK/dp = M^{-1} p``."""
    return _linear_map(metric.inverse_mass_matrix, momentum)


def kinetic_energy(metric: EuclideanMetric, momentum: Array) -> Array:
    """``K(p) = p^T M^{-1} p / 2``."""
    return 0.5 * jnp.dot(velocity(metric, momentum), momentum)
