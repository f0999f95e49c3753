-- Risk history: one snapshot per student per day their risk, model or indicators change
-- (score, generation, model version, top reasons, indicator figures), written by whoever
-- scores (the trainer's nightly scoring, the worker's rescoring; app/model/history.py).
-- Kept for the current and the previous school year: monthly partitions, archived and dropped
-- by `archive` (as the audit log's) once their month ends before the previous school year.
CREATE TABLE risk_history (
    student_id    bigint NOT NULL REFERENCES students(id),
    school_id     integer NOT NULL REFERENCES schools(id),
    day           date NOT NULL,
    risk          real NOT NULL CHECK (risk BETWEEN 0 AND 1),
    generation    integer NOT NULL,
    model_version text NOT NULL,
    reasons       jsonb,  -- NULL: the scorer gave none (rescored on a SageMaker endpoint)
    school_year   integer,
    indicators    jsonb,  -- student_indicators' figures of that year (NULL: no record)
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, day)
) PARTITION BY RANGE (day);
CREATE INDEX risk_history_school_day_idx ON risk_history (school_id, day);

-- The monthly partitions covering [from_month, to_month]; idempotent. The owner's alone.
CREATE FUNCTION risk_history_ensure_partitions(from_month date, to_month date)
RETURNS integer LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    m date := date_trunc('month', from_month)::date;
    created integer := 0;
    part text;
BEGIN
    IF to_month >= from_month + interval '36 months' THEN
        RAISE EXCEPTION 'risk_history_ensure_partitions: at most 36 months (% to %)',
            from_month, to_month;
    END IF;
    WHILE m <= date_trunc('month', to_month)::date LOOP
        part := format('risk_history_p%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF risk_history FOR VALUES FROM (%L) TO (%L)',
                           part, m, (m + interval '1 month')::date);
            created := created + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;
REVOKE ALL ON FUNCTION risk_history_ensure_partitions(date, date) FROM PUBLIC;

-- The first day of the previous school year: what is kept (school_year(), 0015: a year
-- starting in January starts in the calendar year it is named by, any other the year before).
CREATE FUNCTION risk_history_kept_from() RETURNS date
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT make_date(school_year(current_date, c.start_month) - 1
                     - (c.start_month <> 1)::integer, c.start_month, 1)
    FROM school_calendar c
$$;
REVOKE ALL ON FUNCTION risk_history_kept_from() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION risk_history_kept_from() TO ssp_archiver;

-- Every month kept (from the start of the previous school year) and the next two.
SELECT risk_history_ensure_partitions(risk_history_kept_from(),
                                      (current_date + interval '2 months')::date);

-- This month's and the next two months' partitions (UTC), for the writers and the archiver.
CREATE FUNCTION risk_history_ensure_current_partitions() RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT public.risk_history_ensure_partitions(d, (d + interval '2 months')::date)
    FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) t
$$;
REVOKE ALL ON FUNCTION risk_history_ensure_current_partitions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION risk_history_ensure_current_partitions()
    TO ssp_trainer, ssp_worker, ssp_archiver;

-- A partition archival may touch: a direct partition of risk_history whose month ends on or
-- before risk_history_kept_from(). Raises otherwise.
CREATE FUNCTION risk_history_archivable_partition(part text) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    rel regclass;
    bound text;
    ends date;
BEGIN
    SELECT c.oid::regclass, pg_get_expr(c.relpartbound, c.oid) INTO rel, bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'public.risk_history'::regclass
      AND c.relnamespace = 'public'::regnamespace AND c.relname = part;
    IF rel IS NULL THEN
        RAISE EXCEPTION '% is not a partition of risk_history', part;
    END IF;
    ends := substring(bound FROM 'TO \(''([^'']+)''\)')::date;
    IF ends IS NULL OR ends > risk_history_kept_from() THEN
        RAISE EXCEPTION 'partition % is still kept (%)', part, bound;
    END IF;
    RETURN rel;
END $$;
REVOKE ALL ON FUNCTION risk_history_archivable_partition(text) FROM PUBLIC;

CREATE FUNCTION risk_history_lock_partition(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', risk_history_archivable_partition(part));
END $$;
REVOKE ALL ON FUNCTION risk_history_lock_partition(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION risk_history_lock_partition(text) TO ssp_archiver;

-- Detaches and drops the partition, only if it holds exactly the rows the caller exported.
CREATE FUNCTION risk_history_drop_partition(part text, expected_rows bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    rel regclass := risk_history_archivable_partition(part);
    n bigint;
BEGIN
    EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', rel);
    EXECUTE format('SELECT count(*) FROM %s', rel) INTO n;
    IF n IS DISTINCT FROM expected_rows THEN
        RAISE EXCEPTION 'partition % holds % rows, not %: kept', part, n, expected_rows;
    END IF;
    EXECUTE format('ALTER TABLE public.risk_history DETACH PARTITION %s', rel);
    EXECUTE format('DROP TABLE %s', rel);
END $$;
REVOKE ALL ON FUNCTION risk_history_drop_partition(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION risk_history_drop_partition(text, bigint) TO ssp_archiver;

-- Row-level security: the API reads its tenant's rows; the writers write every school's (as
-- they write their scores); the archiver reads what it exports. Nobody else.
ALTER TABLE risk_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE risk_history FORCE ROW LEVEL SECURITY;
-- (The tenant's schools once per statement, as an InitPlan: see student_indicators_visible.)
CREATE POLICY tenant_isolation ON risk_history FOR SELECT TO ssp_app
    USING (school_id = ANY ((SELECT app_visible_schools())::integer[]));
GRANT SELECT ON risk_history TO ssp_app;
CREATE POLICY scorers_all_schools ON risk_history TO ssp_trainer, ssp_worker
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE ON risk_history TO ssp_trainer, ssp_worker;
CREATE POLICY archiver_read ON risk_history FOR SELECT TO ssp_archiver USING (true);
GRANT SELECT ON risk_history TO ssp_archiver;
