"""Kernels for parmcmc.infer.MCMC with NumPyro's argument names: HMC(model, ...), MALA(model, ...), Barker, ....

A kernel here is a description, not a step function: it turns NumPyro's arguments into the settings of
parmcmc.sample() (sampler, step size, leapfrog steps, target acceptance, init strategy, parallel, solver)
and refuses, before any work, the arguments whose NumPyro meaning parmcmc cannot honour yet.

    NumPyro argument      what it does here
    step_size             with adapt_step_size=False: the step size used as is; with adaptation the
                          warmup starts at 1.0 (NumPyro's default) and other values are refused
    adapt_step_size       dual averaging during warmup toward target_accept_prob
    adapt_mass_matrix     HMC: a diagonal inverse mass matrix by windowed adaptation (with the step size)
    inverse_mass_matrix   HMC with adapt_step_size=False: the matrix used as is (diagonal)
    target_accept_prob    the acceptance rate the warmup aims at (HMC 0.8, MALA 0.574)
    num_steps             leapfrog steps per HMC transition, fixed; None: sample()'s default HMC, whose
                          warmup adapts the trajectory length
    trajectory_length     num_steps = ceil(trajectory_length / step_size) when the step size is fixed
    init_strategy         NumPyro's init strategy for the chains' starts
    dense_mass            True: a dense inverse mass matrix by windowed adaptation; "low_rank": BlackJAX's
                          low-rank window adaptation; a block structure is refused
    adaptation            parmcmc's (HMC, keyword only): "window", "window_trajectory" or "chees", as sample()'s
    integration_steps_jitter, step_size_jitter
                          parmcmc's (HMC, keyword only): the per-draw jitters, as sample()'s
    parallel, solver      parmcmc's: solve each chain in parallel over time (True, False, "auto") with
                          an engine solver (default DEER up to 16 dimensions, QuasiDEER beyond)
    **solve_kwargs        passed to the engine (max_iters, atol, rtol, window)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from numpyro.infer.initialization import init_to_uniform

__all__ = ["HMC", "MALA", "NUTS", "AbstractKernel", "AdjustedMCLMC", "Barker"]


def _dense_mass_setting(dense_mass):
    """sample()'s dense_mass setting: True adapts a dense inverse mass matrix in the warmup."""
    if dense_mass is False:
        return {}
    if dense_mass is True or dense_mass == "low_rank":
        return {"dense_mass": dense_mass}
    raise NotImplementedError(
        f"HMC: dense_mass={dense_mass!r} (a block structure) is not supported yet: parmcmc's HMC adapts a "
        "diagonal (dense_mass=False), a full dense (dense_mass=True) or a low-rank (dense_mass='low_rank') "
        "inverse mass matrix."
    )


def _trajectory_settings(adaptation, integration_steps_jitter, step_size_jitter) -> dict:
    """HMC's adaptation= and jitters, checked as sample() checks them (the chain count is checked at run())."""
    from parmcmc.settings import ADAPTATIONS

    if adaptation is not None and adaptation not in ADAPTATIONS:
        raise ValueError(
            f"HMC: adaptation must be one of {ADAPTATIONS} (or None: sample()'s default); got {adaptation!r}."
        )
    for name, value, low_open in (
        ("integration_steps_jitter", integration_steps_jitter, True),
        ("step_size_jitter", step_size_jitter, False),
    ):
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and ((0.0 < value <= 1.0) if low_open else (0.0 <= value < 1.0))
        if not ok:
            interval = "(0, 1]" if low_open else "[0, 1)"
            raise ValueError(f"HMC: {name} must lie in {interval} (a fraction per draw); got {value!r}.")
    settings = {
        "adaptation": adaptation,
        "integration_steps_jitter": integration_steps_jitter,
        "step_size_jitter": step_size_jitter,
    }
    return {k: v for k, v in settings.items() if v is not None}


def _refuse(kernel: str, name: str, value, why: str):
    raise NotImplementedError(f"{kernel}: {name}={value!r} is not supported: {why}")


class AbstractKernel:
    """What parmcmc.infer.MCMC needs from a kernel: the model, and the settings it adds to sample()'s."""

    sample_field = "z"  # NumPyro's name of the latent state's field (used by NumPyro's own tools)
    model: Callable | None
    potential_fn: Callable | None

    def sample_settings(self) -> dict:  # pragma: no cover - abstract
        """The kernel's settings as keyword arguments of parmcmc.sample()."""
        raise NotImplementedError


class MALA(AbstractKernel):
    """Metropolis-adjusted Langevin kernel, one chain solved in parallel over time by parmcmc's engine.

    Parameters
    ----------
    model
        A NumPyro model (or give ``potential_fn`` and ``init_params=`` to ``MCMC.run``).
    potential_fn
        Minus the log density of an unconstrained position, instead of a model.
    step_size
        The step size when ``adapt_step_size=False``; the warmup's adaptation starts at 1.0.
    adapt_step_size
        Adapt the step size by dual averaging during warmup.
    target_accept_prob
        The acceptance rate the adaptation aims at (default 0.574, Roberts and Rosenthal 1998).
    init_strategy
        NumPyro init strategy for the starts (default ``init_to_uniform``).
    parallel
        True: solve each chain in parallel over time; False: the sequential reference (the same
        draws); "auto": ``parmcmc.diagnose`` decides.
    solver
        An engine solver (``parmcmc.DEER()``, ``parmcmc.QuasiDEER()``, ...); default by dimension.
    **solve_kwargs
        Engine options: ``max_iters``, ``atol``, ``rtol``, ``window``.
    """

    name = "mala"

    def __init__(
        self,
        model=None,
        potential_fn=None,
        step_size=1.0,
        adapt_step_size=True,
        target_accept_prob=None,
        init_strategy=init_to_uniform,
        *,
        parallel=True,
        solver=None,
        **solve_kwargs,
    ):
        kernel = type(self).__name__
        if (model is None) == (potential_fn is None):
            raise ValueError(f"{kernel}: give exactly one of model= (a NumPyro model) or potential_fn=.")
        if adapt_step_size and step_size != 1.0:
            _refuse(
                kernel,
                "step_size",
                step_size,
                "with adapt_step_size=True the warmup starts at 1.0; pass "
                "adapt_step_size=False to use this step size as it is.",
            )
        self.model, self.potential_fn = model, potential_fn
        self.step_size, self.adapt_step_size = step_size, adapt_step_size
        self.target_accept_prob, self.init_strategy = target_accept_prob, init_strategy
        self.parallel, self.solver, self.solve_kwargs = parallel, solver, solve_kwargs

    def sample_settings(self) -> dict:
        """The kernel's settings as keyword arguments of parmcmc.sample()."""
        return {
            "sampler": self.name,
            "step_size": None if self.adapt_step_size else self.step_size,
            "target_acceptance": self.target_accept_prob,
            "init_strategy": None if self.init_strategy is init_to_uniform else self.init_strategy,
            "parallel": self.parallel,
            "solver": self.solver,
            **self.solve_kwargs,
        }


class HMC(MALA):
    """Hamiltonian Monte Carlo, solved in parallel over time.

    Takes NumPyro's ``HMC`` arguments (see the module docstring for what each does here) plus
    ``parallel``, ``solver`` and the engine options of :class:`MALA`. ``num_steps=None`` runs sample()'s
    default HMC (the warmup adapts a trajectory length per chain; with a given step size, 10 steps);
    a number fixes the leapfrog steps. NumPyro's default ``trajectory_length=2*pi`` would need the adapted
    step size before the warmup, so a trajectory length is taken only with ``adapt_step_size=False``.
    """

    name = "hmc"

    def __init__(
        self,
        model=None,
        potential_fn=None,
        kinetic_fn=None,
        step_size=1.0,
        inverse_mass_matrix=None,
        adapt_step_size=True,
        adapt_mass_matrix=True,
        dense_mass=False,
        target_accept_prob=None,
        num_steps=None,
        trajectory_length=None,
        init_strategy=init_to_uniform,
        find_heuristic_step_size=False,
        forward_mode_differentiation=False,
        regularize_mass_matrix=True,
        *,
        parallel=True,
        solver=None,
        adaptation=None,
        integration_steps_jitter=None,
        step_size_jitter=None,
        **solve_kwargs,
    ):
        kernel = type(self).__name__
        self._dense = _dense_mass_setting(dense_mass)
        self._trajectory = _trajectory_settings(adaptation, integration_steps_jitter, step_size_jitter)
        if kinetic_fn is not None:
            _refuse(kernel, "kinetic_fn", kinetic_fn, "the kinetic energy is the Gaussian one of the mass matrix.")
        for name, value, default in (
            ("find_heuristic_step_size", find_heuristic_step_size, False),
            ("forward_mode_differentiation", forward_mode_differentiation, False),
            ("regularize_mass_matrix", regularize_mass_matrix, True),
        ):
            if value != default:
                _refuse(kernel, name, value, f"only {default} (NumPyro's default) is implemented.")
        if adapt_step_size != adapt_mass_matrix:
            _refuse(
                kernel,
                "adapt_mass_matrix",
                adapt_mass_matrix,
                f"with adapt_step_size={adapt_step_size} the warmup adapts both or neither; pass the same "
                "value for both (and inverse_mass_matrix= with a fixed step size).",
            )
        if inverse_mass_matrix is not None and adapt_mass_matrix:
            _refuse(
                kernel,
                "inverse_mass_matrix",
                "<array>",
                "the warmup adapts its own diagonal matrix; pass "
                "adapt_step_size=False, adapt_mass_matrix=False to use this one as it is.",
            )
        if num_steps is None and trajectory_length is not None:
            if adapt_step_size:
                _refuse(
                    kernel,
                    "trajectory_length",
                    trajectory_length,
                    "the number of leapfrog steps is fixed before the warmup adapts the step size here; "
                    "give num_steps= instead (or a fixed step_size with adapt_step_size=False).",
                )
            num_steps = max(1, math.ceil(trajectory_length / step_size))
        super().__init__(
            model,
            potential_fn,
            step_size,
            adapt_step_size,
            target_accept_prob,
            init_strategy,
            parallel=parallel,
            solver=solver,
            **solve_kwargs,
        )
        # num_steps=None: sample()'s default (the trajectory adapted); a number: that many steps, fixed
        self.inverse_mass_matrix, self.num_steps = inverse_mass_matrix, num_steps
        self.trajectory_length = trajectory_length

    def sample_settings(self) -> dict:
        """The kernel's settings as keyword arguments of parmcmc.sample()."""
        return {
            **super().sample_settings(),
            "num_integration_steps": self.num_steps,
            "inverse_mass_matrix": self.inverse_mass_matrix,
            **self._dense,
            **self._trajectory,
        }


class Barker(MALA):
    """Barker's proposal (``sample(sampler="barker")``).

    Takes :class:`MALA`'s arguments; ``target_accept_prob`` defaults to 0.574; the warmup adapts the step size
    and a diagonal scale.
    """

    name = "barker"


class AdjustedMCLMC(MALA):
    """Metropolis-adjusted microcanonical dynamics (``sample(sampler="adjustedmclmc")``).

    Takes :class:`MALA`'s arguments; ``target_accept_prob`` defaults to sample()'s; the warmup adapts the step
    size and a diagonal scale.
    """

    name = "adjustedmclmc"


class NUTS:
    """Not available: NUTS builds a trajectory of random length, which is not a fixed step map."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            "parmcmc.infer.NUTS: the No-U-Turn sampler grows its trajectory until it turns, so its step is not "
            "a fixed map of the state and pre-drawn noise that parmcmc can solve in parallel over time. Use "
            "parmcmc.infer.HMC(model, num_steps=...) (NumPyro's HMC arguments) or parmcmc.infer.MALA(model)."
        )
