-- One row per Sidekiq job run: which host, process, identity, tag and queue ran it.
CREATE TABLE job_runs (
  id bigserial PRIMARY KEY,
  job_id text NOT NULL UNIQUE,
  status_id bigint NOT NULL,
  queue text NOT NULL,
  hostname text NOT NULL,
  pid integer NOT NULL,
  identity text,
  tag text,
  media_key text,
  media_url text,
  media_removed_at timestamptz,
  ran_at timestamptz NOT NULL DEFAULT now()
);
