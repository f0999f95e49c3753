-- Indexes named by seeds 001/002/003: the form-master work queues, per-student time series,
-- and partial indexes on active rows only.
CREATE INDEX interventions_assigned_status_idx ON interventions (assigned_to, status, created_at);
CREATE INDEX interventions_open_idx ON interventions (school_id, created_at) WHERE status <> 'closed';
CREATE INDEX alerts_assigned_status_idx ON alerts (assigned_to, status, alert_date);
CREATE INDEX alerts_open_idx ON alerts (school_id, alert_date) WHERE status = 'open';
CREATE INDEX students_classroom_active_idx ON students (classroom_id, is_active);
CREATE INDEX students_active_idx ON students (school_id, id) WHERE is_active;
CREATE UNIQUE INDEX attendance_student_date_idx ON attendance (student_id, date);
CREATE INDEX marks_student_exam_idx ON marks (student_id, exam_id);
CREATE INDEX behaviour_student_time_idx ON behaviour_incidents (student_id, occurred_at);
CREATE INDEX model_versions_school_idx ON model_versions (school_id, created_at);
-- Keyset pagination of the at-risk list: (risk, student_id) descending within a school.
CREATE INDEX risk_scores_school_risk_idx ON risk_scores (generation, school_id, risk DESC, student_id DESC);
