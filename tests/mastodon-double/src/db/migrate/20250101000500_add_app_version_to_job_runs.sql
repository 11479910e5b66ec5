-- The version the Sidekiq process that ran the job had loaded at boot.
ALTER TABLE job_runs ADD COLUMN app_version text;
