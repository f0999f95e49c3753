-- Model features per student (seed 001), one aggregate per source table so joins do not fan out.
-- The unique index lets it be refreshed CONCURRENTLY while the API reads it.
CREATE MATERIALIZED VIEW student_features AS
SELECT
    s.id                                        AS student_id,
    s.school_id,
    s.is_active,
    s.dropped_out,
    s.grade::double precision                   AS grade,
    coalesce(a.present_rate, 1.0)               AS attendance_rate,
    coalesce(a.absences, 0)::double precision   AS absences,
    coalesce(a.lates, 0)::double precision      AS lates,
    coalesce(m.avg_mark, 0.0)                   AS avg_mark,
    coalesce(m.min_mark, 0.0)                   AS min_mark,
    coalesce(m.failed_exams, 0)::double precision AS failed_exams,
    coalesce(b.incidents, 0)::double precision  AS incidents,
    coalesce(b.severe_incidents, 0)::double precision AS severe_incidents
FROM students s
LEFT JOIN (
    SELECT student_id,
           avg((status IN ('present', 'late'))::int)::double precision AS present_rate,
           count(*) FILTER (WHERE status = 'absent') AS absences,
           count(*) FILTER (WHERE status = 'late') AS lates
    FROM attendance GROUP BY student_id
) a ON a.student_id = s.id
LEFT JOIN (
    SELECT mk.student_id,
           avg(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS avg_mark,
           min(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS min_mark,
           count(*) FILTER (WHERE mk.marks_obtained * 100.0 / e.max_marks < 40) AS failed_exams
    FROM marks mk JOIN exams e ON e.id = mk.exam_id
    GROUP BY mk.student_id
) m ON m.student_id = s.id
LEFT JOIN (
    SELECT student_id, count(*) AS incidents, count(*) FILTER (WHERE severity = 3) AS severe_incidents
    FROM behaviour_incidents GROUP BY student_id
) b ON b.student_id = s.id;

CREATE UNIQUE INDEX student_features_pk ON student_features (student_id);
CREATE INDEX student_features_school_idx ON student_features (school_id);
