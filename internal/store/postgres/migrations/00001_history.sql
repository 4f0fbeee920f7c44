-- +goose Up
CREATE TABLE deploys (
    id               TEXT PRIMARY KEY,
    key              TEXT NOT NULL UNIQUE,
    source           TEXT NOT NULL,
    service          TEXT NOT NULL,
    environment      TEXT NOT NULL DEFAULT '',
    namespace        TEXT NOT NULL DEFAULT '',
    kind             TEXT NOT NULL DEFAULT '',
    workload         TEXT NOT NULL DEFAULT '',
    version          TEXT NOT NULL DEFAULT '',
    previous_version TEXT NOT NULL DEFAULT '',
    revision         TEXT NOT NULL DEFAULT '',
    verdict          TEXT NOT NULL,
    reason           TEXT NOT NULL DEFAULT '',
    triggered_by     TEXT NOT NULL DEFAULT '',
    started_at       BIGINT NOT NULL,
    detected_at      BIGINT,
    ended_at         BIGINT,
    rolled_back      BOOLEAN NOT NULL DEFAULT FALSE,
    rollback_ok      BOOLEAN NOT NULL DEFAULT FALSE,
    owner            TEXT NOT NULL DEFAULT '',
    updated_at       BIGINT NOT NULL,
    report           TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX deploys_by_start ON deploys (started_at DESC, id DESC);
CREATE INDEX deploys_by_service ON deploys (service, started_at DESC);
CREATE INDEX deploys_in_progress ON deploys (verdict) WHERE verdict = 'in_progress';
CREATE INDEX deploys_by_end ON deploys (ended_at);

CREATE TABLE events (
    deploy_id TEXT NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    time      BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (deploy_id, seq)
);

CREATE TABLE workloads (
    namespace       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    revision        TEXT NOT NULL DEFAULT '',
    revision_number TEXT NOT NULL DEFAULT '',
    template        TEXT NOT NULL DEFAULT '',
    config_error    TEXT NOT NULL DEFAULT '',
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (namespace, kind, name)
);

-- +goose Down
DROP TABLE workloads;
DROP TABLE events;
DROP TABLE deploys;
