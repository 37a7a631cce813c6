-- Named expiring leases for work that is not a subscription (see the PostgreSQL migration of the
-- same name): the process holding the `department` lease runs the department's jobs.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL -- unix milliseconds
);
