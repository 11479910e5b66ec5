# frozen_string_literal: true

# Media storage of the Mastodon TEST DOUBLE, configured like Mastodon's Paperclip initializer:
# S3_ENABLED=true puts objects in S3_BUCKET through aws-sdk-s3 (SigV4), else files go under
# public/system (PAPERCLIP_ROOT_PATH). Keys follow Paperclip's :class/:attachment/:id_partition.
require 'fileutils'

module Double
  module Storage
    module_function

    PREFIX = 'media_attachments/files/'

    def s3? = ENV['S3_ENABLED'] == 'true'
    def bucket = ENV['S3_BUCKET']
    def region = ENV.fetch('S3_REGION', 'us-east-1')
    def local_root = ENV.fetch('PAPERCLIP_ROOT_PATH', File.join(ROOT, 'public', 'system'))
    # config/initializers/paperclip.rb:45 (ENV.key?): S3_KEY_PREFIX, even empty, prefixes the path.
    def key_prefix = s3? && ENV.key?('S3_KEY_PREFIX') ? "#{ENV.fetch('S3_KEY_PREFIX')}/" : ''
    def key_for(id) = "#{key_prefix}#{PREFIX}#{format('%09d', id).scan(/\d{3}/).join('/')}/original/status-#{id}.txt"

    # S3_PERMISSION defaults to public-read; an empty value sends no ACL at all.
    def acl
      permission = ENV.fetch('S3_PERMISSION', 'public-read')
      permission.empty? ? nil : permission
    end

    # Path-style addressing unless S3_OVERRIDE_PATH_STYLE=true, when S3_ENDPOINT is present, even
    # empty (paperclip.rb:77, ENV.key?).
    def s3
      require 'aws-sdk-s3'
      opts = { region: region, access_key_id: ENV['AWS_ACCESS_KEY_ID'], secret_access_key: ENV['AWS_SECRET_ACCESS_KEY'],
               http_open_timeout: ENV.fetch('S3_OPEN_TIMEOUT', '5').to_i, http_read_timeout: ENV.fetch('S3_READ_TIMEOUT', '5').to_i,
               retry_limit: ENV.fetch('S3_RETRY_LIMIT', '0').to_i }
      opts.merge!(endpoint: ENV['S3_ENDPOINT'], force_path_style: ENV['S3_OVERRIDE_PATH_STYLE'] != 'true') if ENV.key?('S3_ENDPOINT')
      @s3 ||= Aws::S3::Client.new(**opts)
    end

    # Public URL: S3_ALIAS_HOST or S3_CLOUDFRONT_HOST when present, even empty (paperclip.rb:86,
    # ENV.key?: an empty one gives "https:///KEY", as in Mastodon), else the S3 host, else WEB_DOMAIN/system.
    def url(key)
      protocol = ENV.fetch('S3_PROTOCOL', 'https')
      return "https://#{Double.web_domain}/system/#{key}" unless s3?
      if ENV.key?('S3_ALIAS_HOST') || ENV.key?('S3_CLOUDFRONT_HOST')
        return "#{protocol}://#{ENV['S3_ALIAS_HOST'] || ENV['S3_CLOUDFRONT_HOST']}/#{key}"
      end

      "#{protocol}://#{ENV.fetch('S3_HOSTNAME', "s3-#{region}.amazonaws.com")}/#{bucket}/#{key}"
    end

    def store(id, body)
      key = key_for(id)
      if s3?
        # paperclip.rb:93 (ENV.key?): S3_STORAGE_CLASS, when present, is sent as is.
        s3.put_object(**{ bucket: bucket, key: key, body: body, acl: acl, content_type: 'text/plain; charset=utf-8',
                          cache_control: 'public, max-age=315576000, immutable',
                          storage_class: ENV.key?('S3_STORAGE_CLASS') ? ENV['S3_STORAGE_CLASS'] : nil }.compact)
      else
        path = File.join(local_root, key)
        FileUtils.mkdir_p(File.dirname(path))
        File.write(path, body)
      end
      [key, url(key)]
    end

    def delete(key)
      return s3.delete_object(bucket: bucket, key: key) if s3?

      File.delete(File.join(local_root, key))
    rescue Errno::ENOENT
      nil
    end

    # Every stored key under PREFIX with its size: [[key, bytes], ...]
    def list
      unless s3?
        root = File.join(local_root, '')
        return Dir.glob(File.join(local_root, PREFIX, '**', '*')).select { |f| File.file?(f) }
                  .map { |f| [f.delete_prefix(root), File.size(f)] }
      end
      objects = []
      s3.list_objects_v2(bucket: bucket, prefix: "#{key_prefix}#{PREFIX}").each { |page| page.contents.each { |o| objects << [o.key, o.size] } }
      objects
    end
  end
end
