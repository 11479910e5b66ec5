# frozen_string_literal: true

# assets:precompile of the Mastodon TEST DOUBLE, writing what Mastodon 4.5's build writes:
# - Vite (vite.config.mts: outDir public/packs, assetsDir "assets", build.manifest, sourcemaps):
#   public/packs/assets/NAME-HASH.js|css (+ .map), and public/packs/.vite/manifest.json keyed by
#   the source path under app/javascript ({file, name, src, isEntry, integrity}: vite_ruby reads it,
#   vite-plugin-manifest-sri adds integrity);
# - Propshaft (config.assets, app/assets): public/assets/NAME-DIGEST.css, public/assets/.manifest.json,
#   and the static error page public/assets/500.html (lib/tasks/assets.rake).
# Like upstream's build, the output is NOT reproducible: each compile embeds a random build id,
# so two compiles (two hosts) give different file names. Compile once and copy to get equal trees.
require 'base64'
require 'digest'
require 'fileutils'
require 'json'
require 'securerandom'

module Double
  module Assets
    module_function

    VITE_ENTRIES = %w[app/javascript/entrypoints/application.js app/javascript/styles/application.css].freeze
    PROPSHAFT = %w[app/assets/stylesheets/mailer.css].freeze
    OUTPUTS = %w[public/packs public/assets].freeze

    # Nothing is removed first (vite.config.mts: emptyOutDir is false in production; Propshaft
    # keeps old digests): files of the previous build stay for clients that still load them.
    def precompile
      build_id = SecureRandom.hex(8)
      manifest = VITE_ENTRIES.to_h do |src|
        body = "/* Mastodon test double #{Double.version}, build #{build_id} */\n#{File.read(File.join(ROOT, src))}"
        ext = File.extname(src)
        # Rollup's [hash]: 8 characters of a URL-safe base64 digest of the content.
        file = "assets/#{File.basename(src, ext)}-#{Base64.urlsafe_encode64(Digest::SHA256.digest(body))[0, 8]}#{ext}"
        write(File.join('public/packs', file), "#{body}\n/*# sourceMappingURL=#{File.basename(file)}.map */\n")
        write(File.join('public/packs', "#{file}.map"), JSON.generate(version: 3, sources: ["../../../#{src}"], mappings: ''))
        key = src.delete_prefix('app/javascript/')
        [key, { 'file' => file, 'name' => File.basename(src, ext), 'src' => key, 'isEntry' => true,
                'integrity' => "sha384-#{Base64.strict_encode64(Digest::SHA384.digest(File.read(File.join(ROOT, 'public/packs', file))))}" }]
      end
      write('public/packs/.vite/manifest.json', JSON.pretty_generate(manifest))
      puts "vite: #{manifest.size} entries built into public/packs (manifest public/packs/.vite/manifest.json)"

      digested = PROPSHAFT.to_h do |src|
        body = "/* build #{build_id} */\n#{File.read(File.join(ROOT, src))}"
        ext = File.extname(src)
        file = "#{File.basename(src, ext)}-#{Digest::SHA1.hexdigest(body)[0, 8]}#{ext}"
        write(File.join('public/assets', file), body)
        [File.basename(src), { 'digested_path' => file, 'integrity' => "sha384-#{Base64.strict_encode64(Digest::SHA384.digest(body))}" }]
      end
      write('public/assets/.manifest.json', JSON.generate(digested))
      write('public/assets/500.html', "<!DOCTYPE html>\n<html><body><p>We're sorry, but something went wrong on our end.</p></body></html>\n")
      puts "propshaft: #{digested.size} asset(s) and 500.html written to public/assets"
    end

    def clobber = OUTPUTS.each { |out| FileUtils.rm_rf(File.join(ROOT, out)) }

    def write(path, body)
      path = File.join(ROOT, path)
      FileUtils.mkdir_p(File.dirname(path))
      File.write(path, body)
    end
  end
end
