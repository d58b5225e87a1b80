-- The model registry: models registered at run time (besides [[models]] in the config file)
-- with the state every replica should hold them in; the traffic share of each canary (every
-- replica polls it each second); and per-day outcomes of each model version, summed over
-- replicas, for `codepilot model compare`.
CREATE TABLE model_registry (
    id          TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    spec        TEXT NOT NULL,
    desired     TEXT NOT NULL CHECK (desired IN ('loaded', 'unloaded')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);

CREATE TABLE model_rollouts (
    model       TEXT PRIMARY KEY,
    share       BIGINT NOT NULL CHECK (share >= 0 AND share <= 100),
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);

-- Latency buckets hold counts of requests at or under 100, 250, 500, 1000, 2500 ms and above.
CREATE TABLE model_outcomes_daily (
    day                TEXT NOT NULL,
    model              TEXT NOT NULL,
    version            TEXT NOT NULL,
    requests           BIGINT NOT NULL DEFAULT 0,
    errors             BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum     BIGINT NOT NULL DEFAULT 0,
    le_100             BIGINT NOT NULL DEFAULT 0,
    le_250             BIGINT NOT NULL DEFAULT 0,
    le_500             BIGINT NOT NULL DEFAULT 0,
    le_1000            BIGINT NOT NULL DEFAULT 0,
    le_2500            BIGINT NOT NULL DEFAULT 0,
    le_inf             BIGINT NOT NULL DEFAULT 0,
    views              BIGINT NOT NULL DEFAULT 0,
    selects            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model, version)
);
