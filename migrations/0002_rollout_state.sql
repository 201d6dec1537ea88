-- What agents are assigned is derived from this state: per channel the GA
-- content (and the one before it, for N-1 pins), the active rollouts, the
-- rings and the pins. Every change to it takes a new publication number
-- (assignment sequence) in the same transaction and NOTIFYs the servers.

ALTER TABLE channels
	ADD COLUMN ga_sha256 text REFERENCES content (sha256),
	ADD COLUMN prev_ga_sha256 text REFERENCES content (sha256);

-- Customer control: agents with tag (key=value) are pinned on a channel to
-- lag the newest GA content by one version, or to a named version.
CREATE TABLE pins (
	id          serial PRIMARY KEY,
	tag         text NOT NULL CHECK (tag ~ '^[A-Za-z0-9_.-]{1,64}=[A-Za-z0-9_.:-]{1,128}$'),
	channel_id  integer NOT NULL REFERENCES channels (id),
	mode        text NOT NULL CHECK (mode IN ('n-1', 'version')),
	version     bigint CHECK ((mode = 'version') = (version IS NOT NULL)),
	created_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (tag, channel_id)
);

-- The current publication: the sequence number every assignment document
-- of this state carries. One row.
CREATE TABLE publication (
	id          boolean PRIMARY KEY DEFAULT true CHECK (id),
	seq         bigint NOT NULL,
	reason      text NOT NULL,
	published_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO publication (seq, reason) VALUES (nextval('assignment_seq'), 'initial');

-- Secrets shared by all server replicas (the agent-token MAC key).
CREATE TABLE server_secrets (
	name        text PRIMARY KEY,
	value       bytea NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- Rollout bookkeeping for the gate.
ALTER TABLE rollouts
	ADD COLUMN started_at timestamptz,
	ADD COLUMN finished_at timestamptz;
ALTER TABLE gate_evaluations ADD COLUMN ring_name text;

ALTER TABLE agents ADD COLUMN hostname text;
CREATE INDEX agents_last_seen ON agents (last_seen_at);
CREATE INDEX events_agent_kind ON events (agent_id, kind);

-- The default rings: explicit lists and tags first (none by default), then
-- hash buckets of the agent id; the last ring takes everyone left.
INSERT INTO rings (name, position, selector) VALUES
	('canary', 0, '{"percent": 1}'),
	('early', 1, '{"percent": 10}'),
	('broad', 2, '{"percent": 39}'),
	('ga', 3, '{"rest": true}');

-- Operator-facing events (rollout state changes, gate decisions, uploads,
-- manual actions), written in the transaction of the change: the source of
-- the event stream and of webhook deliveries (retried with backoff).
CREATE TABLE notifications (
	id               bigserial PRIMARY KEY,
	type             text NOT NULL,
	rollout_id       bigint REFERENCES rollouts (id),
	data             jsonb NOT NULL DEFAULT '{}',
	created_at       timestamptz NOT NULL DEFAULT now(),
	webhook          boolean NOT NULL DEFAULT false,
	webhook_attempts integer NOT NULL DEFAULT 0,
	webhook_next_at  timestamptz,
	delivered_at     timestamptz,
	last_error       text
);
CREATE INDEX notifications_webhook_due ON notifications (webhook_next_at)
	WHERE webhook AND delivered_at IS NULL;
