"""The demo (`./dev.sh demo`): a built-in model sampled in parallel over time and sequentially.

By default a Bayesian logistic regression with MALA, 4 chains: warmup once, then the same chains
computed by a parallel Newton solve (DEER) and by the sequential reference; summaries side by side,
iterations, times and the largest difference between the two runs' draws. `--model eight_schools
--sampler hmc` shows a harder target (a funnel), where the solve may fall back to sequential.
"""

import argparse

import jax

from parmcmc.compare import compare
from parmcmc.models.builtin import eight_schools, logistic_regression


def main(argv=None):
    """Run the demo (`./dev.sh demo`): sample a model in parallel and sequentially, and compare."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["logistic_regression", "eight_schools"], default="logistic_regression")
    parser.add_argument("--sampler", choices=["mala", "hmc"], default="mala")
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float32", action="store_true", help="run in float32 (default float64)")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", not args.float32)

    ex = eight_schools() if args.model == "eight_schools" else logistic_regression()
    print(
        f"parmcmc demo: {ex.name}, {args.sampler.upper()}, {args.num_chains} chains x {args.num_samples} draws "
        f"after {args.num_warmup} warmup steps, {'float32' if args.float32 else 'float64'}, "
        f"device {jax.devices()[0].platform}"
    )
    result = compare(
        ex.model,
        rng_key=jax.random.key(args.seed),
        sampler=args.sampler,
        num_samples=args.num_samples,
        num_warmup=args.num_warmup,
        num_chains=args.num_chains,
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        coords=ex.coords,
    )
    print()
    print(result)
    print("\nThe parallel run solves each whole chain at once with Newton iterations over an associative scan;")
    print("on a CPU the sequential scan of a cheap model is faster (see docs/benchmarks.md): the parallel")
    print("solve pays on a GPU, for long chains of predictable dynamics.")


if __name__ == "__main__":
    main()
