-- What the held call would change, as its connector computed it for approvers (a unified diff of
-- the live object, say), redacted and clipped like the summary; NULL when the connector computed
-- none. Informational: the call hash binds the call, not this text.
ALTER TABLE approvals ADD COLUMN preview TEXT;
