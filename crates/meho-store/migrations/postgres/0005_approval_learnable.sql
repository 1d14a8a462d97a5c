-- What an approve-and-learn waiver of the approval would cover (JSON: command, sudo, sudo_user);
-- NULL when the held call runs no command.
ALTER TABLE approvals ADD COLUMN learnable TEXT;
