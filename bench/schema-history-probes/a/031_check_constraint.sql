ALTER TABLE "Post" ADD CONSTRAINT name_len CHECK (char_length("name") < 90);
