-- Interventions recorded through the API: a type (from the INTERVENTION_TYPES setting), an
-- owner (a staff member of the student's school), start and end dates, a status and outcome
-- notes, with who (the API key's name) created and last changed each. Rows the synthetic
-- generator wrote before keep NULL in the new columns.
ALTER TABLE interventions
    ADD COLUMN type        text CHECK (type ~ '^[a-z][a-z0-9_]{0,62}$'),
    ADD COLUMN started_on  date,
    ADD COLUMN ended_on    date,
    ADD COLUMN outcome     text CHECK (length(outcome) <= 2000),
    ADD COLUMN created_by  text CHECK (length(created_by) <= 200),
    ADD COLUMN updated_at  timestamptz,
    ADD COLUMN updated_by  text CHECK (length(updated_by) <= 200),
    ADD CONSTRAINT interventions_dates CHECK (ended_on IS NULL OR ended_on >= started_on),
    -- NOT VALID: enforced on new and changed rows, not rechecked on the generator's.
    ADD CONSTRAINT interventions_notes_length CHECK (length(notes) <= 2000) NOT VALID,
    ADD CONSTRAINT interventions_owner_of_school
        FOREIGN KEY (assigned_to, school_id) REFERENCES staff (id, school_id) NOT VALID;

-- A student's cases (the list, and the at-risk list's open-case flag).
CREATE INDEX interventions_student_idx ON interventions (student_id, created_at DESC);
CREATE INDEX interventions_student_open_idx ON interventions (student_id)
    WHERE status IN ('open', 'in_progress');

GRANT INSERT (school_id, student_id, assigned_to, status, type, started_on, ended_on, notes,
              outcome, created_by),
      UPDATE (assigned_to, status, started_on, ended_on, notes, outcome, updated_at, updated_by)
    ON interventions TO ssp_api;
GRANT USAGE ON SEQUENCE interventions_id_seq TO ssp_api;

-- The trainer describes risk before and after interventions, by type, in its run's report
-- (aggregates only): it reads these columns of every school's interventions.
GRANT SELECT (student_id, type, status, started_on, ended_on) ON interventions TO ssp_trainer;
CREATE POLICY trainer_outcomes ON interventions FOR SELECT TO ssp_trainer USING (true);

-- The at-risk page looks up each of its students in students and interventions: their tenant
-- policies read the tenant's schools once per statement (an InitPlan) instead of calling
-- app_visible_schools() per row (see student_indicators_visible, 0016). Same rows.
ALTER POLICY tenant_isolation ON students
    USING (school_id = ANY ((SELECT app_visible_schools())::integer[]))
    WITH CHECK (school_id = ANY ((SELECT app_visible_schools())::integer[]));
ALTER POLICY tenant_isolation ON interventions
    USING (school_id = ANY ((SELECT app_visible_schools())::integer[]))
    WITH CHECK (school_id = ANY ((SELECT app_visible_schools())::integer[]));
