-- Which transaction made each job's last scheduling change (the same writes that take a change
-- number, 003). The leader re-reads only the changes of transactions that may not have been visible
-- at its previous read (those at or above that read's snapshot xmin), instead of every change of the
-- last few seconds, and skips the rows whose last change was its own cycle's (it applied them already).
-- Rows changed before this migration keep NULL: they are older than any read that follows it.
ALTER TABLE jobs ADD COLUMN change_xid xid8;
ALTER TABLE jobs ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id();

CREATE OR REPLACE FUNCTION jobs_bump_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.status, NEW.held, NEW.priority, NEW.attempt, NEW.node_ids)
       IS DISTINCT FROM (OLD.status, OLD.held, OLD.priority, OLD.attempt, OLD.node_ids) THEN
        NEW.change_seq := nextval('jobs_change_seq');
        NEW.change_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;
