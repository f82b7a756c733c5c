"""Preprocessing recipes: raw interactions -> canonical :class:`SequenceDataset`.

Stage 3 of loading, after the readers and before the cache. The steps run in this order,
each named in the recorded recipe:

1. ``rating_threshold``: keep rows with rating >= t (implicit feedback);
2. chronological sort per user (``sort``): ``stable`` (the default) sorts by timestamp with
   ties in file order; ``legacy_unstable`` reproduces the HSTU reference code, whose pandas
   ``sort_values(by="timestamp")`` is numpy's unstable quicksort over the whole file, then
   groups by user (ties come out in whatever order that sort leaves them: up to a quarter of
   ML-1M's leave-one-out test targets change, REFERENCES.md §7.3). Files without timestamps
   keep file order;
3. ``duplicates``: ``keep`` all, ``drop_consecutive`` (a repeat of the previous item of the
   same user), or ``keep_first`` (the first occurrence of each (user, item));
4. min counts: ``min_user_count`` / ``min_item_count``, counted once on the data as the
   HSTU code does (``single_pass``) or repeated until stable (``iterate``: a true k-core);
5. drop users with fewer than ``min_seq_len`` interactions;
6. ``max_len``: keep each user's most recent ``max_len`` interactions;
7. contiguous remap: users 0..U-1 and items 1..n (0 = padding), both in sorted raw-id
   order, so files whose ids are already 1..n (SASRec, S3-Rec) keep their ids.

The remap comes last, so ``num_items`` counts only items that survive every step.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recscale.data.dataset import SequenceDataset
from recscale.data.readers import Interactions
from recscale.errors import RecscaleError


class Recipe(BaseModel):
    """Preprocessing options; defaults keep every interaction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating_threshold: float | None = None
    min_user_count: int = Field(0, ge=0)
    min_item_count: int = Field(0, ge=0)
    kcore_mode: Literal["single_pass", "iterate"] = "single_pass"
    duplicates: Literal["keep", "drop_consecutive", "keep_first"] = "keep"
    min_seq_len: int = Field(1, ge=1)
    max_len: int | None = Field(None, ge=1)
    sort: Literal["stable", "legacy_unstable"] = "stable"

    @classmethod
    def build(
        cls, base: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
    ) -> Recipe:
        """A recipe from a dataset default plus user overrides; bad keys/values are user errors."""
        values = {**(base or {}), **(overrides or {})}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(recipe)'}: {e['msg']}"
                for e in exc.errors()
            )
            allowed = ", ".join(cls.model_fields)
            raise RecscaleError(
                f"invalid preprocessing recipe: {problems} (allowed keys: {allowed})"
            ) from None


def preprocess(raw: Interactions, recipe: Recipe, name: str) -> SequenceDataset:
    """Apply ``recipe`` to ``raw`` (see the module docstring) and build the CSR dataset."""
    df = raw.frame.with_row_index("_row")
    if recipe.rating_threshold is not None:
        if not raw.has_ratings:
            raise RecscaleError(
                f"{raw.source}: rating_threshold={recipe.rating_threshold} "
                "but the data has no ratings"
            )
        df = df.filter(pl.col("rating") >= recipe.rating_threshold)

    df = _chronological(df, raw.has_timestamps, recipe.sort)

    if recipe.duplicates == "keep_first":
        df = df.unique(subset=["user", "item"], keep="first", maintain_order=True)
    elif recipe.duplicates == "drop_consecutive":
        repeat = (pl.col("user") == pl.col("user").shift(1)) & (
            pl.col("item") == pl.col("item").shift(1)
        )
        df = df.filter(~repeat.fill_null(False))

    df = _min_counts(df, recipe)
    if recipe.min_seq_len > 1:
        df = df.filter(pl.len().over("user") >= recipe.min_seq_len)
    if recipe.max_len is not None:
        # Rows are chronological per user, so the reverse cumulative count marks the most recent.
        recent = pl.int_range(pl.len()).reverse().over("user") < recipe.max_len
        df = df.filter(recent)
    if df.height == 0:
        raise RecscaleError(f"{raw.source}: no interactions left after preprocessing with {recipe}")
    return _to_dataset(df, name, recipe)


def _chronological(df: pl.DataFrame, has_timestamps: bool, mode: str) -> pl.DataFrame:
    if has_timestamps and mode == "legacy_unstable":
        # pandas sort_values(kind="quicksort") is np.argsort(kind="quicksort") on the column.
        order = np.argsort(df["timestamp"].to_numpy(), kind="quicksort")
        return df[order].sort("user", maintain_order=True)
    keys = ["user", "timestamp", "_row"] if has_timestamps else ["user", "_row"]
    return df.sort(keys, maintain_order=True)


def _min_counts(df: pl.DataFrame, recipe: Recipe) -> pl.DataFrame:
    if recipe.min_user_count <= 1 and recipe.min_item_count <= 1:
        return df
    while True:
        keep = (pl.len().over("user") >= recipe.min_user_count) & (
            pl.len().over("item") >= recipe.min_item_count
        )
        kept = df.filter(keep)
        if recipe.kcore_mode == "single_pass" or kept.height == df.height:
            return kept
        df = kept


def _to_dataset(df: pl.DataFrame, name: str, recipe: Recipe) -> SequenceDataset:
    # Dense rank in sorted raw-id order: numeric for integer ids, lexicographic for strings.
    df = df.with_columns(
        (pl.col("user").rank("dense") - 1).cast(pl.Int64).alias("_u"),
        pl.col("item").rank("dense").cast(pl.Int64).alias("_i"),
    )
    # Users in raw-id order; within a user the chronological order from the sort above.
    df = df.sort("_u", maintain_order=True)
    users = df["_u"].to_numpy()
    num_users = int(users[-1]) + 1
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=offsets[1:])
    user_ids = df["user"].unique(maintain_order=True).cast(pl.String).to_numpy().astype(str)
    item_raw = df.select("_i", "item").unique("_i").sort("_i")["item"].cast(pl.String)
    item_ids = np.concatenate([np.array([""]), item_raw.to_numpy().astype(str)])
    return SequenceDataset(
        name=name,
        offsets=offsets,
        items=df["_i"].to_numpy().astype(np.int64),
        num_items=len(item_ids) - 1,
        user_ids=user_ids,
        item_ids=item_ids,
        timestamps=df["timestamp"].to_numpy().astype(np.int64)
        if "timestamp" in df.columns
        else None,
        ratings=df["rating"].to_numpy().astype(np.float32) if "rating" in df.columns else None,
        recipe=recipe.model_dump(),
    )
