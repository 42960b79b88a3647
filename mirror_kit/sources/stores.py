"""The stores a mirror may reach: declared by its operator when it starts.

A caller never chooses where the mirror connects (docs/hardening.md, "Stores and
connection details"). The operator declares the stores, each with a name, in
one of three ways that all end in one ``StoreConfig``:

* a file, TOML or JSON (``--stores FILE``, ``MIRROR_KIT_STORES``)::

      default = "prod"                  # the store {} selects ("synthetic" if absent)

      [stores.prod]
      kind = "prometheus"
      url = "http://127.0.0.1:9090"
      step = "15s"
      allowHeaders = ["X-Scope-OrgID"]  # headers connection details may set

      [stores.sales]
      kind = "csv"
      directory = "/srv/csv"            # {"source": "sales", "file": "q1.csv"}

* shorthand flags for one store each (``--prometheus-url URL`` declares store
  ``prometheus``; ``--csv FILE`` and/or ``--csv-dir DIR`` declare store ``csv``);
* the same flags' environment variables (``STORE_SETTINGS`` is the one table both
  come from), which is how gunicorn's workers get them.

``synthetic`` (the generated catalog; it reaches nothing) is always there.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocol import MirrorError
from .base import TelemetrySource
from .cache import PollCache
from .prometheus import PrometheusSource
from .prometheus.config import parse_duration_ms
from .routing import RoutingSource, Store
from .synthetic import SyntheticSource
from .tabular import CsvStore

SYNTHETIC = "synthetic"
KINDS = ("synthetic", "prometheus", "csv")
#: CSV declaration keys -> CsvStore arguments.
_CSV_KEYS = {
    "file": "file",
    "directory": "directory",
    "maxFileBytes": "max_file_bytes",
    "cacheSize": "cache_size",
    "cacheBytes": "cache_bytes",
    "timeColumn": "time_column",
    "labelColumns": "label_columns",
    "valueColumns": "value_columns",
}


@dataclass(frozen=True)
class StoreSetting:
    """One store setting: its ``serve`` flag and the environment variable it reads."""

    flag: str
    env: str
    dest: str
    metavar: str
    help: str


#: The store settings of ``serve`` and of gunicorn's ``app_factory``: flags and
#: environment variables are both made from this table.
STORE_SETTINGS = (
    StoreSetting(
        "--stores", "MIRROR_KIT_STORES", "stores", "FILE",
        "a TOML or JSON file declaring the stores (docs/sources.md)",
    ),
    StoreSetting(
        "--source", "MIRROR_KIT_SOURCE", "source", "NAME",
        "the store connection details {} select (synthetic)",
    ),
    StoreSetting(
        "--prometheus-url", "MIRROR_KIT_PROMETHEUS_URL", "prometheus_url", "URL",
        "declare store 'prometheus' at this URL",
    ),
    StoreSetting(
        "--csv", "MIRROR_KIT_CSV", "csv", "FILE",
        "declare store 'csv' serving this CSV file",
    ),
    StoreSetting(
        "--csv-dir", "MIRROR_KIT_CSV_DIR", "csv_dir", "DIR",
        'declare store \'csv\' serving the CSV files of DIR, {"source": "csv", "file": "x.csv"}',
    ),
)  # fmt: skip


#: Prometheus declaration keys of the poll cache (sources/cache.py)
_POLL_CACHE_KEYS = ("pollCacheBytes", "pollCacheSettle")
DEFAULT_POLL_CACHE_BYTES = 64 << 20


def poll_cache(source: TelemetrySource, options: Mapping[str, Any]) -> TelemetrySource:
    """``source`` behind a PollCache (64 MiB, points settled after 2 minutes, unless
    the declaration says otherwise); ``pollCacheBytes = 0`` turns it off."""
    budget = options.get("pollCacheBytes", DEFAULT_POLL_CACHE_BYTES)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError('"pollCacheBytes" must be a whole number of bytes (0: no cache)')
    if budget == 0:
        return source
    settle = parse_duration_ms(options.get("pollCacheSettle", "2m"), "pollCacheSettle")
    return PollCache(source, budget_bytes=budget, settle_ms=settle)


@dataclass(frozen=True)
class StoreDeclaration:
    """One store as the operator declared it: a name, a kind and the kind's keys."""

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> TelemetrySource | Store:
        """The source or Store serving this declaration (nothing is contacted yet)."""
        if self.kind == "synthetic":
            return SyntheticSource()
        if self.kind == "prometheus":
            options = {k: v for k, v in self.options.items() if k not in _POLL_CACHE_KEYS}
            source = PrometheusSource.from_declaration(options)
            return poll_cache(source, self.options)
        unknown = sorted(set(self.options) - set(_CSV_KEYS))
        if unknown:
            raise ValueError(f"store {self.name!r}: unknown CSV key {unknown[0]!r}")
        arguments = {_CSV_KEYS[k]: v for k, v in self.options.items()}
        return CsvStore(name=self.name, **arguments)


@dataclass(frozen=True)
class StoreConfig:
    """Every store of one mirror, and the one ``{}`` selects."""

    declarations: tuple[StoreDeclaration, ...] = ()
    default: str = SYNTHETIC

    def build(self) -> RoutingSource:
        """The RoutingSource serving these stores. ValueError when a declaration is
        wrong (a missing file, an invalid URL, an unknown default)."""
        stores: dict[str, TelemetrySource | Store] = {SYNTHETIC: SyntheticSource()}
        for declaration in self.declarations:
            try:
                stores[declaration.name] = declaration.build()
            except (ValueError, TypeError, OSError, MirrorError) as error:
                raise ValueError(f"store {declaration.name!r}: {_reason(error)}") from None
        return RoutingSource(stores, default=self.default)

    @property
    def names(self) -> list[str]:
        return [SYNTHETIC, *(d.name for d in self.declarations)]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StoreConfig:
        """The config a parsed file holds: ``default`` and ``stores.<name>`` tables."""
        unknown = sorted(set(data) - {"default", "stores"})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (expected default and stores)")
        stores = data.get("stores", {})
        if not isinstance(stores, Mapping):
            raise ValueError('"stores" must be a table of stores by name')
        declarations = []
        for name, body in stores.items():
            if not isinstance(body, Mapping) or body.get("kind") not in KINDS:
                raise ValueError(f'store {name!r}: "kind" must be one of {", ".join(KINDS)}')
            if name == SYNTHETIC:
                raise ValueError(f"{SYNTHETIC!r} is the built-in synthetic store's name")
            options = {k: v for k, v in body.items() if k != "kind"}
            declarations.append(StoreDeclaration(str(name), body["kind"], options))
        default = data.get("default", SYNTHETIC)
        if not isinstance(default, str):
            raise ValueError('"default" must be a store name')
        return cls(tuple(declarations), default)

    @classmethod
    def from_file(cls, path: str | Path) -> StoreConfig:
        """The config of a TOML (``.toml``) or JSON file."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        try:
            data = _toml(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except ValueError as error:  # tomllib.TOMLDecodeError and JSONDecodeError
            raise ValueError(f"{path.name}: {error}") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"{path.name}: expected a table of settings")
        try:
            return cls.from_mapping(data)
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None

    @classmethod
    def from_settings(cls, values: Mapping[str, str | None]) -> StoreConfig:
        """The config the store settings describe (by ``StoreSetting.dest``: parsed
        flags or environment variables); flags' stores join the file's."""
        stores_file = values.get("stores")
        config = cls.from_file(stores_file) if stores_file else cls()
        declarations = list(config.declarations)
        shorthand = []
        if values.get("prometheus_url"):
            shorthand.append(StoreDeclaration("prometheus", "prometheus",
                                              {"url": values["prometheus_url"]}))  # fmt: skip
        csv_options = {k: values[d] for k, d in (("file", "csv"), ("directory", "csv_dir"))
                       if values.get(d)}  # fmt: skip
        if csv_options:
            shorthand.append(StoreDeclaration("csv", "csv", csv_options))
        for declaration in shorthand:
            if declaration.name in {d.name for d in declarations}:
                raise ValueError(f"store {declaration.name!r} is declared twice (file and flag)")
            declarations.append(declaration)
        default = values.get("source") or config.default
        return cls(tuple(declarations), default)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StoreConfig:
        """The config the ``MIRROR_KIT_*`` store variables describe."""
        return cls.from_settings(settings_from_env(environ))


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The store settings (by ``dest``) set in the environment; unset ones are None."""
    environ = os.environ if environ is None else environ
    return {s.dest: environ.get(s.env) or None for s in STORE_SETTINGS}


def _toml(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError(
                "reading TOML on Python 3.10 needs tomli (pip install tomli); "
                "or write the stores as JSON"
            ) from None
    return tomllib.loads(text)


def _reason(error: Exception) -> str:
    details = getattr(error, "details", None)
    return str(details) if details else str(error)
