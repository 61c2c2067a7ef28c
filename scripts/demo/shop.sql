-- A small shop: one table per copy mode, mixed types, a few thousand rows.
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');

CREATE TABLE customers (            -- INSERT_AND_UPDATE (primary key + indexed updated_at)
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email varchar(120),
  country char(2),
  vip boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_updated_at ON customers (updated_at, id);

CREATE TABLE orders (               -- INSERT_AND_UPDATE, with JSON, money-like numerics, an enum
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id),
  status order_status NOT NULL DEFAULT 'new',
  total numeric(12,2) NOT NULL,
  items jsonb NOT NULL,
  note text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_updated_at ON orders (updated_at, id);

CREATE TABLE events (               -- INSERT_ONLY (sequential key, rows never change)
  id bigserial PRIMARY KEY,
  kind text NOT NULL,
  payload jsonb,
  at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE countries (            -- FULL_DATA_SYNC (text key, no updated_at)
  code char(2) PRIMARY KEY,
  name text NOT NULL,
  vat_rate numeric(4,2)
);

INSERT INTO countries VALUES
  ('DE', 'Germany', 19), ('FR', 'France', 20), ('GB', 'United Kingdom', 20),
  ('JP', 'Japan', 10), ('BR', 'Brasil', 17), ('US', 'United States', NULL);

INSERT INTO customers (name, email, country, vip, created_at, updated_at)
SELECT 'Customer ' || i || CASE WHEN i % 7 = 0 THEN ' "the 7th", Ünïcödé ☕' ELSE '' END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE 'customer' || i || '@example.com' END,
       (ARRAY['DE','FR','GB','JP','BR','US'])[1 + i % 6],
       i % 13 = 0,
       now() - interval '30 days' + i * interval '1 minute',
       now() - interval '30 days' + i * interval '1 minute'
FROM generate_series(1, 2000) i;

INSERT INTO orders (customer_id, status, total, items, note, updated_at)
SELECT 1 + i % 2000,
       (ARRAY['new','paid','shipped','cancelled']::order_status[])[1 + i % 4],
       round((i % 500) * 1.37 + 0.99, 2),
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || i % 97, 'qty', 1 + i % 3)),
       CASE WHEN i % 5 = 0 THEN E'gift wrap, please\nline two' WHEN i % 9 = 0 THEN '' ELSE NULL END,
       now() - interval '20 days' + i * interval '30 seconds'
FROM generate_series(1, 5000) i;

INSERT INTO events (kind, payload, at)
SELECT (ARRAY['view','click','purchase'])[1 + i % 3], jsonb_build_object('n', i), now() - interval '10 days' + i * interval '10 seconds'
FROM generate_series(1, 3000) i;
