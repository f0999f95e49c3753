"""A real public dataset (UCI 697, benchmarks/data/) through the documented import layout: the
import accepts it as converted, its columns declared as district features; the model trained
on it takes those features (and no protected attribute, nor the outcome) and ranks the held-out
students as the benchmark measured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from app.core import db
from app.core.logins import IMPORTER_LOGIN, TRAINER_LOGIN
from app.core.settings import Settings
from app.jobs.importer import run_import
from app.model.artifacts import ModelStore
from app.model.inputs import PROTECTED_NAMES
from app.model.risk_model import as_risk_model
from app.model.served_models import DISTRICT
from app.model.training import run_training
from benchmarks.real_dataset import DATA, FEATURES, read_uci, write_bundle
from tests.app.helpers import PASSWORD_SETTINGS, PEPPER, login_url, scalar


def test_uci_dataset_imports_through_the_layout_and_its_district_features_drive_the_model(
    make_database: Callable[[], str], as_admin: Callable[[str], str], tmp_path: Path
) -> None:
    master_url = make_database()
    base = Settings(
        environment="test",
        database_url=master_url,
        redis_url=None,
        model_store_url=str(tmp_path / "models"),
        archive_store_url=str(tmp_path / "archive"),
        api_key_pepper=PEPPER,
    )
    db.migrate(base.model_copy(update={k: SecretStr(v) for k, v in PASSWORD_SETTINGS.items()}))
    rows = read_uci(DATA)
    assert len(rows) == 4424
    write_bundle(rows, tmp_path / "bundle")

    importer = base.model_copy(update={"database_url": login_url(master_url, IMPORTER_LOGIN)})
    result = run_import(importer, str(tmp_path / "bundle"), progress=False)
    assert result.written and not result.problems, result.problems[:5]
    admin = as_admin(master_url)
    assert scalar(admin, "SELECT count(*) FROM students") == 4424
    assert scalar(admin, "SELECT count(*) FROM students WHERE dropped_out") == 1421
    assert scalar(admin, "SELECT count(*) FROM district_features") == len(FEATURES)
    assert scalar(admin, "SELECT count(*) FROM student_demographics") == 4424
    first = scalar(admin, "SELECT district_features FROM students WHERE sourced_id = 'UCI697-0001'")
    assert first["course"] == "171" and first["tuition_fees_up_to_date"] == "1"

    trainer = base.model_copy(update={"database_url": login_url(master_url, TRAINER_LOGIN)})
    trained = run_training(trainer)
    model = as_risk_model(ModelStore(trainer.model_store_url).load_model(trained.version, DISTRICT))
    names = set(model.input_names)
    assert {"units_sem2_approved", "admission_grade", "tuition_fees_up_to_date=0"} <= names
    assert {"course=" + c for c in ("171", "9254", "9991")} <= names
    inputs = {n.split("=")[0].split(":")[0] for n in names}
    assert not inputs & PROTECTED_NAMES
    assert not any("target" in n or "dropped" in n for n in inputs)
    # The standard features are the same for every student (UCI has no attendance, marks or
    # incidents): all the ranking comes from the district features. 0.9232 measured at the
    # default split (seed 42); 0.902 to 0.923 over ten seeds (benchmarks/real_dataset.py).
    figures = trained.metrics[DISTRICT]
    assert figures["n_test"] == 1106 and figures["positives_test"] == 355
    assert figures["auc"] >= 0.90, figures
