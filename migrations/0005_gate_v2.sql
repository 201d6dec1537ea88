-- Gate v2 (server/GATE.md): platform facts of every agent (segments), the
-- per-ring holdout of every rollout (its control), and the watch after the
-- last promotion ('watching'). Rollouts made before this keep working: their
-- holdout is NULL (no holdout) and their stored policy lacks the new keys,
-- which then take their defaults.

-- Platform facts, reported at enrolment and in heartbeats. NULL = unknown.
ALTER TABLE agents
	ADD COLUMN os text CHECK (os ~ '^[A-Za-z0-9._-]{1,32}$'),
	ADD COLUMN os_build text CHECK (os_build ~ '^[A-Za-z0-9._-]{1,32}$'),
	ADD COLUMN arch text CHECK (arch ~ '^[A-Za-z0-9._-]{1,16}$'),
	ADD COLUMN platform_extra jsonb NOT NULL DEFAULT '{}'
		CHECK (jsonb_typeof(platform_extra) = 'object');

-- 'watching': promoted out of the last ring, the holdout still on the
-- previous content, the gate still judging; completed after watch_s.
ALTER TABLE rollouts DROP CONSTRAINT rollouts_state_check;
ALTER TABLE rollouts ADD CONSTRAINT rollouts_state_check CHECK (state IN
	('staged', 'rolling', 'paused', 'watching', 'completed', 'halted', 'reverted', 'superseded'));
DROP INDEX rollouts_one_active_per_channel;
CREATE UNIQUE INDEX rollouts_one_active_per_channel ON rollouts (channel_id)
	WHERE state IN ('staged', 'rolling', 'paused', 'watching');

-- The share of each ring of the plan kept on the previous content, fixed at
-- creation from the ring sizes then (an array aligned with ring_plan), and
-- when the watch began.
ALTER TABLE rollouts
	ADD COLUMN holdout jsonb CHECK (holdout IS NULL OR jsonb_typeof(holdout) = 'array'),
	ADD COLUMN watch_started_at timestamptz;

-- The controller reads crash and boot-loop reports per agent and time.
CREATE INDEX events_failures ON events (agent_id, received_at) WHERE kind IN ('crash', 'boot_loop');
