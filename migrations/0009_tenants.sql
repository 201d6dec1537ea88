-- Customers decide when content lands on their hosts (issue 18): tenants
-- (customer organisations) own host groups, host groups own agents, and each
-- tenant sets per group and channel whether content arrives early, at
-- general availability, delayed, paused or pinned. server/README.md,
-- "Tenants and customer content policies", and GATE.md, "Customer content
-- policies", describe the rules.

CREATE TABLE tenants (
	id           serial PRIMARY KEY,
	name         text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
	-- what a group of this tenant does on a channel no policy names
	default_mode text NOT NULL DEFAULT 'ga' CHECK (default_mode IN ('early', 'ga')),
	created_at   timestamptz NOT NULL DEFAULT now()
);
-- Existing single-tenant setups: every agent, enrollment token and user so
-- far is the default tenant's, and its hosts may be chosen for early rings,
-- as every host could before tenants existed.
INSERT INTO tenants (id, name, default_mode) VALUES (1, 'default', 'early');
SELECT setval('tenants_id_seq', 1);

CREATE TABLE host_groups (
	id          serial PRIMARY KEY,
	tenant_id   integer NOT NULL REFERENCES tenants (id),
	name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
	created_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (tenant_id, name)
);
INSERT INTO host_groups (id, tenant_id, name) VALUES (1, 1, 'default');
SELECT setval('host_groups_id_seq', 1);

-- An agent's group (and through it its tenant) comes from its enrollment
-- token. Heartbeats never change it, so the index does not cost them their
-- heap-only updates (migration 0004).
ALTER TABLE agents ADD COLUMN group_id integer NOT NULL DEFAULT 1 REFERENCES host_groups (id);
CREATE INDEX agents_group ON agents (group_id);
ALTER TABLE enrollment_tokens
	ADD COLUMN group_id integer NOT NULL DEFAULT 1 REFERENCES host_groups (id);

-- A user (and its tokens) acts for one tenant, or for the vendor (NULL).
ALTER TABLE users ADD COLUMN tenant_id integer REFERENCES tenants (id);

-- Customer content policies. The most specific row wins for a group and a
-- channel: (group, channel), (group, every channel), (tenant, channel),
-- (tenant, every channel), else the tenant's default_mode.
CREATE TABLE content_policies (
	id            serial PRIMARY KEY,
	tenant_id     integer NOT NULL REFERENCES tenants (id),
	group_id      integer REFERENCES host_groups (id),
	channel_id    integer REFERENCES channels (id),
	mode          text NOT NULL CHECK (mode IN ('early', 'ga', 'delayed', 'paused', 'n-1',
	                                            'version')),
	delay_s       integer CHECK ((mode = 'delayed') = (delay_s IS NOT NULL)
	                             AND (delay_s IS NULL OR delay_s BETWEEN 1 AND 7776000)),
	version       bigint CHECK ((mode = 'version') = (version IS NOT NULL)),
	-- paused: what the group stays on, per channel ({"291": sha256}), taken
	-- when the policy was set (or set again: the customer's explicit action)
	paused_at     jsonb CHECK ((mode = 'paused') = (paused_at IS NOT NULL)),
	reason        text NOT NULL,
	updated_by    bigint REFERENCES users (id),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	UNIQUE NULLS NOT DISTINCT (tenant_id, group_id, channel_id)
);

-- When each content became a channel's GA: what a delayed group receives
-- is the newest GA content that has been GA for at least its delay.
CREATE TABLE ga_history (
	channel_id  integer NOT NULL REFERENCES channels (id),
	sha256      text NOT NULL REFERENCES content (sha256),
	since       timestamptz NOT NULL,
	PRIMARY KEY (channel_id, since)
);
-- What is GA today has been GA for as long as a delay can be.
INSERT INTO ga_history (channel_id, sha256, since)
SELECT id, ga_sha256, '-infinity' FROM channels WHERE ga_sha256 IS NOT NULL;

CREATE FUNCTION ga_history_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.ga_sha256 IS NOT NULL AND NEW.ga_sha256 IS DISTINCT FROM
	   (CASE WHEN TG_OP = 'UPDATE' THEN OLD.ga_sha256 END) THEN
		INSERT INTO ga_history (channel_id, sha256, since)
		VALUES (NEW.id, NEW.ga_sha256, clock_timestamp())
		ON CONFLICT (channel_id, since) DO UPDATE SET sha256 = EXCLUDED.sha256;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER channels_ga_history AFTER INSERT OR UPDATE OF ga_sha256 ON channels
	FOR EACH ROW EXECUTE FUNCTION ga_history_record();

-- The mode of a group on a channel (the gate's control and the API use it;
-- the serving snapshot resolves the same rule in memory).
CREATE FUNCTION content_mode(grp integer, chan integer) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT coalesce(
		(SELECT p.mode FROM content_policies p
		 WHERE p.tenant_id = g.tenant_id AND (p.group_id = g.id OR p.group_id IS NULL)
		   AND (p.channel_id = chan OR p.channel_id IS NULL)
		 ORDER BY p.group_id IS NULL, p.channel_id IS NULL LIMIT 1),
		t.default_mode)
	FROM host_groups g JOIN tenants t ON t.id = g.tenant_id WHERE g.id = grp
$$;
