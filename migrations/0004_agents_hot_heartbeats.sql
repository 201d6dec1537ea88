-- Heartbeats rewrite each agent's row about once a minute (last_seen_at,
-- boot_id, uptime_s, active). With an index on last_seen_at no such update
-- could be HOT (a heap-only tuple needs every indexed column unchanged), so
-- each heartbeat also inserted an entry into every index of agents, and
-- vacuum had to clean them up. No query needs that index: the controller,
-- the rollout reads and the agent listing test last_seen_at together with
-- events, active content or a join, over most of the table.
DROP INDEX agents_last_seen;

-- Leave half of each page free, so the new version of a row fits on its
-- page and the update is HOT: no index entries, old versions pruned in
-- place. (A batch of heartbeats often covers every row of a page in one
-- transaction; at 70 % and more the rows that do not fit move, and the
-- table bloats.) It applies to pages written from now on; VACUUM FULL
-- agents, in a maintenance window, applies it to the existing rows at once.
ALTER TABLE agents SET (fillfactor = 50);
