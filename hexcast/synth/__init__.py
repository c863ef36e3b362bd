"""The synthetic demo dataset for the notebooks (`hexcast demo-data`).

Three steps, one module each: :mod:`~hexcast.synth.population` generates stores, recipients,
visits and geo messages (pure, deterministic from a seed); :mod:`~hexcast.synth.campaign`
adds one finished bulk campaign with a control group (pure); :mod:`~hexcast.synth.loader`
bulk-loads both into a migrated database. It is app-layer code: it writes through the domains'
repos and COPY, and nothing below the app layer imports it. Exported here: what the CLI,
notebooks, benches and tests outside the package use.
"""

from hexcast.synth.campaign import CAMPAIGN_NAME
from hexcast.synth.loader import SynthSummary, load, recipient_ids
from hexcast.synth.population import DEMO_TENANT, INTERESTS, METROS, Metro, SynthData, SynthParams, generate

__all__ = [
    "CAMPAIGN_NAME",
    "DEMO_TENANT",
    "INTERESTS",
    "METROS",
    "Metro",
    "SynthData",
    "SynthParams",
    "SynthSummary",
    "generate",
    "load",
    "recipient_ids",
]
