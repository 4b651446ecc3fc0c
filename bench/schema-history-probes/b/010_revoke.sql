REVOKE SELECT ON "A" FROM app_reader_probe;
