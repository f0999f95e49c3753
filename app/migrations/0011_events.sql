-- Events between POST /v1/events and the rescoring worker (`python -m app worker`).
--
--   student_events        one row per accepted event: its idempotency key, per school, so a
--                         retried POST applies nothing twice
--   event_queue           the PostgreSQL queue (QUEUE_BACKEND=postgres): one row per student
--                         to rescore, consumed with FOR UPDATE SKIP LOCKED, leased like an SQS
--                         message (available_at), with its receive count and a dead-letter
--                         state (dead_at) after WORKER_MAX_RECEIVES
--   student_features_live the features of students rescored since the last refresh of the
--                         materialized view; student_features_visible (what the API reads)
--                         prefers them, and refresh_student_features() forgets them
--   ssp_worker            the worker's login
--
-- Re-runnable like 0007: the role is created only when missing; grants and policies are
-- (re)made idempotently.

CREATE TABLE student_events (
    school_id       integer NOT NULL REFERENCES schools(id),
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    student_id      bigint NOT NULL REFERENCES students(id),
    kind            text NOT NULL
        CHECK (kind IN ('attendance_marked', 'mark_recorded', 'incident_logged')),
    client_id       integer,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, idempotency_key)
);

CREATE TABLE event_queue (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    school_id    integer NOT NULL REFERENCES schools(id),
    student_id   bigint NOT NULL,  -- no foreign key: a message naming no student is poison
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),  -- leased until then once received
    receives     integer NOT NULL DEFAULT 0,
    last_error   text,
    dead_at      timestamptz
);
-- One waiting message per student: events that arrive before the worker gets to a student
-- coalesce into one rescoring (a received message no longer counts as waiting).
CREATE UNIQUE INDEX event_queue_waiting_student_idx ON event_queue (student_id)
    WHERE receives = 0 AND dead_at IS NULL;
CREATE INDEX event_queue_ready_idx ON event_queue (available_at, id) WHERE dead_at IS NULL;
CREATE INDEX event_queue_dead_idx ON event_queue (dead_at) WHERE dead_at IS NOT NULL;

-- An alert's moment, for the API's read of them (alert_date alone orders nothing in a day).
ALTER TABLE alerts ADD COLUMN raised_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX alerts_school_raised_idx ON alerts (school_id, raised_at DESC, id DESC);

-- ---------------------------------------------------------------------------------------------
-- Live features, owned by the view's owner (0007): only refresh_live_features() writes them.
CREATE TABLE student_features_live (
    student_id         bigint PRIMARY KEY REFERENCES students(id),
    school_id          integer NOT NULL,
    attendance_rate    double precision NOT NULL,
    absences           double precision NOT NULL,
    lates              double precision NOT NULL,
    avg_mark           double precision NOT NULL,
    min_mark           double precision NOT NULL,
    failed_exams       double precision NOT NULL,
    incidents          double precision NOT NULL,
    severe_incidents   double precision NOT NULL,
    attendance_missing boolean NOT NULL,
    marks_missing      boolean NOT NULL,
    refreshed_at       timestamptz NOT NULL DEFAULT now()
);
GRANT CREATE ON SCHEMA public TO ssp_features_owner;
ALTER TABLE student_features_live OWNER TO ssp_features_owner;
REVOKE CREATE ON SCHEMA public FROM ssp_features_owner;
-- The owner of student_features_visible (the master) reads them through the view, and
-- refresh_student_features() (the master's) forgets them.
GRANT SELECT, DELETE ON student_features_live TO CURRENT_USER;

-- The features of `ids` now, as the view computes them: the student's own aggregates from the
-- facts; a missing one imputed with the mean of the school's students who have records (from
-- the view), else the student's value in the view. Stored as live features and returned with
-- the view's grade and is_active. Runs as the view's owner, whose policies on the source tables
-- hold while it is the current user (0007).
CREATE OR REPLACE FUNCTION refresh_live_features(ids bigint[])
RETURNS TABLE (student_id bigint, school_id integer, is_active boolean, grade double precision,
               attendance_rate double precision, absences double precision,
               lates double precision, avg_mark double precision, min_mark double precision,
               failed_exams double precision, incidents double precision,
               severe_incidents double precision)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
WITH a AS (
    SELECT t.student_id,
           avg((t.status IN ('present', 'late'))::int)::double precision AS present_rate,
           count(*) FILTER (WHERE t.status = 'absent')::double precision AS absences,
           count(*) FILTER (WHERE t.status = 'late')::double precision AS lates
    FROM attendance t WHERE t.student_id = ANY (ids) GROUP BY t.student_id
), m AS (
    SELECT mk.student_id,
           avg(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS avg_mark,
           min(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS min_mark,
           count(*) FILTER (WHERE mk.marks_obtained * 100.0 / e.max_marks < 40)::double precision
               AS failed_exams
    FROM marks mk JOIN exams e ON e.id = mk.exam_id
    WHERE mk.student_id = ANY (ids) GROUP BY mk.student_id
), b AS (
    SELECT i.student_id, count(*)::double precision AS incidents,
           (count(*) FILTER (WHERE i.severity = 3))::double precision AS severe
    FROM behaviour_incidents i WHERE i.student_id = ANY (ids) GROUP BY i.student_id
), f AS (
    SELECT v.* FROM student_features v WHERE v.student_id = ANY (ids)
), sm AS (
    SELECT v.school_id,
           avg(v.attendance_rate) FILTER (WHERE NOT v.attendance_missing) AS attendance_rate,
           avg(v.absences) FILTER (WHERE NOT v.attendance_missing) AS absences,
           avg(v.lates) FILTER (WHERE NOT v.attendance_missing) AS lates,
           avg(v.avg_mark) FILTER (WHERE NOT v.marks_missing) AS avg_mark,
           avg(v.min_mark) FILTER (WHERE NOT v.marks_missing) AS min_mark,
           avg(v.failed_exams) FILTER (WHERE NOT v.marks_missing) AS failed_exams
    FROM student_features v WHERE v.school_id IN (SELECT f.school_id FROM f)
    GROUP BY v.school_id
), live AS (
    INSERT INTO student_features_live AS l (
        student_id, school_id, attendance_rate, absences, lates, avg_mark, min_mark,
        failed_exams, incidents, severe_incidents, attendance_missing, marks_missing)
    SELECT f.student_id, f.school_id,
           coalesce(a.present_rate, sm.attendance_rate, f.attendance_rate),
           coalesce(a.absences, sm.absences, f.absences),
           coalesce(a.lates, sm.lates, f.lates),
           coalesce(m.avg_mark, sm.avg_mark, f.avg_mark),
           coalesce(m.min_mark, sm.min_mark, f.min_mark),
           coalesce(m.failed_exams, sm.failed_exams, f.failed_exams),
           coalesce(b.incidents, 0), coalesce(b.severe, 0),
           a.student_id IS NULL, m.student_id IS NULL
    FROM f
    JOIN sm ON sm.school_id = f.school_id
    LEFT JOIN a ON a.student_id = f.student_id
    LEFT JOIN m ON m.student_id = f.student_id
    LEFT JOIN b ON b.student_id = f.student_id
    ON CONFLICT ON CONSTRAINT student_features_live_pkey DO UPDATE SET
        school_id = excluded.school_id, attendance_rate = excluded.attendance_rate,
        absences = excluded.absences, lates = excluded.lates, avg_mark = excluded.avg_mark,
        min_mark = excluded.min_mark, failed_exams = excluded.failed_exams,
        incidents = excluded.incidents, severe_incidents = excluded.severe_incidents,
        attendance_missing = excluded.attendance_missing, marks_missing = excluded.marks_missing,
        refreshed_at = now()
    RETURNING l.*
)
SELECT live.student_id, live.school_id, f.is_active, f.grade, live.attendance_rate,
       live.absences, live.lates, live.avg_mark, live.min_mark, live.failed_exams,
       live.incidents, live.severe_incidents
FROM live JOIN f ON f.student_id = live.student_id
$$;
GRANT CREATE ON SCHEMA public TO ssp_features_owner;
ALTER FUNCTION refresh_live_features(bigint[]) OWNER TO ssp_features_owner;
REVOKE CREATE ON SCHEMA public FROM ssp_features_owner;
REVOKE ALL ON FUNCTION refresh_live_features(bigint[]) FROM PUBLIC;

-- The nightly refresh includes every fact the live rows were computed from: they are dropped.
CREATE OR REPLACE FUNCTION refresh_student_features() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.student_features;
    DELETE FROM public.student_features_live WHERE refreshed_at < now();
END $$;

-- What the API reads: the view, with the live features where a student has them (the same
-- columns in the same order as 0009's, so the definition is replaced in place).
CREATE OR REPLACE VIEW student_features_visible WITH (security_barrier) AS
    SELECT f.student_id, f.school_id, f.is_active, f.dropped_out, f.grade,
           coalesce(l.attendance_rate, f.attendance_rate) AS attendance_rate,
           coalesce(l.absences, f.absences) AS absences,
           coalesce(l.lates, f.lates) AS lates,
           coalesce(l.avg_mark, f.avg_mark) AS avg_mark,
           coalesce(l.min_mark, f.min_mark) AS min_mark,
           coalesce(l.failed_exams, f.failed_exams) AS failed_exams,
           coalesce(l.incidents, f.incidents) AS incidents,
           coalesce(l.severe_incidents, f.severe_incidents) AS severe_incidents,
           coalesce(l.attendance_missing, f.attendance_missing) AS attendance_missing,
           coalesce(l.marks_missing, f.marks_missing) AS marks_missing
    FROM student_features f LEFT JOIN student_features_live l ON l.student_id = f.student_id
    WHERE f.school_id = ANY (app_visible_schools());

-- ---------------------------------------------------------------------------------------------
-- The API: writes the facts of its tenant's students (the tenant policies of 0005 check every
-- row's school), the events' keys, and the PostgreSQL queue. No UPDATE or DELETE of incidents,
-- keys or queue rows; it reads alerts (0005 already grants SELECT on alerts to ssp_app).
GRANT INSERT, UPDATE (status) ON attendance TO ssp_api;
GRANT INSERT, UPDATE (marks_obtained) ON marks TO ssp_api;
GRANT INSERT ON behaviour_incidents TO ssp_api;
GRANT USAGE ON SEQUENCE attendance_id_seq, marks_id_seq, behaviour_incidents_id_seq TO ssp_api;
GRANT SELECT, INSERT ON student_events TO ssp_api;
-- ON CONFLICT reads the columns of the waiting-message index.
GRANT INSERT, SELECT (student_id, receives, dead_at) ON event_queue TO ssp_api;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['student_events', 'event_queue']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I TO ssp_app '
            'USING (school_id = ANY (app_visible_schools())) '
            'WITH CHECK (school_id = ANY (app_visible_schools()))', t);
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The worker: consumes the PostgreSQL queue, refreshes features only through
-- refresh_live_features(), reads and writes risk scores and raises alerts, for every school
-- (its own policies; the grants bound the commands). It reads no student records and writes
-- no facts, models or keys.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_worker') THEN
        CREATE ROLE ssp_worker LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB
            NOREPLICATION INHERIT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_worker'
               AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb
                    OR rolreplication)) THEN
        RAISE EXCEPTION 'ssp_worker has SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB or'
            ' REPLICATION; remove it before migrating';
    END IF;
END $$;

GRANT EXECUTE ON FUNCTION refresh_live_features(bigint[]) TO ssp_worker;
GRANT SELECT, UPDATE, DELETE ON event_queue TO ssp_worker;
GRANT SELECT, INSERT, UPDATE (risk, model_version, scored_at) ON risk_scores TO ssp_worker;
GRANT SELECT (id, student_id, status), INSERT ON alerts TO ssp_worker;
GRANT USAGE ON SEQUENCE alerts_id_seq TO ssp_worker;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['event_queue', 'risk_scores', 'alerts']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS worker_all_schools ON %I', t);
        EXECUTE format('CREATE POLICY worker_all_schools ON %I TO ssp_worker'
                       ' USING (true) WITH CHECK (true)', t);
    END LOOP;
END $$;
