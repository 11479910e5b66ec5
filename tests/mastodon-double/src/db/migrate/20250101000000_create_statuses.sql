-- Statuses posted through POST /api/v1/statuses, with the web host that stored them.
CREATE TABLE statuses (
  id bigserial PRIMARY KEY,
  text text NOT NULL,
  created_by_host text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
