-- Each batch of rows a retention rule archived to the backup store, recorded in the
-- transaction that deleted them: a row here means its rows left the table and their object
-- is in the store. `manifest` is the manifest that lists it, once one is written (NULL
-- after a run killed between its last batch and its manifest: the next run writes it).
CREATE TABLE tend.retention_archive (
    id          bigserial PRIMARY KEY,
    rule        text NOT NULL,
    table_name  text NOT NULL,
    object      text NOT NULL UNIQUE,
    key_object  text NOT NULL,
    rows        bigint NOT NULL,
    bytes       bigint NOT NULL,
    sha256      text NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    manifest    text
);
CREATE INDEX retention_archive_unlisted ON tend.retention_archive (rule) WHERE manifest IS NULL;

-- Rows an archive-to-store rule deleted and the store has not taken yet: a batch moves
-- them here in the statement that deletes them (one short transaction, as any purge's),
-- and they leave only in the transaction that records their stored object. A run killed
-- in between leaves them here for the next one.
CREATE TABLE tend.retention_staging (
    id       bigserial PRIMARY KEY,
    label    text NOT NULL,
    row_json text NOT NULL
);
CREATE INDEX retention_staging_label ON tend.retention_staging (label, id);
