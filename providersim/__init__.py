"""provider-sim: a real SMS provider simulator (HTTP server, ledger, receipts, faults) that the
demo, the tests and the benchmarks send to. It plays the provider, so it imports nothing of the
sender it is tested against (only hexcast's core, by contract)."""

from providersim.server import SimConfig, create_sim_app, run_sim

__all__ = ["SimConfig", "create_sim_app", "run_sim"]
