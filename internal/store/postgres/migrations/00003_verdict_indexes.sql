-- +goose Up
-- Lists filtered by verdict (the failed deploys, of one service or all)
-- read the index alone instead of every deploy of the service.
CREATE INDEX deploys_by_verdict ON deploys (verdict, started_at DESC, id DESC);
CREATE INDEX deploys_by_service_verdict ON deploys (service, verdict, started_at DESC, id DESC);

-- +goose Down
DROP INDEX deploys_by_service_verdict;
DROP INDEX deploys_by_verdict;
