"""One settings class, read from the environment (prefix ``HEXCAST_``) by :func:`get_settings`."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hexcast.core.errors import ConfigError

__all__ = ["Settings", "get_settings", "load_settings"]


class Settings(BaseSettings):
    """Every tunable of every hexcast process. Defaults run on a developer machine."""

    model_config = SettingsConfigDict(env_prefix="HEXCAST_", extra="ignore", frozen=True)

    # Infrastructure
    broker_url: str | None = Field(
        default=None,
        description="kafka://host:port[,host:port]. Unset: `hexcast up` starts the embedded broker.",
    )
    database_url: str = "postgresql://postgres@127.0.0.1:5432/hexcast"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = Field(default="hexcast:", description="Prefix of every Redis key.")
    topic_prefix: str = Field(default="", description="Prefix of every Kafka topic name.")
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topic_replication_factor: int = Field(
        default=1, ge=1, le=32, description="Replicas of each topic `hexcast topics` creates"
        " (3 on the compose Kafka cluster; the embedded broker has one node).",
    )
    topic_min_insync_replicas: int = Field(
        default=1, ge=1, le=32, description="`min.insync.replicas` of each topic created (at most"
        " the replication factor): an acks=all write needs this many replicas to succeed.",
    )
    kafka_idempotent_producer: bool = Field(
        default=False, description="Idempotent producers (no duplicate from a producer retry)."
        " Off locally: the embedded broker (tansu) refuses InitProducerId; compose turns it on.",
    )
    app_id: str = Field(default="hexcast", description="Faust application id (consumer group).")
    broker_rebalance_timeout: float = Field(default=10.0, gt=0)
    broker_fetch_max_wait_ms: int = Field(
        default=100, ge=1, le=60_000, description="How long a faust consumer's fetch may wait"
        " for data (faust hard-codes 1,500 ms; the local broker holds a fetch for most of it).",
    )
    state_dir: str = Field(default=".hexcast", description="Where local state and logs go.")
    loop_stall_warn_ms: float = Field(
        default=250.0, ge=0, description="Log `event_loop_stalled` (with the stack that held it)"
        " when a process's event loop is held this long; 0 turns the watchdog off.",
    )

    # Processes
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_public_url: str = "http://127.0.0.1:8000"
    api_retry_after_s: int = Field(
        default=5, ge=1, le=3600, description="`Retry-After` of the api's 503 answers while"
        " PostgreSQL is unreachable (`DatabaseUnavailable`).",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Request body cap of every route but the recipient"
        " import (`import_max_bytes`); counted as the body streams in, whatever its encoding.",
    )
    operator_token: str | None = Field(
        default=None, min_length=16, description="Bearer token of the operator routes (`/metrics`,"
        " `/v1/admin`: every tenant's data). Unset: they answer 401. `hexcast up`"
        " generates one.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Where each process's Prometheus `/metrics` listens"
        " (loopback by default: the counters name tenants).")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="This process's `/metrics` port; unset: none."
        " `hexcast up` gives each process its own, from `metrics_base_port` up, and lists them"
        " in a Prometheus file-based service discovery file.")
    metrics_base_port: int = Field(default=9460, ge=1, le=65000,
                                   description="The first `/metrics` port `hexcast up` hands out.")
    prometheus_url: str | None = Field(
        default=None, pattern=r"^https?://", description="The Prometheus server that scrapes"
        " every process (its HTTP API, e.g. http://127.0.0.1:9090): the console's rates, latency"
        " percentiles and error codes. Unset: the console shows those cells as not connected.")
    prometheus_port: int | None = Field(
        default=None, ge=1, le=65535, description="Where `hexcast up` runs Prometheus (installed"
        " binary, hexcast/devstack/monitoring.py); unset: a free port.")
    alertmanager_port: int | None = Field(
        default=None, ge=1, le=65535, description="Where `hexcast up` runs Alertmanager; unset: a"
        " free port.")
    slack_webhook_url: str | None = Field(
        default=None, pattern=r"^https?://", repr=False, description="A Slack-compatible incoming"
        " webhook Alertmanager posts alert groups to (`hexcast up`; compose reads it as a secret)."
        " Unset: alerts go to hexcast only.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False

    # Provider
    provider_url: str = "http://127.0.0.1:8100"
    provider_token: str = "sim-token"
    provider_name: str = "sim"
    provider_rate_per_s: float = Field(default=200.0, gt=0, description="Our send budget.")
    provider_burst: float = Field(default=200.0, gt=0)
    provider_timeout_s: float = Field(default=10.0, gt=0)
    provider_max_attempts: int = Field(default=5, ge=1, le=50)
    dlr_webhook_token: str = "dlr-token"

    # Simulator (the `provider-sim` process)
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(default=8100, ge=1, le=65535)
    sim_rate_per_s: float = Field(default=1000.0, gt=0, description="Destinations/s it accepts.")
    sim_dlr_delay_s: float = Field(default=0.5, ge=0)
    sim_dlr_url: str | None = Field(
        default=None, description="Where receipts go; default: the api's /v1/webhooks/dlr."
    )
    sim_receipts: bool = Field(default=True, description="Post delivery receipts at all.")

    # Matching
    h3_resolution: int = Field(default=10, ge=5, le=13)
    geo_ttl_s: int = Field(default=1800, ge=1)
    matcher_max_per_visit: int = Field(
        default=1, ge=1, le=10, description="Geo SMS at most per visit (one triggering event)."
    )
    matcher_cap_per_day: int = Field(
        default=2, ge=1, description="Geo promotions per user per local day (store's zone)."
    )
    matcher_cap_per_24h: int = Field(default=3, ge=1, description="Geo promotions per user per rolling 24 h.")

    # --- scheduler and campaigns ---
    scheduler_poll_s: float = Field(default=1.0, gt=0, description="How often due runs are looked for.")
    scheduler_lease_s: float = Field(
        default=30.0, ge=1, description="A wave's claim lapses this long after its last checkpoint."
    )
    scheduler_chunk_size: int = Field(default=1000, ge=1, le=1000)
    scheduler_backlog_chunks: int = Field(
        default=2, ge=1, description="Chunks of a wave released but not yet settled by the"
        " senders before the scheduler waits, so a run never floods send.bulk ahead of others.",
    )
    scheduler_misfire_grace_s: float = Field(
        default=3600.0, ge=0, description="Fires missed by more than this are skipped."
    )
    campaign_receipt_wait_s: float = Field(
        default=3600.0, ge=0, description="A run whose messages all reached a provider is finished"
        " once every receipt came, or this long after its last message was accepted.",
    )
    import_max_bytes: int = Field(default=268_435_456, ge=1024, description="Recipient import body cap.")
    # --- sender ---
    sender_providers: str = Field(
        default="",
        description="JSON list of provider accounts (sender.models.ProviderSpec: name, url, token,"
        " mode batch|single, lookup, weight, lanes, rate_per_s). Empty: one batch provider from"
        " the provider_* settings.",
    )
    providers_file: str = Field(
        default="",
        description="A TOML or YAML file (.toml, .yaml, .yml) of provider routes"
        " (sender/routes_file.py), credentials by reference to environment variables or files."
        " Set, it replaces sender_providers.",
    )
    sender_breaker_failures: int = Field(default=5, ge=1, description="Failures that open it.")
    sender_breaker_open_s: float = Field(default=10.0, gt=0, description="Open before a trial.")
    sender_bulk_share: float = Field(
        default=0.7, gt=0, le=1,
        description="Share of each provider account's rate the bulk lane may use; the rest is"
        " reserved for the otp, transactional and geo lanes.",
    )
    sender_transactional_share: float = Field(
        default=0.2, ge=0, lt=1,
        description="Share of each provider account's rate kept for the otp and transactional"
        " lanes: geo and bulk together may use at most the rest (bulk also its own share).",
    )
    sender_fair_window_s: float = Field(
        default=3.0, gt=0, description="Bulk lane: a tenant that asked for send capacity within"
        " this many seconds counts as active; k active tenants get 1/k of the bulk share each.",
    )
    sender_bulk_concurrency: int = Field(
        default=1, ge=1, le=64, description="Bulk chunks one bulk sender works on at once (faust"
        " actors). 1 by default: with 4, a 50k run stalled intermittently in tests (not yet"
        " explained); fairness then rests on the scheduler's interleaved, bounded release.",
    )
    sender_bulk_parts: int = Field(
        default=2, ge=1, le=8, description="Slices one bulk chunk is cut into and worked on side"
        " by side in one actor (enqueue, checks, provider call, acceptance of each overlap);"
        " the chunk's record is done when every slice is.",
    )
    sender_micro_batch: int = Field(
        default=100, ge=1, le=1000, description="Geo and otp lanes: records (a send or a few"
        " each) a sender takes at once and sends together.",
    )
    sender_micro_batch_wait_s: float = Field(
        default=0.01, gt=0, le=1.0, description="How long a geo/otp sender waits for more"
        " records before it sends what it has.",
    )
    sender_quiet_hours: bool = Field(
        default=True, description="Defer marketing in recipients' quiet hours (tests turn it off"
        " to be independent of the time of day they run at).",
    )
    sender_shorten_links: bool = Field(
        default=True, description="Replace links in geo/bulk messages by tracked api /r/ links."
    )
    sender_cap_per_day: int = Field(default=3, ge=1, description="Marketing SMS per recipient"
                                    " per local day.")
    sender_cap_per_24h: int = Field(default=5, ge=1)
    sender_cap_strict_per_24h: int = Field(
        default=3, ge=1, description="Per rolling 24 h where a stricter state rule applies (FL/OK)."
    )
    sender_cap_min_spacing_s: float = Field(default=600.0, ge=0)
    sender_single_concurrency: int = Field(default=32, ge=1, le=512)
    sender_reconcile_grace_s: float = Field(
        default=300.0, ge=0,
        description="Rows left sending/queued this long are swept: reconciled by lookup or sent.",
    )
    sender_sweep_interval_s: float = Field(default=60.0, gt=0)
    sender_pause_recheck_s: float = Field(
        default=15.0, gt=0,
        description="A paused run's messages are deferred this long, then released and checked again.",
    )
    sender_fault_kill_after_calls: int = Field(
        default=0, ge=0,
        description="TEST ONLY fault hook: SIGKILL the sender right after its Nth accepted provider"
        " call, before the database commit. 0 (default) = off.",
    )
    sim_mode: Literal["batch", "single"] = "batch"
    sim_dialect: Literal["generic", "twilio", "vonage", "plivo", "sinch", "telnyx"] = Field(
        default="generic", description="The provider API the simulator speaks (providersim.dialects)."
    )
    sim_account: str = Field(default="AC00000000000000000000000000000000",
                             description="The account id the simulator expects in its dialect.")
    sim_signing_key: str = Field(default="sim-signing-key", repr=False,
                                 description="What the simulator signs its callbacks with.")
    sim_lookup: bool = True
    sim_retry_after_s: int = Field(default=0, ge=0, description="Fixed 429 Retry-After; 0 = computed.")
    sim_ledger_path: str | None = Field(
        default=None, description="provider-sim keeps its ledger in this file across restarts.")
    # Retention of the message log (sender/retention.py)
    message_retention_days: int = Field(
        default=90, ge=1, le=36_500, description="Messages in a final state (delivered, failed,"
        " expired, suppressed) this old are deleted with their events, parts, receipts and links.",
    )
    message_retention_batch: int = Field(
        default=5000, ge=1, le=100_000, description="Messages examined per delete statement.")
    message_retention_every_s: float = Field(
        default=3600.0, ge=0, description="How often the scheduler prunes the message log; 0 = never.")
    # Tenant webhooks (sender/webhooks/)
    webhook_allow_private_urls: bool = Field(
        default=False, description="Let endpoints resolve to private, loopback or link-local"
        " addresses (local development and tests only).")
    webhook_retry_schedule_s: list[float] = Field(
        default=[0, 5, 300, 1800, 7200, 18000, 36000, 36000], min_length=1,
        description="Delay before each attempt of an event (JSON list); then it has failed.")
    webhook_timeout_s: float = Field(default=15.0, gt=0, description="Per request to an endpoint.")
    webhook_disable_after_s: float = Field(
        default=432_000.0, gt=0, description="An endpoint failing this long is disabled (5 days).")
    webhook_retention_s: float = Field(
        default=2_592_000.0, ge=3600, description="Events, deliveries and attempts older than"
        " this are deleted (30 days; replay reaches back this far). Pending ones are kept.")

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"HEXCAST_TOPIC_MIN_INSYNC_REPLICAS ({self.topic_min_insync_replicas}) exceeds"
                f" HEXCAST_TOPIC_REPLICATION_FACTOR ({self.topic_replication_factor})")
        return self

    @field_validator("operator_token", "prometheus_url", "slack_webhook_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith("kafka://"):
            raise ValueError("must look like kafka://host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _pg_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @property
    def bootstrap_servers(self) -> str:
        """host:port list for aiokafka, from ``broker_url``."""
        if self.broker_url is None:
            raise ConfigError("HEXCAST_BROKER_URL is not set and no embedded broker is running")
        return self.broker_url.removeprefix("kafka://")

    def to_env(self) -> dict[str, str]:
        """These settings as ``HEXCAST_*`` variables, to hand to a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[f"HEXCAST_{name.upper()}"] = text
        return env

    def topic(self, name: str) -> str:
        """The real topic name for a logical one (``visits`` → ``<prefix>visits``)."""
        return f"{self.topic_prefix}{name}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; a bad value raises :class:`ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            (f"HEXCAST_{'_'.join(str(p) for p in err['loc']).upper()}: " if err["loc"] else "")
            + err["msg"]
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return load_settings()
