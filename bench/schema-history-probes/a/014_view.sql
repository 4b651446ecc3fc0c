CREATE VIEW "UserPosts" AS SELECT u.id, u.email, count(p.id) AS n FROM "User" u LEFT JOIN "Post" p ON p."userId" = u.id GROUP BY u.id;
