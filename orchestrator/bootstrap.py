"""Assembling an engine from settings: database (migrated), org, flows, allowed code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from orchestrator.agents import LlmDefaults
from orchestrator.callables import CallableLoader
from orchestrator.clock import Clock
from orchestrator.engine import Engine
from orchestrator.events import Notifier
from orchestrator.loader import FlowCatalog
from orchestrator.orgfile import load_org
from orchestrator.settings import Settings
from storage.engine import Database
from storage.migrate import ensure_schema


def open_database(settings: Settings) -> Database:
    db = Database(settings.database_url)
    ensure_schema(db)
    return db


def open_engine(settings: Settings, *, clock: Clock | None = None,
                observers: Sequence[Notifier] = (), background: bool = False,
                db: Database | None = None, lease_ttl: timedelta | None = None) -> Engine:
    """Everything the engine needs, from configuration. Raises FlowError for an invalid
    org file; invalid flow files only fail when they are used (or validated)."""
    org = load_org(settings.org_path)
    callables = CallableLoader(settings.python_modules, settings.flows.resolve())
    reach = settings.reach()
    catalog = FlowCatalog(settings.flows, org, callables, reach)
    extra = {"lease_ttl": lease_ttl} if lease_ttl is not None else {}
    return Engine(db or open_database(settings), catalog, org, callables, clock,
                  observers=observers, background=background,
                  agent_concurrency=settings.agent_concurrency,
                  llm=LlmDefaults(settings.llm_model, settings.llm_prices, reach), **extra)
