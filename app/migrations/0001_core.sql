-- Core tables. Every school-owned row carries school_id so row-level security can filter it.
CREATE TABLE districts (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE schools (
    id          serial PRIMARY KEY,
    district_id integer NOT NULL REFERENCES districts(id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schools_district_idx ON schools (district_id);

CREATE TABLE classrooms (
    id          serial PRIMARY KEY,
    school_id   integer NOT NULL REFERENCES schools(id),
    name        text NOT NULL,
    grade       smallint NOT NULL CHECK (grade BETWEEN 1 AND 12)
);

CREATE TABLE staff (
    id          serial PRIMARY KEY,
    school_id   integer NOT NULL REFERENCES schools(id),
    name        text NOT NULL,
    email       text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('teacher', 'counsellor', 'form_master', 'admin')),
    is_active   boolean NOT NULL DEFAULT true
);

CREATE TABLE students (
    id              bigserial PRIMARY KEY,
    school_id       integer NOT NULL REFERENCES schools(id),
    classroom_id    integer REFERENCES classrooms(id),
    first_name      text NOT NULL,
    last_name       text NOT NULL,
    grade           smallint NOT NULL CHECK (grade BETWEEN 1 AND 12),
    enrolled_on     date NOT NULL,
    is_active       boolean NOT NULL DEFAULT true,
    -- Training label: known for past cohorts, NULL while the outcome is open.
    dropped_out     boolean
);

CREATE TABLE attendance (
    id          bigserial PRIMARY KEY,
    school_id   integer NOT NULL REFERENCES schools(id),
    student_id  bigint NOT NULL REFERENCES students(id),
    date        date NOT NULL,
    status      text NOT NULL CHECK (status IN ('present', 'absent', 'late', 'excused'))
);

CREATE TABLE exams (
    id          serial PRIMARY KEY,
    school_id   integer NOT NULL REFERENCES schools(id),
    subject     text NOT NULL,
    held_on     date NOT NULL,
    max_marks   numeric(6, 2) NOT NULL CHECK (max_marks > 0)
);

CREATE TABLE marks (
    id              bigserial PRIMARY KEY,
    school_id       integer NOT NULL REFERENCES schools(id),
    student_id      bigint NOT NULL REFERENCES students(id),
    exam_id         integer NOT NULL REFERENCES exams(id),
    marks_obtained  numeric(6, 2) NOT NULL CHECK (marks_obtained >= 0)
);

CREATE TABLE behaviour_incidents (
    id          bigserial PRIMARY KEY,
    school_id   integer NOT NULL REFERENCES schools(id),
    student_id  bigint NOT NULL REFERENCES students(id),
    occurred_at timestamptz NOT NULL,
    severity    smallint NOT NULL CHECK (severity BETWEEN 1 AND 3),
    category    text NOT NULL
);

CREATE TABLE interventions (
    id          bigserial PRIMARY KEY,
    school_id   integer NOT NULL REFERENCES schools(id),
    student_id  bigint NOT NULL REFERENCES students(id),
    assigned_to integer NOT NULL REFERENCES staff(id),
    status      text NOT NULL CHECK (status IN ('open', 'in_progress', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    notes       text
);

CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    school_id       integer NOT NULL REFERENCES schools(id),
    student_id      bigint NOT NULL REFERENCES students(id),
    assigned_to     integer REFERENCES staff(id),
    status          text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    alert_date      date NOT NULL DEFAULT current_date,
    risk            real NOT NULL CHECK (risk BETWEEN 0 AND 1),
    model_version   text
);

-- API clients: only a hash of the key is stored; a client is scoped to one school or district.
CREATE TABLE api_clients (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    key_prefix  text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    school_id   integer REFERENCES schools(id),
    district_id integer REFERENCES districts(id),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((school_id IS NULL) <> (district_id IS NULL))
);

-- Every trained model, per scope ('district' or 'school:<id>'), with its held-out metrics.
CREATE TABLE model_versions (
    id          serial PRIMARY KEY,
    version     text NOT NULL,
    scope       text NOT NULL,
    school_id   integer REFERENCES schools(id),
    metrics     jsonb NOT NULL,
    promoted    boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (version, scope)
);

-- Scores of every student under one pointer generation, written before the pointer flips,
-- so the at-risk list always matches the models being served.
CREATE TABLE risk_scores (
    generation      integer NOT NULL,
    student_id      bigint NOT NULL REFERENCES students(id),
    school_id       integer NOT NULL REFERENCES schools(id),
    risk            real NOT NULL,
    model_version   text NOT NULL,
    scored_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (generation, student_id)
);
