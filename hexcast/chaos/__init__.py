"""Chaos and soak runs: a world of real hexcast processes on throwaway services, a workload,
faults, and what is sampled and reported about them."""
