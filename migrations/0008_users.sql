-- Operators are people (issue 18): users with a name, an optional e-mail
-- address (what a single-sign-on proxy may assert) and roles. Every API
-- token belongs to exactly one user; approvals and the audit log name the
-- user, so that the two-person rule counts people, not tokens.
CREATE TABLE users (
	id              bigserial PRIMARY KEY,
	name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
	email           text UNIQUE CHECK (email IS NULL OR
	                                   (length(email) BETWEEN 3 AND 254 AND email = lower(email))),
	roles           text[] NOT NULL DEFAULT '{}'
	                CHECK (roles <@ ARRAY['agent', 'release', 'soc', 'admin']),
	created_at      timestamptz NOT NULL DEFAULT now(),
	disabled_at     timestamptz,
	disabled_reason text
);

-- One user per name the existing tokens carry (tokens that shared a name
-- were one owner's), holding the roles of its tokens that are not revoked,
-- in the order agent, release, soc, admin: existing tokens keep working, as
-- tokens of that user.
INSERT INTO users (name, roles, created_at)
SELECT t.name,
       ARRAY(SELECT k.r FROM unnest(ARRAY['agent', 'release', 'soc', 'admin'])
                             WITH ORDINALITY AS k (r, i)
             WHERE EXISTS (SELECT 1 FROM api_tokens x WHERE x.name = t.name AND x.role = k.r
                           AND x.revoked_at IS NULL)
             ORDER BY k.i),
       min(t.created_at)
FROM api_tokens t GROUP BY t.name ORDER BY min(t.id);

ALTER TABLE api_tokens ADD COLUMN user_id bigint REFERENCES users (id);
UPDATE api_tokens t SET user_id = u.id FROM users u WHERE u.name = t.name;
ALTER TABLE api_tokens ALTER COLUMN user_id SET NOT NULL;
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- The two-person rule counts distinct approver_user. approver (the token)
-- is NULL for an approval given through the single-sign-on proxy.
ALTER TABLE approvals ADD COLUMN approver_user bigint REFERENCES users (id);
UPDATE approvals a SET approver_user = t.user_id FROM api_tokens t WHERE t.id = a.approver;
ALTER TABLE approvals ALTER COLUMN approver_user SET NOT NULL;
ALTER TABLE approvals ALTER COLUMN approver DROP NOT NULL;

-- Who did it: the user, besides the token (NULL through the proxy).
ALTER TABLE audit_log ADD COLUMN user_id bigint REFERENCES users (id);
UPDATE audit_log a SET user_id = t.user_id FROM api_tokens t WHERE t.id = a.token_id;
