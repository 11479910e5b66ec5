# frozen_string_literal: true

# Sidekiq side of the Mastodon TEST DOUBLE: one job class, enqueued by POST /api/v1/statuses on
# any queue, that records who ran it (host, pid, Sidekiq identity and tag, queue) in job_runs and
# stores a media object for the status (S3 when S3_ENABLED=true, else public/system).
require 'sidekiq'
require_relative 'storage'

module Double
  # Server middleware: hands the queue the job was really fetched from to the job.
  class QueueName
    def call(job_instance, _job, queue)
      job_instance.queue_name = queue if job_instance.respond_to?(:queue_name=)
      yield
    end
  end

  class StatusWorker
    include Sidekiq::Job

    attr_accessor :queue_name

    def perform(status_id)
      row = Double.db { |c| c.exec('SELECT id, text FROM statuses WHERE id = $1', status_id).first }
      raise "status #{status_id} not found" unless row # retried, like ActiveRecord::RecordNotFound

      key, url = Storage.store(status_id.to_i, row['text'])
      cli = Sidekiq::CLI.instance
      Double.db do |c|
        # app_version: the VERSION this Sidekiq process loaded at boot, not the one on disk now.
        c.exec(<<~SQL, jid, status_id, queue_name, Double.hostname, Process.pid, cli.identity, Double.sidekiq_config[:tag], key, url, Double.version)
          INSERT INTO job_runs (job_id, status_id, queue, hostname, pid, identity, tag, media_key, media_url, app_version)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
          ON CONFLICT (job_id) DO UPDATE SET queue = EXCLUDED.queue, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
            identity = EXCLUDED.identity, tag = EXCLUDED.tag, app_version = EXCLUDED.app_version, ran_at = now()
        SQL
      end
      logger.info "status #{status_id} processed on queue #{queue_name}, media at #{url}"
    end
  end
end
