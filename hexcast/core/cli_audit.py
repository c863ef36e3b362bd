"""What every audited CLI action does first: check the reason the operator audit log will
keep, then ask the operator (unless ``--yes``)."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from hexcast.core.operator_log import Audited, cli_actor

__all__ = ["confirmed"]


def confirmed(reason: str, question: str, *, yes: bool) -> Audited:
    """Who (``cli:<user>``) and why, once the operator said yes to ``question``. A reason the
    log cannot take (empty, too long, text PostgreSQL cannot store) exits 2; a no exits 1."""
    try:
        audited = Audited(reason=reason.strip(), actor=cli_actor())
    except ValidationError as exc:
        typer.echo(f"error: --reason: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    if not yes:
        typer.confirm(f"{question} ({audited.reason})?", abort=True)
    return audited
