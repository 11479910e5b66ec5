-- Pre-deployment migration of v4.5.1: v4.5.1's code writes this column, v4.5.0's ignores it.
ALTER TABLE statuses ADD COLUMN language text;
