-- firebreak core schema: tokens, channels, content, rings, agents, rollouts,
-- gate policies and evaluations, telemetry rollups, events, audit log.
-- Migrations only move forward: later changes come as new files.

CREATE TABLE api_tokens (
	id          bigserial PRIMARY KEY,
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
	role        text NOT NULL CHECK (role IN ('agent', 'release', 'soc', 'admin')),
	token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
	created_at  timestamptz NOT NULL DEFAULT now(),
	revoked_at  timestamptz
);

CREATE TABLE channels (
	id          integer PRIMARY KEY CHECK (id > 0),
	name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
	description text NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- Immutable channel files, addressed by sha256.
CREATE TABLE content (
	sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	channel_id  integer NOT NULL REFERENCES channels (id),
	version     bigint NOT NULL CHECK (version > 0),
	size        bigint NOT NULL CHECK (size >= 0),
	blob        bytea NOT NULL,
	manifest    text NOT NULL,            -- signed manifest envelope, bytes as uploaded
	templates   jsonb NOT NULL DEFAULT '[]',
	preflight   jsonb,
	bad         boolean NOT NULL DEFAULT false,
	bad_reason  text,
	bad_at      timestamptz,
	uploaded_by bigint REFERENCES api_tokens (id),
	created_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (channel_id, version)
);

-- Ordered rings; selector says how agents are chosen (explicit list, tag,
-- or hash-bucket percentage of the rest).
CREATE TABLE rings (
	id          serial PRIMARY KEY,
	name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
	position    integer NOT NULL UNIQUE CHECK (position >= 0),
	selector    jsonb NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gate_policies (
	id          serial PRIMARY KEY,
	name        text NOT NULL UNIQUE,
	policy      jsonb NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE enrollment_tokens (
	id          bigserial PRIMARY KEY,
	name        text NOT NULL,
	token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
	tags        jsonb NOT NULL DEFAULT '{}',
	expires_at  timestamptz,
	max_uses    integer CHECK (max_uses IS NULL OR max_uses > 0),
	uses        integer NOT NULL DEFAULT 0,
	created_at  timestamptz NOT NULL DEFAULT now(),
	revoked_at  timestamptz
);

CREATE TABLE agents (
	id            bigserial PRIMARY KEY,
	public_key    bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
	tags          jsonb NOT NULL DEFAULT '{}',
	enrolled_with bigint REFERENCES enrollment_tokens (id),
	enrolled_at   timestamptz NOT NULL DEFAULT now(),
	last_seen_at  timestamptz,
	boot_id       text,
	agent_version text,
	capabilities  jsonb,
	active        jsonb NOT NULL DEFAULT '{}',   -- channel id -> content sha256
	uptime_s      bigint,
	revoked_at    timestamptz
);

CREATE TABLE rollouts (
	id              bigserial PRIMARY KEY,
	channel_id      integer NOT NULL REFERENCES channels (id),
	content_sha256  text NOT NULL REFERENCES content (sha256),
	previous_sha256 text REFERENCES content (sha256),
	state           text NOT NULL CHECK (state IN
		('staged', 'rolling', 'paused', 'completed', 'halted', 'reverted', 'superseded')),
	ring_index      integer NOT NULL DEFAULT 0 CHECK (ring_index >= 0),
	ring_plan       jsonb NOT NULL,
	policy          jsonb NOT NULL,
	emergency       boolean NOT NULL DEFAULT false,
	ring_started_at timestamptz,
	state_reason    text,
	created_by      bigint REFERENCES api_tokens (id),
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one active rollout per channel.
CREATE UNIQUE INDEX rollouts_one_active_per_channel ON rollouts (channel_id)
	WHERE state IN ('staged', 'rolling', 'paused');

-- Two-person rule: approvals collected for actions that need them.
CREATE TABLE approvals (
	id          bigserial PRIMARY KEY,
	rollout_id  bigint REFERENCES rollouts (id),
	content_sha256 text REFERENCES content (sha256),
	action      text NOT NULL,
	approver    bigint NOT NULL REFERENCES api_tokens (id),
	reason      text NOT NULL,
	consumed    boolean NOT NULL DEFAULT false,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- Signed assignment documents, one per audience (ring or pin group) and
-- sequence number; the newest per audience is served.
CREATE SEQUENCE assignment_seq;
CREATE TABLE assignments (
	seq         bigint PRIMARY KEY,
	audience    text NOT NULL,
	document    text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assignments_audience_seq ON assignments (audience, seq DESC);

CREATE TABLE gate_evaluations (
	id          bigserial PRIMARY KEY,
	rollout_id  bigint NOT NULL REFERENCES rollouts (id),
	ring_index  integer NOT NULL,
	decision    text NOT NULL CHECK (decision IN ('PROMOTE', 'WAIT', 'HALT')),
	reason      text NOT NULL,
	inputs      jsonb NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gate_evaluations_rollout ON gate_evaluations (rollout_id, id);

-- Per rollout, ring and time bucket: the counts behind the plots.
CREATE TABLE telemetry_rollups (
	rollout_id  bigint NOT NULL REFERENCES rollouts (id),
	ring_index  integer NOT NULL,
	bucket      timestamptz NOT NULL,
	treated     integer NOT NULL DEFAULT 0,
	healthy     integer NOT NULL DEFAULT 0,
	crashed     integer NOT NULL DEFAULT 0,
	boot_looped integer NOT NULL DEFAULT 0,
	silent      integer NOT NULL DEFAULT 0,
	incompatible integer NOT NULL DEFAULT 0,
	PRIMARY KEY (rollout_id, ring_index, bucket)
);

-- Agent events (applied, crash, boot_loop): durable before acknowledged,
-- idempotent per (agent, event id).
CREATE TABLE events (
	agent_id       bigint NOT NULL REFERENCES agents (id),
	event_id       text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
	kind           text NOT NULL CHECK (kind IN ('applied', 'crash', 'boot_loop', 'rejected')),
	channel_id     integer REFERENCES channels (id),
	content_sha256 text,
	boot_id        text,
	details        jsonb NOT NULL DEFAULT '{}',
	occurred_at    timestamptz NOT NULL,
	received_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (agent_id, event_id)
);
CREATE INDEX events_content ON events (content_sha256, kind);

-- Every mutating request: who, what, when, before -> after.
CREATE TABLE audit_log (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT now(),
	actor       text NOT NULL,
	token_id    bigint REFERENCES api_tokens (id),
	action      text NOT NULL,
	object      text NOT NULL,
	before      jsonb,
	after       jsonb,
	reason      text,
	request_id  text
);
CREATE INDEX audit_log_at ON audit_log (at);
