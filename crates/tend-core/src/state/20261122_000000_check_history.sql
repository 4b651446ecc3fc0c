-- tend's check history: one row per `tend check` run, its findings, and size samples for
-- growth since the previous run.
CREATE TABLE tend.check_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    millis      integer NOT NULL,
    worst       text NOT NULL,
    checks      integer NOT NULL,
    findings    integer NOT NULL,
    tend_version text NOT NULL
);

CREATE TABLE tend.check_findings (
    run_id    bigint NOT NULL REFERENCES tend.check_runs (id) ON DELETE CASCADE,
    check_id  text NOT NULL,
    severity  text NOT NULL,
    subject   text NOT NULL,
    value     double precision,
    message   text NOT NULL
);
CREATE INDEX check_findings_run_idx ON tend.check_findings (run_id);
CREATE INDEX check_findings_check_idx ON tend.check_findings (check_id, run_id);

CREATE TABLE tend.size_samples (
    run_id     bigint NOT NULL REFERENCES tend.check_runs (id) ON DELETE CASCADE,
    sampled_at timestamptz NOT NULL DEFAULT now(),
    relation   text NOT NULL,
    bytes      bigint NOT NULL,
    PRIMARY KEY (run_id, relation)
);

COMMENT ON SCHEMA tend IS 'State kept by tend (check history). Safe to drop: tend recreates it.';
