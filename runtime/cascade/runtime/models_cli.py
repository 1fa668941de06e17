"""`cascade models list|fetch`: the catalogue as a table, and fetching into the cache with a line per model."""

from __future__ import annotations

from cascade.services.encoders.catalogue import CATALOGUE, ModelSpec, model_cache, resolve_model

__all__ = ["fetch_models", "list_models"]


def _fetched(name: str) -> str:
    try:
        return resolve_model(name)
    except LookupError:
        return "not fetched"


def _source(spec: ModelSpec) -> str:
    packages = [f"{artifact.registry} {artifact.package}" for artifact in spec.artifacts]
    if not packages:
        return "Cascade itself"
    return packages[0] + (f" and {len(packages) - 1} more parts" if len(packages) > 1 else "")


def list_models() -> str:
    lines = [f"{'name':<16} {'model':<40} {'licence':<10} {'params':>7} {'download':>9} {'dim':>4} "
             f"{'pooling':<7} prefixes (query | document); where"]
    for spec in CATALOGUE.values():
        lines.append(f"{spec.name:<16} {spec.model_id:<40} {spec.licence:<10} {spec.parameters_m:>6.1f}M "
                     f"{spec.download_mb:>6} MB {spec.dim:>4} {spec.pooling:<7} {spec.query_prefix!r} | "
                     f"{spec.document_prefix!r}; {_fetched(spec.name)}")
        lines.append(f"{'':<16} from {_source(spec)}. {spec.notes}")
    lines.append(f"cache: {model_cache()}")
    return "\n".join(lines)


def fetch_models(names: list[str]) -> str:
    from cascade.runtime.model_fetch import fetch_model

    unknown = set(names) - set(CATALOGUE)
    if unknown:
        raise SystemExit(f"not in the catalogue: {sorted(unknown)}; known: {sorted(CATALOGUE)}")
    return "\n".join(f"{name}: {fetch_model(CATALOGUE[name])}" for name in names or CATALOGUE)
