-- Post-deployment migration of v4.5.1: once no v4.5.0 process is left, the column becomes
-- mandatory (v4.5.0's inserts, which do not set it, would fail from here on).
UPDATE statuses SET language = 'und' WHERE language IS NULL;
ALTER TABLE statuses ALTER COLUMN language SET NOT NULL;
