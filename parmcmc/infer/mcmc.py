"""parmcmc.infer.MCMC: NumPyro's MCMC interface over parmcmc's pipeline.

`MCMC(kernel, num_warmup=, num_samples=, num_chains=).run(rng_key, *args, **kwargs)` runs the very
pipeline of parmcmc.sample() (api.check_settings -> api.prepare -> api.pick_solver -> api.run_chains ->
io.output) and keeps the run, so that NumPyro's methods read it: get_samples, get_extra_fields,
print_summary, warmup, post_warmup_state / last_state. It subclasses numpyro.infer.MCMC only so that
tools that check for NumPyro's class (az.from_numpyro) accept it; it overrides every public method and
runs none of NumPyro's sampling code.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.infer
from numpyro.diagnostics import print_summary as numpyro_print_summary

from parmcmc import api, progress
from parmcmc.infer.kernels import AbstractKernel
from parmcmc.io.arviz import solver_stats
from parmcmc.io.output import datatree_from_run, thin
from parmcmc.models.target import ChainStarts

__all__ = ["CHAIN_METHODS", "MCMC", "MCMCState"]

# NumPyro's chain methods. Here every chain runs in one compiled program, vmapped over chains (NumPyro's
# "vectorized"); "parallel" does not map chains to devices (parmcmc parallelises over time instead) and
# "sequential" does not run the chains one after another. All three give the same draws.
CHAIN_METHODS = ("parallel", "sequential", "vectorized")


class MCMCState(NamedTuple):
    """The state of every chain after warmup or after a run (leading axis: chain).

    z                    unconstrained positions, a dict by latent site (NumPyro models)
    step_size            (chain,) step sizes
    inverse_mass_matrix  (chain, D) diagonal inverse mass matrices (HMC), else None
    rng_key              the key of the run; running again with it continues its noise schedule
    num_steps            steps of that key's schedule already used (0 after warmup)
    """

    z: Any
    step_size: jax.Array
    inverse_mass_matrix: Any
    rng_key: jax.Array
    num_steps: int


def _extra_field_names(kernel) -> tuple:
    names = ("accept_prob", "potential_energy", "adapt_state.step_size")
    return names + (("diverging", "energy", "num_steps") if hasattr(kernel, "num_steps") else ())


def _check_extra_fields(kernel, extra_fields) -> tuple:
    if isinstance(extra_fields, str):  # iterating it would name each letter
        raise TypeError(
            f"MCMC.run: extra_fields must be a tuple of names, e.g. extra_fields=({extra_fields!r},); got the string "
            f"{extra_fields!r}."
        )
    available = _extra_field_names(kernel)
    unknown = [f for f in extra_fields if f not in available]
    if unknown:
        raise ValueError(
            f"MCMC.run: extra_fields {unknown} are not recorded by {type(kernel).__name__}; "
            f"available: {list(available)}."
        )
    return tuple(extra_fields)


def _per_chain_init_params(init_params, num_chains: int):
    """init_params with a leading chain axis of size num_chains, as NumPyro requires for num_chains > 1.

    An unbatched start used to be read as one position with an extra axis: a (num_chains, D) start sampled a
    (num_chains x D)-dimensional density, and a (D,) start was shared by every chain, both without a word.
    """
    leaves = jax.tree_util.tree_leaves(init_params)
    shapes = [tuple(np.shape(leaf)) for leaf in leaves]
    if not leaves or any(not shape or shape[0] != num_chains for shape in shapes):
        raise ValueError(
            f"MCMC.run: with num_chains={num_chains}, init_params must hold one start per chain along a leading "
            f"axis of size {num_chains} (NumPyro's rule); got leaf shapes {shapes}. Stack the starts, e.g. "
            f"jax.tree.map(lambda a: jnp.broadcast_to(a, ({num_chains}, *jnp.shape(a))), init_params) to start "
            "every chain at the same point."
        )
    return init_params


def _check_state_fits(state: MCMCState, positions, num_chains: int) -> None:
    """post_warmup_state must hold this MCMC's chains of this model's positions (else vmap fails deep inside)."""
    shapes = lambda tree: jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), tree)
    mine, theirs = shapes(positions), shapes(state.z)
    if jax.tree_util.tree_structure(theirs) != jax.tree_util.tree_structure(mine) or theirs != mine:
        raise ValueError(
            f"MCMC.run: post_warmup_state holds positions shaped {theirs}, but this MCMC runs {num_chains} chain(s) "
            f"of positions shaped {mine} (leading axis: chain). Set post_warmup_state to this MCMC's own "
            "last_state (or the state of an MCMC of the same model and num_chains)."
        )


def _same_key(a, b) -> bool:
    data = lambda k: np.asarray(jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key) else k)
    return np.array_equal(data(a), data(b))


def _same_args(a, b) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(x is y or np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True))


class MCMC(numpyro.infer.MCMC):
    """NumPyro's ``MCMC`` for parmcmc kernels (``parmcmc.infer.HMC``, ``parmcmc.infer.MALA``).

    Parameters
    ----------
    sampler
        A parmcmc kernel.
    num_warmup, num_samples, num_chains, thinning
        As in NumPyro: ``num_samples`` steps per chain after ``num_warmup`` warmup steps, every
        ``thinning``-th kept (``num_samples // thinning`` draws).
    chain_method
        "parallel", "sequential" or "vectorized" (NumPyro's values, all accepted): the chains always run
        vmapped in one compiled program and the draws do not depend on the choice.
    progress_bar
        True: progress on stderr when it is a terminal; "always": also when it is not; False: none.
    postprocess_fn, jit_model_args
        NumPyro's; ``postprocess_fn`` must be None, ``jit_model_args`` has no effect.
    """

    def __init__(
        self,
        sampler,
        *,
        num_warmup,
        num_samples,
        num_chains=1,
        thinning=1,
        postprocess_fn=None,
        chain_method="parallel",
        progress_bar=True,
        jit_model_args=False,
    ):
        # NumPyro's constructor is not called: it compiles NumPyro's own kernels, which are not used here.
        if not isinstance(sampler, AbstractKernel):
            raise TypeError(
                f"MCMC: sampler must be a parmcmc kernel such as parmcmc.infer.HMC(model); got "
                f"{sampler!r}. (NumPyro's own kernels run with numpyro.infer.MCMC.)"
            )
        if chain_method not in CHAIN_METHODS:
            raise ValueError(
                f"MCMC: chain_method={chain_method!r}; use one of {CHAIN_METHODS} (all run the chains "
                "vmapped in one program here)."
            )
        if postprocess_fn is not None:
            raise NotImplementedError("MCMC: postprocess_fn is not supported; the model's own transforms are used.")
        self._sampler, self.num_warmup, self.num_samples = sampler, num_warmup, num_samples
        self.num_chains, self.thinning, self.chain_method = num_chains, thinning, chain_method
        self.progress_bar, self.postprocess_fn, self._jit_model_args = progress_bar, None, jit_model_args
        self._args, self._kwargs, self._extra_fields = (), {}, ()
        self._warmup_state = self._last_state = None
        self._settings = self._prepared = self._run = None

    # NumPyro's attributes -------------------------------------------------------------------------------
    @property
    def sampler(self):
        """The kernel the MCMC was built with (NumPyro's name for it)."""
        return self._sampler

    @property
    def post_warmup_state(self) -> MCMCState | None:
        """The state the next run() starts from, skipping the warmup (set it to last_state to continue)."""
        return self._warmup_state

    @post_warmup_state.setter
    def post_warmup_state(self, state):
        if state is not None and not isinstance(state, MCMCState):
            raise TypeError(f"MCMC: post_warmup_state must be an MCMCState (e.g. mcmc.last_state); got {state!r}.")
        self._warmup_state = state

    @property
    def last_state(self) -> MCMCState | None:
        """The state after the last step of the last run."""
        return self._last_state

    # Running ---------------------------------------------------------------------------------------------
    def _make_settings(self, rng_key, num_warmup, args, kwargs, init_params) -> api.Settings:
        k = self._sampler.sample_settings()
        model, initial_position = self._sampler.model, None
        if model is None:  # a potential function: the log density of init_params' structure
            if init_params is None:
                raise ValueError("MCMC.run: a kernel built from potential_fn needs init_params= (a start).")
            potential = self._sampler.potential_fn
            if potential is None:
                raise ValueError("MCMC.run: the kernel has neither a model nor a potential_fn.")
            model, initial_position = (lambda z: -potential(z)), init_params
            if self.num_chains > 1:  # NumPyro's rule: one start per chain along a leading axis
                initial_position = ChainStarts(_per_chain_init_params(init_params, self.num_chains))
        elif init_params is not None:
            raise NotImplementedError(
                "MCMC.run: init_params= with a model is not supported; give the kernel "
                "init_strategy=numpyro.infer.init_to_value(values=...) instead."
            )
        solve_kwargs = {n: v for n, v in k.items() if n not in api.Settings._fields and n != "sampler"}
        return api.check_settings(
            model=model,
            rng_key=rng_key,
            num_samples=self.num_samples,
            num_warmup=num_warmup,
            num_chains=self.num_chains,
            sampler=k["sampler"],
            parallel=k["parallel"],
            solver=k["solver"],
            model_args=tuple(args),
            model_kwargs=dict(kwargs),
            initial_position=initial_position,
            step_size=k["step_size"],
            num_integration_steps=k.get("num_integration_steps"),
            inverse_mass_matrix=k.get("inverse_mass_matrix"),
            target_acceptance=k["target_acceptance"],
            keep_warmup=False,
            progress_bar=self.progress_bar,
            dims=None,
            coords=None,
            thinning=self.thinning,
            init_strategy=k["init_strategy"],
            log_likelihood=None,
            posterior_predictive=False,
            prior=None,
            dense_mass=k.get("dense_mass"),
            step_size_jitter=k.get("step_size_jitter"),
            adaptation=k.get("adaptation"),
            integration_steps_jitter=k.get("integration_steps_jitter"),
            solve_kwargs=solve_kwargs,
        )

    def warmup(self, rng_key, *args, extra_fields=(), collect_warmup=False, init_params=None, **kwargs):
        """Run the warmup only; the next run() starts from its state (post_warmup_state)."""
        if collect_warmup:
            raise NotImplementedError(
                "MCMC.warmup: collect_warmup=True is not supported; "
                "parmcmc.sample(..., keep_warmup=True) keeps the warmup draws."
            )
        self._settings = self._make_settings(rng_key, self.num_warmup, args, kwargs, init_params)
        self._args, self._kwargs = tuple(args), dict(kwargs)
        with progress.phases():
            self._prepared = api.prepare(self._settings)
        p = self._prepared
        self._warmup_state = MCMCState(p.positions, p.step_size, p.inverse_mass_matrix, rng_key, 0)

    def run(self, rng_key, *args, extra_fields=(), init_params=None, **kwargs):
        """Warm up (unless post_warmup_state is set) and draw num_samples steps per chain.

        With post_warmup_state set, the warmup is skipped and the chains continue from that state; when
        rng_key is the state's key, they continue its noise schedule too, so that run + continued run give
        the draws of one run of both lengths (``mcmc.post_warmup_state = mcmc.last_state;
        mcmc.run(mcmc.post_warmup_state.rng_key)``, NumPyro's idiom). Each segment is solved in parallel.
        """
        with progress.phases():  # an error or Ctrl-C stops the progress display's clock
            self._run_segment(rng_key, args, kwargs, extra_fields, init_params)

    def _run_segment(self, rng_key, args, kwargs, extra_fields, init_params):
        """One run() (see there)."""
        extra_fields = _check_extra_fields(self._sampler, extra_fields)
        state = self._warmup_state
        if state is None:
            settings = self._make_settings(rng_key, self.num_warmup, args, kwargs, init_params)
            prepared, offset = api.prepare(settings), 0
            self._args, self._kwargs = tuple(args), dict(kwargs)
        else:
            if self._prepared is None:
                raise ValueError(
                    "MCMC.run: post_warmup_state is set on an MCMC that has not run; run() or "
                    "warmup() this MCMC first (its model and adaptation are needed)."
                )
            if (args or kwargs) and not (
                _same_args(tuple(args), self._args) and _same_args(dict(kwargs), self._kwargs)
            ):
                raise ValueError(
                    "MCMC.run: continuing from post_warmup_state needs the model arguments of the "
                    "first run; pass the same ones, or none."
                )
            settings = self._make_settings(rng_key, self.num_warmup, self._args, self._kwargs, init_params)
            _check_state_fits(state, self._prepared.positions, self.num_chains)
            prepared = self._prepared._replace(
                positions=state.z,
                step_size=state.step_size,
                inverse_mass_matrix=state.inverse_mass_matrix,
                warmup=None,
                warmup_seconds=0.0,
            )
            offset = state.num_steps if _same_key(rng_key, state.rng_key) else 0
            if offset and not jax.config.jax_threefry_partitionable:
                raise ValueError(
                    "MCMC.run: continuing a key's noise schedule needs jax_threefry_partitionable=True "
                    "(JAX's default); with it off, split(key, n)[:m] != split(key, m)."
                )
        solver = api.pick_solver(settings, prepared)
        run = api.run_chains(settings, prepared, solver, noise_offset=offset)
        self._settings, self._prepared, self._run = settings, prepared, run
        self._extra_fields = extra_fields
        last = jax.tree_util.tree_map(lambda a: a[:, -1], run.chains.positions)
        self._last_state = MCMCState(
            last, prepared.step_size, prepared.inverse_mass_matrix, rng_key, offset + self.num_samples
        )

    # Reading the run -------------------------------------------------------------------------------------
    def _ran(self):
        """The last run's settings, prepared sampler and result (a RuntimeError before run())."""
        if self._settings is None or self._prepared is None or self._run is None:
            raise RuntimeError("MCMC: call run() first.")
        return self._settings, self._prepared, self._run

    def _chains(self):
        return thin(self._ran()[2].chains, self.thinning)

    def get_samples(self, group_by_chain=False) -> dict:
        """Constrained draws by site (latent and deterministic), (chain * draw, ...) or (chain, draw, ...).

        Feeds numpyro.infer.Predictive and numpyro.infer.log_likelihood directly.
        """
        samples = self._ran()[1].target.postprocess(self._chains().positions)
        if group_by_chain:
            return samples
        return {k: jnp.reshape(v, (-1, *v.shape[2:])) for k, v in samples.items()}

    def get_extra_fields(self, group_by_chain=False) -> dict:
        """Per-draw statistics under NumPyro's names.

        Diverging (HMC) and the extra_fields given to run() among potential_energy, energy, accept_prob,
        adapt_state.step_size, num_steps.
        """
        chains = self._chains()
        stats = chains.stats._asdict()
        shape = np.shape(stats["acceptance_rate"])
        available = {
            "accept_prob": stats["acceptance_rate"],
            "potential_energy": -stats["logdensity"],
            "adapt_state.step_size": jnp.broadcast_to(self._ran()[1].step_size[:, None], shape),
        }
        if "is_divergent" in stats:
            available["diverging"] = stats["is_divergent"]
        if "energy" in stats:
            available["energy"] = stats["energy"]
        if "num_integration_steps" in stats:  # HMC: each draw's leapfrog steps (jittered or not)
            available["num_steps"] = stats["num_integration_steps"]
        names = (["diverging"] if "diverging" in available else []) + list(self._extra_fields)
        out = {n: available[n] for n in dict.fromkeys(names)}
        if group_by_chain:
            return out
        return {k: jnp.reshape(v, (-1, *v.shape[2:])) for k, v in out.items()}

    @property
    def solver_stats(self) -> dict:
        """Per-chain statistics of the parallel solve: iterations, residual, converged, fell back."""
        chains = self._ran()[2].chains
        return {**solver_stats(chains), "solver_fell_back": np.asarray(chains.fell_back, dtype=bool)}

    def print_summary(self, prob=0.9, exclude_deterministic=True):
        """NumPyro's summary table, the number of divergences, and a line on the parallel solve."""
        samples = self.get_samples(group_by_chain=True)
        if exclude_deterministic:
            z = self._last_state.z if self._last_state is not None else None
            latent = set(z) if isinstance(z, dict) else set(samples)
            samples = {k: v for k, v in samples.items() if k in latent}
        numpyro_print_summary(samples, prob=prob, group_by_chain=True)
        extra = self.get_extra_fields()
        if "diverging" in extra:
            print(f"Number of divergences: {int(jnp.sum(extra['diverging']))}")
        s = self.solver_stats
        print(
            f"Solver: {self._ran()[2].solver!r}; Newton iterations per chain: {s['solver_iterations'].tolist()}; "
            f"converged: {bool(s['solver_converged'].all())}; fell back: {s['solver_fell_back'].tolist()}"
        )

    def to_datatree(self, *, log_likelihood=None, posterior_predictive=False, prior=None, dims=None, coords=None):
        """The ArviZ DataTree of the last run, as parmcmc.sample() returns it (solver_stats included)."""
        settings, prepared, run = self._ran()
        settings = settings._replace(
            thinning=self.thinning,
            log_likelihood=log_likelihood,
            posterior_predictive=posterior_predictive,
            prior=prior,
            dims=dims,
            coords=coords,
        )
        return datatree_from_run(prepared, run, settings)

    def transfer_states_to_host(self):
        """Nothing to do: the draws are already on the host when read."""

    def __getstate__(self):
        return dict(self.__dict__)
