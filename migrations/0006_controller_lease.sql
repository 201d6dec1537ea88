-- The controller lease (server/lease.c, server/README.md "Controller lease").
-- One row. A replica leads while it is the holder and expires_at, on the
-- database's clock, lies ahead; it renews the lease in every controller
-- transaction. epoch is the fencing token: it grows by one at each
-- acquisition, and every controller write transaction first locks this row
-- and checks holder, epoch and expiry, so that a leader that hung and lost
-- the lease can no longer write when it wakes up.
CREATE TABLE controller_lease (
	id            boolean PRIMARY KEY DEFAULT true CHECK (id),
	holder        text,                   -- host:pid of the replica
	epoch         bigint NOT NULL DEFAULT 0,
	acquired_at   timestamptz,
	expires_at    timestamptz NOT NULL DEFAULT '-infinity',
	lease_ms      integer NOT NULL DEFAULT 0,
	interval_ms   integer NOT NULL DEFAULT 0,  -- the holder's controller_interval_ms
	last_cycle_at timestamptz,                 -- end of the last completed controller cycle
	lost_at       timestamptz                  -- controller.lost emitted; cleared by the next cycle
);
INSERT INTO controller_lease DEFAULT VALUES;

-- Who held each epoch, and since when.
CREATE TABLE controller_epochs (
	epoch       bigint PRIMARY KEY,
	holder      text NOT NULL,
	acquired_at timestamptz NOT NULL
);

-- Which controller epoch wrote a row: the controller's database session sets
-- firebreak.controller_epoch when it acquires the lease; every other session
-- leaves it unset (NULL). Lets anyone check that a stale leader wrote nothing.
ALTER TABLE gate_evaluations ADD COLUMN controller_epoch bigint
	DEFAULT nullif(current_setting('firebreak.controller_epoch', true), '')::bigint;
ALTER TABLE audit_log ADD COLUMN controller_epoch bigint
	DEFAULT nullif(current_setting('firebreak.controller_epoch', true), '')::bigint;
ALTER TABLE notifications ADD COLUMN controller_epoch bigint
	DEFAULT nullif(current_setting('firebreak.controller_epoch', true), '')::bigint;
