"""parmcmc: MCMC chains computed in parallel over time."""
