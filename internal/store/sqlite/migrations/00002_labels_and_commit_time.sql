-- +goose Up
ALTER TABLE deploys ADD COLUMN commit_time INTEGER;
CREATE TABLE labels (
    deploy_id TEXT NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    label     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    note      TEXT NOT NULL DEFAULT '',
    who       TEXT NOT NULL DEFAULT '',
    created   INTEGER NOT NULL
);
CREATE INDEX labels_by_deploy ON labels (deploy_id);
CREATE INDEX deploys_by_service_env ON deploys (service, environment, started_at DESC);

-- +goose Down
DROP INDEX deploys_by_service_env;
DROP TABLE labels;
ALTER TABLE deploys DROP COLUMN commit_time;
