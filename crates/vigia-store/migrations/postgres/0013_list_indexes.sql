-- The incident list of a limited scope reads each of its alternatives in id order and stops at
-- the page size (`incidents::list_sql`): public incidents, a department's, a reporter's
-- (`incidents_reporter_idx` already leads with the reporter and ends with the id).
CREATE INDEX incidents_visibility_list_idx ON incidents (visibility, id);
CREATE INDEX incidents_department_list_idx ON incidents (department_id, id);
