-- Every run `tend serve` starts, one row per schedule entry and scheduled time: the unique
-- key is what keeps a run from being claimed twice, by two instances or across a failover.
CREATE TABLE tend.schedule_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry         text NOT NULL,
    task          text NOT NULL,
    scheduled_for timestamptz NOT NULL,
    trigger       text NOT NULL CHECK (trigger IN ('schedule', 'missed', 'after', 'manual')),
    instance      text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    outcome       text NOT NULL DEFAULT 'running'
                  CHECK (outcome IN ('requested', 'running', 'succeeded', 'failed', 'cancelled',
                                     'abandoned', 'skipped')),
    summary       text,
    error         text,
    report        jsonb,
    UNIQUE (entry, scheduled_for)
);

CREATE INDEX schedule_runs_started_at ON tend.schedule_runs (started_at);
-- Runs asked for through the API (`requested`), which the leader picks up.
CREATE INDEX schedule_runs_requested ON tend.schedule_runs (id) WHERE outcome = 'requested';
