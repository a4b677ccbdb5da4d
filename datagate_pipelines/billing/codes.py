"""Zip codes and tax codes normalised (docs/billing.md, Tax), and object columns coded
by their distinct values so each distinct value is normalised once."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

_US_ZIP_PLUS_FOUR = re.compile(r"(\d{5})-\d{4}")


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def normalize_zip(raw: object) -> str | None:
    """'94107-1234' → '94107'; ' sw1a 1aa ' → 'SW1A 1AA'; None or blank → None."""
    if _is_missing(raw):
        return None
    text = str(raw).strip()
    if not text:
        return None
    us = _US_ZIP_PLUS_FOUR.fullmatch(text)
    return us.group(1) if us else text.upper()


def normalize_tax_code(raw: object) -> str | None:
    """A tax code trimmed; None or blank → None (a missing tax code)."""
    if _is_missing(raw):
        return None
    text = str(raw).strip()
    return text or None


def normalize_column(values: np.ndarray | pd.Series, normalize) -> np.ndarray:
    """Apply a scalar normaliser once per distinct value of an object column."""
    codes, distinct = coded_column(values, normalize)
    normalized = np.fromiter([*distinct, None], dtype=object, count=len(distinct) + 1)
    return normalized[codes]  # code -1 (normalised to None) picks the last slot


def coded_column(values: np.ndarray | pd.Series, normalize) -> tuple[np.ndarray, list]:
    """A column normalised once per distinct value (a missing one as `normalize(None)`),
    as int32 codes into its distinct normalised values, in order of first appearance
    (code -1: normalised to None)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    distinct: dict = {}
    remap = [
        -1 if value is None else distinct.setdefault(value, len(distinct))
        for value in map(normalize, [*uniques.tolist(), None])
    ]
    return np.array(remap, dtype=np.int32)[codes], list(distinct)  # code -1: the last slot
