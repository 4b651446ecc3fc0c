CREATE ROLE app_reader_probe NOLOGIN; GRANT SELECT ON "A" TO app_reader_probe;
