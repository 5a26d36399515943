"""Parquet tables: shard outputs, merged feature tables and the rejected-files list.

pandas is imported only where needed: extraction jobs write shards without it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

META_KEY = b"serflow"
ID_COLUMNS = ("id", "label", "speaker", "split", "stratum")
#: The source clip of each row of an augmented copies table (after the ID_COLUMNS).
SOURCE_COLUMN = "source"
_PACKAGES = ("serflow", "librosa", "opensmile", "numpy", "scipy", "soundfile", "soxr", "pandas", "pyarrow")
# Distributions that install a package under another name (the CPU-only xgboost build).
_ALIASES = {"xgboost": ("xgboost", "xgboost-cpu")}


def package_versions(names=_PACKAGES) -> dict:
    """Installed versions of the packages that shape the features (None when absent)."""
    out = {}
    for name in names:
        out[name] = None
        for dist in _ALIASES.get(name, (name,)):
            try:
                out[name] = version(dist)
                break
            except PackageNotFoundError:
                pass
    return out


def read_metadata(path) -> dict:
    """The serflow metadata stored in a Parquet file's schema."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(META_KEY, b"{}"))


def write_shard(path, ids, matrix, errors, extractor, stats) -> None:
    """Write one extractor's rows for a shard (float32), per-clip errors and stats as Parquet."""
    columns = {"id": pa.array(list(ids), pa.string()), "error": pa.array(errors, pa.string())}
    for j, name in enumerate(extractor.names()):
        columns[name] = pa.array(matrix[:, j], pa.float32())
    meta = {"stats": asdict(stats), "extractor": extractor.describe()}
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})
    pq.write_table(table, path)


def merge_feature_table(manifest_path, shards: dict, metadata: dict, speakers=None) -> pa.Table:
    """One row per clip that every listed extractor processed (manifest order), float32 columns.

    ``shards``: extractor name -> (shard paths, columns to take), in column order.
    ``metadata`` (feature set, extractors, column groups, ...) is stored in the schema
    together with package versions. ``speakers``: a Parquet file of estimated speakers
    (id, speaker) that replace the manifest's; clips without one are left out. A listing of
    augmented copies (``serflow.augmentation``) keeps its ``source`` column.
    """
    import pandas as pd

    present = set(pq.read_schema(manifest_path).names)
    id_columns = [*ID_COLUMNS, *([SOURCE_COLUMN] if SOURCE_COLUMN in present else [])]
    manifest = pd.read_parquet(manifest_path, columns=[c for c in id_columns if c in present])
    manifest = manifest.reindex(columns=id_columns)  # optional columns (stratum) as nulls
    if speakers:
        estimated = pd.read_parquet(speakers).set_index("id")["speaker"]
        manifest = manifest[manifest["id"].isin(estimated.index)].copy()
        manifest["speaker"] = estimated.loc[manifest["id"]].to_numpy()
    keep = manifest
    sources = []
    for paths, columns in shards.values():
        # Shards are concatenated without copying, then each column is copied in manifest
        # order and its source released: peak memory is a small multiple of the table
        # (decoding the shard files dominates), independent of the number of clips.
        parts = [pq.read_table(path, columns=["id", "error", *columns]) for path in paths]
        feats = pa.concat_tables(parts) if parts else pa.table({"id": pa.array([], pa.string())})
        del parts
        ok = np.arange(feats.num_rows)
        if "error" in feats.column_names:
            ok = np.flatnonzero(pc.is_null(feats["error"]).to_numpy(zero_copy_only=False))
        ids = pd.Index(np.asarray(feats["id"].to_pylist(), dtype=object)[ok])
        keep = keep[keep["id"].isin(ids)]
        sources.append((feats, ok, ids, columns))
    keep = keep.reset_index(drop=True)
    out = {c: pa.array(keep[c].astype(object).where(keep[c].notna(), None), pa.string()) for c in id_columns}
    for k, (feats, ok, ids, columns) in enumerate(sources):
        take = pa.array(ok[ids.get_indexer(keep["id"])], pa.int64())
        taken = feats.select(columns).take(take)  # one call: per-column drops were quadratic in width
        sources[k] = None  # release the shards' columns
        out.update(zip(columns, taken.columns))
        del feats, taken
    table = pa.table(out)
    names = [c for _, columns in shards.values() for c in columns]
    finite = [
        np.isfinite(chunk.to_numpy(zero_copy_only=False)).all() for chunk in table.columns[len(id_columns) :]
    ]
    bad = [c for c, ok in zip(names, finite) if not ok]
    if bad:
        raise ValueError(f"non-finite values in feature column(s): {', '.join(bad[:5])}")
    meta = {**metadata, "versions": package_versions(), "n_rows": table.num_rows}
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})


def table_digest(table: pa.Table) -> str:
    """SHA-256 of what a run reads from a feature table: its columns, their values and
    groups; not its provenance (extractor parameters, package versions)."""
    h = hashlib.sha256()
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    h.update(json.dumps([meta.get("column_groups"), meta.get("speakers_estimated")], sort_keys=True).encode())
    for name, column in zip(table.column_names, table.columns):
        h.update(f"\0{name}\0{column.type}\0".encode())
        if pa.types.is_floating(column.type):
            h.update(column.to_numpy().tobytes())
        else:
            h.update(json.dumps(column.to_pylist()).encode())
    return h.hexdigest()


def collect_rejected(manifest_path, manifest_rejected, shard_paths):
    """Rejected files of the manifest stage plus clips whose extraction failed (a DataFrame).

    ``shard_paths``: every extractor's shards, in extractor order.
    """
    import pandas as pd

    paths = pd.read_parquet(manifest_path, columns=["id", "path"]).set_index("id")["path"]
    frames = [manifest_rejected]
    seen: set = set()  # a clip that failed in several extractors is listed once, with the first reason
    for shard in shard_paths:
        part = pq.read_table(shard, columns=["id", "error"]).to_pandas()
        part = part[part["error"].notna() & ~part["id"].isin(seen)]
        seen.update(part["id"])
        if len(part):
            frames.append(
                pd.DataFrame(
                    {
                        "id": part["id"],
                        "path": part["id"].map(paths),
                        "stage": "features",
                        "reason": part["error"],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)
