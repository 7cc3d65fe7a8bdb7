"""Output: draws and statistics -> ArviZ."""

from parmcmc.io.arviz import SOLVER_STATS, solver_stats, to_datatree

__all__ = ["SOLVER_STATS", "solver_stats", "to_datatree"]
