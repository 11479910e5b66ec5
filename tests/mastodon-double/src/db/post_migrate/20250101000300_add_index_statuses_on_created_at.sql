-- Post-deployment migration: skipped while SKIP_POST_DEPLOYMENT_MIGRATIONS is set.
CREATE INDEX index_statuses_on_created_at ON statuses (created_at);
