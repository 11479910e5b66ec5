# frozen_string_literal: true

# Metrics of the Mastodon TEST DOUBLE's web and Sidekiq processes, wired like Mastodon's
# (config/initializers/prometheus_exporter.rb, config/puma.rb, config/initializers/sidekiq.rb at
# v4.6.5; the same in v4.5): nothing unless MASTODON_PROMETHEUS_EXPORTER_ENABLED=true. Each
# process then sends JSON messages to the exporter the way the prometheus_exporter gem's client
# does: a chunked POST /send-metrics to PROMETHEUS_EXPORTER_HOST (localhost) and
# PROMETHEUS_EXPORTER_PORT (9394), the gem's own variables. With MASTODON_PROMETHEUS_EXPORTER_LOCAL
# =true the process serves /metrics itself on MASTODON_PROMETHEUS_EXPORTER_HOST (localhost) and
# _PORT (9394) instead (puma: the master, before forking).
require 'json'
require 'socket'

module Double
  module Metrics
    module_function

    def enabled? = ENV['MASTODON_PROMETHEUS_EXPORTER_ENABLED'] == 'true'
    def local? = ENV['MASTODON_PROMETHEUS_EXPORTER_LOCAL'] == 'true'
    def web_detailed? = ENV['MASTODON_PROMETHEUS_EXPORTER_WEB_DETAILED_METRICS'] == 'true'
    def sidekiq_detailed? = ENV['MASTODON_PROMETHEUS_EXPORTER_SIDEKIQ_DETAILED_METRICS'] == 'true'

    def client = @client ||= Client.new
    def send_json(obj) = client.send_json(obj)

    # The local exporter (MASTODON_PROMETHEUS_EXPORTER_LOCAL=true): this process's messages go
    # straight to its own collector. Forked puma workers get a copy of it that nobody serves, as
    # upstream's LocalClient.
    def local_server!
      require_relative 'exporter'
      server = Exporter::Server.new(bind: ENV.fetch('MASTODON_PROMETHEUS_EXPORTER_HOST', 'localhost'),
                                    port: ENV.fetch('MASTODON_PROMETHEUS_EXPORTER_PORT', '9394').to_i, prefix: 'ruby_')
      server.start
      @client = LocalClient.new(server.collector)
    end

    # Sends the gem's messages from a background thread, over one chunked HTTP request that is
    # renewed every 25 s; a message that cannot be sent is dropped with a warning.
    class Client
      def initialize
        @host = ENV.fetch('PROMETHEUS_EXPORTER_HOST', 'localhost')
        @port = ENV.fetch('PROMETHEUS_EXPORTER_PORT', '9394').to_i
        @queue = Queue.new
      end

      def send_json(obj)
        @queue << JSON.generate(obj)
        @queue.pop if @queue.size > 10_000
        return if @thread&.alive? && @pid == Process.pid

        @pid, @socket = Process.pid, nil # a forked child starts its own thread and socket
        @thread = Thread.new { loop { drain } }
      end

      private

      def drain
        message = @queue.pop
        socket.write("#{message.bytesize.to_s(16).upcase}\r\n#{message}\r\n")
      rescue StandardError => e
        warn "Prometheus Exporter, failed to send message #{e}"
        @socket = nil
        sleep 0.5
      end

      def socket
        if @socket && @opened_at + 25 < Process.clock_gettime(Process::CLOCK_MONOTONIC)
          @socket.write("0\r\n\r\n") rescue nil # rubocop:disable Style/RescueModifier
          @socket.close
          @socket = nil
        end
        @socket ||= TCPSocket.new(@host, @port).tap do |s|
          s.write("POST /send-metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: #{@host}\r\n" \
                  "Connection: Close\r\nContent-Type: application/octet-stream\r\n\r\n")
          @opened_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        end
      end
    end

    class LocalClient
      def initialize(collector)
        @collector = collector
      end

      def send_json(obj) = @collector.process(JSON.generate(obj))
    end

    # Rack middleware. Detailed: the gem's PrometheusExporter::Middleware (controller, action,
    # status, durations); else Mastodon's PrometheusQueueTime (lib/mastodon/middleware/
    # prometheus_queue_time.rb): the queue time only, with no labels at all.
    class Middleware
      ROUTES = [
        ['GET', %r{\A/health\z}, 'health', 'show'], ['POST', %r{\A/api/v1/statuses\z}, 'api/v1/statuses', 'create'],
        ['GET', %r{\A/api/v1/statuses/\d+\z}, 'api/v1/statuses', 'show'], ['GET', %r{\A/api/v1/instance\z}, 'api/v1/instances', 'show'],
        ['GET', %r{\A/\z}, 'home', 'index']
      ].freeze

      def initialize(app)
        @app = app
      end

      def call(env)
        queue_time = queue_time(env)
        start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        result = @app.call(env)
      ensure
        if Metrics.web_detailed?
          _, _, controller, action = ROUTES.find { |m, re, _, _| m == env['REQUEST_METHOD'] && re.match?(env['PATH_INFO']) }
          Metrics.send_json(type: 'web', status: result ? result[0] : -1, queue_time: queue_time,
                            timings: { total_duration: Process.clock_gettime(Process::CLOCK_MONOTONIC) - start },
                            default_labels: { action: action || 'other', controller: controller || 'other' })
        else
          Metrics.send_json(type: 'web', queue_time: queue_time, default_labels: {})
        end
      end

      # X-Request-Start / X-Queue-Start (t=<epoch with ms or µs>), as the gem reads them.
      def queue_time(env)
        value = env['HTTP_X_REQUEST_START'] || env['HTTP_X_QUEUE_START']
        return if value.to_s.empty?

        digits = value.to_s.gsub(/t=|\./, '')
        seconds = Process.clock_gettime(Process::CLOCK_REALTIME) - "#{digits[0, 10]}.#{digits[10, 13]}".to_f
        seconds unless seconds.negative?
      end
    end

    # The gem's Instrumentation::Process: memory and GC of this process every 30 s.
    def process_stats!(type)
      periodic do
        gc = GC.stat
        { type: 'process', pid: Process.pid, hostname: Double.hostname, metric_labels: { type: type },
          rss: File.read('/proc/self/statm').split[1].to_i * 4096, heap_free_slots: gc[:heap_free_slots],
          heap_live_slots: gc[:heap_live_slots], major_gc_ops_total: gc[:major_gc_count],
          minor_gc_ops_total: gc[:minor_gc_count], allocated_objects_total: gc[:total_allocated_objects] }
      end
    end

    # The gem's Instrumentation::Puma, from a worker (after_worker_boot, as config/puma.rb:40).
    def puma_stats!
      periodic do
        stats = JSON.parse(::Puma.stats) rescue {} # rubocop:disable Style/RescueModifier
        status = stats['worker_status'] ? stats['worker_status'].map { |w| w['last_status'] }.reject(&:empty?) : [stats]
        metric = { type: 'puma', pid: Process.pid, hostname: Double.hostname, metric_labels: {}, phase: stats['phase'],
                   workers: stats['workers'], booted_workers: stats['booted_workers'], old_workers: stats['old_workers'] }.compact
        %w[backlog running pool_capacity max_threads].zip(%w[request_backlog running_threads thread_pool_capacity max_threads]) do |from, to|
          metric[to] = status.sum { |s| s[from].to_i }
        end
        metric
      end
    end

    # config/initializers/sidekiq.rb:26-60: process, Sidekiq process and (detailed) per-job metrics.
    def sidekiq!(config)
      return unless enabled?

      config.on(:startup) { local_server! } if local?
      # Sidekiq::ProcessSet is in sidekiq/api. Upstream's processes have it loaded: config/routes.rb:3
      # loads the Sidekiq web UI (sidekiq-scheduler/web), and sidekiq/web requires sidekiq/api.
      require 'sidekiq/api'
      config.on(:startup) do
        process_stats!('sidekiq')
        periodic do
          me = Sidekiq::ProcessSet.new.find { |p| p['hostname'] == Double.hostname && p['pid'] == Process.pid }
          { type: 'sidekiq_process', process: me ? { busy: me['busy'], concurrency: me['concurrency'],
                                                     labels: { labels: me['labels'].sort.join(','), queues: me['queues'].sort.join(','),
                                                               quiet: me['quiet'], tag: me['tag'], hostname: me['hostname'],
                                                               identity: me['identity'] } } : {} }
        end
      end
      config.server_middleware { |chain| chain.add JobMetrics } if sidekiq_detailed?
    end

    # The gem's Instrumentation::Sidekiq server middleware: one message per job.
    class JobMetrics
      def call(job, _msg, queue)
        success = shutdown = false
        start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        result = yield
        success = true
        result
      rescue Sidekiq::Shutdown
        shutdown = true
        raise
      ensure
        Metrics.send_json(type: 'sidekiq', name: job.class.name, queue: queue, success: success, shutdown: shutdown,
                          duration: Process.clock_gettime(Process::CLOCK_MONOTONIC) - start)
      end
    end

    def periodic(every: 30, &block)
      Thread.new do
        loop do
          send_json(block.call)
        rescue StandardError => e
          warn "Prometheus Exporter, failed to collect: #{e.message}"
        ensure
          sleep every
        end
      end
    end
  end
end
