"""One settings object for everything the store needs, from the environment or from flags.

    CROSSCHECK_DATA_DIR        data directory: snapshots (Parquet) and, by default, the SQLite
                               database crosscheck.db                 (default ./crosscheck-data)
    CROSSCHECK_DATABASE_URL    any SQLAlchemy URL (postgresql://…); default SQLite in the data dir
    CROSSCHECK_POLICY          policy TOML used by runs that are not given one
    CROSSCHECK_ENGINE          where runs (the command, the schedule, the API) run the rules:
                               polars, or spark (engine.spark; pip install -e '.[spark]') (polars)
    CROSSCHECK_OVERDUE_DAYS    a flag open longer than this is overdue                    (30)
    CROSSCHECK_LOCK_TIMEOUT    seconds to wait for another run's transaction before giving up (30)
    CROSSCHECK_DAY_MONTHLY, _QUARTERLY, _SEMIANNUAL, _ANNUAL
                               the day within each cadence period from which its rules are due
                               (1 = the period's first day)                                 (1)
    CROSSCHECK_REVIEW_MONTHS, CROSSCHECK_REVIEW_MONTHS_INCOME
                               household re-review interval; shorter where a member declares
                               income                                                  (12, 6)
    CROSSCHECK_REVIEW_WITHIN_DAYS  `households due` also lists reviews due this soon      (30)
    CROSSCHECK_SCHEDULER_ENABLED, CROSSCHECK_SCHEDULER_TIME
                               the in-process nightly job of a server               (false, 02:00)
    CROSSCHECK_MAX_UPLOAD_MB   uploads larger than this are refused before they are read    (50)
    CROSSCHECK_XLSX_MAX_EXPANDED_MB  an uploaded XLSX that expands beyond this is refused (1024)
    CROSSCHECK_HOST, CROSSCHECK_PORT  where `crosscheck serve` listens        (127.0.0.1, 8000)
    CROSSCHECK_CHECK_PROCESS   a server checks households (POST /checks, batches) in a process
                               of its own; false: in a thread of its own process         (true)
    CROSSCHECK_CHECK_TIMEOUT   seconds POST /checks waits for its answer before a 503       (60)
    CROSSCHECK_CHECK_THREADS   polars threads of the check process; 0: one per core          (1)
    CROSSCHECK_CHECK_PIN       with one polars thread, the check process keeps to one CPU (the
                               one the server runs on as it starts it), and the server's
                               threads but polars' pool keep off it                      (true)

Command-line flags override the environment (`load_settings(data_dir=…)`); None means "not
given". A bad value is a StoreError naming the variable, never a pydantic traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import StoreError

__all__ = ["Settings", "load_settings", "PERIOD_DAYS"]

# Longest day-of-period that exists in every period of the cadence (February, short quarters).
PERIOD_DAYS = {"monthly": 28, "quarterly": 90, "semiannual": 181, "annual": 365}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSCHECK_", extra="ignore", validate_default=True)

    data_dir: Path = Path("crosscheck-data")
    database_url: str | None = None
    policy: Path | None = None
    engine: Literal["polars", "spark"] = "polars"
    overdue_days: int = Field(30, ge=1)
    lock_timeout: float = Field(30.0, ge=0)
    day_monthly: int = Field(1, ge=1, le=PERIOD_DAYS["monthly"])
    day_quarterly: int = Field(1, ge=1, le=PERIOD_DAYS["quarterly"])
    day_semiannual: int = Field(1, ge=1, le=PERIOD_DAYS["semiannual"])
    day_annual: int = Field(1, ge=1, le=PERIOD_DAYS["annual"])
    review_months: int = Field(12, ge=1)
    review_months_income: int = Field(6, ge=1)
    review_within_days: int = Field(30, ge=0)
    scheduler_enabled: bool = False
    scheduler_time: str = "02:00"
    max_upload_mb: float = Field(50.0, gt=0)
    xlsx_max_expanded_mb: float = Field(1024.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    check_process: bool = True
    check_timeout: float = Field(60.0, gt=0)
    check_threads: int = Field(1, ge=0)
    check_pin: bool = True
    fast_checks: bool = True  # POST /checks beside FastAPI's request machinery (api.fast_checks)
    # FastAPI's own OpenTelemetry spans and metrics for every request, when a provider is set up
    # (off: asking whether one is costs ~14 µs a request on the event loop; /metrics has ours).
    opentelemetry: bool = False

    @field_validator("scheduler_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        match = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", value.strip())
        if not match:
            raise ValueError("use HH:MM, e.g. 02:00")
        return value.strip()

    def day_of(self, cadence: str) -> int:
        """The day within a `cadence` period from which its rules are due."""
        return int(getattr(self, f"day_{cadence}"))

    @property
    def url(self) -> str:
        """The database URL: the configured one (postgresql:// means psycopg 3), else SQLite in
        the data directory."""
        if self.database_url:
            url = self.database_url.strip()
            # SQLAlchemy's bare postgresql:// means psycopg2; the dependency we ship is psycopg 3.
            return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
        return f"sqlite:///{(self.data_dir / 'crosscheck.db').resolve()}"

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the non-None `overrides` (command-line flags) on top."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "?"
            lines.append(f"CROSSCHECK_{name.upper()} (--{name.replace('_', '-')}): {item['msg']}")
        raise StoreError("设置无效 invalid settings:\n  " + "\n  ".join(lines)) from None
