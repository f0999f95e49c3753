"""The database login of each workload: the one list, read by the app (which login each
command connects as, which password `migrate` sets on which) and by the infrastructure program
(one Secret and one DATABASE_URL per workload). The migrations create exactly these roles
(0007: api, trainer, archiver; 0009: importer; 0011: worker; 0023: purger), each
least-privileged and owning nothing; only the bootstrap Job (`migrate`, `generate`,
`create-key`) and the offboarding Job (`offboard-district`) hold the master login.

Standard library only, and nothing from the rest of the app, so that the infrastructure program
can import it without the app's dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# workload -> its PostgreSQL login. A workload's password setting is DB_<WORKLOAD>_PASSWORD.
# (A Mapping to the type checker: read-only for its importers.)
WORKLOAD_LOGINS: Final[Mapping[str, str]] = {
    "api": "ssp_api",
    "trainer": "ssp_trainer",
    "archiver": "ssp_archiver",
    "importer": "ssp_importer",
    "worker": "ssp_worker",
    "purger": "ssp_purger",
}

API_LOGIN: Final = WORKLOAD_LOGINS["api"]  # the API's pools
TRAINER_LOGIN: Final = WORKLOAD_LOGINS["trainer"]  # train, rollback, refresh-features
ARCHIVER_LOGIN: Final = WORKLOAD_LOGINS["archiver"]  # archive
IMPORTER_LOGIN: Final = WORKLOAD_LOGINS["importer"]  # import
WORKER_LOGIN: Final = WORKLOAD_LOGINS["worker"]  # worker
PURGER_LOGIN: Final = WORKLOAD_LOGINS["purger"]  # purge-student, the archive job's retention


def password_setting(workload: str) -> str:
    """The setting that holds the password `migrate` sets on the workload's login."""
    return f"db_{workload}_password"
