-- Human tasks mirrored as tickets in an ITSM tool ([tickets]): which
-- ticket each task has, and whether roster closed it.
CREATE TABLE ticket_link (
    task_id    TEXT NOT NULL PRIMARY KEY,
    system     TEXT NOT NULL,
    ticket_id  TEXT NOT NULL,
    number     TEXT NOT NULL,
    -- open: roster has not closed it; closed: roster resolved or
    -- cancelled it (the task was verified or cancelled).
    state      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX ticket_link_state ON ticket_link (state);
