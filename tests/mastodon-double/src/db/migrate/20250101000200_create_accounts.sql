-- Accounts (tootctl accounts), preview cards (tootctl preview_cards) and site settings.
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  username text NOT NULL UNIQUE,
  email text NOT NULL UNIQUE,
  role text,
  confirmed boolean NOT NULL DEFAULT false,
  approved boolean NOT NULL DEFAULT true,
  disabled boolean NOT NULL DEFAULT false,
  password_digest text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE preview_cards (
  id bigserial PRIMARY KEY,
  url text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE settings (
  var text PRIMARY KEY,
  value text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
