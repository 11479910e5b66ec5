-- Access tokens, looked up by the streaming server for every stream (as Mastodon's, which
-- Doorkeeper creates; the double issues them at POST /api/v1/double/tokens).
CREATE TABLE oauth_access_tokens (
  id bigserial PRIMARY KEY,
  token text NOT NULL UNIQUE,
  resource_owner_id bigint,
  scopes text NOT NULL DEFAULT 'read',
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
