-- Which pointer generation first served each model: NULL for a model never served. The
-- pointer in the model store decides what serves, and it cannot change in one transaction
-- with this table, so a publication records the generation it is about to write before it
-- writes it (app/model/publication.py: record_promotions). A model is promoted when its
-- promoted_generation is at most the pointer's generation: true from the moment of the flip,
-- whatever happens after it. A value above the pointer's generation is a publication that
-- died before its flip; the next publication of that generation (or the next run's record of
-- the served pointer) clears it. Replaces the flag written after the flip, which a process
-- killed between the two left false for the models it had just put in service.
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS promoted_generation integer
    CHECK (promoted_generation >= 0);

-- Every row, whatever the tenant: as the owner, with the table's row-level security lifted
-- for this transaction only (the master is filtered too under FORCE).
ALTER TABLE model_versions NO FORCE ROW LEVEL SECURITY;
UPDATE model_versions SET promoted_generation = 0 WHERE promoted;  -- since before generations
ALTER TABLE model_versions FORCE ROW LEVEL SECURITY;

ALTER TABLE model_versions DROP COLUMN promoted;
GRANT UPDATE (promoted_generation) ON model_versions TO ssp_trainer;
