-- Group members whose resource has not arrived yet. An identity provider
-- may push a group before the users in it, naming a member by its own id
-- (the user's externalId, still unknown here). Such a member is kept here,
-- not in scim_member, so Group.members and User.groups never name a
-- resource that does not exist; the user write that brings a matching
-- externalId moves it to scim_member in the same transaction (see the
-- store's scim.rs). Replaced with the group's member list, deleted with
-- the group.
CREATE TABLE scim_pending_member (
    connection TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    value      TEXT NOT NULL,
    display    TEXT,
    ord        BIGINT NOT NULL,
    PRIMARY KEY (connection, group_id, value)
);
CREATE INDEX scim_pending_member_value ON scim_pending_member (connection, value);
