-- Sharded training (`python -m app train --shard i/N`): one row per run, one per finished
-- shard. The rows hold no student data: the run's version, the district model's held-out
-- metrics and each shard's per-school decisions. A retried shard finds its row and redoes
-- nothing; the shard that completes the set, under the training lock, publishes once and
-- stamps published_at (app/shards.py).
CREATE TABLE IF NOT EXISTS training_runs (
    run_id           text PRIMARY KEY,
    shards           integer NOT NULL CHECK (shards >= 1),
    version          text NOT NULL UNIQUE,
    base_generation  integer NOT NULL,
    district         jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    generation       integer
);

CREATE TABLE IF NOT EXISTS training_shards (
    run_id       text NOT NULL REFERENCES training_runs ON DELETE CASCADE,
    shard        integer NOT NULL CHECK (shard >= 0),
    result       jsonb NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, shard)
);

-- The trainer alone writes them; nothing else reads them.
GRANT SELECT, INSERT, UPDATE ON training_runs TO ssp_trainer;
GRANT SELECT, INSERT ON training_shards TO ssp_trainer;
