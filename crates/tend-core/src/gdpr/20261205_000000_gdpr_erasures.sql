-- What each `tend gdpr erase` did, without personal data: when, who ran it, the subject's
-- table, a salted hash of the subject (to match a repeated request, only when a salt is
-- set), and per table the action, the link for mentions, the rows and a retention reason.
CREATE TABLE tend.gdpr_erasures (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erased_at     timestamptz NOT NULL DEFAULT now(),
    erased_by     text NOT NULL,
    subject_table text NOT NULL,
    subject_hash  text,
    steps         jsonb NOT NULL,
    tend_version  text NOT NULL
);
