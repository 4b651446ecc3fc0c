ALTER SEQUENCE "users_id_seq" RENAME TO "User_id_seq";
