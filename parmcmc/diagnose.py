"""Kept for existing imports: `diagnose` and `choose_solver` now live in `parmcmc.predictability.diagnose`."""

from parmcmc.predictability.diagnose import choose_solver, diagnose

__all__ = ["choose_solver", "diagnose"]
