-- Acceptance of code completions (the IDE's view / select / dismiss events) per UTC day,
-- tenant, user, model and language: the acceptance rate, charged back like usage.
CREATE TABLE usage_events (
    day            TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    username       TEXT NOT NULL,
    model          TEXT NOT NULL,
    language       TEXT NOT NULL,
    views          BIGINT NOT NULL DEFAULT 0,
    selects        BIGINT NOT NULL DEFAULT 0,
    line_selects   BIGINT NOT NULL DEFAULT 0,
    dismisses      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, username, model, language)
);
