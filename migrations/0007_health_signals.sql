-- Health signals (server/GATE.md, "Health signals"): a host's per-signal
-- verdict is stored as an event of kind 'degraded' (details: signal, value,
-- baseline), one per signal, channel and content (event id
-- deg:<signal>:<channel>:<content prefix>), counted by the gate like crashes.
ALTER TABLE events DROP CONSTRAINT events_kind_check;
ALTER TABLE events ADD CONSTRAINT events_kind_check
	CHECK (kind IN ('applied', 'crash', 'boot_loop', 'rejected', 'degraded'));
CREATE INDEX events_degraded ON events (channel_id, received_at) WHERE kind = 'degraded';

-- Per rollout, ring, signal and minute: treated and control hosts, the
-- degraded among them and their host-time, as the gate saw them at its last
-- look in that minute (the plots of the dashboard and GET
-- /v1/rollouts/{id}/signals). Replaces telemetry_rollups, which was never
-- written.
DROP TABLE telemetry_rollups;
CREATE TABLE signal_rollups (
	rollout_id         bigint NOT NULL REFERENCES rollouts (id),
	ring_index         integer NOT NULL,
	signal             text NOT NULL,
	bucket             timestamptz NOT NULL,
	treated            integer NOT NULL,
	degraded           integer NOT NULL,
	exposure_s         double precision NOT NULL,
	control            integer NOT NULL,
	control_degraded   integer NOT NULL,
	control_exposure_s double precision NOT NULL,
	statistic          double precision NOT NULL,
	threshold          double precision NOT NULL,
	PRIMARY KEY (rollout_id, ring_index, signal, bucket)
);
