"""Each adapter's probe (``hexcast providers check --probe``) against the simulator speaking its
provider's API, a real subprocess per dialect: the right credentials read the account and
describe it, a wrong token is "credentials refused"; and the real CLI probing the two routes of
a routes file (tokens in environment variables), one with a wrong token, prints a line per route
and no token, and exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from hexcast.core.errors import ProviderError
from hexcast.testing import running_sim
from providersim import SimConfig
from sender.models import ProviderSpec
from sender.providers import probe_route

TOKEN = "probe-token"
ACCOUNTS = {
    "generic": "unused", "twilio": "AC" + "1" * 32, "vonage": "probekey",
    "plivo": "MAPROBE0000000000000", "sinch": "probeplan0123456789", "telnyx": "unused",
}
"""Each simulator's account id (Account SID, API key, Auth ID, service plan id)."""

DESCRIBED = {
    "generic": "reachable, token accepted",
    "twilio": f"account {ACCOUNTS['twilio']} active (Full)",
    "vonage": "balance 10.00 EUR",
    "plivo": f"account {ACCOUNTS['plivo']} (standard), 10.00000 USD credit",
    "sinch": "service plan reachable, 0 batch(es) in the last 24 h",
    "telnyx": "balance 300.00 USD, available 400.00 USD",
}
"""What each probe says of a simulator that took nothing yet."""


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, str]]:
    """One simulator per dialect, for the whole module (starting one takes a second or two)."""
    with ExitStack() as stack:
        yield {kind: stack.enter_context(running_sim(SimConfig(
            dialect=kind, account=account, token=TOKEN)))  # type: ignore[arg-type]
            for kind, account in ACCOUNTS.items()}


def route(kind: str, url: str, token: str = TOKEN) -> ProviderSpec:
    return ProviderSpec(name=f"{kind}-probe", kind=kind, url=url, token=token,  # type: ignore[arg-type]
                        account=ACCOUNTS[kind], sender_id="+13125550100")


@pytest.mark.parametrize("kind", list(ACCOUNTS))
async def test_the_probe_reads_the_account_and_names_refused_credentials(
    sims: dict[str, str], kind: str,
) -> None:
    assert await probe_route(route(kind, sims[kind]), timeout_s=5) == DESCRIBED[kind]
    with pytest.raises(ProviderError, match=r"credentials refused \(HTTP 401\)"):
        await probe_route(route(kind, sims[kind], token="not-the-token"), timeout_s=5)


async def test_the_sinch_probe_counts_the_batches_taken(sims: dict[str, str]) -> None:
    url = f"{sims['sinch']}/xms/v1/{ACCOUNTS['sinch']}/batches"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=10) as client:
        sent = await client.post(url, headers=auth, json={"to": ["+13125550111"], "body": "hi"})
        assert sent.status_code == 201
        listed = (await client.get(url, headers=auth, params={"page_size": 1})).json()
    assert (listed["count"], listed["page"], listed["page_size"]) == (1, 0, 1)
    assert listed["batches"][0]["id"] == sent.json()["id"]
    assert listed["batches"][0]["to"] == ["+13125550111"]
    assert await probe_route(route("sinch", sims["sinch"]), timeout_s=5) == (
        "service plan reachable, 1 batch(es) in the last 24 h")
    async with httpx.AsyncClient(base_url=sims["sinch"], timeout=10) as client:
        (await client.post("/control/reset")).raise_for_status()


async def test_a_dry_run_route_calls_nothing_and_an_unreachable_one_says_so() -> None:
    dry = ProviderSpec(name="dry", kind="dryrun", token="")
    assert await probe_route(dry, timeout_s=5) == "dry run: sends nothing"
    with pytest.raises(ProviderError, match="ConnectError"):
        await probe_route(route("telnyx", "http://127.0.0.1:9"), timeout_s=5)


def routes_file(path: Path, sims: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    """Write a routes file at ``path`` with a ``<kind>-probe`` route per kind of ``tokens``,
    each token by reference to an environment variable, as production keeps them (a spec's
    dump shows ``**********`` in their place); the variables to set."""
    variables = {kind: f"HX_PROBE_{kind.upper()}_TOKEN" for kind in tokens}
    path.write_text("".join(
        f'[[route]]\nname = "{kind}-probe"\nkind = "{kind}"\nurl = "{sims[kind]}"\n'
        f'account = "{ACCOUNTS[kind]}"\nsender_id = "+13125550100"\n'
        f'token = {{ env = "{variables[kind]}" }}\n\n' for kind in tokens))
    return {variables[kind]: token for kind, token in tokens.items()}


def test_the_cli_probes_every_route_and_exits_1_when_one_fails(
    sims: dict[str, str], tmp_path: Path,
) -> None:
    path = tmp_path / "routes.toml"
    secrets = routes_file(path, sims, {"twilio": TOKEN, "telnyx": "revoked-telnyx-token"})
    env = {**os.environ, **secrets, "HEXCAST_PROVIDERS_FILE": str(path), "HEXCAST_SENDER_PROVIDERS": "",
           "HEXCAST_PROVIDER_TIMEOUT_S": "5", "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "hexcast", "providers", "check", "--probe"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert not any(token in done.stdout + done.stderr for token in secrets.values())
    lines = done.stdout.splitlines()
    assert "2 route(s) valid" in lines
    assert lines[-2:] == [f"twilio-probe: ok: {DESCRIBED['twilio']}",
                          "telnyx-probe: FAILED: credentials refused (HTTP 401)"]
