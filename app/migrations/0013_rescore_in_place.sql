-- A training run that promotes nothing still scores every active student, with the models
-- already serving, under the generation they serve (app/model/scoring.py: rescore_students):
-- the night's new students and refreshed features, without a new pointer. It writes the rows
-- of that generation in place, as the worker does for the students it rescores, so the
-- trainer may update a score (and the school of a student who moved), nothing else.
GRANT UPDATE (school_id, risk, model_version, scored_at) ON risk_scores TO ssp_trainer;
