# frozen_string_literal: true

# The metrics exporter of the Mastodon TEST DOUBLE: a small re-implementation of what the
# prometheus_exporter gem's server does for Mastodon (bin/prometheus_exporter, upstream's
# dist/mastodon-prometheus-exporter.service in 4.6): web and Sidekiq processes POST JSON messages
# to /send-metrics (chunked, one message per chunk, as the gem's client does); GET /metrics
# answers in Prometheus' text format, every name prefixed (--prefix, default "ruby_"); GET /ping
# answers PONG. Metric names and labels are the gem's collectors' (web, puma, process, sidekiq,
# sidekiq_process); durations are summaries with _sum and _count only (no quantiles).
require 'json'
require 'socket'

module Double
  module Exporter
    # One metric family: name, type, help and samples {labels => value}.
    class Family
      attr_reader :name, :type, :help, :samples

      def initialize(name, type, help)
        @name, @type, @help, @samples = name, type, help, {}
      end

      def add(labels, value) = (@samples[labels] = (@samples[labels] || 0) + value)
      def set(labels, value) = (@samples[labels] = value)

      def observe(labels, value)
        sum, count = @samples[labels] || [0.0, 0]
        @samples[labels] = [sum + value.to_f, count + 1]
      end

      def text(prefix)
        full = "#{prefix}#{name}"
        lines = ["# HELP #{full} #{help}", "# TYPE #{full} #{type}"]
        samples.each do |labels, value|
          if type == 'summary'
            lines << "#{full}_sum#{Exporter.labels_text(labels)} #{value[0]}" << "#{full}_count#{Exporter.labels_text(labels)} #{value[1]}"
          else
            lines << "#{full}#{Exporter.labels_text(labels)} #{value}"
          end
        end
        lines.join("\n")
      end
    end

    def self.labels_text(labels)
      return '' if labels.empty?

      "{#{labels.map { |k, v| "#{k}=\"#{v.to_s.gsub(/[\\"\n]/) { |c| c == "\n" ? '\\n' : "\\#{c}" }}\"" }.join(',')}}"
    end

    # Receives the messages, keeps the counters and the latest gauges of each process.
    class Collector
      PROCESS_GAUGES = { 'heap_free_slots' => 'Free ruby heap slots.', 'heap_live_slots' => 'Used ruby heap slots.',
                         'rss' => 'Total RSS used by process.' }.freeze
      PROCESS_COUNTERS = { 'major_gc_ops_total' => 'Major GC operations by process.',
                           'minor_gc_ops_total' => 'Minor GC operations by process.',
                           'allocated_objects_total' => 'Total number of allocated objects by process.' }.freeze
      PUMA_GAUGES = { 'workers' => 'Number of puma workers.', 'booted_workers' => 'Number of puma workers booted.',
                      'old_workers' => 'Number of old puma workers.', 'running_threads' => 'Number of puma threads currently running.',
                      'request_backlog' => 'Number of requests waiting to be processed by a puma thread.',
                      'thread_pool_capacity' => 'Number of puma threads available at current scale.',
                      'max_threads' => 'Number of puma threads at available at max scale.' }.freeze
      SIDEKIQ_PROCESS_GAUGES = { 'busy' => 'Number of running jobs', 'concurrency' => 'Maximum concurrency' }.freeze
      MAX_AGE = { 'process' => 60, 'puma' => 30, 'sidekiq_process' => 60 }.freeze

      def initialize
        @mutex = Mutex.new
        @families = {}
        @latest = Hash.new { |h, k| h[k] = {} } # type => {process key => [time, message]}
      end

      def family(name, type, help) = @families[name] ||= Family.new(name, type, help)

      # One JSON message, as the gem's clients send them.
      def process(json)
        obj = JSON.parse(json)
        @mutex.synchronize { collect(obj) }
      end

      def text(prefix)
        @mutex.synchronize do
          now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
          @latest.each { |type, procs| procs.delete_if { |_, (at, _)| at + MAX_AGE.fetch(type) < now } }
          (@families.values + gauges).map { |f| f.text(prefix) }.join("\n\n")
        end
      end

      private

      def labels_of(obj, defaults = {})
        defaults.merge(obj['default_labels'] || {}).merge(obj['custom_labels'] || {})
      end

      def collect(obj)
        case obj['type']
        when 'web' then web(obj)
        when 'sidekiq' then sidekiq(obj)
        when 'process', 'puma' then @latest[obj['type']][[obj['hostname'], obj['pid']]] = [now, obj]
        when 'sidekiq_process' then @latest['sidekiq_process'][obj.dig('process', 'labels', 'identity')] = [now, obj['process']] if obj['process']&.any?
        else raise ArgumentError, "unknown metric type #{obj['type'].inspect}"
        end
      end

      def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

      # prometheus_exporter's WebCollector: every message counts a request, labelled with its status.
      def web(obj)
        labels = labels_of(obj)
        family('http_requests_total', 'counter', 'Total HTTP requests from web app.').add(labels.merge('status' => obj['status']), 1)
        if (timings = obj['timings'])
          family('http_request_duration_seconds', 'summary', 'Time spent in HTTP reqs in seconds.').observe(labels, timings['total_duration'])
          family('http_request_sql_duration_seconds', 'summary', 'Time spent in HTTP reqs in SQL in seconds.').observe(labels, timings.dig('sql', 'duration')) if timings['sql']
          family('http_request_redis_duration_seconds', 'summary', 'Time spent in HTTP reqs in Redis, in seconds.').observe(labels, timings.dig('redis', 'duration')) if timings['redis']
        end
        return unless obj['queue_time']

        family('http_request_queue_duration_seconds', 'summary', 'Time spent queueing the request in load balancer in seconds.').observe(labels, obj['queue_time'])
      end

      # prometheus_exporter's SidekiqCollector: labels job_name and queue.
      def sidekiq(obj)
        labels = { 'job_name' => obj['name'], 'queue' => obj['queue'] }.merge(obj['custom_labels'] || {})
        return family('sidekiq_dead_jobs_total', 'counter', 'Total number of dead sidekiq jobs.').add(labels, 1) if obj['dead']

        family('sidekiq_job_duration_seconds', 'summary', 'Total time spent in sidekiq jobs.').observe(labels, obj['duration'])
        family('sidekiq_jobs_total', 'counter', 'Total number of sidekiq jobs executed.').add(labels, 1)
        family('sidekiq_restarted_jobs_total', 'counter', 'Total number of sidekiq jobs that we restarted because of a sidekiq shutdown.').add(labels, obj['shutdown'] ? 1 : 0)
        family('sidekiq_failed_jobs_total', 'counter', 'Total number of failed sidekiq jobs.').add(labels, !obj['success'] && !obj['shutdown'] ? 1 : 0)
      end

      # Gauges from the latest message of each live process.
      def gauges
        out = {}
        @latest['process'].each_value do |_, m|
          labels = (m['metric_labels'] || {}).merge('pid' => m['pid']).merge(m['custom_labels'] || {})
          PROCESS_GAUGES.each { |k, help| (out[k] ||= Family.new(k, 'gauge', help)).set(labels, m[k]) if m[k] }
          PROCESS_COUNTERS.each { |k, help| (out[k] ||= Family.new(k, 'counter', help)).set(labels, m[k]) if m[k] }
        end
        @latest['puma'].each_value do |_, m|
          labels = (m['phase'] ? { 'phase' => m['phase'] } : {}).merge(m['custom_labels'] || {}).merge(m['metric_labels'] || {})
          PUMA_GAUGES.each { |k, help| (out["puma_#{k}"] ||= Family.new("puma_#{k}", 'gauge', help)).set(labels, m[k]) if m[k] }
        end
        @latest['sidekiq_process'].each_value do |_, m|
          SIDEKIQ_PROCESS_GAUGES.each do |k, help|
            (out["sidekiq_process_#{k}"] ||= Family.new("sidekiq_process_#{k}", 'gauge', help)).set(m['labels'] || {}, m[k]) if m[k]
          end
        end
        out.values
      end
    end

    # The HTTP side: /metrics, /send-metrics, /ping; one thread per connection.
    class Server
      attr_reader :collector

      def initialize(bind:, port:, prefix:, timeout: 2, verbose: false)
        @bind, @port, @prefix, @timeout, @verbose = bind, port, prefix, timeout, verbose
        @collector = Collector.new
        @stats = { metrics: 0, sessions: 0, bad: 0 }
      end

      def start
        @server = TCPServer.new(%w[ALL ANY].include?(@bind) ? nil : @bind, @port)
        Thread.new { loop { Thread.new(@server.accept) { |client| handle(client) } } }
      end

      def metrics_text
        own = [['collector_working', 'gauge', 'Is the master process collector able to collect metrics', 1],
               ['collector_rss', 'gauge', 'total memory used by collector process', rss],
               ['collector_metrics_total', 'counter', 'Total metrics processed by exporter web.', @stats[:metrics]],
               ['collector_sessions_total', 'counter', 'Total send_metric sessions processed by exporter web.', @stats[:sessions]],
               ['collector_bad_metrics_total', 'counter', 'Total mis-handled metrics by collector.', @stats[:bad]]]
        own = own.map { |name, type, help, value| Family.new(name, type, help).tap { |f| f.set({}, value) }.text(@prefix) }
        "#{(own + [collector.text(@prefix)]).reject(&:empty?).join("\n\n")}\n"
      end

      private

      def rss = File.read('/proc/self/statm').split[1].to_i * 4096

      def handle(client)
        method, path, = client.gets.to_s.split
        headers = {}
        while (line = client.gets) && line != "\r\n"
          key, value = line.split(':', 2)
          headers[key.downcase] = value.to_s.strip
        end
        warn "#{method} #{path}" if @verbose
        case [method, path&.split('?')&.first]
        when %w[GET /metrics] then reply(client, 200, metrics_text)
        when %w[GET /ping] then reply(client, 200, 'PONG')
        when %w[POST /send-metrics] then receive(client, headers)
        else reply(client, 404, 'Not Found! The Prometheus Ruby Exporter only listens on /ping, /metrics and /send-metrics')
        end
      rescue StandardError => e
        warn "exporter: #{e.class}: #{e.message}"
      ensure
        client.close
      end

      def receive(client, headers)
        @stats[:sessions] += 1
        each_message(client, headers) do |message|
          @stats[:metrics] += 1
          collector.process(message)
        rescue StandardError => e
          @stats[:bad] += 1
          warn "exporter: bad metric: #{e.message}" if @verbose
        end
        reply(client, 200, 'OK')
      end

      def each_message(client, headers)
        if headers['transfer-encoding'].to_s.include?('chunked')
          while (size = client.gets.to_s.strip.to_i(16)).positive?
            message = client.read(size)
            client.read(2)
            yield message
          end
        else
          yield client.read(headers['content-length'].to_i)
        end
      end

      def reply(client, status, body)
        reason = { 200 => 'OK', 404 => 'Not Found' }.fetch(status, 'Error')
        client.write "HTTP/1.1 #{status} #{reason}\r\nContent-Type: text/plain; charset=utf-8\r\n" \
                     "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}"
      end
    end
  end
end
