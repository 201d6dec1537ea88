-- Admin-set bounds on per-rollout gate policies (server/GATE.md, "Admin
-- bounds and emergency policy"): global bounds per policy key, bounds per
-- ring name, and the floor that emergency rollouts may not go below.
-- Every change is a new version and none is ever altered; the newest is in
-- force. A rollout records the version its policy was checked against, so a
-- later change of bounds never alters a running rollout's policy.
CREATE TABLE policy_bounds (
	version     bigserial PRIMARY KEY,
	document    jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
	reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1024),
	actor       text NOT NULL,
	created_by  bigint REFERENCES api_tokens (id),
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- NULL: no bounds had been set when the rollout was created.
ALTER TABLE rollouts
	ADD COLUMN policy_bounds_version bigint REFERENCES policy_bounds (version);
