"""Estimated cost of a model call, from a price table in configuration (never in code).

`BATON_LLM_PRICES` names a YAML (or JSON) file:

    per_tokens: 1000000          # prices below are per million tokens (the default)
    models:
      gpt-4o-mini: {input: 0.15, output: 0.60}
      "gpt-4o-mini-*": {input: 0.15, output: 0.60}   # shell-style patterns are allowed
      "llama3*": {input: 0, output: 0}               # a local server costs nothing per call

A model the table does not name costs 0, and a warning says so; a missing or broken file
is logged and treated as an empty table. A price problem never fails a run.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = structlog.get_logger("baton.llm")


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="price per `per_tokens` prompt tokens")
    output: float = Field(ge=0, description="price per `per_tokens` completion tokens")


class PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = "USD"
    per_tokens: int = Field(default=1_000_000, ge=1)
    models: dict[str, ModelPrice] = {}


@dataclass(frozen=True)
class Estimate:
    cost: float
    priced_as: str | None  # the table entry used; None: unknown model, cost 0


class PriceTable:
    def __init__(self, data: PriceFile | None = None, source: str = "(none)") -> None:
        self.data = data or PriceFile()
        self.source = source

    def price(self, *models: str | None) -> tuple[str, ModelPrice] | None:
        """The first model name with an exact entry, else the first that matches a pattern."""
        names = [m for m in models if m]
        for name in names:
            if name in self.data.models:
                return name, self.data.models[name]
        for name in names:
            for pattern, price in self.data.models.items():
                if fnmatch.fnmatchcase(name, pattern):
                    return pattern, price
        return None

    def estimate(self, tokens_in: int, tokens_out: int, *models: str | None) -> Estimate:
        found = self.price(*models)
        if found is None:
            return Estimate(0.0, None)
        entry, price = found
        per = self.data.per_tokens
        return Estimate(round((tokens_in * price.input + tokens_out * price.output) / per, 8), entry)


_cache: dict[Path, tuple[float, PriceTable]] = {}
_lock = threading.Lock()


def load_prices(path: Path | None) -> PriceTable:
    """The table in `path`, re-read when the file changes."""
    if path is None:
        return PriceTable()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        log.error("llm_prices_unreadable", path=str(path), error=str(exc))
        return PriceTable(source=str(path))
    with _lock:
        cached = _cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        table = PriceTable(PriceFile.model_validate(data), source=str(path))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        log.error("llm_prices_invalid", path=str(path), error=str(exc).splitlines()[0:3])
        table = PriceTable(source=str(path))
    with _lock:
        _cache[path] = (mtime, table)
    return table
