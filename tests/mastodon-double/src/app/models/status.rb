# frozen_string_literal: true

# Statuses as this version of the Mastodon TEST DOUBLE stores them (v4.5.1 adds `language`).
module Double
  module Status
    COLUMNS = 'id, text, created_by_host, created_at'

    module_function

    def create(params)
      Double.db do |c|
        c.exec("INSERT INTO statuses (text, created_by_host) VALUES ($1, $2) RETURNING #{COLUMNS}",
               params['status'], Double.hostname).first
      end
    end

    def as_json(row)
      { id: row['id'], content: row['text'], created_at: row['created_at'], created_by_host: row['created_by_host'],
        uri: "https://#{ENV['LOCAL_DOMAIN']}/users/double/statuses/#{row['id']}" }
    end
  end
end
