-- FERPA audit trail, partitioned by month (seed 002) so old months are archived and dropped whole.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    client_id   integer,
    school_id   integer,
    student_id  bigint,
    action      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE INDEX audit_log_client_time_idx ON audit_log (client_id, occurred_at);
CREATE INDEX audit_log_student_time_idx ON audit_log (student_id, occurred_at);

-- Creates the monthly partitions covering [from_month, to_month]; idempotent. Months are UTC
-- months whatever the session's TimeZone.
CREATE FUNCTION audit_log_ensure_partitions(from_month date, to_month date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', from_month)::date;
    created integer := 0;
    part text;
BEGIN
    WHILE m <= date_trunc('month', to_month)::date LOOP
        part := format('audit_log_p%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                part, m::timestamp AT TIME ZONE 'UTC',
                (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;

SELECT audit_log_ensure_partitions(current_date, (current_date + interval '2 months')::date);
