-- Each API key has a class, and each class its own rate limit in the API (settings
-- RATE_LIMIT_INTERACTIVE_REQUESTS / RATE_LIMIT_INTEGRATION_REQUESTS):
--   interactive:  a school's or district's app, used by its staff during the school day;
--   integration:  a machine client (the student information system's nightly sync), which
--                 sends few, large batches.
-- Existing keys keep serving people: they become interactive.
ALTER TABLE api_clients
    ADD COLUMN key_class text NOT NULL DEFAULT 'interactive'
        CONSTRAINT api_clients_key_class_check CHECK (key_class IN ('interactive', 'integration'));
