"""The synthetic district's people beyond their records: protected attributes (for the fairness
audit, never a model input), the cohorts of a district of several school years, and a planted
measurement disparity for tests of the audit.

Drawn from a generator of their own (seeded by the district's seed and the school), so a
district of one school year without a disparity has the same rows, seed for seed, as before
these existed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

SEXES = ("female", "male", "other", "unspecified")
SEX_SHARES = (0.49, 0.49, 0.01, 0.01)
# Roughly the shares of US public-school enrolment by the federal categories.
RACES = (
    "hispanic_or_latino",
    "white",
    "black_or_african_american",
    "asian",
    "two_or_more_races",
    "american_indian_or_alaska_native",
    "native_hawaiian_or_other_pacific_islander",
)
RACE_SHARES = (0.28, 0.45, 0.15, 0.055, 0.05, 0.01, 0.005)
UNRECORDED = 0.02  # share of students whose attribute the district does not have
# The group a planted disparity (generate's `disparity`) affects: as the DEWS investigation
# found flags falling unevenly on Black students.
DISPARITY_GROUP = ("race_ethnicity", "black_or_african_american")


def people_rng(seed: int, school_id: int) -> np.random.Generator:
    return np.random.default_rng([seed, school_id, 0x9E0])


@dataclass(frozen=True)
class Demographics:
    sex: list[str | None]
    race: list[str | None]
    disadvantaged: list[bool | None]
    english_learner: list[bool | None]
    disability: list[bool | None]

    def in_disparity_group(self) -> np.ndarray:
        return np.array([r == DISPARITY_GROUP[1] for r in self.race])


def _maybe(rng: np.random.Generator, values: list[Any]) -> list[Any]:
    unknown = rng.random(len(values)) < UNRECORDED
    return [None if u else v for v, u in zip(values, unknown.tolist(), strict=True)]


def draw_demographics(rng: np.random.Generator, z: np.ndarray) -> Demographics:
    """Attributes of a school's students (latent risk z): economic disadvantage rises with
    risk, as it does in real districts; the others do not depend on it."""
    n = len(z)
    sex = [SEXES[i] for i in rng.choice(len(SEXES), n, p=SEX_SHARES).tolist()]
    race = [RACES[i] for i in rng.choice(len(RACES), n, p=RACE_SHARES).tolist()]
    disadvantaged = rng.random(n) < 1 / (1 + np.exp(0.2 - 0.5 * z))
    learner = rng.random(n) < 0.10
    disability = rng.random(n) < 0.14
    return Demographics(
        _maybe(rng, sex),
        _maybe(rng, race),
        _maybe(rng, disadvantaged.tolist()),
        _maybe(rng, learner.tolist()),
        _maybe(rng, disability.tolist()),
    )


def load_demographics(
    cur: psycopg.Cursor[Any], school_id: int, student_ids: list[int], d: Demographics
) -> None:
    with cur.copy(
        "COPY student_demographics (student_id, school_id, sex, race_ethnicity,"
        " economically_disadvantaged, english_learner, disability) FROM STDIN"
    ) as cp:
        for k, sid in enumerate(student_ids):
            cp.write_row(
                (sid, school_id, d.sex[k], d.race[k], d.disadvantaged[k], d.english_learner[k],
                 d.disability[k])
            )  # fmt: skip


def plant_absences(
    rng: np.random.Generator, status: np.ndarray, affected: np.ndarray, rate: float
) -> None:
    """Record `rate` of the affected students' present days as absences (status 0 -> 2): a
    measurement bias unrelated to their risk, which a model learns as risk."""
    if rate <= 0 or not affected.any():
        return
    flip = (rng.random(status.shape) < rate) & affected[:, None] & (status == 0)
    status[flip] = 2


MARK_BIAS_POINTS = 40.0  # a disparity of 1 would mark the group this many points lower


def plant_low_marks(marks: np.ndarray, affected: np.ndarray, rate: float) -> np.ndarray:
    """Mark the affected students `rate` x MARK_BIAS_POINTS lower than their work (a grading
    bias unrelated to their risk): marks carry most of a model's signal, so its flags follow."""
    if rate <= 0 or not affected.any():
        return marks
    return np.asarray(np.clip(marks - rate * MARK_BIAS_POINTS * affected[:, None], 0, 100))


def cohorts(rng: np.random.Generator, n: int, years: int) -> np.ndarray:
    """Each student's last school year (0 .. years-1; years-1 is the current one, whose
    outcomes are still open)."""
    return rng.integers(0, years, n)
