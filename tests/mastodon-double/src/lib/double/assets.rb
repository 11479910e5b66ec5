# frozen_string_literal: true

# assets:precompile of the Mastodon TEST DOUBLE: copies the sources under app/ to fingerprinted
# files in public/packs (Vite's place in Mastodon) and public/assets (Sprockets'), each with a
# manifest.json. Output depends only on the checked-out tree, so every web host gets the same.
require 'digest'
require 'fileutils'
require 'json'

module Double
  module Assets
    module_function

    BUILDS = {
      'public/packs' => %w[app/javascript/entrypoints/application.js app/javascript/styles/application.css],
      'public/assets' => %w[app/assets/stylesheets/mailer.css],
    }.freeze

    def precompile
      clobber
      BUILDS.each do |out, sources|
        manifest = sources.to_h do |src|
          body = "/* Mastodon test double #{Double.version} */\n#{File.read(File.join(ROOT, src))}"
          ext = File.extname(src)
          file = "assets/#{File.basename(src, ext)}-#{Digest::SHA256.hexdigest(body)[0, 10]}#{ext}"
          write(File.join(out, file), body)
          [src.sub(%r{\Aapp/(javascript|assets)/}, ''), { 'file' => file, 'src' => src, 'isEntry' => true }]
        end
        write(File.join(out, 'manifest.json'), JSON.pretty_generate(manifest))
        puts "Compiled #{manifest.size} asset(s) into #{out}"
      end
    end

    def clobber = BUILDS.each_key { |out| FileUtils.rm_rf(File.join(ROOT, out)) }

    def write(path, body)
      path = File.join(ROOT, path)
      FileUtils.mkdir_p(File.dirname(path))
      File.write(path, body)
    end
  end
end
