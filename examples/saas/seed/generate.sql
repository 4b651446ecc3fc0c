SELECT setseed(0.42);

-- Sample data for the example SaaS schema (prisma/schema.prisma), generated
-- entirely in SQL: no shipped data, no files read.
--
-- Run it once, in a single transaction, on a database where all migrations
-- in prisma/migrations have been applied and the tables are empty:
--
--     psql -v ON_ERROR_STOP=1 -1 -f seed/generate.sql
--
-- Output is deterministic: every random value comes from random() after the
-- setseed() above, ids are derived from md5() of a row number (not from
-- gen_random_uuid()), and all timestamps are relative to a fixed "now" (the
-- anchor below), not to the wall clock. Data spans the two years before it.
--
-- Rows (152,353 in all): agencies 50, users 5,000, accounts 6,057,
-- sessions 8,000, agency_memberships 7,078, requests 15,000, tasks 40,000,
-- analytics_connections 100, monthly_usage 1,048, audit_log 60,000,
-- system_settings 20, background_jobs 10,000. About 3% of users, agencies,
-- requests, tasks and analytics connections are soft-deleted (tasks of a
-- deleted request are deleted with it). About 9 s on a 2-core machine.
--
-- Plain SQL only (no psql meta-commands), so any client can run it. It
-- creates temporary tables and functions (pg_temp), dropped at the end.

-- Settings that affect generated values, local to this transaction.
SELECT set_config('TimeZone', 'UTC', true),
       set_config('extra_float_digits', '1', true),
       set_config('max_parallel_workers_per_gather', '0', true),
       set_config('work_mem', '64MB', true);

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- The fixed "now" of the data set.
CREATE FUNCTION pg_temp.anchor() RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT timestamptz '2024-06-30 18:00:00+00' $$;

-- Deterministic, version-4-shaped UUID for (kind, n).
CREATE FUNCTION pg_temp.uid(kind text, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT (substr(h, 1, 12) || '4' || substr(h, 14, 3)
          || substr('89ab89ab89ab89ab', strpos('0123456789abcdef', substr(h, 17, 1)), 1)
          || substr(h, 18, 15))::uuid
  FROM (SELECT md5(kind || ':' || n) AS h) s
$$;

-- Uniformly random element of an array.
CREATE FUNCTION pg_temp.pick(anyarray) RETURNS anyelement
LANGUAGE sql VOLATILE AS $$ SELECT $1[1 + floor(random() * cardinality($1))::int] $$;

-- n random hex characters.
CREATE FUNCTION pg_temp.hex(n int) RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT left(string_agg(md5(random()::text), ''), n) FROM generate_series(1, (n + 31) / 32)
$$;

-- Random public-looking client IP address (about 8% IPv6).
CREATE FUNCTION pg_temp.ip() RETURNS inet
LANGUAGE sql VOLATILE AS $$
  SELECT CASE WHEN random() < 0.08 THEN
           ('2a02:' || to_hex(4096 + floor(random() * 61439)::int) || ':'
            || to_hex(floor(random() * 65535)::int) || '::' || to_hex(1 + floor(random() * 65534)::int))::inet
         ELSE
           ((ARRAY[24, 31, 45, 50, 63, 66, 71, 73, 81, 86, 91, 98, 104, 109, 142, 151, 176, 185, 188, 203, 212])
              [1 + floor(random() * 21)::int]
            || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int
            || '.' || (1 + floor(random() * 254)::int))::inet
         END
$$;

-- Word lists.
CREATE TEMP TABLE t_words AS
SELECT
  ARRAY['James', 'Mary', 'John', 'Patricia', 'Robert', 'Jennifer', 'Michael', 'Linda', 'David',
        'Elizabeth', 'William', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas',
        'Sarah', 'Charles', 'Karen', 'Daniel', 'Lisa', 'Matthew', 'Nancy', 'Anthony', 'Sandra',
        'Mark', 'Ashley', 'Priya', 'Wei', 'Sofia', 'Lucas', 'Emma', 'Noah', 'Olivia', 'Liam',
        'Ava', 'Mateo', 'Chloe', 'Hiroshi', 'Aisha', 'Omar', 'Fatima', 'Diego', 'Camila', 'Lukas',
        'Hannah', 'Jonas', 'Elena', 'Marco', 'Giulia', 'Pierre', 'Camille', 'Raj', 'Ananya',
        'Kwame', 'Amara', 'Sven', 'Ingrid', 'Zoe', 'Ethan', 'Maya', 'Leo', 'Nora']::text[] AS first_names,
  ARRAY['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis',
        'Rodriguez', 'Martinez', 'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas',
        'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee', 'Perez', 'Thompson', 'White', 'Harris',
        'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson', 'Walker', 'Young', 'Allen', 'King',
        'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores', 'Green', 'Adams', 'Nelson',
        'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts', 'Müller',
        'Schmidt', 'Rossi', 'Dubois', 'Kowalski', 'Tanaka', 'Patel', 'Chen', 'Kim', 'Okafor',
        'Johansson', 'O''Brien', 'Novak', 'Silva']::text[] AS last_names,
  ARRAY['gmail.com', 'gmail.com', 'gmail.com', 'gmail.com', 'outlook.com', 'outlook.com',
        'yahoo.com', 'icloud.com', 'hotmail.com', 'proton.me', 'fastmail.com']::text[] AS personal_domains,
  ARRAY['Bright', 'Bold', 'North', 'Blue', 'Clever', 'Pixel', 'Little', 'Open', 'True',
        'Rocket', 'Signal', 'Tidal', 'Copper', 'Velvet', 'Wild']::text[] AS agency_adj,
  ARRAY['Pine', 'Fox', 'Harbor', 'Lantern', 'Orbit', 'Compass', 'Anchor', 'Spark', 'Maple',
        'Summit', 'Owl', 'Canvas', 'Ember', 'Arrow', 'Prism', 'Tide', 'Atlas']::text[] AS agency_noun,
  ARRAY['Digital', 'Creative', 'Media', 'Studio', 'Marketing', 'Agency', 'Labs', 'Collective']::text[] AS agency_suffix,
  ARRAY['com', 'io', 'co', 'agency']::text[] AS tlds,
  ARRAY['America/New_York', 'America/New_York', 'America/Chicago', 'America/Los_Angeles',
        'America/Toronto', 'Europe/London', 'Europe/London', 'Europe/Berlin', 'Europe/Amsterdam',
        'Europe/Madrid', 'Australia/Sydney', 'Asia/Singapore']::text[] AS timezones,
  ARRAY['Acme', 'Northwind', 'Blue Harbor', 'Summit', 'Evergreen', 'Cobalt', 'Redwood',
        'Silverline', 'Maple & Co', 'Ironclad', 'Lumen', 'Harbor Point', 'Pioneer', 'Golden Gate',
        'Riverstone', 'Oakridge', 'Crescent', 'Atlas', 'Beacon', 'Cedar']::text[] AS client_prefix,
  ARRAY['Dental', 'Bakery', 'Fitness', 'Realty', 'Law Group', 'Coffee Roasters', 'Outdoor Supply',
        'Clinic', 'Motors', 'Boutique', 'Logistics', 'Insurance', 'Brewing', 'Landscaping',
        'Studios']::text[] AS client_suffix,
  ARRAY['Redesign', 'Update', 'Fix', 'Set up', 'Audit', 'Launch', 'Migrate', 'Optimize',
        'Write copy for', 'Build', 'Review', 'Refresh']::text[] AS request_verbs,
  ARRAY['homepage hero section', 'pricing page', 'Q3 newsletter', 'GA4 conversion tracking',
        'Google Ads campaign', 'Meta retargeting audience', 'blog post series',
        'product launch landing page', 'SEO title tags', 'checkout flow', 'brand guidelines PDF',
        'social media calendar', 'email onboarding sequence', 'Looker Studio dashboard',
        'HubSpot forms', 'LinkedIn ad creatives', 'site speed', 'cookie consent banner',
        '404 page', 'case study page']::text[] AS request_objects,
  ARRAY['The client wants this live before their next campaign.',
        'See the attached brief from the kickoff call.',
        'Budget is approved; please confirm the timeline.',
        'They mentioned the current version is hurting conversions.',
        'Low urgency, but they asked twice already.',
        'Needs sign-off from their legal team before launch.',
        'Please loop in the account manager before starting.',
        'Reference examples are in the shared drive.']::text[] AS request_notes,
  ARRAY['Draft', 'Design', 'Implement', 'QA', 'Review', 'Deploy', 'Write', 'Collect assets for',
        'Estimate', 'Schedule', 'Get client sign-off on', 'Document']::text[] AS task_verbs,
  ARRAY['wireframes', 'copy', 'mobile layout', 'tracking tags', 'ad variations', 'final assets',
        'analytics report', 'staging build', 'redirects', 'meta descriptions', 'email template',
        'A/B test', 'UTM parameters', 'image compression', 'accessibility fixes']::text[] AS task_objects,
  ARRAY['Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36',
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36',
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0',
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
        'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
        'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36']::text[] AS user_agents;

-- ---------------------------------------------------------------------------
-- Agencies (tenants): 50
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE t_agencies AS
SELECT i AS agency_no,
       pg_temp.uid('agency', i) AS id,
       w.agency_adj[1 + i % 15] AS adj,
       w.agency_noun[1 + (i * 7) % 17] AS noun,
       w.agency_suffix[1 + i % 8] AS suffix,
       w.tlds[1 + i % 4] AS tld,
       pg_temp.pick(w.timezones) AS timezone,
       pg_temp.anchor() - (60 + power(random(), 0.5) * 1000) * interval '1 day' AS created_at,
       random() AS r_plan,
       random() AS r_billing,
       random() AS r_del,
       random() AS r_del_at,
       random() AS r_upd
FROM generate_series(1, 50) i CROSS JOIN t_words w;

ALTER TABLE t_agencies
  ADD COLUMN name text, ADD COLUMN slug text, ADD COLUMN domain text,
  ADD COLUMN deleted_at timestamptz;
UPDATE t_agencies SET
  name = adj || ' ' || noun || ' ' || suffix,
  slug = lower(adj || '-' || noun || '-' || suffix),
  domain = lower(adj || noun) || '.' || tld,
  deleted_at = CASE WHEN r_del < 0.04 THEN created_at + (0.3 + 0.7 * r_del_at) * (pg_temp.anchor() - created_at) END;


-- ---------------------------------------------------------------------------
-- Users: 5,000
-- ---------------------------------------------------------------------------

-- Users 1-5 are the vendor's support staff; user 5 + n owns agency n; the
-- rest join a "primary" agency, skewed so that low-numbered agencies are big.
CREATE TEMP TABLE t_users AS
SELECT u AS user_no,
       pg_temp.uid('user', u) AS id,
       CASE WHEN u <= 5 THEN NULL
            WHEN u <= 55 THEN u - 5
            ELSE 1 + floor(50 * power(random(), 1.6))::int END AS agency_no,
       pg_temp.pick(w.first_names) AS first_name,
       pg_temp.pick(w.last_names) AS last_name,
       random() AS r_pattern, random() AS r_domain, random() AS r_created, random() AS r_del,
       random() AS r_del_at, random() AS r_verified, random() AS r_avatar, random() AS r_password,
       random() AS r_login, random() AS r_accounts, random() AS r_provider, random() AS r_name
FROM generate_series(1, 5000) u CROSS JOIN t_words w;

ALTER TABLE t_users
  ADD COLUMN created_at timestamptz, ADD COLUMN deleted_at timestamptz,
  ADD COLUMN last_login_at timestamptz, ADD COLUMN domain text, ADD COLUMN local_part text,
  ADD COLUMN email text, ADD COLUMN has_password boolean, ADD COLUMN n_accounts int,
  ADD COLUMN provider_no int;

UPDATE t_users u SET
  created_at = CASE
    WHEN u.user_no <= 5 THEN pg_temp.anchor() - interval '730 days' + u.user_no * interval '9 days'
    WHEN u.user_no <= 55 THEN n.a_created_at - (5 + 30 * u.r_created) * interval '1 minute'
    ELSE n.lo + power(u.r_created, 0.75) * (coalesce(n.a_deleted_at, pg_temp.anchor()) - n.lo) END,
  domain = CASE
    WHEN u.user_no <= 5 THEN 'agencyflow.io'
    WHEN u.r_domain < 0.55 THEN n.a_domain
    ELSE w.personal_domains[1 + floor((u.r_domain - 0.55) / 0.45 * cardinality(w.personal_domains))::int] END,
  local_part = CASE
    WHEN u.r_pattern < 0.45 THEN f || '.' || l
    WHEN u.r_pattern < 0.65 THEN left(f, 1) || l
    WHEN u.r_pattern < 0.80 THEN f || l
    WHEN u.r_pattern < 0.90 THEN f || '_' || l
    ELSE f || '.' || left(l, 1) END,
  has_password = u.user_no <= 5 OR u.r_password < 0.62,
  provider_no = CASE WHEN u.r_provider < 0.60 THEN 1 WHEN u.r_provider < 0.85 THEN 2 ELSE 3 END
FROM (SELECT tu.user_no,
             translate(lower(tu.first_name), 'üöäéèøå''', 'uoaeeoa') AS f,
             translate(lower(tu.last_name), 'üöäéèøå''', 'uoaeeoa') AS l,
             a.created_at AS a_created_at, a.deleted_at AS a_deleted_at, a.domain AS a_domain,
             greatest(a.created_at, pg_temp.anchor() - interval '730 days') AS lo
      FROM t_users tu LEFT JOIN t_agencies a ON a.agency_no = tu.agency_no) n
CROSS JOIN t_words w
WHERE n.user_no = u.user_no;

UPDATE t_users u SET
  n_accounts = CASE
    WHEN u.user_no <= 5 THEN 0
    WHEN NOT u.has_password THEN 1 + (u.r_accounts < 0.30)::int
    WHEN u.r_accounts < 0.15 THEN 0
    WHEN u.r_accounts < 0.70 THEN 1
    ELSE 2 END,
  deleted_at = CASE WHEN u.user_no > 55 AND u.r_del < 0.03
    THEN u.created_at + (0.2 + 0.8 * u.r_del_at) * (pg_temp.anchor() - u.created_at) END;

UPDATE t_users u SET
  last_login_at = CASE WHEN u.r_login < 0.03 THEN NULL
    ELSE u.created_at + (1 - power(u.r_login, 3)) * (coalesce(u.deleted_at, pg_temp.anchor()) - u.created_at) END;

-- Unique e-mail addresses: a number is appended only on collisions.
UPDATE t_users u SET email = e.local_part
    || CASE WHEN e.rn > 1 THEN e.rn::text ELSE '' END || '@' || e.domain
FROM (SELECT user_no, local_part, domain,
             row_number() OVER (PARTITION BY local_part, domain ORDER BY user_no) AS rn
      FROM t_users) e
WHERE e.user_no = u.user_no;

INSERT INTO users (id, email, email_verified_at, name, avatar_url, password_hash, is_staff,
                   last_login_at, created_at, updated_at, deleted_at, deleted_by)
SELECT id, email,
       CASE WHEN r_verified < 0.92 THEN created_at + r_verified * interval '3 hours' END,
       CASE WHEN r_name < 0.97 THEN first_name || ' ' || last_name END,
       CASE WHEN r_avatar < 0.40 THEN 'https://www.gravatar.com/avatar/' || md5(email) || '?d=identicon' END,
       CASE WHEN has_password THEN
         '$argon2id$v=19$m=65536,t=3,p=4$'
         || rtrim(encode(decode(md5('salt:' || user_no || ':' || r_password), 'hex'), 'base64'), '=')
         || '$' || rtrim(encode(sha256(convert_to('pw:' || user_no || ':' || r_password, 'UTF8')), 'base64'), '=') END,
       user_no <= 5,
       last_login_at,
       created_at,
       greatest(created_at, last_login_at, deleted_at),
       deleted_at,
       CASE WHEN deleted_at IS NULL THEN NULL
            WHEN r_del_at < 0.5 THEN id              -- closed their own account
            ELSE pg_temp.uid('user', 1 + user_no % 5) -- removed by support staff
       END
FROM t_users
ORDER BY user_no;

-- Inserted after users: deleted_by refers to the agency's owner (user 5 + n).
INSERT INTO agencies (id, name, slug, plan, billing_email, timezone, created_at, updated_at, deleted_at, deleted_by)
SELECT id, name, slug,
       (CASE WHEN r_plan < 0.30 THEN 'free' WHEN r_plan < 0.62 THEN 'starter'
             WHEN r_plan < 0.90 THEN 'pro' ELSE 'enterprise' END)::agency_plan,
       CASE WHEN r_billing < 0.85 THEN 'billing@' || domain END,
       timezone, created_at,
       coalesce(deleted_at, created_at + r_upd * (pg_temp.anchor() - created_at)),
       deleted_at,
       CASE WHEN deleted_at IS NOT NULL THEN pg_temp.uid('user', 5 + agency_no) END
FROM t_agencies
ORDER BY agency_no;

-- Active (not deleted, not staff) users, numbered for random picks.
CREATE TEMP TABLE t_active AS
SELECT row_number() OVER (ORDER BY user_no)::int AS k, user_no, id, agency_no, created_at,
       last_login_at, has_password, provider_no
FROM t_users WHERE deleted_at IS NULL AND user_no > 5;

-- ---------------------------------------------------------------------------
-- OAuth accounts: ~6,000
-- ---------------------------------------------------------------------------

INSERT INTO accounts (id, user_id, type, provider, provider_account_id, access_token, refresh_token,
                      expires_at, token_type, scope, id_token, created_at, updated_at)
SELECT pg_temp.uid('account', x.user_no * 10 + x.slot),
       x.id, 'oauth',
       (ARRAY['google', 'github', 'azure-ad'])[x.p],
       CASE x.p
         WHEN 1 THEN (1 + floor(x.ra * 9))::int::text || lpad(x.user_no::text, 6, '0')
                     || lpad(floor(x.rb * 1e13)::bigint::text, 13, '0')
         WHEN 2 THEN (x.user_no * 25000 + floor(x.ra * 25000))::bigint::text
         ELSE pg_temp.uid('azure-oid', x.user_no)::text END,
       CASE x.p
         WHEN 1 THEN 'ya29.a0' || pg_temp.hex(120)
         WHEN 2 THEN 'gho_' || pg_temp.hex(36)
         ELSE 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.' || pg_temp.hex(160) END,
       CASE x.p WHEN 1 THEN '1//0' || pg_temp.hex(100) WHEN 3 THEN '0.AV' || pg_temp.hex(180) END,
       CASE WHEN x.p <> 2 THEN x.last_seen + interval '1 hour' END,
       CASE x.p WHEN 2 THEN 'bearer' ELSE 'Bearer' END,
       CASE x.p
         WHEN 1 THEN 'openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile'
         WHEN 2 THEN 'read:user,user:email'
         ELSE 'openid profile email offline_access' END,
       CASE WHEN x.p <> 2 THEN 'eyJhbGciOiJSUzI1NiIsImtpZCI6IjFlOWdkazcifQ.' || pg_temp.hex(200) || '.' || pg_temp.hex(86) END,
       x.created,
       greatest(x.created, x.last_seen)
FROM (
  SELECT u.user_no, u.id, s.slot,
         CASE WHEN s.slot = 1 THEN u.provider_no ELSE 1 + u.provider_no % 3 END AS p,
         CASE WHEN s.slot = 1 THEN u.created_at
              ELSE u.created_at + random() * (coalesce(u.deleted_at, pg_temp.anchor()) - u.created_at) END AS created,
         coalesce(u.last_login_at, u.created_at) AS last_seen,
         random() AS ra, random() AS rb
  FROM t_users u CROSS JOIN generate_series(1, 2) s(slot)
  WHERE s.slot <= u.n_accounts
  ORDER BY u.user_no, s.slot
) x;

-- ---------------------------------------------------------------------------
-- Sessions: 8,000 (30-day or 1-day lifetime; most have expired)
-- ---------------------------------------------------------------------------

INSERT INTO sessions (id, session_token, user_id, expires_at, ip_address, user_agent, last_seen_at, created_at)
SELECT pg_temp.uid('session', s.n),
       md5(s.n || ':' || s.r_token) || pg_temp.hex(32),
       u.id,
       c.created + CASE WHEN s.r_ttl < 0.2 THEN interval '1 day' ELSE interval '30 days' END,
       pg_temp.ip(),
       pg_temp.pick(w.user_agents),
       c.created + s.r_seen * (least(pg_temp.anchor(),
                                     c.created + CASE WHEN s.r_ttl < 0.2 THEN interval '1 day' ELSE interval '30 days' END)
                               - c.created),
       c.created
FROM (
  SELECT n, 1 + floor(random() * (SELECT count(*) FROM t_active))::int AS k,
         random() AS r_created, random() AS r_ttl, random() AS r_seen, random() AS r_token
  FROM generate_series(1, 8000) n
) s
JOIN t_active u ON u.k = s.k
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT greatest(u.created_at, pg_temp.anchor() - interval '120 days')
         + power(s.r_created, 0.6) * (pg_temp.anchor() - greatest(u.created_at, pg_temp.anchor() - interval '120 days')) AS created
) c
ORDER BY s.n;

-- ---------------------------------------------------------------------------
-- Agency memberships: ~7,000
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE t_mem_raw AS
SELECT user_no, agency_no, true AS is_primary, random() AS r_role, random() AS r_join, random() AS r_created
FROM t_users WHERE agency_no IS NOT NULL
UNION ALL
SELECT user_no, ((agency_no - 1 + 1 + floor(r * 49)::int) % 50) + 1, false, r_role, r_join, r_created
FROM (SELECT user_no, agency_no, random() AS r_pick, random() AS r,
             random() AS r_role, random() AS r_join, random() AS r_created
      FROM t_users WHERE user_no > 55 ORDER BY user_no) x
WHERE r_pick < 0.42;

CREATE TEMP TABLE t_memberships AS
SELECT row_number() OVER (ORDER BY m.user_no, m.agency_no)::int AS m_no,
       m.user_no, m.agency_no, m.is_primary,
       CASE WHEN m.is_primary AND m.user_no = m.agency_no + 5 THEN 'owner'
            WHEN m.r_role < 0.08 THEN 'admin'
            WHEN m.r_role < (CASE WHEN m.is_primary THEN 0.82 ELSE 0.55 END) THEN 'member'
            ELSE 'viewer' END AS role,
       CASE WHEN m.is_primary AND m.user_no = m.agency_no + 5 THEN a.created_at
            WHEN m.is_primary THEN u.created_at + (1 + 10 * m.r_created) * interval '1 minute'
            ELSE greatest(u.created_at, a.created_at)
                 + m.r_created * (least(coalesce(u.deleted_at, pg_temp.anchor()), coalesce(a.deleted_at, pg_temp.anchor()))
                                  - greatest(u.created_at, a.created_at)) END AS created_at,
       m.r_join
FROM t_mem_raw m
JOIN t_users u ON u.user_no = m.user_no
JOIN t_agencies a ON a.agency_no = m.agency_no;

INSERT INTO agency_memberships (id, agency_id, user_id, role, invited_by, joined_at, created_at, updated_at)
SELECT pg_temp.uid('membership', m.m_no),
       pg_temp.uid('agency', m.agency_no),
       pg_temp.uid('user', m.user_no),
       m.role::membership_role,
       CASE WHEN m.role <> 'owner' AND m.r_join < 0.85 THEN pg_temp.uid('user', m.agency_no + 5) END,
       CASE WHEN m.role = 'owner' THEN m.created_at
            WHEN m.r_join > 0.96 THEN NULL -- invitation not accepted yet
            ELSE least(pg_temp.anchor(), m.created_at + m.r_join * interval '2 days') END,
       m.created_at,
       least(pg_temp.anchor(), m.created_at + m.r_join * interval '2 days')
FROM t_memberships m
ORDER BY m.m_no;

-- Members per agency, for picking actors: non-viewers do the work.
CREATE TEMP TABLE t_agency_members AS
SELECT agency_no,
       array_agg(user_no ORDER BY user_no) FILTER (WHERE role <> 'viewer') AS workers
FROM t_memberships
GROUP BY agency_no;

-- ---------------------------------------------------------------------------
-- Requests: 15,000
-- ---------------------------------------------------------------------------

-- A request comes from a random membership, so busier agencies get more.
-- Memberships are sampled in proportion to how long they have existed
-- (rejection sampling over 60,000 candidates, keeping the first 15,000), so
-- request volume follows the number of members at each point in time.
-- Viewers are client-side people: their requests have no created_by.
CREATE TEMP TABLE t_requests AS
SELECT row_number() OVER (ORDER BY c.n)::int AS request_no, c.*
FROM (
  SELECT p.n, m.agency_no,
         CASE WHEN m.role <> 'viewer' THEN m.user_no END AS creator_no,
         b.lo + p.r_created * (b.hi - b.lo) AS created_at,
         p.r_status, p.r_prio, p.r_due, p.r_close, p.r_del, p.r_del_at, p.r_desc, p.r_client,
         p.r_upd, p.verb, p.object, p.note
  FROM (
    SELECT n,
           1 + floor(random() * (SELECT count(*) FROM t_memberships))::int AS m_no,
           random() AS r_accept,
           random() AS r_created, random() AS r_status, random() AS r_prio, random() AS r_due,
           random() AS r_close, random() AS r_del, random() AS r_del_at, random() AS r_desc,
           random() AS r_client, random() AS r_upd,
           pg_temp.pick(w.request_verbs) AS verb, pg_temp.pick(w.request_objects) AS object,
           pg_temp.pick(w.request_notes) AS note
    FROM generate_series(1, 60000) n CROSS JOIN t_words w
  ) p
  JOIN t_memberships m ON m.m_no = p.m_no
  JOIN t_users u ON u.user_no = m.user_no
  JOIN t_agencies a ON a.agency_no = m.agency_no
  CROSS JOIN LATERAL (
    SELECT greatest(a.created_at, m.created_at, pg_temp.anchor() - interval '730 days') AS lo,
           least(coalesce(a.deleted_at, pg_temp.anchor()), coalesce(u.deleted_at, pg_temp.anchor())) AS hi
  ) b
  WHERE p.r_accept * interval '730 days' < b.hi - b.lo
  ORDER BY p.n
  LIMIT 15000
) c;

ALTER TABLE t_requests ADD COLUMN id uuid;
UPDATE t_requests SET id = pg_temp.uid('request', request_no);

ALTER TABLE t_requests
  ADD COLUMN status text, ADD COLUMN closed_at timestamptz, ADD COLUMN due_at timestamptz,
  ADD COLUMN deleted_at timestamptz, ADD COLUMN deleter_no int, ADD COLUMN number int,
  ADD COLUMN client_no int;

UPDATE t_requests SET status = CASE
  WHEN pg_temp.anchor() - created_at > interval '45 days' THEN
    CASE WHEN r_status < 0.78 THEN 'completed' WHEN r_status < 0.90 THEN 'cancelled'
         WHEN r_status < 0.94 THEN 'waiting_on_client' WHEN r_status < 0.97 THEN 'in_progress'
         WHEN r_status < 0.99 THEN 'triaged' ELSE 'new' END
  ELSE
    CASE WHEN r_status < 0.15 THEN 'new' WHEN r_status < 0.30 THEN 'triaged'
         WHEN r_status < 0.58 THEN 'in_progress' WHEN r_status < 0.72 THEN 'waiting_on_client'
         WHEN r_status < 0.96 THEN 'completed' ELSE 'cancelled' END
  END;

UPDATE t_requests r SET
  closed_at = CASE WHEN r.status IN ('completed', 'cancelled')
    THEN least(pg_temp.anchor(), r.created_at + (0.05 + 40 * r.r_close * r.r_close) * interval '1 day') END,
  due_at = CASE WHEN r.r_due < 0.6
    THEN date_trunc('hour', r.created_at + (2 + 40 * r.r_due) * interval '1 day') + interval '17 hours' END,
  deleted_at = CASE WHEN r.r_del < 0.03
    THEN r.created_at + (0.05 + 0.95 * r.r_del_at) * (pg_temp.anchor() - r.created_at) END,
  deleter_no = am.workers[1 + floor(r.r_del_at * cardinality(am.workers))::int],
  client_no = (r.agency_no * 13 + floor(r.r_client * 6)::int) % 300
FROM t_agency_members am
WHERE am.agency_no = r.agency_no;

UPDATE t_requests r SET number = x.rn
FROM (SELECT request_no, row_number() OVER (PARTITION BY agency_no ORDER BY created_at, request_no) AS rn
      FROM t_requests) x
WHERE x.request_no = r.request_no;

INSERT INTO requests (id, agency_id, number, created_by, title, description, client_name, client_email,
                      status, priority, due_at, closed_at, created_at, updated_at, deleted_at, deleted_by)
SELECT r.id,
       pg_temp.uid('agency', r.agency_no),
       r.number,
       pg_temp.uid('user', r.creator_no),
       r.verb || ' ' || r.object,
       CASE WHEN r.r_desc < 0.75 THEN
         'Client ' || c.client_name || ' asked us to ' || lower(r.verb) || ' the ' || r.object || '. ' || r.note END,
       c.client_name,
       (ARRAY['marketing', 'hello', 'ops', 'info', 'team'])[1 + (r.request_no % 5)] || '@' || c.client_domain,
       r.status::request_status,
       (CASE WHEN r.r_prio < 0.20 THEN 'low' WHEN r.r_prio < 0.75 THEN 'normal'
             WHEN r.r_prio < 0.95 THEN 'high' ELSE 'urgent' END)::request_priority,
       r.due_at,
       r.closed_at,
       r.created_at,
       greatest(r.created_at, r.closed_at, r.deleted_at,
                CASE WHEN r.closed_at IS NULL
                     THEN r.created_at + r.r_upd * (pg_temp.anchor() - r.created_at) END),
       r.deleted_at,
       CASE WHEN r.deleted_at IS NOT NULL THEN pg_temp.uid('user', r.deleter_no) END
FROM t_requests r
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT w.client_prefix[1 + r.client_no % 20] || ' ' || w.client_suffix[1 + r.client_no / 20] AS client_name,
         translate(lower(w.client_prefix[1 + r.client_no % 20] || w.client_suffix[1 + r.client_no / 20]), ' &', '')
           || '.com' AS client_domain
) c
ORDER BY r.request_no;

-- ---------------------------------------------------------------------------
-- Tasks: 40,000
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE t_tasks AS
SELECT p.task_no,
       pg_temp.uid('task', p.task_no) AS id,
       r.request_no, r.agency_no, r.status AS request_status, r.closed_at AS request_closed_at,
       r.due_at AS request_due_at, r.deleted_at AS request_deleted_at, r.deleter_no AS request_deleter_no,
       r.creator_no AS request_creator_no,
       r.created_at + p.r_created * (least(r.created_at + interval '10 days',
                                           coalesce(r.closed_at, pg_temp.anchor()),
                                           coalesce(r.deleted_at, pg_temp.anchor())) - r.created_at) AS created_at,
       am.workers[1 + floor(p.r_assignee * cardinality(am.workers))::int] AS worker_no,
       p.r_status, p.r_assign, p.r_creator, p.r_due, p.r_done, p.r_est, p.r_desc, p.r_del,
       p.r_del_at, p.r_upd, p.verb, p.object
FROM (
  SELECT n AS task_no,
         1 + floor(random() * 15000)::int AS pick_request,
         random() AS r_created, random() AS r_status, random() AS r_assign, random() AS r_assignee,
         random() AS r_creator, random() AS r_due, random() AS r_done, random() AS r_est,
         random() AS r_desc, random() AS r_del, random() AS r_del_at, random() AS r_upd,
         pg_temp.pick(w.task_verbs) AS verb, pg_temp.pick(w.task_objects) AS object
  FROM generate_series(1, 40000) n CROSS JOIN t_words w
) p
JOIN t_requests r ON r.request_no = p.pick_request
JOIN t_agency_members am ON am.agency_no = r.agency_no;

ALTER TABLE t_tasks ADD COLUMN status text, ADD COLUMN completed_at timestamptz,
  ADD COLUMN deleted_at timestamptz, ADD COLUMN deleter_no int, ADD COLUMN position int;

UPDATE t_tasks SET status = CASE request_status
  WHEN 'completed' THEN CASE WHEN r_status < 0.88 THEN 'done' ELSE 'cancelled' END
  WHEN 'cancelled' THEN CASE WHEN r_status < 0.70 THEN 'cancelled' WHEN r_status < 0.90 THEN 'done' ELSE 'todo' END
  WHEN 'new' THEN 'todo'
  WHEN 'triaged' THEN CASE WHEN r_status < 0.85 THEN 'todo' ELSE 'in_progress' END
  WHEN 'in_progress' THEN CASE WHEN r_status < 0.40 THEN 'done' WHEN r_status < 0.65 THEN 'in_progress'
                               WHEN r_status < 0.85 THEN 'todo' WHEN r_status < 0.95 THEN 'in_review' ELSE 'blocked' END
  ELSE CASE WHEN r_status < 0.35 THEN 'done' WHEN r_status < 0.70 THEN 'blocked'
            WHEN r_status < 0.85 THEN 'in_review' ELSE 'todo' END
  END;

UPDATE t_tasks t SET
  completed_at = CASE WHEN t.status = 'done'
    THEN t.created_at + t.r_done * (coalesce(t.request_closed_at, pg_temp.anchor()) - t.created_at) END,
  deleted_at = CASE WHEN t.request_deleted_at IS NOT NULL THEN t.request_deleted_at
                    WHEN t.r_del < 0.012 THEN t.created_at + (0.05 + 0.95 * t.r_del_at) * (pg_temp.anchor() - t.created_at) END,
  deleter_no = CASE WHEN t.request_deleted_at IS NOT NULL THEN t.request_deleter_no
                    WHEN t.r_del < 0.012 THEN t.worker_no END,
  position = x.rn - 1
FROM (SELECT task_no, row_number() OVER (PARTITION BY request_no ORDER BY created_at, task_no) AS rn FROM t_tasks) x
WHERE x.task_no = t.task_no;

INSERT INTO tasks (id, request_id, agency_id, assignee_id, created_by, title, description, status, position,
                   estimate_minutes, due_date, completed_at, created_at, updated_at, deleted_at, deleted_by)
SELECT t.id,
       pg_temp.uid('request', t.request_no),
       pg_temp.uid('agency', t.agency_no),
       CASE WHEN t.r_assign < 0.85 THEN pg_temp.uid('user', t.worker_no) END,
       pg_temp.uid('user', CASE WHEN t.r_creator < 0.7 AND t.request_creator_no IS NOT NULL
                                THEN t.request_creator_no ELSE t.worker_no END),
       t.verb || ' ' || t.object,
       CASE WHEN t.r_desc < 0.4 THEN 'Part of request ' || t.request_no || '. ' ||
         (ARRAY['Check the brief before starting.', 'Coordinate with design.',
                'Keep the client''s brand colours.', 'Estimate is rough; flag if it grows.',
                'Blocked items go in the weekly sync.'])[1 + t.task_no % 5] END,
       t.status::task_status,
       t.position,
       CASE WHEN t.r_est < 0.6 THEN (ARRAY[15, 30, 30, 60, 60, 90, 120, 180, 240, 480])[1 + floor(t.r_est / 0.6 * 10)::int] END,
       CASE WHEN t.r_due < 0.7 THEN
         CASE WHEN t.request_due_at IS NOT NULL AND t.r_due < 0.35
              THEN least((t.created_at + (1 + 20 * t.r_due) * interval '1 day')::date, t.request_due_at::date)
              ELSE (t.created_at + (1 + 20 * t.r_due) * interval '1 day')::date END END,
       t.completed_at,
       t.created_at,
       greatest(t.created_at, t.completed_at, t.deleted_at,
                CASE WHEN t.completed_at IS NULL THEN t.created_at + t.r_upd * (pg_temp.anchor() - t.created_at) / 4 END),
       t.deleted_at,
       pg_temp.uid('user', t.deleter_no)
FROM t_tasks t
ORDER BY t.task_no;

-- ---------------------------------------------------------------------------
-- Analytics connections: 100
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE t_connections AS
SELECT c.conn_no,
       pg_temp.uid('analytics_connection', c.conn_no) AS id,
       c.agency_no,
       c.provider,
       am.workers[1 + floor(c.r_creator * cardinality(am.workers))::int] AS creator_no,
       CASE WHEN c.provider = 'tiktok_ads'
            THEN pg_temp.anchor() - c.r_created * interval '30 days'
            ELSE a.created_at + c.r_created * (coalesce(a.deleted_at, pg_temp.anchor()) - a.created_at) END AS created_at,
       a.deleted_at AS agency_deleted_at,
       -- a different client of the agency for each connection of one provider
       ((c.agency_no * 13 + row_number() OVER (PARTITION BY c.agency_no, c.provider ORDER BY c.conn_no) - 1) % 300)::int AS client_no,
       c.r_sync, c.r_del, c.r_ext
FROM (
  SELECT n AS conn_no,
         1 + floor(random() * 50)::int AS agency_no,
         CASE WHEN r < 0.30 THEN 'google_analytics' WHEN r < 0.50 THEN 'google_search_console'
              WHEN r < 0.70 THEN 'google_ads' WHEN r < 0.85 THEN 'meta_ads'
              WHEN r < 0.92 THEN 'linkedin_ads' WHEN r < 0.97 THEN 'hubspot' ELSE 'tiktok_ads' END AS provider,
         r_creator, r_created, r_sync, r_del, r_ext
  FROM (SELECT n, random() AS r, random() AS r_creator, random() AS r_created, random() AS r_sync,
               random() AS r_del, random() AS r_ext
        FROM generate_series(1, 100) n) x
) c
JOIN t_agencies a ON a.agency_no = c.agency_no
JOIN t_agency_members am ON am.agency_no = c.agency_no;

INSERT INTO analytics_connections (id, agency_id, provider, external_account_id, display_name,
                                   encrypted_credentials, credentials_key_id, last_synced_at, last_sync_error,
                                   created_by, created_at, updated_at, deleted_at, deleted_by)
SELECT c.id,
       pg_temp.uid('agency', c.agency_no),
       c.provider::analytics_provider,
       CASE c.provider
         WHEN 'google_analytics' THEN 'properties/' || (300000000 + floor(c.r_ext * 99999999))::bigint
         WHEN 'google_search_console' THEN 'sc-domain:' || cl.domain
         WHEN 'google_ads' THEN lpad((c.conn_no * 7 + floor(c.r_ext * 1000))::int::text, 3, '0') || '-'
                                || lpad(floor(c.r_ext * 1000)::int::text, 3, '0') || '-'
                                || lpad((floor(c.r_ext * 1e7)::bigint % 10000)::text, 4, '0')
         WHEN 'meta_ads' THEN 'act_' || (100000000000000 + floor(c.r_ext * 899999999999999))::bigint
         WHEN 'linkedin_ads' THEN 'urn:li:sponsoredAccount:' || (500000000 + floor(c.r_ext * 99999999))::bigint
         WHEN 'hubspot' THEN (20000000 + floor(c.r_ext * 9999999))::bigint::text
         ELSE (7000000000000000000 + floor(c.r_ext::numeric * 999999999999999999))::bigint::text
       END,
       cl.name || ' – ' || CASE c.provider
         WHEN 'google_analytics' THEN 'GA4' WHEN 'google_search_console' THEN 'Search Console'
         WHEN 'google_ads' THEN 'Google Ads' WHEN 'meta_ads' THEN 'Meta Ads'
         WHEN 'linkedin_ads' THEN 'LinkedIn Ads' WHEN 'hubspot' THEN 'HubSpot' ELSE 'TikTok Ads' END,
       -- version byte, 12-byte nonce, AES-GCM ciphertext, 16-byte tag
       decode('01' || pg_temp.hex(24) || pg_temp.hex(2 * (180 + c.conn_no % 5 * 37)) || pg_temp.hex(32), 'hex'),
       CASE WHEN c.created_at < pg_temp.anchor() - interval '180 days' AND c.r_sync < 0.5 THEN 'k1' ELSE 'k2' END,
       s.last_synced_at,
       s.last_sync_error,
       pg_temp.uid('user', c.creator_no),
       c.created_at,
       greatest(c.created_at, s.last_synced_at, d.deleted_at),
       d.deleted_at,
       CASE WHEN d.deleted_at IS NOT NULL THEN pg_temp.uid('user', c.creator_no) END
FROM t_connections c
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT w.client_prefix[1 + c.client_no % 20] || ' ' || w.client_suffix[1 + c.client_no / 20] AS name,
         translate(lower(w.client_prefix[1 + c.client_no % 20] || w.client_suffix[1 + c.client_no / 20]), ' &', '')
           || '.com' AS domain
) cl
CROSS JOIN LATERAL (
  SELECT coalesce(c.agency_deleted_at,
                  CASE WHEN c.r_del < 0.03 THEN c.created_at + 0.5 * (pg_temp.anchor() - c.created_at) END) AS deleted_at
) d
CROSS JOIN LATERAL (
  SELECT CASE
           WHEN c.r_sync < 0.05 THEN NULL -- never synced
           WHEN c.r_sync < 0.15 THEN least(coalesce(d.deleted_at, pg_temp.anchor()),
                                           pg_temp.anchor() - (2 + 20 * c.r_sync) * interval '1 day')
           ELSE least(coalesce(d.deleted_at, pg_temp.anchor()),
                      pg_temp.anchor() - c.r_sync * interval '3 hours') END AS last_synced_at,
         CASE
           WHEN c.r_sync < 0.05 THEN NULL
           WHEN c.r_sync < 0.10 THEN 'invalid_grant: Token has been expired or revoked.'
           WHEN c.r_sync < 0.13 THEN 'PERMISSION_DENIED: User does not have sufficient permissions for this property.'
           WHEN c.r_sync < 0.15 THEN 'RESOURCE_EXHAUSTED: Exhausted property tokens per day.' END AS last_sync_error
) s
ORDER BY c.conn_no;

-- ---------------------------------------------------------------------------
-- Audit log: 60,000, inserted in time order (ids follow created_at)
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE t_audit (
  seg int, n int, actor_no int, agency_no int, action text, entity_type text, entity_id text,
  metadata jsonb, ip inet, user_agent text, created_at timestamptz
);

-- Request events: 27,000
INSERT INTO t_audit
SELECT 1, p.n,
       CASE WHEN p.r_action < 0.25 THEN r.creator_no
            ELSE am.workers[1 + floor(p.r_actor * cardinality(am.workers))::int] END,
       r.agency_no,
       a.action, 'request', r.id::text,
       CASE a.action
         WHEN 'request.created' THEN jsonb_build_object('number', r.number, 'title', r.verb || ' ' || r.object,
                                                        'source', CASE WHEN r.creator_no IS NULL THEN 'client_portal' ELSE 'app' END)
         WHEN 'request.updated' THEN jsonb_build_object('fields',
           (ARRAY['["title"]', '["description"]', '["due_at"]', '["priority"]', '["title", "description"]'])[1 + p.n % 5]::jsonb)
         WHEN 'request.status_changed' THEN jsonb_build_object('from',
           (ARRAY['new', 'triaged', 'in_progress', 'waiting_on_client'])[1 + floor(p.r_meta * 4)::int], 'to', r.status)
         WHEN 'request.commented' THEN jsonb_build_object('comment_id', pg_temp.uid('comment', p.n), 'length', 20 + floor(p.r_meta * 800)::int,
                                                          'mentions', floor(p.r_meta * 3)::int)
         ELSE jsonb_build_object('file_name', (ARRAY['brief.pdf', 'logo.svg', 'copy-v2.docx', 'screenshot.png', 'assets.zip'])[1 + p.n % 5],
                                 'size_bytes', 20000 + floor(p.r_meta * 20000000)::int,
                                 'content_type', (ARRAY['application/pdf', 'image/svg+xml',
                                   'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
                                   'image/png', 'application/zip'])[1 + p.n % 5])
       END,
       pg_temp.ip(), pg_temp.pick(w.user_agents),
       CASE WHEN p.r_action < 0.25 THEN r.created_at
            ELSE r.created_at + p.r_time * (least(coalesce(r.closed_at, pg_temp.anchor()),
                                                  coalesce(r.deleted_at, pg_temp.anchor()),
                                                  r.created_at + interval '60 days') - r.created_at) END
FROM (SELECT n, 1 + floor(random() * 15000)::int AS request_no, random() AS r_action, random() AS r_actor,
             random() AS r_meta, random() AS r_time
      FROM generate_series(1, 27000) n) p
JOIN t_requests r ON r.request_no = p.request_no
JOIN t_agency_members am ON am.agency_no = r.agency_no
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT CASE WHEN p.r_action < 0.25 THEN 'request.created' WHEN p.r_action < 0.50 THEN 'request.updated'
              WHEN p.r_action < 0.80 THEN 'request.status_changed' WHEN p.r_action < 0.95 THEN 'request.commented'
              ELSE 'request.attachment_uploaded' END AS action
) a
ORDER BY p.n;

-- Task events: 21,000
INSERT INTO t_audit
SELECT 2, p.n,
       CASE WHEN a.action = 'task.completed' THEN t.worker_no
            ELSE am.workers[1 + floor(p.r_actor * cardinality(am.workers))::int] END,
       t.agency_no,
       a.action, 'task', t.id::text,
       CASE a.action
         WHEN 'task.created' THEN jsonb_build_object('request_id', pg_temp.uid('request', t.request_no), 'title', t.verb || ' ' || t.object)
         WHEN 'task.assigned' THEN jsonb_build_object('assignee_id', pg_temp.uid('user', t.worker_no), 'previous_assignee_id', NULL)
         WHEN 'task.status_changed' THEN jsonb_build_object('from', (ARRAY['todo', 'in_progress', 'in_review', 'blocked'])[1 + floor(p.r_meta * 4)::int],
                                                           'to', t.status)
         WHEN 'task.due_date_changed' THEN jsonb_build_object('from', (t.created_at + interval '7 days')::date,
                                                             'to', (t.created_at + (7 + floor(p.r_meta * 14)) * interval '1 day')::date)
         ELSE jsonb_build_object('duration_minutes', 15 + floor(p.r_meta * 600)::int)
       END,
       pg_temp.ip(), pg_temp.pick(w.user_agents),
       CASE WHEN a.action = 'task.created' THEN t.created_at
            WHEN a.action = 'task.completed' AND t.completed_at IS NOT NULL THEN t.completed_at
            ELSE t.created_at + p.r_time * (least(coalesce(t.completed_at, pg_temp.anchor()),
                                                  coalesce(t.deleted_at, pg_temp.anchor()),
                                                  t.created_at + interval '30 days') - t.created_at) END
FROM (SELECT n, 1 + floor(random() * 40000)::int AS task_no, random() AS r_action, random() AS r_actor,
             random() AS r_meta, random() AS r_time
      FROM generate_series(1, 21000) n) p
JOIN t_tasks t ON t.task_no = p.task_no
JOIN t_agency_members am ON am.agency_no = t.agency_no
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT CASE WHEN p.r_action < 0.30 THEN 'task.created' WHEN p.r_action < 0.50 THEN 'task.assigned'
              WHEN p.r_action < 0.80 THEN 'task.status_changed' WHEN p.r_action < 0.88 THEN 'task.due_date_changed'
              ELSE 'task.completed' END AS action
) a
ORDER BY p.n;

-- Authentication events: 8,000
INSERT INTO t_audit
SELECT 3, p.n, u.user_no, u.agency_no, a.action, 'user', u.id::text,
       CASE a.action
         WHEN 'user.login' THEN jsonb_build_object(
           'method', CASE WHEN u.has_password AND p.r_meta < 0.6 THEN 'password' ELSE 'oauth' END,
           'provider', CASE WHEN u.has_password AND p.r_meta < 0.6 THEN NULL
                            ELSE (ARRAY['google', 'github', 'azure-ad'])[u.provider_no] END,
           'mfa', p.r_meta < 0.2)
         WHEN 'user.login_failed' THEN jsonb_build_object('reason',
           (ARRAY['invalid_password', 'invalid_password', 'mfa_failed', 'account_locked'])[1 + floor(p.r_meta * 4)::int])
         WHEN 'user.mfa_enabled' THEN jsonb_build_object('factor', CASE WHEN p.r_meta < 0.7 THEN 'totp' ELSE 'webauthn' END)
         ELSE '{}'::jsonb
       END,
       pg_temp.ip(), pg_temp.pick(w.user_agents),
       u.created_at + (1 - power(p.r_time, 2)) * (pg_temp.anchor() - u.created_at)
FROM (SELECT n, 1 + floor(random() * (SELECT count(*) FROM t_active))::int AS k, random() AS r_action,
             random() AS r_meta, random() AS r_time
      FROM generate_series(1, 8000) n) p
JOIN t_active u ON u.k = p.k
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT CASE WHEN p.r_action < 0.75 THEN 'user.login' WHEN p.r_action < 0.87 THEN 'user.logout'
              WHEN p.r_action < 0.95 THEN 'user.login_failed' WHEN p.r_action < 0.98 THEN 'user.password_changed'
              ELSE 'user.mfa_enabled' END AS action
) a
ORDER BY p.n;

-- Membership events: 2,500
INSERT INTO t_audit
SELECT 4, p.n,
       CASE WHEN a.action = 'membership.accepted' THEN m.user_no ELSE m.agency_no + 5 END,
       m.agency_no, a.action, 'agency_membership', pg_temp.uid('membership', m.m_no)::text,
       CASE a.action
         WHEN 'membership.invited' THEN jsonb_build_object('email', u.email, 'role', m.role)
         WHEN 'membership.accepted' THEN jsonb_build_object('role', m.role)
         ELSE jsonb_build_object('from', CASE WHEN m.role = 'member' THEN 'viewer' ELSE 'member' END, 'to', m.role)
       END,
       pg_temp.ip(), pg_temp.pick(w.user_agents),
       CASE a.action
         WHEN 'membership.invited' THEN m.created_at
         WHEN 'membership.accepted' THEN least(pg_temp.anchor(), m.created_at + m.r_join * interval '2 days')
         ELSE m.created_at + p.r_time * (coalesce(u.deleted_at, pg_temp.anchor()) - m.created_at) END
FROM (SELECT n, 1 + floor(random() * (SELECT count(*) FROM t_memberships))::int AS m_no,
             random() AS r_action, random() AS r_time
      FROM generate_series(1, 2500) n) p
JOIN t_memberships m ON m.m_no = p.m_no
JOIN t_users u ON u.user_no = m.user_no
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT CASE WHEN m.role = 'owner' OR p.r_action >= 0.85 THEN 'membership.role_changed'
              WHEN p.r_action < 0.45 THEN 'membership.invited'
              ELSE 'membership.accepted' END AS action
) a
ORDER BY p.n;

-- Analytics connection events: 1,200 (sync failures come from the system: no actor)
INSERT INTO t_audit
SELECT 5, p.n,
       CASE WHEN a.action = 'analytics.sync_failed' THEN NULL ELSE c.creator_no END,
       c.agency_no, a.action, 'analytics_connection', c.id::text,
       jsonb_build_object('provider', c.provider)
         || CASE WHEN a.action = 'analytics.sync_failed'
                 THEN jsonb_build_object('error', 'invalid_grant', 'attempt', 1 + floor(p.r_meta * 3)::int)
                 ELSE '{}'::jsonb END,
       CASE WHEN a.action <> 'analytics.sync_failed' THEN pg_temp.ip() END,
       CASE WHEN a.action <> 'analytics.sync_failed' THEN pg_temp.pick(w.user_agents) ELSE 'agencyflow-worker/2.14' END,
       CASE WHEN a.action = 'analytics.connected' THEN c.created_at
            ELSE c.created_at + p.r_time * (coalesce(c.agency_deleted_at, pg_temp.anchor()) - c.created_at) END
FROM (SELECT n, 1 + floor(random() * 100)::int AS conn_no, random() AS r_action, random() AS r_meta, random() AS r_time
      FROM generate_series(1, 1200) n) p
JOIN t_connections c ON c.conn_no = p.conn_no
CROSS JOIN t_words w
CROSS JOIN LATERAL (
  SELECT CASE WHEN p.r_action < 0.10 THEN 'analytics.connected' WHEN p.r_action < 0.85 THEN 'analytics.sync_failed'
              ELSE 'analytics.credentials_rotated' END AS action
) a
ORDER BY p.n;

-- Agency and system settings events: 300
INSERT INTO t_audit
SELECT 6, p.n,
       CASE WHEN p.r_action < 0.8 THEN a.agency_no + 5 ELSE 1 + p.n % 5 END,
       CASE WHEN p.r_action < 0.8 THEN a.agency_no END,
       CASE WHEN p.r_action < 0.5 THEN 'agency.updated' WHEN p.r_action < 0.8 THEN 'agency.plan_changed'
            ELSE 'system_setting.updated' END,
       CASE WHEN p.r_action < 0.8 THEN 'agency' ELSE 'system_setting' END,
       CASE WHEN p.r_action < 0.8 THEN a.id::text
            ELSE (ARRAY['features.ai_summaries', 'jobs.max_attempts', 'auth.session_ttl_hours', 'maintenance.mode'])[1 + p.n % 4] END,
       CASE WHEN p.r_action < 0.5 THEN jsonb_build_object('fields', '["name", "timezone"]'::jsonb)
            WHEN p.r_action < 0.8 THEN jsonb_build_object('from', 'starter', 'to', 'pro', 'seats', 3 + p.n % 20)
            ELSE jsonb_build_object('reason', 'ops change') END,
       pg_temp.ip(), pg_temp.pick(w.user_agents),
       a.created_at + p.r_time * (coalesce(a.deleted_at, pg_temp.anchor()) - a.created_at)
FROM (SELECT n, 1 + floor(random() * 50)::int AS agency_no, random() AS r_action, random() AS r_time
      FROM generate_series(1, 300) n) p
JOIN t_agencies a ON a.agency_no = p.agency_no
CROSS JOIN t_words w
ORDER BY p.n;

INSERT INTO audit_log (actor_id, agency_id, action, entity_type, entity_id, metadata, ip_address, user_agent, created_at)
SELECT pg_temp.uid('user', actor_no), pg_temp.uid('agency', agency_no), action, entity_type, entity_id,
       metadata, ip, user_agent, created_at
FROM t_audit
ORDER BY created_at, seg, n;

-- ---------------------------------------------------------------------------
-- Monthly usage: one row per agency and month of activity (last 24 months)
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE t_usage AS
SELECT a.agency_no, a.id AS agency_id, a.created_at AS agency_created_at, m.month::date AS month,
       random() AS r_api, random() AS r_storage, random() AS r_syncs
FROM t_agencies a
CROSS JOIN generate_series(date_trunc('month', pg_temp.anchor()) - interval '23 months',
                           date_trunc('month', pg_temp.anchor()), interval '1 month') m(month)
WHERE m.month >= date_trunc('month', a.created_at)
  AND m.month <= date_trunc('month', coalesce(a.deleted_at, pg_temp.anchor()))
ORDER BY a.agency_no, m.month;

INSERT INTO monthly_usage (id, agency_id, month, requests_created, tasks_created, tasks_completed, active_users,
                           api_calls, analytics_syncs, storage_bytes, created_at, updated_at)
SELECT pg_temp.uid('monthly_usage', u.agency_no * 1000 + extract(year from u.month)::int % 100 * 12 + extract(month from u.month)::int),
       u.agency_id, u.month,
       coalesce(r.n, 0), coalesce(t.created, 0), coalesce(tc.n, 0), coalesce(au.n, 0),
       (coalesce(r.n, 0) * 40 + coalesce(t.created, 0) * 12 + coalesce(au.n, 0) * 350 + floor(u.r_api * 2000))::bigint,
       coalesce(c.n, 0) * (620 + floor(u.r_syncs * 100))::int,
       (sum(coalesce(r.n, 0) * (1.5e6 + u.r_storage * 4e6)) OVER (PARTITION BY u.agency_no ORDER BY u.month)
         + 5e6)::bigint,
       greatest(u.agency_created_at, u.month + interval '1 minute' * (1 + u.agency_no)),
       least(pg_temp.anchor(), u.month + interval '1 month' + interval '2 hours')
FROM t_usage u
LEFT JOIN (SELECT agency_id, date_trunc('month', created_at)::date AS month, count(*) AS n
           FROM requests GROUP BY 1, 2) r ON r.agency_id = u.agency_id AND r.month = u.month
LEFT JOIN (SELECT agency_id, date_trunc('month', created_at)::date AS month, count(*) AS created
           FROM tasks GROUP BY 1, 2) t ON t.agency_id = u.agency_id AND t.month = u.month
LEFT JOIN (SELECT agency_id, date_trunc('month', completed_at)::date AS month, count(*) AS n
           FROM tasks WHERE completed_at IS NOT NULL GROUP BY 1, 2) tc ON tc.agency_id = u.agency_id AND tc.month = u.month
LEFT JOIN (SELECT agency_id, date_trunc('month', created_at)::date AS month, count(DISTINCT actor_id) AS n
           FROM audit_log WHERE agency_id IS NOT NULL GROUP BY 1, 2) au ON au.agency_id = u.agency_id AND au.month = u.month
LEFT JOIN LATERAL (SELECT count(*) AS n FROM analytics_connections ac
                   WHERE ac.agency_id = u.agency_id AND ac.created_at < u.month + interval '1 month'
                     AND (ac.deleted_at IS NULL OR ac.deleted_at >= u.month)) c ON true
ORDER BY u.agency_no, u.month;

-- ---------------------------------------------------------------------------
-- System settings: 20
-- ---------------------------------------------------------------------------

INSERT INTO system_settings (key, value, description, updated_by, created_at, updated_at)
SELECT s.key, s.value::jsonb, s.description,
       CASE WHEN s.n % 3 = 0 THEN NULL ELSE pg_temp.uid('user', 1 + s.n % 5) END,
       pg_temp.anchor() - interval '700 days' + s.n * interval '3 days',
       pg_temp.anchor() - (s.n * 17 % 200) * interval '1 day'
FROM (VALUES
  (1, 'auth.session_ttl_hours', '720', 'Lifetime of a "remember me" session.'),
  (2, 'auth.short_session_ttl_hours', '24', 'Lifetime of a session without "remember me".'),
  (3, 'auth.oauth_providers', '["google", "github", "azure-ad"]', 'OAuth providers offered on the sign-in page.'),
  (4, 'auth.password_policy', '{"min_length": 12, "require_mixed_case": false, "breached_check": true}', NULL),
  (5, 'auth.mfa_required_for_staff', 'true', NULL),
  (6, 'billing.plans', '{"free": {"seats": 3, "requests_per_month": 50}, "starter": {"seats": 10, "requests_per_month": 500}, "pro": {"seats": 50, "requests_per_month": 5000}, "enterprise": {"seats": null, "requests_per_month": null}}', 'Plan limits.'),
  (7, 'billing.trial_days', '14', NULL),
  (8, 'billing.grace_period_days', '7', 'Days a past-due agency keeps access.'),
  (9, 'features.ai_summaries', '{"enabled": true, "rollout_percent": 25, "plans": ["pro", "enterprise"]}', 'AI summaries of request threads.'),
  (10, 'features.client_portal', '{"enabled": true}', NULL),
  (11, 'features.tiktok_ads', '{"enabled": true, "beta": true}', 'TikTok Ads analytics connector.'),
  (12, 'jobs.max_attempts', '5', 'Default max_attempts for new background jobs.'),
  (13, 'jobs.retry_backoff_seconds', '[30, 120, 600, 3600, 21600]', NULL),
  (14, 'jobs.stale_lock_minutes', '15', 'A running job locked longer than this is re-queued.'),
  (15, 'analytics.sync_interval_minutes', '60', NULL),
  (16, 'analytics.credentials_key_id', '"k2"', 'Key used to encrypt new analytics credentials.'),
  (17, 'email.from_address', '"AgencyFlow <no-reply@agencyflow.io>"', NULL),
  (18, 'email.digest_send_hour_utc', '7', NULL),
  (19, 'maintenance.mode', 'false', 'Show the maintenance banner and block writes.'),
  (20, 'retention.audit_log_days', '730', 'Audit log rows older than this are archived.')
) AS s(n, key, value, description)
ORDER BY s.n;

-- ---------------------------------------------------------------------------
-- Background jobs: 10,000 over the last 45 days
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE t_jobs AS
SELECT n AS job_no,
       random() AS r_queue, random() AS r_type, random() AS r_status, random() AS r_created,
       random() AS r_delay, random() AS r_attempts, random() AS r_ref, random() AS r_dur
FROM generate_series(1, 10000) n;

ALTER TABLE t_jobs ADD COLUMN queue text, ADD COLUMN job_type text, ADD COLUMN max_attempts int,
  ADD COLUMN status text, ADD COLUMN created_at timestamptz, ADD COLUMN run_at timestamptz;

UPDATE t_jobs SET
  queue = CASE WHEN r_queue < 0.35 THEN 'emails' WHEN r_queue < 0.65 THEN 'analytics_sync'
               WHEN r_queue < 0.80 THEN 'webhooks' WHEN r_queue < 0.90 THEN 'reports' ELSE 'default' END,
  status = CASE WHEN r_status < 0.030 THEN 'queued' WHEN r_status < 0.036 THEN 'running'
                WHEN r_status < 0.046 THEN 'failed' WHEN r_status < 0.060 THEN 'dead' ELSE 'succeeded' END;

UPDATE t_jobs SET
  job_type = CASE queue
    WHEN 'emails' THEN (ARRAY['send_email.task_assigned', 'send_email.task_assigned', 'send_email.request_update',
                              'send_email.weekly_digest', 'send_email.invitation', 'send_email.password_reset'])[1 + floor(r_type * 6)::int]
    WHEN 'analytics_sync' THEN 'sync_analytics_connection'
    WHEN 'webhooks' THEN 'deliver_webhook'
    WHEN 'reports' THEN (ARRAY['generate_monthly_report', 'export_requests_csv'])[1 + floor(r_type * 2)::int]
    ELSE (ARRAY['cleanup_expired_sessions', 'recalculate_monthly_usage', 'purge_soft_deleted'])[1 + floor(r_type * 3)::int] END,
  max_attempts = CASE queue WHEN 'webhooks' THEN 8 WHEN 'analytics_sync' THEN 3 WHEN 'reports' THEN 3 ELSE 5 END,
  created_at = CASE WHEN status IN ('queued', 'running') THEN pg_temp.anchor() - r_created * interval '20 minutes'
                    WHEN status = 'failed' THEN pg_temp.anchor() - r_created * interval '6 hours'
                    ELSE pg_temp.anchor() - interval '45 days' + power(r_created, 0.9) * interval '45 days' END;

UPDATE t_jobs SET run_at = CASE
  WHEN status = 'queued' AND r_delay < 0.5 THEN pg_temp.anchor() + r_delay * 2 * interval '2 days' -- scheduled ahead
  WHEN status = 'failed' THEN pg_temp.anchor() + (1 + r_delay * 59) * interval '1 minute'          -- waiting to retry
  WHEN r_delay < 0.1 THEN created_at + r_delay * 10 * interval '1 hour'
  ELSE created_at END;

INSERT INTO background_jobs (id, queue, job_type, payload, status, priority, attempts, max_attempts, run_at,
                             locked_at, locked_by, last_error, finished_at, created_at, updated_at)
SELECT j.job_no, j.queue, j.job_type,
       CASE
         WHEN j.queue = 'emails' THEN jsonb_build_object(
           'template', substr(j.job_type, 12),
           'user_id', pg_temp.uid('user', 6 + floor(j.r_ref * 4995)::int),
           'locale', (ARRAY['en', 'en', 'en', 'de', 'fr', 'es'])[1 + j.job_no % 6])
         WHEN j.queue = 'analytics_sync' THEN jsonb_build_object(
           'connection_id', pg_temp.uid('analytics_connection', 1 + floor(j.r_ref * 100)::int),
           'window', jsonb_build_object('from', (j.created_at - interval '1 day')::date, 'to', j.created_at::date))
         WHEN j.queue = 'webhooks' THEN jsonb_build_object(
           'agency_id', pg_temp.uid('agency', 1 + floor(j.r_ref * 50)::int),
           'event', (ARRAY['request.created', 'request.status_changed', 'task.completed'])[1 + j.job_no % 3],
           'url', 'https://hooks.zapier.com/hooks/catch/' || (1000000 + j.job_no * 37 % 999999) || '/' || substr(md5(j.job_no::text), 1, 6) || '/')
         WHEN j.queue = 'reports' THEN jsonb_build_object(
           'agency_id', pg_temp.uid('agency', 1 + floor(j.r_ref * 50)::int),
           'month', to_char(date_trunc('month', j.created_at) - interval '1 month', 'YYYY-MM'))
         ELSE jsonb_build_object('batch_size', 1000)
       END,
       j.status::job_status,
       CASE WHEN j.job_type = 'send_email.password_reset' THEN 10 WHEN j.queue = 'reports' THEN -5 ELSE 0 END,
       CASE j.status
         WHEN 'queued' THEN 0
         WHEN 'running' THEN 1 + (j.r_attempts < 0.1)::int
         WHEN 'failed' THEN 1 + floor(j.r_attempts * (j.max_attempts - 1))::int
         WHEN 'dead' THEN j.max_attempts
         ELSE CASE WHEN j.r_attempts < 0.93 THEN 1 WHEN j.r_attempts < 0.99 THEN 2 ELSE 3 END END,
       j.max_attempts,
       j.run_at,
       CASE WHEN j.status = 'running' THEN pg_temp.anchor() - j.r_dur * interval '90 seconds' END,
       CASE WHEN j.status = 'running' THEN 'worker-' || (ARRAY['7f9c4', 'b21e0', 'c83aa'])[1 + j.job_no % 3] || ':' || (100 + j.job_no % 37) END,
       CASE
         WHEN j.status IN ('failed', 'dead') OR (j.status = 'succeeded' AND j.r_attempts >= 0.93) THEN
           CASE j.queue
             WHEN 'emails' THEN 'SMTP 421 4.7.0 Try again later, closing connection.'
             WHEN 'analytics_sync' THEN 'invalid_grant: Token has been expired or revoked.'
             WHEN 'webhooks' THEN 'HTTP 5' || lpad((j.job_no % 4)::text, 2, '0') || ' from endpoint after 10000 ms'
             WHEN 'reports' THEN 'canceling statement due to statement timeout'
             ELSE 'deadlock detected' END
       END,
       CASE WHEN j.status IN ('succeeded', 'dead') THEN j.run_at + (0.05 + power(j.r_dur, 3) * 120) * interval '1 second' END,
       j.created_at,
       CASE WHEN j.status IN ('succeeded', 'dead') THEN j.run_at + (0.05 + power(j.r_dur, 3) * 120) * interval '1 second'
            WHEN j.status = 'running' THEN pg_temp.anchor() - j.r_dur * interval '90 seconds'
            ELSE j.created_at END
FROM t_jobs j
ORDER BY j.job_no;

SELECT setval(pg_get_serial_sequence('background_jobs', 'id'), (SELECT max(id) FROM background_jobs));

-- ---------------------------------------------------------------------------
-- Clean up and refresh planner statistics
-- ---------------------------------------------------------------------------

DROP TABLE t_words, t_agencies, t_users, t_active, t_mem_raw, t_memberships, t_agency_members,
           t_requests, t_tasks, t_connections, t_audit, t_usage, t_jobs;
DROP FUNCTION pg_temp.anchor(), pg_temp.uid(text, bigint), pg_temp.pick(anyarray), pg_temp.hex(int), pg_temp.ip();

ANALYZE;
