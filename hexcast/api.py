"""The ``api`` process: FastAPI app composed of the domain routers."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hexcast import __version__, console
from hexcast.admin_api import router as operator_admin_router
from hexcast.alerts_api import router as alerts_router
from hexcast.core.bodyguard import BodyGuard
from hexcast.core.bus import Bus, BusUnavailable
from hexcast.core.cache import connect_redis
from hexcast.core.db import PG_OUTAGES, connect_pool
from hexcast.core.echo import MESSAGE_LIMIT, clip_echo, clip_text
from hexcast.core.errors import ConflictError, Forbidden, HexcastError, InvalidInput, NotFound, Unauthorized
from hexcast.core.http_metrics import RequestMetrics
from hexcast.core.logging import configure_logging, get_logger
from hexcast.core.settings import Settings
from hexcast.core.watchdog import LoopWatchdog
from hexcast.health import readiness
from hexcast.keys_api import router as keys_router
from hexcast.settings_api import router as tenant_settings_router
from scheduler.admin_api import router as campaign_admin_router
from scheduler.api import router as campaigns_router
from sender.admin_api import router as provider_admin_router
from sender.api import router as sender_router
from sender.dlq_api import router as dlq_admin_router
from sender.messages_api import router as messages_router
from sender.replies_api import router as replies_router
from sender.unknown_api import router as unknown_admin_router
from sender.webhooks import router as webhook_endpoints_router
from streams.api import openapi_schemas as visit_schemas
from streams.api import router as visits_router
from targeting.api import router as targeting_router

__all__ = ["create_app"]

log = get_logger("hexcast.api")

_STATUS: dict[type[HexcastError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    ConflictError: 409,
    Unauthorized: 401,
    Forbidden: 403,
    BusUnavailable: 503,
}


def _error_status(exc: HexcastError) -> int:
    for kind, status in _STATUS.items():
        if isinstance(exc, kind):
            return status
    return 500


async def _hexcast_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HexcastError):  # pragma: no cover - registered for HexcastError
        raise exc
    status = _error_status(exc)
    detail: dict[str, object] = {"error": type(exc).__name__, "message": clip_text(str(exc), MESSAGE_LIMIT)}
    if isinstance(exc, InvalidInput) and exc.field:
        detail["field"] = clip_text(exc.field)
    if status >= 500:
        log.error("request_failed", path=request.url.path, error=str(exc))
    headers = {"WWW-Authenticate": exc.scheme} if isinstance(exc, Unauthorized) else None
    return JSONResponse(detail, status_code=status, headers=headers)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL unreachable (down, restarting, out of connections) during a request: a 503
    the client may retry after ``api_retry_after_s``, never a 500, nothing half done (each
    request's writes are one transaction, or idempotent on retry)."""
    settings: Settings = request.app.state.settings
    log.warning("request_db_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return JSONResponse(
        {"error": "DatabaseUnavailable",
         "message": f"the database is unavailable ({type(exc).__name__}); retry later"},
        status_code=503, headers={"Retry-After": str(settings.api_retry_after_s)},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own refusals (an unknown path or method, a body it could not parse) in the
    same shape as ours, not ``{"detail": ...}``."""
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for it
        raise exc
    phrase = HTTPStatus(exc.status_code).phrase.title().replace(" ", "").replace("-", "")
    return JSONResponse({"error": phrase, "message": clip_text(str(exc.detail), MESSAGE_LIMIT)},
                        status_code=exc.status_code, headers=exc.headers)


MAX_ERRORS = 10
"""Validation errors an answer lists; a 1,000-event batch of bad events does not list 1,000."""


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = [_clipped(e) for e in exc.errors()] if isinstance(exc, RequestValidationError) else []
    shown = errors[:MAX_ERRORS]
    fields = [".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in shown]
    if len(errors) > MAX_ERRORS:
        fields.append(f"and {len(errors) - MAX_ERRORS} more errors")
    return JSONResponse(
        {"error": "ValidationError", "message": "; ".join(fields), "detail": _jsonable(shown)},
        status_code=422,
    )


def _clipped(error: dict[str, Any]) -> dict[str, Any]:
    """``error`` with what it echoes of the input (its input, message, context and the field
    names in its location) cut to a few hundred characters."""
    clipped = {**error, "loc": tuple(clip_echo(p) for p in error.get("loc", ())),
               "msg": clip_text(str(error.get("msg", "")))}
    if "input" in error:
        clipped["input"] = clip_echo(error["input"])
    if isinstance(error.get("ctx"), dict):
        clipped["ctx"] = {k: clip_echo(v if isinstance(v, str | int | float) else str(v))
                          for k, v in error["ctx"].items()}
    return clipped


def _jsonable(errors: object) -> object:
    from fastapi.encoders import jsonable_encoder

    return _finite(jsonable_encoder(errors, custom_encoder={Exception: str, ValueError: str}))


def _finite(value: object) -> object:
    """``value`` with NaN and infinities as text: the errors echo the input (a 1e999 latitude
    parses as infinity), and JSON has no such numbers, so the error answer itself failed."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _extend_openapi(app: FastAPI, schemas: dict[str, Any]) -> None:
    """Add component schemas that routes with hand-written request bodies refer to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            spec.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings) -> FastAPI:
    """The API app; resources open in the lifespan, never at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json=settings.log_json)
        app.state.settings = settings
        app.state.pool = await connect_pool(settings.database_url, max_size=20)
        app.state.bus = Bus(settings)
        await app.state.bus.start()
        app.state.redis = connect_redis(settings.redis_url)
        watchdog = (asyncio.create_task(LoopWatchdog(stall_ms=settings.loop_stall_warn_ms).run())
                    if settings.loop_stall_warn_ms else None)
        log.info("api_started", port=settings.api_port)
        try:
            yield
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            await app.state.bus.stop()
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = FastAPI(title="hexcast", version=__version__, lifespan=lifespan)
    app.add_exception_handler(HexcastError, _hexcast_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for outage in PG_OUTAGES:
        app.add_exception_handler(outage, _database_unavailable)
    app.add_middleware(BodyGuard, limit=settings.max_body_bytes,
                       limits={"/v1/recipients/import": settings.import_max_bytes})
    app.add_middleware(RequestMetrics, router=app.router)  # outermost: counts the guard's 413s
    app.include_router(visits_router)
    app.include_router(targeting_router)
    app.include_router(sender_router)
    app.include_router(messages_router)
    app.include_router(replies_router)
    app.include_router(webhook_endpoints_router)
    app.include_router(provider_admin_router)
    app.include_router(operator_admin_router)
    app.include_router(alerts_router)
    app.include_router(campaign_admin_router)
    app.include_router(dlq_admin_router)
    app.include_router(unknown_admin_router)
    app.include_router(campaigns_router)
    app.include_router(keys_router)
    app.include_router(tenant_settings_router)
    console.install(app)  # /console: the live operator console

    _extend_openapi(app, visit_schemas())

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, bool]:
        """Liveness: the process answers (what a supervisor restarts on); see ``/ready``."""
        return {"ok": True}

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        """Readiness: PostgreSQL and Redis answer (503 naming what does not)."""
        checks = await readiness(request.app.state.pool, request.app.state.redis)
        status = 200 if all(checks.values()) else 503
        headers = None if status == 200 else {"Retry-After": str(settings.api_retry_after_s)}
        return JSONResponse({"ok": status == 200, **checks}, status_code=status, headers=headers)

    return app
