"""provider-sim: a real SMS provider simulator (HTTP server, ledger, receipts, faults) that the
demo, the tests and the benchmarks send to. It plays the provider, so it imports nothing of the
sender it is tested against (only hexcast's core, by contract)."""

from providersim.config import SimConfig
from providersim.dialects.generic import UNDELIVERABLE_CODE, callback_form
from providersim.server import create_sim_app, run_sim

__all__ = ["UNDELIVERABLE_CODE", "SimConfig", "callback_form", "create_sim_app", "run_sim"]
