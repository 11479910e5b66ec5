# frozen_string_literal: true

# Statuses as this version of the Mastodon TEST DOUBLE stores them (v4.5.1 adds `language`:
# this code needs the pre-deployment migration 20250201000000 before it starts).
module Double
  module Status
    COLUMNS = 'id, text, language, created_by_host, created_at'

    module_function

    def create(params)
      Double.db do |c|
        c.exec("INSERT INTO statuses (text, language, created_by_host) VALUES ($1, $2, $3) RETURNING #{COLUMNS}",
               params['status'], params['language'] || 'und', Double.hostname).first
      end
    end

    def as_json(row)
      { id: row['id'], content: row['text'], language: row['language'], created_at: row['created_at'],
        created_by_host: row['created_by_host'], uri: "https://#{ENV['LOCAL_DOMAIN']}/users/double/statuses/#{row['id']}" }
    end
  end
end
