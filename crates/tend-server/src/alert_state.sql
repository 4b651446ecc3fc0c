-- The alerts `tend serve` sent and whether each still fires, so a new leader after a
-- failover neither sends an alert again nor misses its resolution.
CREATE TABLE tend.alert_state (
    key        text PRIMARY KEY,
    firing     boolean NOT NULL,
    severity   text NOT NULL,
    summary    text NOT NULL,
    since      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
