-- Named expiring leases for work that is not a subscription. `serve` runs the department (its
-- scheduled jobs and its subscriptions) only in the process holding the `department` lease, so
-- two processes on one database never both run the morning coordination or the evening report;
-- the other one stands by and takes over when the lease expires. A lease is renewed by one short
-- statement, never by holding a transaction open (that would pin the xid horizon and stall
-- every log reader).
CREATE TABLE leases (
    name        text        PRIMARY KEY,
    owner       text        NOT NULL,
    expires_at  timestamptz NOT NULL
);
