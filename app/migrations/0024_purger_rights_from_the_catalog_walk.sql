-- The purge login's rights are granted by `python -m app migrate` from the same catalog walk
-- the purge deletes by (app/core/student_records.py, grant_purger_rights), run after every
-- migration as 0023's function was. That function walked the catalog a second time, in
-- PL/pgSQL, with its own copy of the columns that have no foreign key: two walks that could
-- drift apart. The rights it granted stay; migrate grants them again from the one walk.
DROP FUNCTION IF EXISTS grant_purger_rights();
