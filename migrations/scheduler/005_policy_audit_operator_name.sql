-- Which operator made a change (identity's named operators, docs/members.md): the name the operator
-- principal carried when the change was made. NULL for members' changes and for operator changes
-- recorded before operators had names (or by an identity that did not name them).
ALTER TABLE policy_audit ADD COLUMN operator_name TEXT
    CHECK (operator_name IS NULL OR (actor = 'operator' AND char_length(operator_name) BETWEEN 1 AND 64));
